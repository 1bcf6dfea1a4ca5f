"""The https plumbing the stateful fakes (:mod:`tests.fakes.google`, :mod:`tests.fakes.graph`) share.

* :class:`TlsHttpServer`: a threaded HTTP/1.1 server on ``127.0.0.1`` (a free port) that does the TLS
  handshake in each connection's own thread and hands every request, whatever its method, to one
  ``handle(handler)`` callable. :meth:`TlsHttpServer.close_connections` shuts down the connections still
  open (keep-alive), so stopping never waits for a client.
* :class:`HttpsFake`: the base of a fake. It makes a throwaway CA (``trustme``) and a server certificate
  for ``127.0.0.1``, writes the CA's PEM to :attr:`HttpsFake.ca_path` (a temporary directory removed by
  :meth:`HttpsFake.stop`), and serves :meth:`HttpsFake._handle` from a daemon thread between
  :meth:`HttpsFake.start` and :meth:`HttpsFake.stop` (or as a context manager).
* :class:`RequestHandler`: besides dispatching, the small pieces of request handling both fakes do
  alike (:meth:`~RequestHandler.read_request`, :meth:`~RequestHandler.loggable_headers`,
  :meth:`~RequestHandler.drop_connection`, :meth:`~RequestHandler.respond`); :class:`ErrorAnswer`, the
  base of each fake's "answer this error" exception.
* Cheap JSON for big answers: :class:`JsonText` (a value already encoded, e.g. a stored event encoded
  once when it is stored) that :func:`encode_json` writes as it is, so that a listing is not encoded again and
  again; :func:`copy_json`, a deep copy of JSON data for what a fake hands out to be changed.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import gc
import http.server
import json
import re
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self, TypeVar

import trustme

__all__ = [
    "ErrorAnswer",
    "HttpsFake",
    "JsonText",
    "Request",
    "RequestHandler",
    "TlsHttpServer",
    "copy_json",
    "encode_json",
    "json_copy",
    "no_cyclic_gc",
]


class Request(NamedTuple):
    """A request as both fakes take it apart: ``raw_path`` as sent (without the query string), ``path``
    URL-decoded, ``query_multi`` every (decoded) value of each parameter, ``query`` the last one."""

    body: bytes
    raw_path: str
    path: str
    query_multi: dict[str, list[str]]
    query: dict[str, str]


class RequestHandler(http.server.BaseHTTPRequestHandler):
    """Hands every request (GET, POST, PATCH, PUT, DELETE) to the server's ``handle`` callable (no
    logging), and offers that callable the steps both fakes take to read and answer a request."""

    protocol_version = "HTTP/1.1"
    timeout = 60
    #: TCP_NODELAY, as a real front end has: the status line and headers go out before the body, and
    #: with Nagle's algorithm the body would wait for the client's delayed ACK (40 ms a response).
    disable_nagle_algorithm = True
    server: TlsHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        self.server.handle(self)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _dispatch

    def read_request(self) -> Request:
        """Read the body (by ``Content-Length``) and take the target apart."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        split = urllib.parse.urlsplit(self.path)
        raw_path = split.path
        path = urllib.parse.unquote(raw_path)
        query_multi = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        query = {k: v[-1] for k, v in query_multi.items()}
        return Request(body, raw_path, path, query_multi, query)

    def loggable_headers(self) -> dict[str, str]:
        """The request's headers without ``Authorization`` (for a request log)."""
        return {k: v for k, v in self.headers.items() if k.lower() != "authorization"}

    def drop_connection(self) -> None:
        """Close the connection without an answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def respond(self, status: int, data: bytes, headers: Iterable[tuple[str, str]]) -> None:
        """Send ``status``, ``headers`` in the order given and ``data``; a client that went away closes
        the connection."""
        try:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True


class TlsHttpServer(http.server.ThreadingHTTPServer):
    """https on 127.0.0.1 (a free port), one thread a connection, every request passed to ``handle``."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, handle: Callable[[RequestHandler], None], context: ssl.SSLContext) -> None:
        self.handle = handle
        self.ssl_context = context
        self.open_sockets: set[ssl.SSLSocket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), RequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # the TLS handshake happens here, in the connection's own thread, so a slow client never blocks accept
        request.settimeout(30)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with self.sockets_lock:
            self.open_sockets.add(tls)
        try:
            RequestHandler(tls, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with self.sockets_lock:
                self.open_sockets.discard(tls)
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # quiet: a client that went away is not our problem

    def close_connections(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class HttpsFake(abc.ABC):
    """A fake served over https on 127.0.0.1 with its own throwaway CA; subclasses answer in
    :meth:`_handle`. ``name`` names the temporary directory, the CA file and the server thread
    (``fake-{name}``)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._tmp = tempfile.TemporaryDirectory(prefix=f"fake-{name}-")
        self._ca = trustme.CA()
        self._server_cert = self._ca.issue_cert("127.0.0.1")
        #: PEM of the CA that signed the server's certificate for 127.0.0.1 (removed again by stop()).
        self.ca_path = Path(self._tmp.name) / f"fake-{name}-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_path))
        self._server: TlsHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        #: Seconds every request waits before it is answered (a benchmark's network round trip); the
        #: wait happens in the request's own thread, so requests in flight overlap as on a network.
        self.latency = 0.0

    def _serve(self, handler: RequestHandler) -> None:
        if self.latency > 0:
            time.sleep(self.latency)
        self._handle(handler)

    @abc.abstractmethod
    def _handle(self, handler: RequestHandler) -> None:
        """Answer one request (called in the connection's thread)."""

    def start(self) -> Self:
        if self._server is not None:
            return self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_cert.configure_cert(context)
        server = TlsHttpServer(self._serve, context)
        self._base_url = f"https://127.0.0.1:{server.server_address[1]}"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-{self._name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._base_url


class ErrorAnswer(Exception):
    """An answer other than success, already shaped: ``status``, the JSON ``payload``, extra ``headers``."""

    def __init__(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload
        self.headers = headers or {}


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, strings, numbers): many times faster than
    ``copy.deepcopy``, which a listing of thousands of events would otherwise spend its time in."""
    return json.loads(json.dumps(value))


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector paused (for loading many events, which make no reference cycles:
    it would otherwise scan the millions of objects already loaded again and again), as
    ``bench.orggen.generate`` does."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


_ATOMS = frozenset({str, int, float, bool, type(None)})
_T = TypeVar("_T")


def copy_json(value: _T) -> _T:
    """A deep copy of JSON-like data: dicts and lists are copied, strings, numbers, booleans and None
    shared (they cannot change), anything else ``copy.deepcopy``-ed. Several times faster than
    ``copy.deepcopy`` (and than :func:`json_copy`), and it keeps what JSON would not (tuples, non-string
    keys)."""
    kind = type(value)
    if kind is dict:
        members: Any = value
        return {k: v if type(v) in _ATOMS else copy_json(v) for k, v in members.items()}  # type: ignore[return-value]
    if kind is list:
        items: Any = value
        return [v if type(v) in _ATOMS else copy_json(v) for v in items]  # type: ignore[return-value]
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value)


class JsonText(bytes):
    """A JSON value already encoded, exactly as ``json.dumps`` with its defaults encodes it (so ASCII),
    as bytes: :func:`encode_json` writes it where the value would go. Being bytes it refers to nothing,
    and the cyclic garbage collector never looks at it (a delta round keeps thousands)."""

    __slots__ = ()

    @classmethod
    def of(cls, value: Any) -> JsonText:
        return cls(json.dumps(value).encode())


# what json.dumps makes of the placeholder "\x00{n}\x00" that encode_json() puts where a JsonText goes
_PLACEHOLDER = re.compile(r'"\\u0000([0-9]+)\\u0000"')


def encode_json(value: Any) -> bytes:
    """``json.dumps(value).encode()`` (its defaults: ``ensure_ascii``, ``", "`` and ``": "``), where each
    :class:`JsonText` inside stands for its text. The C encoder does the work: each JsonText is encoded
    as a placeholder string, replaced afterwards (should a string of the data look like a placeholder,
    the value is encoded again the slow way, so the answer is always exact)."""
    texts: list[bytes] = []

    def placeholder(item: Any) -> str:
        if isinstance(item, JsonText):
            texts.append(item)
            return f"\x00{len(texts) - 1}\x00"
        raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")

    encoded = json.dumps(value, default=placeholder)
    if not texts:
        return encoded.encode()
    pieces = _PLACEHOLDER.split(encoded)
    if len(pieces) != 2 * len(texts) + 1 or any(pieces[2 * i + 1] != str(i) for i in range(len(texts))):
        return _slow_dumps(value).encode()
    parts: list[bytes] = []
    for index, text in enumerate(texts):
        parts.append(pieces[2 * index].encode())
        parts.append(text)
    parts.append(pieces[-1].encode())
    return b"".join(parts)


def _slow_dumps(value: Any) -> str:
    """:func:`encode_json` without placeholders: containers written here, the rest by ``json.dumps``."""
    if isinstance(value, JsonText):
        return value.decode("ascii")
    if isinstance(value, dict):
        # a key as json.dumps writes it (it turns numbers, booleans and None into strings)
        members = (f"{json.dumps({k: 0})[1:-4]}: {_slow_dumps(v)}" for k, v in value.items())
        return "{" + ", ".join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_slow_dumps(v) for v in value) + "]"
    return json.dumps(value)
