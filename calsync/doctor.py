"""``calsync doctor``: a checklist that says whether an install works, and how to fix what does not.

Each check is one line: what was checked, what was found and, for a failure, the fix (which key, which
permission, which command). In order:

1. **config**: the config file loads (every problem it has, listed). Nothing else can be checked without
   it, so a bad config stops here.
2. **roster**: the roster CSV (or the org chart of the Google Directory or of Microsoft Entra ID) can be
   read: how many people and manager/report pairs, and the lines that were skipped.
3. **each source**, by its name:

   - ``ics``: every file (or the URL) is read over the report's window;
   - ``google``: *sign-in* (the service account key, or the token of ``calsync auth google``, gets a token
     for one calendar) and *read <calendar>* (one page of its events);
   - ``microsoft``: *sign-in* (the app registration's secret or certificate, or the token cache of
     ``calsync auth microsoft``) and *read <mailbox>* (a day of its calendar view).

   One calendar or mailbox is tried per source: the first one the source lists, else the signed-in
   person's, else the first manager of the roster.
4. **smtp** (``[digest] delivery = "smtp"``): a connection and a login, exactly as digests are sent, then
   QUIT without sending anything; **outbox** (``delivery = "outbox"``): the directory can be written.

Nothing is written, except the token caches msal may refresh (as every run does). A check that fails in
an unexpected way is reported as a failure with the exception; the checklist always completes.
"""

from __future__ import annotations

import json
import os
import smtplib
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from pathlib import Path
from typing import Any, TextIO

from google.auth.exceptions import RefreshError, TransportError

from calsync.config import (
    OUTBOX,
    SMTP,
    Config,
    ConfigError,
    GoogleSourceConfig,
    IcsSourceConfig,
    MicrosoftSourceConfig,
    SourceConfig,
    load_config,
)
from calsync.digest.send import DeliveryError, SmtpDelivery, smtp_password
from calsync.org import Org, RosterError
from calsync.pipeline import load_org, make_clock, org_timezone, sync_window
from calsync.redact import redact_url
from calsync.sources.google import (
    READ_SCOPES,
    CalendarUnavailable,
    SyncTokenExpired,
    execute,
    service_account_service,
    user_token_service,
)
from calsync.sources.ics import IcsSource
from calsync.sources.microsoft import DeltaExpired, GraphClient, MailboxUnavailable, graph_client
from calsync.sources.microsoft_auth import AuthError
from calsync.sources.retry import RateLimiter, RetryPolicy
from calsync.store import StateCorrupt, StateError, StateStore, lock_holder

EXIT_OK = 0
EXIT_FAILED = 3  # as calsync's other commands: something could not be read or used
#: How many of a source's unread calendars a failed check lists.
SHOWN = 3
_INDENT = " " * 7  # under the text after "[FAIL] "


_BUG_FIX = "unexpected: this may be a bug in calsync; please report it with this line"


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    name: str  # e.g. "config", "roster", "source graph: sign-in", "source graph: read maya@acme.com", "smtp"
    ok: bool
    detail: str  # what was found
    fix: str = ""  # for a failure: what to do, concrete (which key, which permission, which command)


def run_checks(config_path: Path, *, now: datetime | None = None) -> list[Check]:
    """Every check, in order; a failure that makes later checks pointless skips them (and says so)."""
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    config: Config | None = None

    def load() -> Check:
        nonlocal config
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            count = len(exc.problems)
            return Check(
                "config",
                False,
                "\n".join(
                    [
                        f"{count} problem{'s' if count != 1 else ''}; the other checks need a valid config: "
                        "not run",
                        *exc.problems,
                    ]
                ),
                "edit the config as each line says; `calsync demo` writes a working example "
                "(`calsync config example` prints every key with what it does)",
            )
        return Check("config", True, f"{config.path}: {_describe_sources(config.sources)}")

    first = _attempt("config", load)
    if config is None:
        stop = "the other checks need a valid config: not run"
        if stop not in first.detail:  # load_config failed in an unexpected way
            first = Check(first.name, False, f"{first.detail}; {stop}", first.fix)
        return [first]
    return [first, *_Doctor(config, moment).run()]


def render_checks(checks: Sequence[Check]) -> str:
    """``[ ok ] name: detail`` and ``[FAIL] name: detail`` with ``fix: ...`` below, then a summary."""
    lines: list[str] = []
    for check in checks:
        head, *more = check.detail.splitlines() or [""]
        lines.append(f"[{' ok ' if check.ok else 'FAIL'}] {check.name}: {head}".rstrip())
        lines.extend(f"{_INDENT}{line}".rstrip() for line in more)
        if check.fix and not check.ok:
            first, *rest = check.fix.splitlines()
            lines.append(f"{_INDENT}fix: {first}".rstrip())
            lines.extend(f"{_INDENT}     {line}".rstrip() for line in rest)
    failed = sum(1 for c in checks if not c.ok)
    lines.append(f"{len(checks)} check{'s' if len(checks) != 1 else ''}, {failed} failed")
    return "\n".join(lines) + "\n"


def cmd_doctor(config_path: Path, stdout: TextIO, stderr: TextIO) -> int:
    """Print the checklist; 0 when every check passed, 3 when one failed."""
    checks = run_checks(config_path)
    stdout.write(render_checks(checks))
    return EXIT_OK if all(c.ok for c in checks) else EXIT_FAILED


# -- the checks --------------------------------------------------------------------------------------


def _attempt(name: str, work: Callable[[], Check], scrub: Callable[[str], str] = str) -> Check:
    """``work()``, or a failed check naming the exception it raised: the doctor never crashes."""
    try:
        return work()
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Check(name, False, scrub(text.splitlines()[0] if text.strip() else text), _BUG_FIX)


def _describe_sources(sources: Sequence[SourceConfig]) -> str:
    count = len(sources)
    listed = ", ".join(f"{s.name} ({s.type})" for s in sources)
    return f"{count} source{'s' if count != 1 else ''}: {listed}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


class _Doctor:
    """The checks after the config: the roster, each source, and the digests' delivery."""

    def __init__(self, config: Config, now: datetime) -> None:
        self.config = config
        self.now = now
        self.org: Org | None = None

    def run(self) -> list[Check]:
        checks = [_attempt("roster", self.roster), _attempt("state", self.state)]
        for source in self.config.sources:
            if isinstance(source, GoogleSourceConfig):
                checks.extend(self.google(source))
            elif isinstance(source, MicrosoftSourceConfig):
                checks.extend(self.microsoft(source))
            else:
                checks.append(self.ics(source))
        checks.extend(self.delivery())
        return checks

    # -- state ------------------------------------------------------------------------------------

    def state(self) -> Check:
        """Readable, of a schema this calsync knows, and who holds it; looked at without taking it."""
        assert self.config.state is not None
        path = self.config.state.path
        holder = lock_holder(path)
        held = f"; in use by a running calsync (pid {holder})" if holder else ""
        if not path.exists():
            directory = next((p for p in [path.parent, *path.parents] if p.exists()), path.parent)
            if not os.access(directory, os.W_OK):
                return Check(
                    "state",
                    False,
                    f"{path} does not exist and {directory} cannot be written",
                    "make the directory writable for the user calsync runs as, or set [state] path",
                )
            return Check("state", True, f"{path}: not created yet (the first sync writes it){held}")
        try:
            store = StateStore(path, lock=False, recover=False)
        except StateCorrupt as exc:
            return Check(
                "state",
                False,
                str(exc),
                "nothing to do by hand: the next calsync run moves it aside and restores the state of "
                "the write before it (or rebuilds it with a full sync)",
            )
        except StateError as exc:
            return Check("state", False, str(exc), "see the message: upgrade calsync or fix the file's owner")
        try:
            synced = store.last_synced()
            schema = store.schema()
        finally:
            store.close()
        last = ", ".join(f"{name} last synced {when}" for name, when in sorted(synced.items()))
        return Check("state", True, f"{path}: schema {schema}" + (f"; {last}" if last else "") + held)

    # -- roster -----------------------------------------------------------------------------------

    def roster(self) -> Check:
        try:
            org, problems = load_org(self.config)
        except RosterError as exc:
            return Check(
                "roster",
                False,
                str(exc),
                "fix [org] roster (a CSV with the columns email,name,manager_email) or the access "
                "the message names; `calsync demo` writes an example roster",
            )
        self.org = org
        people = len(org.people)
        detail = (
            f"{people} {'person' if people == 1 else 'people'}, "
            f"{_plural(len(org.direct_pairs()), 'manager/report pair')}"
        )
        if problems:
            detail += f"; {_plural(len(problems), 'line')} skipped, the first: {problems[0]}"
        return Check("roster", True, detail)

    def first_manager(self) -> str | None:
        if self.org is None:
            return None
        managers = sorted({manager for manager, _ in self.org.direct_pairs()})
        return managers[0] if managers else None

    def no_target(self, source: SourceConfig, what: str, key: str) -> Check:
        why = "the roster could not be read" if self.org is None else "the roster has no managers"
        return Check(
            f"source {source.name}: read",
            False,
            f"not checked: the source lists no {key} and {why}, so there is no {what} to try",
            f'fix the roster, or list the {key} to read in the source: {key} = ["someone@..."]',
        )

    # -- ICS --------------------------------------------------------------------------------------

    def ics(self, source: IcsSourceConfig) -> Check:
        name = f"source {source.name}"
        secret = source.location if source.is_url else None

        def scrub(text: str) -> str:
            return text.replace(secret, redact_url(secret)) if secret else text

        def work() -> Check:
            clock = make_clock(self.config, now=lambda: self.now)
            reader = IcsSource(
                source.location,
                name=source.name,
                default_tz=org_timezone(self.config),
                label_root=self.config.base_dir,
                timeout_seconds=source.timeout_seconds,
            )
            result = reader.fetch(sync_window(clock))
            unread = [p for p in result.problems if p.unread]
            skipped = [p for p in result.problems if not p.unread]
            read = f"{_plural(len(result.calendars), 'calendar')} read"
            if unread:
                lines = [f"{read}, {len(unread)} could not be:", *(str(p) for p in unread[:SHOWN])]
                if len(unread) > SHOWN:
                    lines.append(f"... and {len(unread) - SHOWN} more")
                if source.is_url:
                    fix = (
                        "check that the feed's URL in [[sources]] path still works (resetting a published "
                        "calendar's secret address changes it) and that this machine can reach it"
                    )
                else:
                    fix = (
                        "replace each listed file with a complete iCalendar export (BEGIN:VCALENDAR ... "
                        "END:VCALENDAR) that this user can read, or fix the source's path"
                    )
                return Check(name, False, scrub("\n".join(lines)), fix)
            if skipped:
                read += f"; {_plural(len(skipped), 'event')} skipped, the first: {skipped[0]}"
            return Check(name, True, scrub(read))

        return _attempt(name, work, scrub)

    # -- Google -----------------------------------------------------------------------------------

    def google(self, source: GoogleSourceConfig) -> list[Check]:
        if source.calendars:
            calendar: str | None = source.calendars[0]
        elif source.token_file is not None:
            calendar = "primary"
        else:
            calendar = self.first_manager()
        if calendar is None:
            return [self.no_target(source, "calendar", "calendars")]
        sign_in_name = f"source {source.name}: sign-in"
        read_name = f"source {source.name}: read {calendar}"
        outcome: dict[str, Any] = {}

        def sign_in() -> Check:
            options: dict[str, Any] = {
                "endpoint": source.endpoint,
                "ca_bundle": source.ca_bundle,
                "timeout": source.timeout_seconds,
            }
            try:
                if source.token_file is not None:
                    service_for = user_token_service(source.token_file, **options)
                else:
                    assert source.service_account_key is not None
                    service_for = service_account_service(source.service_account_key, **options)
            except (OSError, ValueError, KeyError) as exc:
                return self.google_unusable(source, sign_in_name, exc)
            try:
                request = service_for(calendar).events().list(calendarId=calendar, maxResults=1)
                outcome["page"] = execute(request, calendar, RetryPolicy(attempts=2), RateLimiter())
            except RefreshError as exc:
                return self.google_refused(source, sign_in_name, calendar, exc)
            except TransportError as exc:
                return Check(
                    sign_in_name,
                    False,
                    f"cannot reach Google's token endpoint: {exc}; {calendar} was not read",
                    "check that this machine can reach oauth2.googleapis.com (through the proxy, if any; "
                    "set ca_bundle in the source if the proxy inspects TLS), then run calsync doctor again",
                )
            except (CalendarUnavailable, SyncTokenExpired) as exc:
                outcome["error"] = exc  # signed in: the calendar itself is the problem (next check)
            if source.token_file is not None:
                found = f"the token in {source.token_file} was accepted"
            else:
                email = self.key_info(source).get("client_email", "?")
                found = f"the service account {email} may act as {calendar}"
            return Check(sign_in_name, True, found)

        first = _attempt(sign_in_name, sign_in)
        if not first.ok:
            return [first]

        def read() -> Check:
            error = outcome.get("error")
            if error is not None:
                return Check(read_name, False, str(error), self.google_read_fix(source, calendar, str(error)))
            zone = (outcome.get("page") or {}).get("timeZone")
            return Check(read_name, True, "can list its events" + (f" (time zone {zone})" if zone else ""))

        return [first, _attempt(read_name, read)]

    def key_info(self, source: GoogleSourceConfig) -> dict[str, Any]:
        """The service account's client id and email from its key (never the key itself)."""
        if source.service_account_key is None:
            return {}
        try:
            info = json.loads(source.service_account_key.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(info, dict):
            return {}
        return {k: str(info[k]) for k in ("client_id", "client_email") if info.get(k)}

    def google_unusable(self, source: GoogleSourceConfig, name: str, exc: Exception) -> Check:
        if source.token_file is not None:
            return Check(
                name,
                False,
                f"cannot use the token file {source.token_file}: {exc}",
                f"run `calsync auth google --client-secrets CLIENT.json --token {source.token_file}` again",
            )
        return Check(
            name,
            False,
            f"cannot use the service account key {source.service_account_key}: {exc}",
            "download a new JSON key for the service account (Google Cloud console > IAM & Admin > "
            "Service accounts > Keys > Add key > JSON) and point service_account_key at it",
        )

    def google_refused(
        self, source: GoogleSourceConfig, name: str, calendar: str, exc: RefreshError
    ) -> Check:
        text = str(exc.args[0]) if exc.args else str(exc)  # str(exc) is a tuple's repr
        skipped = f"{calendar} was not read"
        if source.token_file is not None:
            return Check(
                name,
                False,
                f"the sign-in in {source.token_file} was refused: {text}; {skipped}",
                f"run `calsync auth google --client-secrets CLIENT.json --token {source.token_file}` again "
                "(the sign-in expired or was revoked)",
            )
        info = self.key_info(source)
        client_id, email = info.get("client_id", "?"), info.get("client_email", "the service account")
        delegation = (
            "grant domain-wide delegation: in the Google Admin console (Security > Access and data "
            f"control > API controls > Manage domain-wide delegation) add client ID {client_id} with the "
            f"scope {READ_SCOPES[0]}"
        )
        revoked = (
            f"the key may have been revoked or deleted: create a new JSON key for {email} (Google Cloud "
            "console > IAM & Admin > Service accounts > Keys) and point service_account_key at it"
        )
        user = f"{calendar} must be an active user of the Workspace domain"
        steps = [delegation, revoked, user] if "unauthorized_client" in text else [revoked, delegation, user]
        return Check(
            name,
            False,
            f"the service account {email} could not get a token as {calendar}: {text}; {skipped}",
            "one of these, the most likely first:\n"
            + "\n".join(f"{n}. {step}" for n, step in enumerate(steps, start=1)),
        )

    def google_read_fix(self, source: GoogleSourceConfig, calendar: str, message: str) -> str:
        if "insufficient" in message.lower() or "scope" in message.lower():
            if source.token_file is not None:
                return (
                    f"the token lacks the scope {READ_SCOPES[0]}: run `calsync auth google "
                    f"--client-secrets CLIENT.json --token {source.token_file}` again"
                )
            return (
                f"the domain-wide delegation of the service account must include the scope {READ_SCOPES[0]}"
            )
        if "no access" in message or "no such calendar" in message:
            if source.token_file is not None:
                return (
                    f"the signed-in person cannot see {calendar}: share that calendar with them (at "
                    "least 'See all event details'), or take it out of the source's calendars"
                )
            return (
                f"the service account reads each calendar as its owner: {calendar} must be a user of the "
                "Workspace domain with a calendar; fix the address in the source's calendars (or the "
                "roster's manager), and check the delegation grants the scope " + READ_SCOPES[0]
            )
        endpoint = source.endpoint or "https://www.googleapis.com/calendar/v3/"
        return (
            f"check that this machine can reach {endpoint} (through the proxy, if any), then run calsync "
            "doctor again"
        )

    # -- Microsoft 365 ----------------------------------------------------------------------------

    def microsoft(self, source: MicrosoftSourceConfig) -> list[Check]:
        sign_in_name = f"source {source.name}: sign-in"
        made: dict[str, GraphClient] = {}

        def sign_in() -> Check:
            try:
                client = graph_client(source, retry=RetryPolicy(attempts=2))
                client.tokens.token()
            except AuthError as exc:
                return Check(
                    sign_in_name,
                    False,
                    f"{exc}; no mailbox was read",
                    self.microsoft_sign_in_fix(source, exc),
                )
            made["client"] = client
            if client.tokens.user is not None:
                found = f"signed in as {client.tokens.user} (token cache {source.token_cache})"
            else:
                found = f"the app {source.client_id} got a token from {source.authority}"
            return Check(sign_in_name, True, found)

        first = _attempt(sign_in_name, sign_in)
        if not first.ok:
            return [first]
        client = made["client"]
        if source.mailboxes:
            mailbox: str | None = source.mailboxes[0]
        elif client.tokens.user is not None:
            mailbox = client.tokens.user
        else:
            mailbox = self.first_manager()
        if mailbox is None:
            client.session.close()
            return [first, self.no_target(source, "mailbox", "mailboxes")]
        read_name = f"source {source.name}: read {mailbox}"

        def read() -> Check:
            params = {
                "startDateTime": _z(self.now - timedelta(days=1)),
                "endDateTime": _z(self.now + timedelta(days=1)),
                "$top": "1",
            }
            try:
                client.get(client.url("users", mailbox, "calendarView"), mailbox, params)
            except (MailboxUnavailable, DeltaExpired) as exc:
                status = exc.status if isinstance(exc, MailboxUnavailable) else None
                return Check(read_name, False, str(exc), self.microsoft_read_fix(source, mailbox, status))
            return Check(read_name, True, "read its calendar view around now")

        try:
            return [first, _attempt(read_name, read)]
        finally:
            client.session.close()

    def microsoft_sign_in_fix(self, source: MicrosoftSourceConfig, exc: AuthError) -> str:
        text = str(exc)
        if exc.transient:
            return (
                f"check that this machine can reach {source.authority_host} (through the proxy, if any; set "
                "ca_bundle in the source if the proxy inspects TLS), then run calsync doctor again"
            )
        if "unauthorized_client" in text or "cannot set up" in text:
            return (
                f"check tenant ({source.tenant}) and client_id ({source.client_id}) in the source: the "
                "app registration must exist in that tenant (Entra ID > App registrations > Overview)"
            )
        portal = f"Entra ID > App registrations > {source.client_id} > Certificates & secrets"
        if source.token_cache is not None:
            return (
                f"run `calsync auth microsoft --tenant {source.tenant} --client-id {source.client_id} "
                f"--token-cache {source.token_cache}` again (the sign-in expired or was revoked)"
            )
        if source.certificate_file is not None:
            thumbprint = _thumbprint(source.certificate_file)
            shown = f" (thumbprint {thumbprint})" if thumbprint else ""
            return (
                f"check that the certificate in certificate_file {source.certificate_file}{shown} is "
                f"uploaded to the app registration and has not expired ({portal} > Certificates)"
            )
        where = (
            f"the environment variable {source.client_secret_env} (client_secret_env)"
            if source.client_secret_env is not None
            else f"client_secret_file {source.client_secret_file}"
        )
        return (
            f"check that {where} holds the client secret's VALUE (not its Secret ID) and that the secret "
            f"has not expired ({portal}); a new secret's value is shown only once, when it is created"
        )

    def microsoft_read_fix(self, source: MicrosoftSourceConfig, mailbox: str, status: int | None) -> str:
        if source.token_cache is not None:
            return (
                f"the signed-in person may read only their own calendar: take {mailbox} out of the "
                "source's mailboxes (or leave mailboxes out to read theirs)"
            )
        if status == 404:
            return (
                f"check that {mailbox} exists in the tenant and has an Exchange Online mailbox (fix the "
                "address in the source's mailboxes, or the roster's manager)"
            )
        if status == 403:
            return (
                "grant the Calendars.Read application permission with admin consent (Entra ID > App "
                f"registrations > {source.client_id} > API permissions > Grant admin consent), and check "
                f"that no application access policy or RBAC scope keeps the app from {mailbox}"
            )
        return (
            "grant the Calendars.Read application permission with admin consent (or check the mailbox "
            f"exists / an application access policy allows it); if Graph could not be reached, check that "
            f"this machine can reach {source.graph_endpoint}"
        )

    # -- digests ----------------------------------------------------------------------------------

    def delivery(self) -> list[Check]:
        digest = self.config.digest
        if digest.delivery == OUTBOX:
            return [_attempt("outbox", self.outbox)]
        if digest.delivery == SMTP and (self.config.smtp is not None or self.digests_configured()):
            return [_attempt("smtp", self.smtp)]
        return []  # neither [digest] nor [smtp]: this install sends no digests

    def digests_configured(self) -> bool:
        """Whether the config has a [digest] section (without one, no digests are meant to be sent)."""
        try:
            data = tomllib.loads(self.config.path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            return True
        return "digest" in data

    def smtp(self) -> Check:
        smtp = self.config.smtp
        if smtp is None:
            return Check(
                "smtp",
                False,
                '[digest] delivery is "smtp" (the default) but the config has no [smtp] section',
                "add [smtp] with host (and security, username, password_file) to send digests, or set "
                '[digest] delivery = "outbox" to write them as files',
            )
        try:
            password = smtp_password(smtp)
            sender = self.config.digest.sender or Address(username="calsync", domain="calsync.invalid")
            delivery = SmtpDelivery(smtp, sender, password)
            connection = delivery._connect()
        except DeliveryError as exc:
            return Check("smtp", False, str(exc), self.smtp_fix(str(exc)))
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            connection.close()
        login = f"logged in as {smtp.username}" if smtp.username is not None else "no login configured"
        return Check(
            "smtp",
            True,
            f"{smtp.host}:{smtp.port} ({smtp.security}): {login}; quit without sending anything",
        )

    def smtp_fix(self, message: str) -> str:
        smtp = self.config.smtp
        assert smtp is not None
        if smtp.password_file is not None:
            where = f"in password_file {smtp.password_file}"
        else:
            where = f"in the environment variable {smtp.password_env}"
        if "refused the login" in message:
            return f"check [smtp] username ({smtp.username}) and the password {where}"
        if "password" in message:
            return f"put the SMTP password {where} (the file's or variable's whole content is the password)"
        if "TLS" in message or "STARTTLS" in message:
            return (
                "check [smtp] security (starttls on port 587, ssl on 465) and port; if the server's "
                "certificate comes from a private CA, set [smtp] ca_bundle"
            )
        return (
            f"check [smtp] host ({smtp.host}), port ({smtp.port}) and security ({smtp.security}), and "
            "that this machine may reach the mail server (a firewall?)"
        )

    def outbox(self) -> Check:
        directory = self.config.digest.outbox
        assert directory is not None
        fix = (
            f"create {directory} and let the user calsync runs as write to it, or set [digest] outbox to a "
            "directory it can write"
        )
        if directory.exists():
            if not directory.is_dir():
                return Check("outbox", False, f"{directory} exists but is not a directory", fix)
            if not os.access(directory, os.W_OK | os.X_OK):
                return Check("outbox", False, f"{directory} is not writable by this user", fix)
            return Check("outbox", True, f"{directory} is writable")
        parent = directory.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            return Check(
                "outbox",
                False,
                f"{directory} does not exist and cannot be created ({parent} is not writable)",
                fix,
            )
        return Check("outbox", True, f"{directory} does not exist yet; it can be created")


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _thumbprint(path: Path) -> str | None:
    """The SHA-1 thumbprint of the certificate in ``path``, as Entra ID lists it (never the key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        text = path.read_text(encoding="utf-8")
        start = text.index("-----BEGIN CERTIFICATE-----")
        end = text.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
        certificate = x509.load_pem_x509_certificate(text[start:end].encode())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Entra ID shows SHA-1
