"""A stateful fake SMTP server (submission) on 127.0.0.1, built on :mod:`aiosmtpd`.

:class:`SmtpFake` listens on a free port of ``127.0.0.1`` and serves from aiosmtpd's own thread between
:meth:`SmtpFake.start` and :meth:`SmtpFake.stop` (or as a context manager). It speaks one of three
``security`` modes:

* ``"none"``: plain SMTP; with ``users`` it offers AUTH in clear, so a test can show that the client
  refuses to send a password unencrypted on its own.
* ``"starttls"``: STARTTLS is offered and required before MAIL (and before AUTH, which is only offered
  once the session is encrypted).
* ``"ssl"``: implicit TLS from the first byte (SMTPS).

For the TLS modes it makes a throwaway CA (``trustme``) and a server certificate for ``127.0.0.1`` and
writes the CA's PEM to :attr:`SmtpFake.ca_path`, in a temporary directory that :meth:`SmtpFake.stop`
removes.

With ``users`` (login -> password) AUTH PLAIN and LOGIN are offered and checked, and MAIL FROM is
answered ``530 5.7.0 Authentication required`` until the session has authenticated.

Every accepted message is kept as a :class:`Received` in :attr:`SmtpFake.messages`. A test makes the
server misbehave with :meth:`~SmtpFake.refuse_recipient` (RCPT TO answered with an error),
:meth:`~SmtpFake.fail_next_data` (DATA answered with an error, the message not kept) and
:meth:`~SmtpFake.drop_next_connection` (the connection closed without an answer after the greeting, on
MAIL FROM or on DATA). :attr:`SmtpFake.sessions` counts the connections clients opened (not aiosmtpd's
own readiness probe in :meth:`SmtpFake.start`; a TLS connection counts once its handshake is done).
"""

from __future__ import annotations

import asyncio
import collections
import email.policy
import socket
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any, AnyStr, Literal, Self

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["Received", "SmtpFake"]

Security = Literal["none", "starttls", "ssl"]
DropPoint = Literal["connect", "mail", "data"]

HOST = "127.0.0.1"
_STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    #: the recipients the server accepted, as given in RCPT TO
    rcpt_tos: tuple[str, ...]
    #: the raw message as received after DATA (dot-stuffing removed)
    data: bytes
    #: ``data`` parsed with :data:`email.policy.default`, its CRLF line ends made ``\n`` first (as a mail
    #: store would), so ``get_content()`` gives text with ``\n``
    message: EmailMessage
    #: the login name if the session authenticated
    authenticated_as: str | None
    #: whether the session was encrypted (SMTPS, or after STARTTLS)
    tls: bool


@dataclass
class _Refusal:
    code: int
    text: str
    remaining: int | None  # None: until allow_recipient()


class _Connection(SMTP):
    """aiosmtpd's protocol for one connection, which tells the fake when it opens and closes and carries
    the drop planned for it."""

    def __init__(self, fake: SmtpFake, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.fake = fake
        self.drop_at: DropPoint | None = None
        self._opened = False
        self._greeted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # called again (with the TLS transport) after STARTTLS: the same connection
        first = not self._opened
        self._opened = True
        super().connection_made(transport)
        if first:
            self.drop_at = self.fake._opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.fake._closed(self)
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        await super().push(status)
        if not self._greeted:
            self._greeted = True
            if self.drop_at == "connect" and self.transport is not None:
                self.transport.close()  # close (not abort): the greeting still goes out

    def drop(self) -> None:
        """Close the connection at once; whatever the caller answers afterwards is not sent."""
        if self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]

    @property
    def encrypted(self) -> bool:
        return self.transport is not None and self.transport.get_extra_info("ssl_object") is not None


class _Handler:
    """aiosmtpd's hooks (``handle_<COMMAND>``), answering from the fake's state."""

    def __init__(self, fake: SmtpFake) -> None:
        self.fake = fake

    async def handle_EHLO(
        self, server: _Connection, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # the 5-argument hook takes this over from aiosmtpd
        if self.fake._users is None:  # offer no AUTH at all
            responses = [line for line in responses if not line[4:].upper().startswith("AUTH")]
        return responses

    async def handle_MAIL(
        self, server: _Connection, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if server.drop_at == "mail":
            server.drop()
            return "421 4.4.2 Dropped"
        if self.fake._users is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: _Connection, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self.fake._refusal_for(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: _Connection, session: Session, envelope: Envelope) -> str:
        if server.drop_at == "data":
            server.drop()
            return "421 4.4.2 Dropped"
        failure = self.fake._data_failure()
        if failure is not None:
            return failure
        data = envelope.original_content or b""
        message = BytesParser(policy=email.policy.default).parsebytes(data.replace(b"\r\n", b"\n"))
        assert isinstance(message, EmailMessage)
        assert envelope.mail_from is not None
        login = session.auth_data if session.authenticated else None
        received = Received(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=data,
            message=message,
            authenticated_as=login if isinstance(login, str) else None,
            tls=server.encrypted,
        )
        self.fake._store(received)
        return "250 2.0.0 OK: queued"


class _Controller(Controller):
    """aiosmtpd's threaded controller, listening on a socket bound beforehand to a free port of 127.0.0.1
    (so the port is known without a race) and making :class:`_Connection` protocols."""

    def __init__(self, fake: SmtpFake, listener: socket.socket, **kwargs: Any) -> None:
        super().__init__(_Handler(fake), hostname=HOST, port=listener.getsockname()[1], **kwargs)
        self._fake = fake
        self._listener = listener

    def factory(self) -> _Connection:
        return _Connection(self._fake, self.handler, **self.SMTP_kwargs)

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._listener, ssl=self.ssl_context)


class SmtpFake:
    """A fake SMTP server on 127.0.0.1 (see the module docstring)."""

    host = HOST

    def __init__(self, security: Security = "none", users: Mapping[str, str] | None = None) -> None:
        if security not in ("none", "starttls", "ssl"):
            raise ValueError(f"unknown security {security!r}")
        self.security: Security = security
        self._users = dict(users) if users is not None else None
        self.port = 0
        self.ca_path: Path | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server_context: ssl.SSLContext | None = None
        if security != "none":
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-smtp-")
            ca = trustme.CA()
            #: PEM of the CA that signed the server's certificate for 127.0.0.1 (removed by stop()).
            self.ca_path = Path(self._tmp.name) / "fake-smtp-ca.pem"
            ca.cert_pem.write_to_path(str(self.ca_path))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ca.issue_cert(HOST).configure_cert(context)
            self._server_context = context
        self._lock = threading.Lock()
        #: every accepted message, in order
        self.messages: list[Received] = []
        #: (address, code) of every refused RCPT TO, in order
        self.refused: list[tuple[str, int]] = []
        #: connections clients opened so far
        self.sessions = 0
        self._refusals: dict[str, _Refusal] = {}
        self._data_failures: collections.deque[str] = collections.deque()
        self._pending_drop: DropPoint | None = None
        self._open: set[_Connection] = set()
        self._serving = False
        self._stopped = False
        self._controller: _Controller | None = None

    # lifecycle

    def start(self) -> Self:
        if self._controller is not None:
            return self
        if self._stopped:
            raise RuntimeError("SmtpFake cannot be started again after stop()")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((HOST, 0))
        kwargs: dict[str, Any] = {
            "server_hostname": HOST,  # else aiosmtpd asks getfqdn() for the greeting's name
            "auth_require_tls": self.security == "starttls",  # "ssl" sessions are all encrypted anyway
            "authenticator": self._authenticate,
        }
        if self._users is None:
            kwargs["auth_exclude_mechanism"] = ["PLAIN", "LOGIN"]
        if self.security == "starttls":
            kwargs.update(tls_context=self._server_context, require_starttls=True)
        elif self.security == "ssl":
            kwargs["ssl_context"] = self._server_context
        controller = _Controller(self, listener, **kwargs)
        try:
            controller.start()  # its readiness probe connects once; _opened() does not count that one
        except BaseException:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        self._controller = controller
        with self._lock:
            self._serving = True
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is None:
            return
        self._stopped = True
        with self._lock:
            self._serving = False
        # close the connections still open first, so stopping never waits for a client
        future = asyncio.run_coroutine_threadsafe(self._abort_open(), controller.loop)
        try:
            future.result(timeout=_STOP_TIMEOUT)
        finally:
            controller.stop()
            if self._tmp is not None:
                self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # what a test arranges

    def refuse_recipient(
        self, address: str, code: int = 550, text: str = "5.1.1 Mailbox unavailable", times: int | None = None
    ) -> None:
        """Answer RCPT TO for ``address`` (case-insensitive) with ``"<code> <text>"``: until
        :meth:`allow_recipient` (``times=None``) or for that many attempts."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None)")
        with self._lock:
            self._refusals[address.lower()] = _Refusal(code, text, times)

    def allow_recipient(self, address: str) -> None:
        with self._lock:
            self._refusals.pop(address.lower(), None)

    def fail_next_data(self, code: int = 451, text: str = "4.3.0 Temporary failure", count: int = 1) -> None:
        """Answer the next ``count`` DATA commands with ``"<code> <text>"`` (the message is not kept)."""
        with self._lock:
            self._data_failures.extend([f"{code} {text}"] * count)

    def drop_next_connection(self, after: DropPoint = "mail") -> None:
        """Close the next connection opened without an answer: right after the greeting (``"connect"``),
        on MAIL FROM, or on DATA once the message has been read (``"data"``)."""
        if after not in ("connect", "mail", "data"):
            raise ValueError(f"unknown drop point {after!r}")
        with self._lock:
            self._pending_drop = after

    # what a test reads

    def messages_to(self, address: str) -> list[Received]:
        """The accepted messages with ``address`` (case-insensitive) among their recipients."""
        wanted = address.lower()
        with self._lock:
            return [m for m in self.messages if any(r.lower() == wanted for r in m.rcpt_tos)]

    # called from the server's thread

    def _opened(self, connection: _Connection) -> DropPoint | None:
        with self._lock:
            if not self._serving:  # the controller's readiness probe
                return None
            self._open.add(connection)
            self.sessions += 1
            drop, self._pending_drop = self._pending_drop, None
            return drop

    def _closed(self, connection: _Connection) -> None:
        with self._lock:
            self._open.discard(connection)

    def _refusal_for(self, address: str) -> str | None:
        with self._lock:
            key = address.lower()
            refusal = self._refusals.get(key)
            if refusal is None:
                return None
            if refusal.remaining is not None:
                refusal.remaining -= 1
                if refusal.remaining <= 0:
                    del self._refusals[key]
            self.refused.append((address, refusal.code))
            return f"{refusal.code} {refusal.text}"

    def _data_failure(self) -> str | None:
        with self._lock:
            return self._data_failures.popleft() if self._data_failures else None

    def _store(self, received: Received) -> None:
        with self._lock:
            self.messages.append(received)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if self._users is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        if login in self._users and self._users[login] == password:
            return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    async def _abort_open(self) -> None:
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            connection.drop()
        for _ in range(20):  # let the transports report connection_lost before the loop stops
            if not self._open:
                break
            await asyncio.sleep(0)
