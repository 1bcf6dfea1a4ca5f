"""A stateful fake of the Google HTTP APIs calsync uses, served over https on 127.0.0.1.

It speaks the wire protocol the real client libraries (``google-auth``, ``google-auth-httplib2``,
``httplib2``, ``google-api-python-client`` with ``static_discovery=True``) expect:

* ``POST /token``: OAuth 2.0 token endpoint. JWT-bearer grant (RFC 7523) for service accounts, RS256
  signatures verified against the keys handed out by :meth:`FakeGoogle.service_account_info`, domain-wide
  delegation checked against :attr:`FakeGoogle.delegated`; ``refresh_token`` grant for installed-app clients.
* ``/calendar/v3/calendars/{calendarId}/events[/{eventId}]``: Calendar API v3 ``events.list`` (full and
  incremental sync, paging, 410 ``fullSyncRequired``), ``events.get`` and ``events.patch`` (patch semantics,
  ``If-Match``, attachments).
* ``/admin/directory/v1/users``: Admin SDK Directory API ``users.list``.

Where to point the client (``client_options={"api_endpoint": ...}``)
--------------------------------------------------------------------
googleapiclient (2.202) replaces ``rootUrl + servicePath`` of the discovery document with ``api_endpoint``
verbatim and appends each method's path to it with exactly one ``/`` in between (its own ``_urljoin``, a
concatenation, not ``urllib.parse.urljoin``; a trailing slash on the endpoint makes no difference). So:

* Calendar: the discovery doc has ``servicePath = "calendar/v3/"`` and method paths like
  ``calendars/{calendarId}/events``, so the endpoint must carry the service path:
  :attr:`FakeGoogle.calendar_endpoint` is ``https://127.0.0.1:PORT/calendar/v3/`` and requests go to
  ``/calendar/v3/calendars/ann%40acme.test/events``.
* Directory: the discovery doc has ``servicePath = ""`` and the method path is the full
  ``admin/directory/v1/users``, so the endpoint must be the bare root: :attr:`FakeGoogle.directory_endpoint`
  is ``https://127.0.0.1:PORT/``. (``.../admin/directory/v1/`` would request
  ``/admin/directory/v1/admin/directory/v1/users``, which the fake answers with 404.)
* Token: google-auth posts to the key's ``token_uri`` (:attr:`FakeGoogle.token_uri`) but always signs the
  JWT with ``aud = "https://oauth2.googleapis.com/token"``; the fake accepts that audience (as Google does)
  and its own ``token_uri``.

Calendar ids are percent-encoded in the path by the client (``ann%40acme.test``); the fake decodes each
path segment. Batch requests (``/batch/...``) and media uploads are not served.

Behaviour worth knowing when writing tests
------------------------------------------
* httplib2 silently retries a request once when the server closes the connection without answering, so
  ``drop_next(1)`` is invisible to the caller (two requests are logged); ``drop_next(2)`` surfaces as an
  exception (``http.client.RemoteDisconnected``, an ``OSError``/``HTTPException``).
* google-auth retries the *token* request itself on 429/500/503 (with a real back-off): inject faults with
  ``path_contains="/token"`` and a non-retryable status if a test must stay fast.
* ``events.list`` without ``singleEvents`` returns cancelled *instances* of recurring events (exception
  tombstones) even when ``showDeleted`` is false, exactly as the API reference documents; other tombstones
  only with ``showDeleted=true`` (always with a ``syncToken``, where ``showDeleted=false`` is rejected).
* Access tokens stay valid after :meth:`FakeGoogle.revoke_delegation` until they expire (as with Google);
  :meth:`FakeGoogle.expire_access_tokens` forces the next API call to get a 401 and the client to refresh.
* A bug inside the fake answers 500 with reason ``fakeInternalError`` and appends the traceback to
  :attr:`FakeGoogle.internal_errors`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.https import ErrorAnswer, HttpsFake, RequestHandler

__all__ = ["FakeGoogle", "RequestRecord"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth always signs aud = Google's token endpoint, whatever the key's token_uri says; Google accepts it
GOOGLE_TOKEN_AUDIENCES = ("https://oauth2.googleapis.com/token", "https://accounts.google.com/o/oauth2/token")
_AUTH = "https://www.googleapis.com/auth/"
CALENDAR_READ_SCOPES = frozenset(
    _AUTH + s
    for s in (
        "calendar",
        "calendar.readonly",
        "calendar.events",
        "calendar.events.readonly",
        "calendar.events.owned",
        "calendar.events.owned.readonly",
    )
)
CALENDAR_WRITE_SCOPES = frozenset(_AUTH + s for s in ("calendar", "calendar.events", "calendar.events.owned"))
DIRECTORY_SCOPES = frozenset(_AUTH + s for s in ("admin.directory.user", "admin.directory.user.readonly"))

MAX_EVENT_RESULTS = 2500
DEFAULT_EVENT_RESULTS = 250
MAX_USER_RESULTS = 500
DEFAULT_USER_RESULTS = 100
MAX_ATTACHMENTS = 25
TOKEN_LIFETIME = 3599

_USAGE_LIMIT_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"}
)
_REASON_MESSAGES = {
    "rateLimitExceeded": "Rate Limit Exceeded",
    "userRateLimitExceeded": "Rate Limit Exceeded",
    "quotaExceeded": "Calendar usage limits exceeded.",
    "dailyLimitExceeded": "Daily Limit Exceeded",
    "backendError": "Backend Error",
    "notFound": "Not Found",
    "forbidden": "Forbidden",
    "authError": "Invalid Credentials",
    "invalid": "Invalid Value",
    "badRequest": "Bad Request",
    "conditionNotMet": "Precondition Failed",
    "deleted": "Resource has been deleted",
    "fullSyncRequired": "Sync token is no longer valid, a full sync is required.",
}
_DEFAULT_REASONS = {
    400: "badRequest",
    401: "authError",
    403: "rateLimitExceeded",
    404: "notFound",
    410: "deleted",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
}
_OAUTH_ERRORS = {
    400: "invalid_request",
    401: "invalid_client",
    403: "access_denied",
    429: "rate_limit_exceeded",
    500: "internal_failure",
    503: "temporarily_unavailable",
}
_SYNC_FORBIDDEN = (
    "timeMin",
    "timeMax",
    "updatedMin",
    "orderBy",
    "q",
    "iCalUID",
    "privateExtendedProperty",
    "sharedExtendedProperty",
)
_JWT_TIME_MESSAGE = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim."
)
_UNAUTHORIZED_CLIENT = (
    "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any "
    "of the scopes requested."
)
_MAX_CLOCK_SKEW = 300


@dataclass
class RequestRecord:
    """One request the fake received. ``path`` is URL-decoded, without the query string; ``status`` is 0
    while the request is in flight and stays 0 for a dropped connection."""

    method: str
    path: str
    query: dict[str, str]
    subject: str | None
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # the parsed JSON body of API writes (None otherwise)


class _ApiError(ErrorAnswer):
    """An answer other than 200, already shaped like Google's."""


def _envelope(
    status: int, reason: str, message: str | None = None, *, domain: str | None = None, **extra: str
) -> dict[str, Any]:
    message = message or _REASON_MESSAGES.get(reason, reason)
    if domain is None:
        domain = "usageLimits" if reason in _USAGE_LIMIT_REASONS else "global"
    error: dict[str, Any] = {"domain": domain, "reason": reason, "message": message, **extra}
    return {"error": {"errors": [error], "code": status, "message": message}}


def _api_error(status: int, reason: str, message: str | None = None, **extra: str) -> _ApiError:
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    return _ApiError(status, _envelope(status, reason, message, **extra), headers)


def _oauth_error(status: int, error: str, description: str) -> _ApiError:
    return _ApiError(status, {"error": error, "error_description": description})


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _rfc3339(stamp: datetime) -> str:
    stamp = stamp.astimezone(UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _parse_timestamp(value: str, name: str) -> datetime:
    """A query parameter that must be an RFC 3339 timestamp with an offset, as Google requires."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _api_error(400, "invalid", f"Invalid value for {name}: {value}") from None
    if parsed.tzinfo is None:
        raise _api_error(
            400, "invalid", f"Invalid value for {name}: {value} (a time zone offset is required)"
        )
    return parsed


def _zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _event_time(value: Any, calendar_tz: str) -> datetime | None:
    """The instant of an event's ``start``/``end``/``originalStartTime`` object (all-day: midnight local)."""
    if not isinstance(value, dict):
        return None
    try:
        if "dateTime" in value:
            parsed = datetime.fromisoformat(str(value["dateTime"]))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=_zone(value.get("timeZone"), calendar_tz))
            return parsed
        if "date" in value:
            day = datetime.fromisoformat(str(value["date"]))
            return day.replace(tzinfo=_zone(value.get("timeZone"), calendar_tz))
    except ValueError:
        return None
    return None


def _rrule_until(recurrence: Any) -> datetime | None:
    """The UNTIL of the first RRULE of a series, or None when it runs forever or is bounded by COUNT."""
    if not isinstance(recurrence, list):
        return None
    for line in recurrence:
        if isinstance(line, str) and line.upper().startswith("RRULE:"):
            match = re.search(r"UNTIL=([0-9TZ]+)", line.upper())
            if not match:
                return None
            raw = match.group(1)
            try:
                if "T" in raw:
                    parsed = datetime.strptime(raw.rstrip("Z"), "%Y%m%dT%H%M%S")
                    return parsed.replace(tzinfo=UTC)
                return datetime.strptime(raw, "%Y%m%d").replace(tzinfo=UTC) + timedelta(days=1)
            except ValueError:
                return None
    return None


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Google's patch semantics: objects merge recursively, arrays and scalars replace, null deletes."""
    for key, value in patch.items():
        current = target.get(key)
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(current, dict):
            if key in ("start", "end", "originalStartTime") and ({"date", "dateTime"} & value.keys()):
                # switching between an all-day and a timed event replaces the whole time object
                current = {k: v for k, v in current.items() if k not in ("date", "dateTime")}
            target[key] = _merge(dict(current), value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def _text_matches(resource: dict[str, Any], needle: str) -> bool:
    texts: list[str] = [str(resource.get(k, "")) for k in ("summary", "description", "location")]
    people = [resource.get("organizer") or {}, *(resource.get("attendees") or [])]
    for person in people:
        if isinstance(person, dict):
            texts += [str(person.get("email", "")), str(person.get("displayName", ""))]
    haystack = "\n".join(texts).lower()
    return all(term in haystack for term in needle.lower().split())


def _extended_matches(resource: dict[str, Any], kind: str, constraints: list[str]) -> bool:
    props = ((resource.get("extendedProperties") or {}).get(kind)) or {}
    for constraint in constraints:
        name, _, value = constraint.partition("=")
        if props.get(name) != value:
            return False
    return True


@dataclass
class _TokenInfo:
    subject: str
    scopes: frozenset[str] | None  # None: whatever the user consented to (refresh-token grant w/o scope)
    expires_at: float


@dataclass
class _Stored:
    resource: dict[str, Any]
    order: int
    seq: int
    updated: datetime
    created: str
    ical_uid: str


@dataclass
class _Calendar:
    calendar_id: str
    time_zone: str
    updated: datetime
    events: dict[str, _Stored] = field(default_factory=dict)


@dataclass
class _SyncToken:
    calendar_id: str
    seq: int
    expired: bool = False


@dataclass
class _Snapshot:
    items: list[dict[str, Any]]
    calendar_id: str = ""
    seq: int = 0
    sync_token: str | None = None


@dataclass(frozen=True)
class _Cursor:
    snapshot: _Snapshot
    offset: int
    empty_left: int


@dataclass
class _User:
    email: str
    name: str
    manager: str | None
    suspended: bool
    user_id: str


@dataclass
class _RefreshToken:
    client_id: str
    user: str
    revoked: bool = False


@dataclass
class _Fault:
    kind: Literal["fail", "slow", "drop"]
    remaining: int
    path_contains: str
    status: int = 0
    reason: str = ""
    retry_after: int | None = None
    seconds: float = 0.0


class FakeGoogle(HttpsFake):
    """In-memory Google: OAuth token endpoint, Calendar API v3 events and Directory API users."""

    def __init__(self) -> None:
        super().__init__("google")  # ca_path, start/stop, base_url (tests/fakes/https.py)
        self._lock = threading.RLock()

        # auth
        self._sa_keys: dict[str, dict[str, rsa.RSAPublicKey]] = {}
        self._tokens: dict[str, _TokenInfo] = {}
        self._oauth_clients: dict[str, str] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        # subjects the service accounts may impersonate; add_calendar adds the calendar's owner
        self.delegated: set[str] = set()

        # calendar
        self._calendars: dict[str, _Calendar] = {}
        self._seq = 0
        self._order = 0
        self._last_stamp = datetime.now(UTC).replace(microsecond=0)
        self._sync_tokens: dict[str, _SyncToken] = {}
        self._cursors: dict[str, _Cursor] = {}
        # pages never hold more than page_size_cap items (events and users), whatever maxResults says
        self.page_size_cap: int | None = None
        # every fresh events.list (full or incremental) starts with this many empty pages with nextPageToken
        self.empty_pages = 0

        # directory
        self._users: dict[str, _User] = {}
        # subjects allowed to call the Directory API (they need delegation too, like any subject)
        self.directory_admins: set[str] = set()

        # faults and observation
        self._faults: list[_Fault] = []
        self.requests: list[RequestRecord] = []
        self.internal_errors: list[str] = []

    # ------------------------------------------------------------------ endpoints

    @property
    def calendar_endpoint(self) -> str:
        """``api_endpoint`` for ``build("calendar", "v3")``: must end in ``/calendar/v3/``."""
        return f"{self.base_url}/calendar/v3/"

    @property
    def directory_endpoint(self) -> str:
        """``api_endpoint`` for ``build("admin", "directory_v1")``: the root (its paths are absolute)."""
        return f"{self.base_url}/"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    # ------------------------------------------------------------------ auth state

    def service_account_info(
        self, client_email: str = "calsync@proj.iam.gserviceaccount.com"
    ) -> dict[str, Any]:
        """A service-account key file's contents with a fresh RSA key; the fake trusts its public half."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        key_id = secrets.token_hex(20)
        with self._lock:
            self._sa_keys.setdefault(client_email, {})[key_id] = key.public_key()
        project = client_email.partition("@")[2].split(".")[0] or "project"
        client_id = str(int(hashlib.sha256(client_email.encode()).hexdigest(), 16))[:21]
        quoted = urllib.parse.quote(client_email)
        return {
            "type": "service_account",
            "project_id": project,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": client_email,
            "client_id": client_id,
            "auth_uri": f"{self.base_url}/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": f"{self.base_url}/oauth2/v1/certs",
            "client_x509_cert_url": f"{self.base_url}/robot/v1/metadata/x509/{quoted}",
            "universe_domain": "googleapis.com",
        }

    def grant_delegation(self, email: str) -> None:
        with self._lock:
            self.delegated.add(email)

    def revoke_delegation(self, email: str) -> None:
        with self._lock:
            self.delegated.discard(email)

    def add_oauth_client(self, client_id: str, client_secret: str, refresh_token: str, user: str) -> None:
        with self._lock:
            self._oauth_clients[client_id] = client_secret
            self._refresh_tokens[refresh_token] = _RefreshToken(client_id, user)

    def revoke_refresh_token(self, refresh_token: str) -> None:
        with self._lock:
            if refresh_token in self._refresh_tokens:
                self._refresh_tokens[refresh_token].revoked = True

    def expire_access_tokens(self) -> None:
        """Every access token issued so far now gets 401 (the client is expected to refresh)."""
        with self._lock:
            self._tokens.clear()

    # ------------------------------------------------------------------ calendar state

    def add_calendar(self, calendar_id: str, time_zone: str = "UTC") -> None:
        with self._lock:
            if calendar_id not in self._calendars:
                self._calendars[calendar_id] = _Calendar(calendar_id, time_zone, self._tick())
            else:
                self._calendars[calendar_id].time_zone = time_zone
            self.delegated.add(calendar_id)

    def put_event(self, calendar_id: str, event: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            calendar = self._calendar(calendar_id)
            resource = copy.deepcopy(event)
            event_id = str(resource.get("id") or self._new_event_id())
            resource["id"] = event_id
            stored = self._store(calendar, resource, created=resource.get("created"))
            return copy.deepcopy(stored.resource)

    def patch_event(self, calendar_id: str, event_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            calendar = self._calendar(calendar_id)
            stored = calendar.events[event_id]
            merged = _merge(self._full_resource(stored), copy.deepcopy(changes))
            merged["id"] = event_id
            return copy.deepcopy(self._store(calendar, merged).resource)

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        with self._lock:
            calendar = self._calendar(calendar_id)
            stored = calendar.events[event_id]
            if stored.resource.get("status") == "cancelled":
                return
            self._store(calendar, {**stored.resource, "status": "cancelled"})
            if stored.resource.get("recurrence"):
                # deleting a series deletes its modified instances too
                for other in list(calendar.events.values()):
                    res = other.resource
                    if res.get("recurringEventId") == event_id and res.get("status") != "cancelled":
                        self._store(calendar, {**res, "status": "cancelled"})

    def events(self, calendar_id: str) -> list[dict[str, Any]]:
        with self._lock:
            calendar = self._calendar(calendar_id)
            ordered = sorted(calendar.events.values(), key=lambda s: s.order)
            return [copy.deepcopy(s.resource) for s in ordered]

    def expire_sync_tokens(self, calendar_id: str | None = None) -> None:
        with self._lock:
            for token in self._sync_tokens.values():
                if calendar_id is None or token.calendar_id == calendar_id:
                    token.expired = True

    # ------------------------------------------------------------------ directory state

    def add_user(self, email: str, name: str, manager: str | None = None, suspended: bool = False) -> None:
        with self._lock:
            user_id = str(int(hashlib.sha256(email.encode()).hexdigest(), 16))[:21]
            self._users[email] = _User(email, name, manager, suspended, user_id)

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        count: int,
        status: int,
        *,
        reason: str | None = None,
        retry_after: int | None = None,
        path_contains: str = "",
    ) -> None:
        """The next ``count`` matching requests get Google's error envelope. ``reason`` defaults by status:
        403/429 ``rateLimitExceeded``, 5xx ``backendError``, 401 ``authError``, 404 ``notFound`` ..."""
        reason = reason or _DEFAULT_REASONS.get(status, "backendError")
        with self._lock:
            self._faults.append(_Fault("fail", count, path_contains, status, reason, retry_after))

    def slow_next(self, count: int, seconds: float, *, path_contains: str = "") -> None:
        with self._lock:
            self._faults.append(_Fault("slow", count, path_contains, seconds=seconds))

    def drop_next(self, count: int, *, path_contains: str = "") -> None:
        with self._lock:
            self._faults.append(_Fault("drop", count, path_contains))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # ------------------------------------------------------------------ observation

    def count(self, method: str = "GET", path_contains: str = "") -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.method == method and path_contains in r.path)

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------------ internals: state

    def _tick(self) -> datetime:
        """A strictly increasing server clock with millisecond resolution."""
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return now

    def _calendar(self, calendar_id: str) -> _Calendar:
        try:
            return self._calendars[calendar_id]
        except KeyError:
            raise KeyError(f"no calendar {calendar_id!r}: call add_calendar first") from None

    def _new_event_id(self) -> str:
        alphabet = "0123456789abcdefghijklmnopqrstuv"
        return "".join(secrets.choice(alphabet) for _ in range(26))

    def _full_resource(self, stored: _Stored) -> dict[str, Any]:
        resource = copy.deepcopy(stored.resource)
        resource.setdefault("iCalUID", stored.ical_uid)
        return resource

    def _store(self, calendar: _Calendar, resource: dict[str, Any], created: Any = None) -> _Stored:
        event_id = str(resource["id"])
        previous = calendar.events.get(event_id)
        stamp = self._tick()
        self._seq += 1
        etag = f'"{int(stamp.timestamp() * 1000) * 1000}"'
        created_text = str(created or (previous.created if previous else _rfc3339(stamp)))
        ical_uid = str(
            resource.get("iCalUID") or (previous.ical_uid if previous else f"{event_id}@google.com")
        )
        if resource.get("status") == "cancelled":
            out: dict[str, Any] = {
                "kind": "calendar#event",
                "etag": etag,
                "id": event_id,
                "status": "cancelled",
            }
            if resource.get("recurringEventId"):
                out["recurringEventId"] = resource["recurringEventId"]
                if "originalStartTime" in resource:
                    out["originalStartTime"] = copy.deepcopy(resource["originalStartTime"])
        else:
            out = {"kind": "calendar#event", "etag": etag, "id": event_id, "status": "confirmed"}
            out.update(
                {k: v for k, v in resource.items() if k not in ("kind", "etag", "updated", "htmlLink")}
            )
            eid = base64.urlsafe_b64encode(f"{event_id} {calendar.calendar_id}".encode()).decode().rstrip("=")
            out["htmlLink"] = f"https://www.google.com/calendar/event?eid={eid}"
            out["created"] = created_text
            out["updated"] = _rfc3339(stamp)
            out["iCalUID"] = ical_uid
            out.setdefault("sequence", 0)
        if previous is None:
            self._order += 1
        stored = _Stored(
            out, previous.order if previous else self._order, self._seq, stamp, created_text, ical_uid
        )
        calendar.events[event_id] = stored
        calendar.updated = stamp
        return stored

    # ------------------------------------------------------------------ internals: HTTP

    def _take_fault(self, raw_target: str, decoded_target: str) -> _Fault | None:
        """The first queued fault whose filter matches the request target (raw or URL-decoded, with query)."""
        with self._lock:
            for fault in self._faults:
                if fault.path_contains in raw_target or fault.path_contains in decoded_target:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _subject_for(self, headers: Any) -> _TokenInfo | None:
        auth = str(headers.get("Authorization") or "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._lock:
            info = self._tokens.get(token.strip())
        if info is None or info.expires_at <= time.time():
            return None
        return info

    def _handle(self, handler: RequestHandler) -> None:
        body, raw_path, path, query_multi, query = handler.read_request()
        token = self._subject_for(handler.headers)
        record = RequestRecord(
            handler.command,
            path,
            query,
            token.subject if token else None,
            0,
            handler.loggable_headers(),
        )
        with self._lock:
            self.requests.append(record)
        fault = self._take_fault(handler.path, urllib.parse.unquote(handler.path))
        headers: dict[str, str] = {}
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        elif fault is not None and fault.kind == "drop":
            handler.drop_connection()
            return
        if fault is not None and fault.kind == "fail":
            status, payload = fault.status, self._fault_payload(fault, path)
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
        else:
            try:
                with self._lock:
                    status, payload = self._route(
                        handler.command, raw_path, query_multi, handler, body, record
                    )
            except _ApiError as error:
                status, payload, headers = error.status, error.payload, error.headers
            except Exception:
                self.internal_errors.append(traceback.format_exc())
                status, payload = 500, _envelope(500, "fakeInternalError", "Internal error in the fake")
        record.status = status
        data = json.dumps(payload).encode()
        standard = [
            ("Content-Type", "application/json; charset=UTF-8"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"),
        ]
        handler.respond(status, data, [*standard, *headers.items()])

    def _fault_payload(self, fault: _Fault, path: str) -> dict[str, Any]:
        if path == "/token":
            error = fault.reason if fault.reason not in _REASON_MESSAGES else _OAUTH_ERRORS.get(fault.status)
            return {"error": error or "internal_failure", "error_description": fault.reason}
        message = None
        if fault.status == 503 and fault.reason == "backendError":
            message = "The service is currently unavailable."
        return _envelope(fault.status, fault.reason, message)

    def _route(
        self,
        method: str,
        raw_path: str,
        query: dict[str, list[str]],
        handler: RequestHandler,
        body: bytes,
        record: RequestRecord,
    ) -> tuple[int, dict[str, Any]]:
        if raw_path == "/token":
            if method != "POST":
                raise _api_error(405, "httpMethodNotAllowed", "Method Not Allowed")
            return self._token(body, record)
        segments = [urllib.parse.unquote(s) for s in raw_path.split("/")[1:]]
        if segments[:2] == ["calendar", "v3"]:
            token = self._require_token(handler)
            rest = segments[2:]
            if len(rest) == 3 and rest[0] == "calendars" and rest[2] == "events" and method == "GET":
                return 200, self._list_events(token, rest[1], query)
            if len(rest) == 4 and rest[0] == "calendars" and rest[2] == "events":
                if method == "GET":
                    return 200, self._get_event(token, rest[1], rest[3])
                if method == "PATCH":
                    return 200, self._patch_event(token, rest[1], rest[3], query, handler, body, record)
        if segments == ["admin", "directory", "v1", "users"] and method == "GET":
            return 200, self._list_users(self._require_token(handler), query)
        raise _api_error(404, "notFound", f"Not Found (the fake serves no {method} {raw_path})")

    # ------------------------------------------------------------------ token endpoint

    def _token(self, body: bytes, record: RequestRecord) -> tuple[int, dict[str, Any]]:
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
        grant = form.get("grant_type", "")
        scopes: frozenset[str] | None
        if grant == JWT_BEARER:
            subject, scopes = self._verify_assertion(form.get("assertion", ""))
            requested = None
        elif grant == "refresh_token":
            subject, scopes = self._verify_refresh(form)
            requested = form.get("scope")
        else:
            raise _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")
        access_token = "ya29.fake-" + secrets.token_urlsafe(32)
        self._tokens[access_token] = _TokenInfo(subject, scopes, time.time() + TOKEN_LIFETIME)
        record.subject = subject
        answer: dict[str, Any] = {
            "access_token": access_token,
            "expires_in": TOKEN_LIFETIME,
            "token_type": "Bearer",
        }
        if requested:
            answer["scope"] = requested
        return 200, answer

    def _verify_assertion(self, assertion: str) -> tuple[str, frozenset[str]]:
        bad_signature = _oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        parts = assertion.split(".")
        if len(parts) != 3:
            raise bad_signature
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except ValueError:
            raise bad_signature from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise bad_signature
        keys = self._sa_keys.get(str(claims.get("iss", "")))
        if not keys:
            raise _oauth_error(400, "invalid_grant", "Invalid grant: account not found")
        if header.get("alg") != "RS256":
            raise bad_signature
        kid = header.get("kid")
        candidates = [keys[kid]] if kid in keys else ([] if kid else list(keys.values()))
        signed = f"{parts[0]}.{parts[1]}".encode()
        for public_key in candidates:
            try:
                public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
                break
            except InvalidSignature:
                continue
        else:
            raise bad_signature
        if claims.get("aud") not in (*GOOGLE_TOKEN_AUDIENCES, self.token_uri):
            raise _oauth_error(400, "invalid_grant", "Invalid JWT: Failed audience check.")
        now = time.time()
        try:
            iat, exp = float(claims["iat"]), float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            raise _oauth_error(400, "invalid_grant", _JWT_TIME_MESSAGE) from None
        if exp <= now or iat > now + _MAX_CLOCK_SKEW or exp - iat > 3600:
            raise _oauth_error(400, "invalid_grant", _JWT_TIME_MESSAGE)
        scope = str(claims.get("scope") or "").split()
        if not scope:
            raise _oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        sub = claims.get("sub")
        if sub:
            if sub not in self.delegated:
                raise _oauth_error(401, "unauthorized_client", _UNAUTHORIZED_CLIENT)
            return str(sub), frozenset(scope)
        return str(claims["iss"]), frozenset(scope)

    def _verify_refresh(self, form: dict[str, str]) -> tuple[str, frozenset[str] | None]:
        client_id = form.get("client_id", "")
        secret = self._oauth_clients.get(client_id)
        if secret is None:
            raise _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if form.get("client_secret") != secret:
            raise _oauth_error(401, "invalid_client", "Unauthorized")
        grant = self._refresh_tokens.get(form.get("refresh_token", ""))
        if grant is None or grant.revoked or grant.client_id != client_id:
            raise _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        scope = form.get("scope")
        return grant.user, (frozenset(scope.split()) if scope else None)

    def _require_token(self, handler: RequestHandler) -> _TokenInfo:
        token = self._subject_for(handler.headers)
        if token is None:
            raise _api_error(
                401, "authError", "Invalid Credentials", locationType="header", location="Authorization"
            )
        return token

    @staticmethod
    def _require_scope(token: _TokenInfo, allowed: frozenset[str]) -> None:
        if token.scopes is not None and not (token.scopes & allowed):
            raise _api_error(
                403, "insufficientPermissions", "Request had insufficient authentication scopes."
            )

    # ------------------------------------------------------------------ calendar API

    def _visible_calendar(self, token: _TokenInfo, calendar_id: str) -> _Calendar:
        if calendar_id == "primary":
            calendar_id = token.subject
        calendar = self._calendars.get(calendar_id)
        if calendar is None or calendar_id != token.subject:
            raise _api_error(404, "notFound", "Not Found")
        return calendar

    def _list_events(
        self, token: _TokenInfo, calendar_id: str, query: dict[str, list[str]]
    ) -> dict[str, Any]:
        self._require_scope(token, CALENDAR_READ_SCOPES)
        calendar = self._visible_calendar(token, calendar_id)
        q = {k: v[-1] for k, v in query.items()}
        if q.get("singleEvents") == "true":
            raise _api_error(400, "invalid", "The fake does not expand recurring events (singleEvents=true)")
        try:
            max_results = int(q.get("maxResults", DEFAULT_EVENT_RESULTS))
        except ValueError:
            raise _api_error(400, "invalid", "Invalid value for maxResults") from None
        if max_results < 1:
            raise _api_error(400, "invalid", f"Invalid value for maxResults: {max_results}")
        page_size = min(max_results, MAX_EVENT_RESULTS)
        if self.page_size_cap is not None:
            page_size = min(page_size, max(self.page_size_cap, 1))
        sync_token = q.get("syncToken")
        if sync_token is not None:
            clashing = [name for name in _SYNC_FORBIDDEN if name in q]
            if clashing:
                raise _api_error(
                    400, "invalid", f"Sync token cannot be used with other filters: {clashing[0]}"
                )
            if q.get("showDeleted") == "false":
                raise _api_error(400, "invalid", "Sync token cannot be used with showDeleted=false")
        if q.get("orderBy") not in (None, "updated"):
            raise _api_error(
                400, "invalid", "The requested ordering is not available for the particular query."
            )

        page_token = q.get("pageToken")
        if page_token is not None:
            cursor = self._cursors.get(page_token)
            if cursor is None or cursor.snapshot.calendar_id != calendar.calendar_id:
                raise _api_error(400, "invalid", "Invalid page token value")
        else:
            if sync_token is not None:
                items = self._incremental_items(calendar, sync_token)
            else:
                items = self._full_items(calendar, query)
            snapshot = _Snapshot(items, calendar.calendar_id, self._seq)
            cursor = _Cursor(snapshot, 0, max(self.empty_pages, 0))

        answer: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"p{self._seq:015d}"',
            "summary": calendar.calendar_id,
            "description": "",
            "updated": _rfc3339(calendar.updated),
            "timeZone": calendar.time_zone,
            "accessRole": "owner",
            "defaultReminders": [],
        }
        items_page, next_cursor = self._page(cursor, page_size)
        answer["items"] = items_page
        if next_cursor is not None:
            answer["nextPageToken"] = self._cursor_token(next_cursor)
        else:
            snapshot = cursor.snapshot
            if snapshot.sync_token is None:
                snapshot.sync_token = "CP" + secrets.token_urlsafe(24)
                self._sync_tokens[snapshot.sync_token] = _SyncToken(snapshot.calendar_id, snapshot.seq)
            answer["nextSyncToken"] = snapshot.sync_token
        return answer

    def _page(self, cursor: _Cursor, page_size: int) -> tuple[list[dict[str, Any]], _Cursor | None]:
        snapshot = cursor.snapshot
        if cursor.empty_left > 0:
            return [], _Cursor(snapshot, cursor.offset, cursor.empty_left - 1)
        end = cursor.offset + page_size
        items = copy.deepcopy(snapshot.items[cursor.offset : end])
        return items, (_Cursor(snapshot, end, 0) if end < len(snapshot.items) else None)

    def _cursor_token(self, cursor: _Cursor) -> str:
        token = "EN" + secrets.token_urlsafe(24)
        self._cursors[token] = cursor
        return token

    def _incremental_items(self, calendar: _Calendar, sync_token: str) -> list[dict[str, Any]]:
        issued = self._sync_tokens.get(sync_token)
        if issued is None or issued.expired or issued.calendar_id != calendar.calendar_id:
            raise _api_error(410, "fullSyncRequired")
        changed = [s for s in calendar.events.values() if s.seq > issued.seq]
        return [copy.deepcopy(s.resource) for s in sorted(changed, key=lambda s: s.order)]

    def _full_items(self, calendar: _Calendar, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        q = {k: v[-1] for k, v in query.items()}
        show_deleted = q.get("showDeleted") == "true"
        time_min = _parse_timestamp(q["timeMin"], "timeMin") if "timeMin" in q else None
        time_max = _parse_timestamp(q["timeMax"], "timeMax") if "timeMax" in q else None
        updated_min = _parse_timestamp(q["updatedMin"], "updatedMin") if "updatedMin" in q else None
        if time_min and time_max and time_min >= time_max:
            raise _api_error(400, "timeRangeEmpty", "The specified time range is empty.")
        text = q.get("q")
        ical_uid = q.get("iCalUID")
        selected: list[_Stored] = []
        for stored in calendar.events.values():
            resource = stored.resource
            cancelled = resource.get("status") == "cancelled"
            if updated_min is not None:
                if stored.updated < updated_min:
                    continue
            elif cancelled and not show_deleted and not resource.get("recurringEventId"):
                # cancelled instances of recurring events are listed anyway when singleEvents is false
                continue
            if ical_uid is not None and stored.ical_uid != ical_uid:
                continue
            if text is not None and (cancelled or not _text_matches(resource, text)):
                continue
            if not _extended_matches(resource, "private", query.get("privateExtendedProperty", [])):
                continue
            if not _extended_matches(resource, "shared", query.get("sharedExtendedProperty", [])):
                continue
            if (time_min or time_max) and not self._overlaps(calendar, stored, time_min, time_max):
                continue
            selected.append(stored)
        key = (lambda s: s.updated) if q.get("orderBy") == "updated" else (lambda s: s.order)
        return [copy.deepcopy(s.resource) for s in sorted(selected, key=key)]

    def _overlaps(
        self, calendar: _Calendar, stored: _Stored, time_min: datetime | None, time_max: datetime | None
    ) -> bool:
        resource = stored.resource
        tz = calendar.time_zone
        if resource.get("status") == "cancelled":
            start = _event_time(resource.get("originalStartTime"), tz)
            if start is None:
                return True
            master = calendar.events.get(str(resource.get("recurringEventId", "")))
            duration = timedelta(0)
            if master is not None:
                m_start = _event_time(master.resource.get("start"), tz)
                m_end = _event_time(master.resource.get("end"), tz)
                if m_start and m_end:
                    duration = m_end - m_start
            end: datetime | None = start + duration
        else:
            start = _event_time(resource.get("start"), tz)
            end = _event_time(resource.get("end"), tz) or start
            if start is None:
                return True
            if resource.get("recurrence"):
                end = _rrule_until(resource["recurrence"])  # None: unbounded
        if time_max is not None and start >= time_max:
            return False
        return not (time_min is not None and end is not None and end <= time_min)

    def _get_event(self, token: _TokenInfo, calendar_id: str, event_id: str) -> dict[str, Any]:
        self._require_scope(token, CALENDAR_READ_SCOPES)
        calendar = self._visible_calendar(token, calendar_id)
        stored = calendar.events.get(event_id)
        if stored is None:
            raise _api_error(404, "notFound", "Not Found")
        return copy.deepcopy(stored.resource)

    def _patch_event(
        self,
        token: _TokenInfo,
        calendar_id: str,
        event_id: str,
        query: dict[str, list[str]],
        handler: RequestHandler,
        body: bytes,
        record: RequestRecord,
    ) -> dict[str, Any]:
        self._require_scope(token, CALENDAR_WRITE_SCOPES)
        calendar = self._visible_calendar(token, calendar_id)
        stored = calendar.events.get(event_id)
        if stored is None:
            raise _api_error(404, "notFound", "Not Found")
        q = {k: v[-1] for k, v in query.items()}
        if q.get("sendUpdates", "none") not in ("all", "externalOnly", "none"):
            raise _api_error(400, "invalid", f"Invalid value for sendUpdates: {q['sendUpdates']}")
        if_match = handler.headers.get("If-Match")
        if if_match is not None and if_match.strip() not in ("*", stored.resource["etag"]):
            raise _api_error(
                412, "conditionNotMet", "Precondition Failed", locationType="header", location="If-Match"
            )
        try:
            changes = json.loads(body or b"{}")
        except ValueError:
            raise _api_error(400, "parseError", "Parse Error") from None
        if not isinstance(changes, dict):
            raise _api_error(400, "parseError", "Parse Error")
        record.body = copy.deepcopy(changes)
        if changes.get("id") not in (None, event_id):
            raise _api_error(400, "invalid", "Invalid resource id value.")
        for read_only in ("kind", "etag", "created", "updated", "htmlLink", "iCalUID", "id"):
            changes.pop(read_only, None)
        if "attachments" in changes:
            if q.get("supportsAttachments") != "true":
                # Google ignores attachments from clients that do not declare support for them
                del changes["attachments"]
            elif len(changes["attachments"] or []) > MAX_ATTACHMENTS:
                raise _api_error(
                    400, "invalid", "Too many attachments. An event can have at most 25 attachments."
                )
        if "sequence" in changes:
            current = int(stored.resource.get("sequence", 0))
            if not isinstance(changes["sequence"], int) or changes["sequence"] < current:
                raise _api_error(
                    400,
                    "invalid",
                    "Invalid sequence value. The specified sequence number is below the current sequence "
                    "number of the resource. Re-fetch the resource and use its sequence number on the "
                    "following update.",
                )
        merged = _merge(self._full_resource(stored), changes)
        merged["id"] = event_id
        return copy.deepcopy(self._store(calendar, merged).resource)

    # ------------------------------------------------------------------ directory API

    def _list_users(self, token: _TokenInfo, query: dict[str, list[str]]) -> dict[str, Any]:
        if token.subject not in self.directory_admins:
            raise _api_error(403, "forbidden", "Not Authorized to access this resource/api")
        self._require_scope(token, DIRECTORY_SCOPES)
        q = {k: v[-1] for k, v in query.items()}
        customer, domain = q.get("customer"), q.get("domain")
        if not customer and not domain:
            raise _api_error(400, "badRequest", "Bad Request")
        if customer and customer != "my_customer":
            raise _api_error(400, "badRequest", "Bad Request")
        if q.get("projection", "basic") not in ("basic", "full", "custom"):
            raise _api_error(400, "invalid", "Invalid Input: projection")
        try:
            max_results = int(q.get("maxResults", DEFAULT_USER_RESULTS))
        except ValueError:
            raise _api_error(400, "invalid", "Invalid Input: maxResults") from None
        if not 1 <= max_results <= MAX_USER_RESULTS:
            raise _api_error(400, "invalid", "Invalid Input: maxResults")
        if self.page_size_cap is not None:
            max_results = min(max_results, max(self.page_size_cap, 1))
        page_token = q.get("pageToken")
        if page_token is not None:
            cursor = self._cursors.get(page_token)
            if cursor is None or cursor.snapshot.calendar_id != "":
                raise _api_error(400, "invalid", "Invalid Input: pageToken")
        else:
            users = [u for u in self._users.values() if not domain or u.email.endswith("@" + domain)]
            cursor = _Cursor(_Snapshot([self._user_resource(u) for u in users]), 0, 0)
        page, next_cursor = self._page(cursor, max_results)
        answer: dict[str, Any] = {"kind": "admin#directory#users", "etag": f'"u{len(self._users):015d}"'}
        if page:
            answer["users"] = page  # Google omits empty lists
        if next_cursor is not None:
            answer["nextPageToken"] = self._cursor_token(next_cursor)
        return answer

    def _user_resource(self, user: _User) -> dict[str, Any]:
        given, _, family = user.name.partition(" ")
        resource: dict[str, Any] = {
            "kind": "admin#directory#user",
            "id": user.user_id,
            "etag": f'"{user.user_id[:12]}"',
            "primaryEmail": user.email,
            "name": {"givenName": given, "familyName": family, "fullName": user.name},
            "isAdmin": user.email in self.directory_admins,
            "isDelegatedAdmin": False,
            "suspended": user.suspended,
            "orgUnitPath": "/",
            "emails": [{"address": user.email, "primary": True}],
        }
        if user.manager:
            resource["relations"] = [{"value": user.manager, "type": "manager"}]
        return resource
