"""Delivering digests through SMTP, or into an outbox of ``.eml`` files, once per (leader, period).

Each digest has a record in the state file (``calsync:digests``), keyed by leader and period. It is
marked ``sending`` before the message goes out and ``sent`` once the server has accepted it (or the
file is written), so that a second run in the same period sends nothing and a failed one is retried by
the next run without resending the others.

A crash (a kill, a power loss) while a mail is handed over leaves ``sending``: the server may or may not
have taken the mail. Such a digest is **in doubt** and is not sent again through SMTP, because a leader
getting the same digest twice is worse than the rare lost one; the run reports it (``calsync digest``
lists it, exit 3) and the next period's digest goes out as usual. Written into an outbox, the file of a
digest has a fixed name, so an in-doubt digest is simply written again.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from calsync.config import PLAIN, SSL, STARTTLS, SmtpConfig
from calsync.digest.compose import Digest, Figures
from calsync.store import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, StateStore, make_directory

SENT, SENDING, FAILED, IN_DOUBT = "sent", "sending", "failed", "in doubt"


class DeliveryError(Exception):
    """A digest could not be delivered. ``fatal``: the server itself cannot be used (unreachable, a
    refused login or sender), so the other digests of this run are not tried either."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


class Delivery(Protocol):
    #: Whether delivering the same message twice is harmless (a file written again under its name).
    idempotent: bool

    def deliver(self, message: EmailMessage, recipient: str) -> str:
        """Deliver one message to one recipient; return where it went. Raise :class:`DeliveryError`."""

    def close(self) -> None: ...


def smtp_password(config: SmtpConfig, environ: dict[str, str] | None = None) -> str | None:
    """The SMTP password from its file or environment variable; None without a username."""
    if config.username is None:
        return None
    if config.password_file is not None:
        try:
            return config.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise DeliveryError(
                f"cannot read [smtp] password_file {config.password_file}: {exc.strerror or exc}", fatal=True
            ) from None
    assert config.password_env is not None
    value = (environ if environ is not None else dict(os.environ)).get(config.password_env)
    if not value:
        raise DeliveryError(
            f"the SMTP password is not set: export {config.password_env}=... (or set [smtp] password_file)",
            fatal=True,
        )
    return value


class SmtpDelivery:
    """One SMTP connection for a whole run (opened on the first message, reopened once if dropped)."""

    idempotent = False

    def __init__(self, config: SmtpConfig, sender: Address, password: str | None) -> None:
        self.config = config
        self.envelope_from = sender.addr_spec
        self._password = password
        self._smtp: smtplib.SMTP | None = None

    def _where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        context = ssl.create_default_context(
            cafile=str(config.ca_bundle) if config.ca_bundle is not None else None
        )
        smtp: smtplib.SMTP
        try:
            if config.security == SSL:
                smtp = smtplib.SMTP_SSL(
                    config.host,
                    config.port,
                    local_hostname=config.helo_name,
                    timeout=config.timeout_seconds,
                    context=context,
                )
            else:
                smtp = smtplib.SMTP(
                    config.host, config.port, local_hostname=config.helo_name, timeout=config.timeout_seconds
                )
            try:
                smtp.ehlo()
                if config.security == STARTTLS:
                    if not smtp.has_extn("starttls"):
                        raise DeliveryError(
                            f"{self._where()} does not offer STARTTLS: set [smtp] security = "
                            f'"{SSL}" if it speaks TLS from the start, or check host and port',
                            fatal=True,
                        )
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if config.username is not None:
                    assert config.security != PLAIN  # the config refuses a password in clear
                    smtp.login(config.username, self._password or "")
            except BaseException:
                smtp.close()
                raise
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"{self._where()} refused the login of {config.username!r} "
                f"({_reply(exc.smtp_code, exc.smtp_error)}): check [smtp] username and the password",
                fatal=True,
            ) from None
        except ssl.SSLError as exc:
            raise DeliveryError(
                f"TLS with {self._where()} failed ({exc.reason or exc}): if the server's certificate comes "
                "from a private CA, set [smtp] ca_bundle",
                fatal=True,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(
                f"cannot talk to the mail server {self._where()}: {exc}; check [smtp] host, port and "
                "security",
                fatal=True,
            ) from None
        return smtp

    def deliver(self, message: EmailMessage, recipient: str) -> str:
        for attempt in (1, 2):
            if self._smtp is None:
                self._smtp = self._connect()
            try:
                self._smtp.send_message(message, from_addr=self.envelope_from, to_addrs=[recipient])
                return self._where()
            except smtplib.SMTPServerDisconnected as exc:
                self._smtp = None  # the server hung up (idle timeout, restart): reconnect once
                if attempt == 2:
                    raise DeliveryError(f"{self._where()} closed the connection: {exc}") from None
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = exc.recipients.get(recipient, (0, b""))
                raise DeliveryError(
                    f"{self._where()} refused the recipient {recipient}: {_reply(code, text)}"
                ) from None
            except smtplib.SMTPSenderRefused as exc:
                raise DeliveryError(
                    f"{self._where()} refused the sender {exc.sender} "
                    f"({_reply(exc.smtp_code, exc.smtp_error)}): set [digest] from to an address the "
                    "server lets calsync send as",
                    fatal=True,
                ) from None
            except smtplib.SMTPResponseException as exc:
                self._reset()
                raise DeliveryError(
                    f"{self._where()} did not take the message: {_reply(exc.smtp_code, exc.smtp_error)}"
                ) from None
            except (OSError, smtplib.SMTPException) as exc:
                self._smtp = None
                raise DeliveryError(f"sending through {self._where()} failed: {exc}") from None
        raise AssertionError("unreachable")

    def _reset(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._smtp.close()
            self._smtp = None

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            self._smtp.close()
        self._smtp = None


def _reply(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {words}".strip()


class OutboxDelivery:
    """Writes each message as an ``.eml`` file (the demo, or a mail system that picks files up)."""

    idempotent = True

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def deliver(self, message: EmailMessage, recipient: str) -> str:
        period = str(message.get("X-Calsync-Digest", "digest"))
        safe = "".join(c if c.isalnum() or c in "@.-_" else "_" for c in recipient)
        path = self.directory / f"{period}-{safe}.eml"
        try:
            # a digest carries people's data: the outbox is 0700 (if calsync creates it), each .eml 0600
            make_directory(self.directory, PRIVATE_DIR_MODE)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=self.directory)
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), PRIVATE_FILE_MODE)
                handle.write(bytes(message))
            Path(tmp).replace(path)
        except OSError as exc:
            raise DeliveryError(f"cannot write {path}: {exc.strerror or exc}", fatal=True) from None
        return str(path)

    def close(self) -> None:
        pass


# -- once per (leader, period) ----------------------------------------------------------------------------


def record_key(leader: str, period: date) -> str:
    return f"{leader}|{period.isoformat()}"


def previous_digest(store: StateStore, leader: str, period: date) -> tuple[Figures | None, date | None]:
    """The figures and period of the last digest sent to ``leader`` before ``period``."""
    best: tuple[date, Figures] | None = None
    for record in store.digests(leader):
        try:
            when = date.fromisoformat(str(record.get("period")))
        except ValueError:
            continue
        figures = Figures.from_json(record.get("figures"))
        if record.get("status") != SENT or when >= period or figures is None:
            continue
        if best is None or when > best[0]:
            best = (when, figures)
    return (best[1], best[0]) if best is not None else (None, None)


@dataclass(frozen=True)
class DigestOutcome:
    """What happened to one leader's digest in this run."""

    leader: str
    name: str
    action: str  # "sent", "written", "already sent", "failed", "held back", "not tried", "in doubt"
    detail: str

    @property
    def failed(self) -> bool:
        return self.action in ("failed", "held back", "not tried", IN_DOUBT)


def deliver_all(
    items: Sequence[tuple[Digest, EmailMessage]],
    store: StateStore,
    delivery: Delivery,
    now: Callable[[], datetime],
    *,
    written: bool = False,
) -> list[DigestOutcome]:
    """Deliver each digest not yet sent for its period; record every step in the state file."""
    outcomes: list[DigestOutcome] = []
    stopped: str | None = None
    try:
        for digest, message in items:
            key = record_key(digest.leader, digest.period)
            record = store.digest(key) or {
                "key": key,
                "leader": digest.leader,
                "period": digest.period.isoformat(),
                "attempts": 0,
            }
            if record.get("status") == SENT:
                outcomes.append(
                    DigestOutcome(
                        digest.leader, digest.leader_name, "already sent", f"on {record.get('sent_at')}"
                    )
                )
                continue
            if record.get("status") in (SENDING, IN_DOUBT) and not delivery.idempotent:
                if record.get("status") == SENDING:
                    record.update(status=IN_DOUBT)
                    store.save_digest(record)
                outcomes.append(
                    DigestOutcome(
                        digest.leader,
                        digest.leader_name,
                        IN_DOUBT,
                        f"a run was interrupted while handing it to the mail server (Message-ID "
                        f"{record.get('message_id')}); it may have arrived, so it is not sent again",
                    )
                )
                continue
            if stopped is not None:
                outcomes.append(DigestOutcome(digest.leader, digest.leader_name, "not tried", stopped))
                continue
            record.update(
                status=SENDING,
                attempts=int(record.get("attempts") or 0) + 1,
                message_id=str(message["Message-ID"]),
                figures=digest.figures.to_json(),
            )
            store.save_digest(record)
            try:
                where = delivery.deliver(message, digest.leader)
            except DeliveryError as exc:
                record.update(status=FAILED, error=str(exc), failed_at=now().isoformat())
                store.save_digest(record)
                outcomes.append(DigestOutcome(digest.leader, digest.leader_name, "failed", str(exc)))
                if exc.fatal:
                    stopped = f"the mail server failed with the digest of {digest.leader} (see there)"
                continue
            record.update(status=SENT, sent_at=now().isoformat(), delivered_to=where, error=None)
            store.save_digest(record)
            outcomes.append(
                DigestOutcome(digest.leader, digest.leader_name, "written" if written else "sent", where)
            )
    finally:
        delivery.close()
    return outcomes
