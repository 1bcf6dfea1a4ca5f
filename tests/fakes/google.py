"""A stateful fake of the Google HTTP APIs calsync uses, served over https on 127.0.0.1.

It speaks the wire protocol the real client libraries (``google-auth``, ``google-auth-httplib2``,
``httplib2``, ``google-api-python-client`` with ``static_discovery=True``) expect:

* ``POST /token``: OAuth 2.0 token endpoint. JWT-bearer grant (RFC 7523) for service accounts, RS256
  signatures verified against the keys handed out by :meth:`FakeGoogle.service_account_info`, domain-wide
  delegation checked against :attr:`FakeGoogle.delegated`; ``refresh_token`` grant for installed-app clients.
* ``/calendar/v3/calendars/{calendarId}/events[/{eventId}]``: Calendar API v3 ``events.list`` (full and
  incremental sync, paging, 410 ``fullSyncRequired``), ``events.get`` and ``events.patch`` (patch semantics,
  ``If-Match``, attachments), both also for instances of recurring events (see below).
* ``/calendar/v3/calendars/{calendarId}/events/{eventId}/instances``: ``events.instances``.
* ``/drive/v3/files[/{fileId}[/export|/permissions]]`` and ``/upload/drive/v3/files[/{fileId}]``: Drive API
  v3 ``files.create`` (metadata only, ``uploadType=multipart`` and ``media``), ``files.get`` (also
  ``alt=media`` for files that are not Docs), ``files.update`` (metadata and content), ``files.list``,
  ``files.export``, ``permissions.create`` and ``permissions.list``. The Drive state lives in
  :class:`tests.fakes.google_drive.FakeDrive`; this server routes to it after the token check, so faults
  (``fail_next``/``slow_next``/``drop_next`` with ``path_contains="/drive/v3/"`` or ``"/upload/drive/"``)
  and the request log work for Drive paths as for the others.
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
* Drive: ``servicePath = "drive/v3/"``, so :attr:`FakeGoogle.drive_endpoint` is
  ``https://127.0.0.1:PORT/drive/v3/``. Media uploads go to the discovery doc's absolute
  ``https://www.googleapis.com/upload/drive/v3/files`` with the netloc swapped for the endpoint's
  (googleapiclient's ``_fix_up_media_path_base_url``): ``https://127.0.0.1:PORT/upload/drive/v3/files``.
* Token: google-auth posts to the key's ``token_uri`` (:attr:`FakeGoogle.token_uri`) but always signs the
  JWT with ``aud = "https://oauth2.googleapis.com/token"``; the fake accepts that audience (as Google does)
  and its own ``token_uri``.

Calendar ids are percent-encoded in the path by the client (``ann%40acme.test``); the fake decodes each
path segment. Batch requests (``/batch/...``) and resumable uploads are not served.

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
* ``events.list`` honours ``fields`` (a partial response: ``nextSyncToken,items(id,organizer/email)``):
  the answer keeps only what it names; a name that is no field of the listing, or of an event inside
  ``items(...)``, is a 400 ``invalidParameter``. A stored event keeps the JSON of the last selection
  asked for, so a selection is encoded once per event, not once per listing.
* Access tokens stay valid after :meth:`FakeGoogle.revoke_delegation` until they expire (as with Google);
  :meth:`FakeGoogle.expire_access_tokens` forces the next API call to get a 401 and the client to refresh.
* A bug inside the fake answers 500 with reason ``fakeInternalError`` and appends the traceback to
  :attr:`FakeGoogle.internal_errors`.
* ``sendUpdates`` (and every other query parameter) of a call is in ``fake.requests[i].query``; the JSON
  body of a write in ``.body`` (Drive uploads: the metadata part, the uploaded bytes in ``.media``).

Event types (Calendar)
----------------------
As the API reference and the guides "Event types" and "Manage focus time, out of office, and working
location events" document them:

* Every event is served with an ``eventType`` (``"default"`` when it was stored without one; an exception
  stored without one has its series' type, and its series' ``iCalUID``). Tombstones stay stripped
  (``kind, etag, id, status`` and, for instances, ``recurringEventId``/``originalStartTime``), but remember
  the type of the event they replace, for the ``eventTypes`` filter.
* ``eventType`` is one of the discovery document's values (``birthday``, ``default``, ``focusTime``,
  ``fromGmail``, ``outOfOffice``, ``workingLocation``) and "cannot be modified after the event is created":
  a patch that changes it answers 400 ``invalid``; :meth:`FakeGoogle.put_event` over an event of another
  type raises ValueError.
* An ``outOfOffice`` event needs ``outOfOfficeProperties`` (``autoDeclineMode``, ``declineMessage``; it may
  be empty), is opaque (``transparency`` ``transparent`` is refused) and "cannot be an all-day event":
  ``start``/``end`` must be ``dateTime``. (An "all day" out-of-office made in Calendar's UI is stored as a
  timed span from local midnight to midnight: put that.) :meth:`~FakeGoogle.put_event` raises ValueError
  for an event the API would refuse, a patch answers 400 ``invalid``.
* ``events.list`` takes ``eventTypes`` (repeatable: ``eventTypes=outOfOffice&eventTypes=focusTime``; an
  unknown value is a 400 ``invalid``): only events of those types are listed, tombstones included. Its
  ``nextSyncToken`` remembers the types: an incremental listing lists only changes of those types, and one
  with other ``eventTypes`` than the sync that issued its token (Google: "all other query parameters should
  be the same as for the initial synchronization to avoid undefined behavior") answers 400 ``invalid``
  with a ``fakeDetail``, so that the undefined case is never relied on.

Recurring events (Calendar)
---------------------------
* ``events.instances`` expands the master's RRULE/EXRULE/RDATE/EXDATE with dateutil in the wall clock of
  the master's ``start.timeZone`` (the calendar's zone when it has none): a weekly 10:00 Berlin meeting stays
  at 10:00 across the DST change. A virtual instance is a copy of the master without ``recurrence``, id
  ``{masterId}_{YYYYMMDDTHHMMSSZ}`` (UTC; all-day: ``{masterId}_{YYYYMMDD}``), ``recurringEventId``,
  ``originalStartTime`` (= its start), its own start/end and an etag derived from the master's. A stored
  event with ``recurringEventId`` = the master and the same ``originalStartTime`` instant replaces it; a
  cancelled one only shows with ``showDeleted=true``. ``originalStart`` picks the instance that starts
  originally at that instant (any offset). ``timeMin``/``timeMax`` filter on the actual (moved) start/end.
  Paging as in ``events.list``, never a ``nextSyncToken``. Differences: a series without end and without
  ``timeMax`` yields at most 2500 instances; ``instances`` of a non-recurring event answers the event itself;
  of a cancelled master 410.
* ``events.get``/``events.patch`` accept a virtual instance id. Patching one stores an exception event with
  that id (``recurringEventId``, ``originalStartTime``, the master's ``iCalUID`` and ``created``, the
  changes merged in), which then shows in ``events.list`` and in incremental sync like any change.
  ``If-Match`` is compared with the current etag (the virtual instance's, then the stored exception's).
* Attachments (only with ``supportsAttachments=true``; otherwise dropped, as Google does) each need a
  ``fileUrl`` (400). A ``fileUrl`` naming a Drive file of this fake that the calendar's user can see (its
  ``webViewLink``, ``https://docs.google.com/document/d/ID/...``, ``https://drive.google.com/open?id=ID``)
  gets ``fileId``, ``title`` (the file's name, replacing the client's), ``mimeType`` and ``iconLink``; any
  other URL is kept as given.

Drive
-----
* Scopes ``drive`` or ``drive.file`` (reads also ``drive.readonly``), else 403 ``insufficientPermissions``.
  A subject sees a file it owns or holds a permission on (also ``anyone``/``domain`` grants); otherwise 404
  ``notFound`` "File not found: ID.". With only ``drive.file``, files made outside the app
  (``put_file(..., by_app=False)``) stay invisible. Updating and sharing need owner or writer (403
  ``insufficientFilePermissions``); trashing needs the owner.
* ``files.create`` with metadata ``mimeType`` ``application/vnd.google-apps.document`` and media
  ``text/html`` or ``text/plain`` converts: the Doc keeps the ``<body>`` content of the HTML (head, scripts,
  styles dropped) or one ``<p>`` a text line. Without a Docs mimeType the bytes are kept as they are. The
  creator owns the file (a permission with role ``owner``). Ids are 44 random Drive-like characters,
  ``webViewLink`` is ``https://docs.google.com/document/d/{id}/edit?usp=drivesdk`` (as Drive answers it).
* ``version`` is a string integer starting at "1" and bumped by every change: content, metadata, trashing
  and also sharing (``permissions.create``), as Drive's "every change made to the file on the server";
  ``modifiedTime``/``lastModifyingUser`` change with content and metadata, not with sharing.
  ``headRevisionId``/``md5Checksum``/``size`` only for non-Docs files, as in Drive.
* ``fields``: top-level and nested selections (``files(id,name)``, ``owners/emailAddress``, ``*``), names
  checked against the discovery schema (400 ``invalidParameter``). Without ``fields`` Drive's defaults:
  files ``kind,id,name,mimeType``; file lists ``kind,incompleteSearch,files,nextPageToken``; permissions
  ``kind,id,type,role`` (no ``emailAddress``: ask for it).
* ``files.update``: ``appProperties``/``properties`` merge by key, ``null`` deletes; ``parents`` is not
  writable (403 ``fieldNotWritable``, use ``addParents``/``removeParents``), nor are read-only fields on
  create. A property's key + value may have 124 bytes, a map 30 keys (400 ``invalidProperty``).
* ``files.list``: ``q`` is the subset of Drive's language calsync needs, terms joined by ``and``:
  ``appProperties has { key='K' and value='V' }``, ``properties has {...}``, ``trashed = true|false``
  (``!=`` too), ``starred``, ``name = '...'``/``!=``/``contains``, ``mimeType = '...'``/``!=``,
  ``'ID' in parents`` (``'root'`` works), ``'a@b' in owners|writers|readers``, ``modifiedTime > '...'``,
  ``fullText contains '...'``; strings escape ``\'`` and ``\\``. Anything else (``or``, ``not``,
  parentheses) answers 400 ``invalid`` "Invalid Value" (location ``q``) with a ``fakeDetail`` saying why.
  Trashed files are listed unless the query excludes them, as in Drive. Oldest first unless ``orderBy``;
  ``pageSize`` 1..1000 (default 100; ``page_size_cap`` applies), page tokens remember the matching ids.
  ``corpora`` ``user`` (``allDrives`` gives the same), ``spaces`` ``drive``.
* ``files.export`` of a Doc answers raw bytes with the export's Content-Type: ``text/html`` (a whole document
  with Google-like head and styles around the kept HTML), ``text/plain`` (a UTF-8 BOM, then one line a
  paragraph/heading/list item, ``* item`` / ``1. item``, entities decoded, lines joined by CRLF, as Google's
  export), ``text/markdown``. Other formats Drive makes (PDF, DOCX ...) answer 400 here; non-Docs 403
  ``fileNotExportable``; ``files.get(alt=media)`` of a Doc 403 ``fileNotDownloadable``.
* ``permissions.create`` (``type`` user/group/domain/anyone, ``role`` reader/commenter/writer; owner only
  with ``transferOwnership=true``) keeps one permission per grantee (sharing again changes the role) and
  records ``(file_id, email)`` in :attr:`FakeGoogle.notifications` unless ``sendNotificationEmail=false``.
* Not served: files.delete/copy, revisions, comments, changes, shared drives, resumable uploads.
* Test helpers: :meth:`~FakeGoogle.put_file`, :meth:`~FakeGoogle.drive_files`,
  :meth:`~FakeGoogle.file_content`, :meth:`~FakeGoogle.export_text`, :meth:`~FakeGoogle.human_edit`,
  :meth:`~FakeGoogle.permissions_of`, :meth:`~FakeGoogle.trash`, :attr:`~FakeGoogle.notifications`.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import re
import secrets
import threading
import time
import traceback
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from dateutil.rrule import rrule, rruleset, rrulestr
from googleapiclient.discovery_cache import get_static_doc

from tests.fakes.google_drive import FakeDrive, RawBody, parse_fields, select_fields
from tests.fakes.https import (
    ErrorAnswer,
    HttpsFake,
    JsonText,
    RequestHandler,
    copy_json,
    encode_json,
    no_cyclic_gc,
)

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
#: ``eventType`` values of the Calendar discovery document (events.list ``eventTypes`` takes the same)
EVENT_TYPES = ("birthday", "default", "focusTime", "fromGmail", "outOfOffice", "workingLocation")

MAX_EVENT_RESULTS = 2500
DEFAULT_EVENT_RESULTS = 250
MAX_USER_RESULTS = 500
DEFAULT_USER_RESULTS = 100
MAX_ATTACHMENTS = 25
# events.instances of a series without end and without timeMax: at most this many instances
MAX_UNBOUNDED_INSTANCES = 2500
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
    body: Any = None  # the parsed JSON body of API writes (Drive uploads: the metadata part; None otherwise)
    media: bytes | None = None  # the uploaded bytes of a Drive media/multipart upload


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


def _schema_fields() -> dict[str, frozenset[str]]:
    doc = json.loads(get_static_doc("calendar", "v3") or "{}")
    schemas = doc.get("schemas", {})
    return {name: frozenset(schemas[name]["properties"]) for name in ("Event", "Events")}


_SCHEMA = _schema_fields()


def _event_fields(query: dict[str, str]) -> tuple[str, dict[str, Any]] | None:
    """An events listing's ``fields`` selection (None without one): the text and its tree. A name that
    is no field of the answer, or of an event inside ``items(...)``, is a 400 as Google answers it."""
    spec = query.get("fields", "").strip()
    if not spec:
        return None
    try:
        tree = parse_fields(spec)
    except ValueError:
        raise _api_error(400, "invalidParameter", f"Invalid field selection {spec}") from None
    for name, sub in tree.items():
        known = _SCHEMA["Events"] | {"*"}
        inner = set(sub) - _SCHEMA["Event"] - {"*"} if name == "items" else set()
        if name not in known or inner:
            raise _api_error(400, "invalidParameter", f"Invalid field selection {sorted(inner) or name}")
    return spec, tree


def _event_types(query: dict[str, list[str]]) -> frozenset[str] | None:
    """The ``eventTypes`` of a listing (repeatable), None without any: every type."""
    values = query.get("eventTypes")
    if not values:
        return None
    for value in values:
        if value not in EVENT_TYPES:
            raise _api_error(400, "invalid", f"Invalid value for eventTypes: {value}")
    return frozenset(values)


def _types_text(types: frozenset[str] | None) -> str:
    return ", ".join(sorted(types)) if types is not None else "(all types: none given)"


def _check_event_type(resource: dict[str, Any], previous: _Stored | None, was: str | None = None) -> None:
    """What the API refuses of an event's type (400 ``invalid``): an unknown type, a type changed after
    the event was created, and an out-of-office event that is all-day, transparent or lacks its
    ``outOfOfficeProperties``. Tombstones are not checked."""
    if resource.get("status") == "cancelled":
        return
    event_type = str(resource.get("eventType") or "default")
    if event_type not in EVENT_TYPES:
        raise _api_error(400, "invalid", f"Invalid event type: {event_type}")
    if was is None and previous is not None and previous.resource.get("status") != "cancelled":
        was = previous.event_type
    if was is not None and was != event_type:
        raise _api_error(400, "invalid", "The event type cannot be changed after the event is created.")
    if event_type != "outOfOffice":
        return
    if not isinstance(resource.get("outOfOfficeProperties"), dict):
        raise _api_error(400, "invalid", "An out of office event requires outOfOfficeProperties.")
    if resource.get("transparency") == "transparent":
        raise _api_error(400, "invalid", "An out of office event must be opaque.")
    for key in ("start", "end"):
        value = resource.get(key)
        if not isinstance(value, dict) or "dateTime" not in value:
            raise _api_error(
                400,
                "invalid",
                "Out of office events cannot be all-day events: start and end need a dateTime.",
            )


def _message_of(error: _ApiError) -> str:
    return str(error.payload.get("error", {}).get("message", ""))


def _rfc3339(stamp: datetime) -> str:
    stamp = stamp.astimezone(UTC)
    if stamp.year < 1000:  # strftime does not pad the year, isoformat does
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    return stamp.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


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


@dataclass(frozen=True)
class _Series:
    """A master's recurrence, expanded in the wall clock of its ``start.timeZone`` (dateutil)."""

    rules: rruleset
    all_day: bool
    zone: ZoneInfo
    duration: timedelta  # wall-clock (timed) or whole days (all-day)
    start_zone: str
    end_zone: str


def _fix_until(rule: str, all_day: bool, zone: ZoneInfo) -> str:
    """dateutil wants UNTIL in UTC for a zoned DTSTART and floating for a floating one; Google takes both."""
    match = re.search(r"UNTIL=([0-9]{8})(T[0-9]{6})?(Z?)", rule, re.IGNORECASE)
    if match is None:
        return rule
    day, clock, utc = match.groups()
    if all_day:
        replacement = day
    elif utc:
        return rule
    else:
        local = datetime.strptime(day + (clock or "T235959"), "%Y%m%dT%H%M%S").replace(tzinfo=zone)
        replacement = local.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return rule[: match.start(1)] + replacement + rule[match.end() :]


def _ical_time(value: str, tzid: str | None, series_start: datetime, all_day: bool) -> datetime:
    """An EXDATE/RDATE value as the series' expansion sees it (zoned wall clock, or floating days)."""
    value = value.strip()
    if all_day:
        return datetime.strptime(value[:8], "%Y%m%d")
    zone = series_start.tzinfo
    assert isinstance(zone, ZoneInfo)
    if "T" not in value:
        day = datetime.strptime(value, "%Y%m%d")
        return datetime.combine(day.date(), series_start.time(), tzinfo=zone)
    if value.upper().endswith("Z"):
        return datetime.strptime(value[:-1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC).astimezone(zone)
    local = datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=_zone(tzid, zone.key))
    return local.astimezone(zone)


def _series(master: dict[str, Any], calendar_tz: str) -> _Series | None:
    """The recurrence of a master event, or None when it has none (or its start cannot be read)."""
    recurrence = master.get("recurrence")
    start, end = master.get("start") or {}, master.get("end") or {}
    if not isinstance(recurrence, list) or not recurrence or not isinstance(start, dict):
        return None
    all_day = "date" in start
    start_zone = str(start.get("timeZone") or calendar_tz)
    zone = _zone(start_zone, calendar_tz)
    if all_day:
        first = datetime.fromisoformat(str(start["date"]))
        last = datetime.fromisoformat(str(end["date"])) if "date" in end else first + timedelta(days=1)
        duration = last - first
    else:
        instant = _event_time(start, calendar_tz)
        if instant is None:
            return None
        first = instant.astimezone(zone)
        finish = (_event_time(end, calendar_tz) or instant).astimezone(zone)
        duration = finish.replace(tzinfo=None) - first.replace(tzinfo=None)
    rules = rruleset()
    has_rule = False
    for line in recurrence:
        if not isinstance(line, str) or ":" not in line:
            continue
        head, _, values = line.partition(":")
        name, *raw_params = head.split(";")
        params = dict(p.split("=", 1) for p in raw_params if "=" in p)
        name = name.strip().upper()
        if name in ("RRULE", "EXRULE"):
            parsed = rrulestr(_fix_until(values, all_day, zone), dtstart=first)
            assert isinstance(parsed, rrule)
            if name == "RRULE":
                rules.rrule(parsed)
                has_rule = True
            else:
                rules.exrule(parsed)
        elif name in ("RDATE", "EXDATE"):
            for value in values.split(","):
                when = _ical_time(value, params.get("TZID"), first, all_day)
                (rules.rdate if name == "RDATE" else rules.exdate)(when)
    if not has_rule:
        rules.rdate(first)  # a series of RDATEs: the start is its first instance
    end_zone = str(end.get("timeZone") or start_zone) if isinstance(end, dict) else start_zone
    return _Series(rules, all_day, zone, duration, start_zone, end_zone)


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
    """A stored event. ``resource`` is never changed once stored (nor anything in it): a change stores a
    new one. So it is shared, not copied, by whatever serves it, and encoded only once (:meth:`json`)."""

    resource: dict[str, Any]
    order: int
    seq: int
    updated: datetime
    created: str
    ical_uid: str
    encoded: JsonText | None = None
    #: the ``eventType`` of the event (a tombstone keeps the type of the event it replaces)
    event_type: str = "default"
    #: the resource as the last ``fields`` selection asked for it: (the selection, its JSON)
    selection: tuple[str, JsonText] | None = None

    def json(self) -> JsonText:
        """The resource as JSON (what a listing sends)."""
        if self.encoded is None:
            self.encoded = JsonText.of(self.resource)
        return self.encoded

    def selected(self, spec: str, tree: dict[str, Any]) -> JsonText:
        """The resource as JSON with only the fields of a ``fields`` selection (``spec``, parsed)."""
        if self.selection is None or self.selection[0] != spec:
            self.selection = (spec, JsonText.of(select_fields(self.resource, tree)))
        return self.selection[1]


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
    event_types: frozenset[str] | None = None  # the eventTypes of the listing that issued it (None: all)


@dataclass
class _Snapshot:
    items: list[Any]  # stored events, resources (never changed) or their JsonText
    calendar_id: str = ""
    seq: int = 0
    sync_token: str | None = None
    event_types: frozenset[str] | None = None


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

        # drive (tests/fakes/google_drive.py); page_size_cap applies to files.list too
        self._drive = FakeDrive(self._tick, self._display_name, self._lock)
        #: (file_id, email) of every Drive sharing notification (sendNotificationEmail not "false")
        self.notifications: list[tuple[str, str]] = self._drive.notifications

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
    def drive_endpoint(self) -> str:
        """``api_endpoint`` for ``build("drive", "v3")``: ``https://127.0.0.1:PORT/drive/v3/``. Uploads go to
        ``/upload/drive/v3/files`` on the same host (googleapiclient moves the media URL to this netloc)."""
        return f"{self.base_url}/drive/v3/"

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
            return copy_json(self._put(self._calendar(calendar_id), copy_json(event)).resource)

    def put_events(self, calendar_id: str, events: Iterable[dict[str, Any]]) -> None:
        """:meth:`put_event` for each event, in order, returning nothing, and keeping the events
        instead of copies (for loading many; the caller must not change them, nor anything in them,
        afterwards)."""
        with self._lock, no_cyclic_gc():
            calendar = self._calendar(calendar_id)
            for event in events:
                self._put(calendar, dict(event))

    def _put(self, calendar: _Calendar, resource: dict[str, Any]) -> _Stored:
        event_id = str(resource.get("id") or self._new_event_id())
        resource["id"] = event_id
        try:
            _check_event_type(resource, calendar.events.get(event_id))
        except _ApiError as error:
            raise ValueError(f"Google would refuse event {event_id}: {_message_of(error)}") from None
        return self._store(calendar, resource, created=resource.get("created"))

    def patch_event(self, calendar_id: str, event_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            calendar = self._calendar(calendar_id)
            stored = calendar.events[event_id]
            merged = _merge(self._full_resource(stored), copy_json(changes))
            merged["id"] = event_id
            try:
                _check_event_type(merged, stored)
            except _ApiError as error:
                refused = _message_of(error)
                raise ValueError(f"Google would refuse this patch of {event_id}: {refused}") from None
            return copy_json(self._store(calendar, merged).resource)

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
            return [copy_json(s.resource) for s in ordered]

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

    # ------------------------------------------------------------------ drive state

    def put_file(
        self,
        owner: str,
        name: str,
        html: str | None = None,
        *,
        mime_type: str = "application/vnd.google-apps.document",
        data: bytes = b"",
        app_properties: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        shared_with: dict[str, str] | None = None,
        by_app: bool = True,
    ) -> dict[str, Any]:
        """Put a file into ``owner``'s Drive (a Doc from ``html`` by default; other types keep ``data``).
        ``shared_with`` maps e-mail -> role; ``by_app=False`` makes it a file a person created, which a
        token with only the ``drive.file`` scope cannot see. Returns it like :meth:`drive_files`."""
        return self._drive.put_file(
            owner,
            name,
            html_content=html,
            mime_type=mime_type,
            data=data,
            app_properties=app_properties,
            properties=properties,
            shared_with=shared_with,
            by_app=by_app,
        )

    def drive_files(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Every Drive file (or ``owner``'s), oldest first: deep copies of the full resource as its owner sees
        it (``permissions`` included) plus ``content``, the kept HTML of a Doc (the text of other files)."""
        return self._drive.files(owner)

    def file_content(self, file_id: str) -> str:
        """The HTML a Doc keeps (the ``<body>`` content of what was uploaded or edited)."""
        return self._drive.content(file_id)

    def export_text(self, file_id: str) -> str:
        """The Doc's ``text/plain`` export exactly as ``files.export`` answers it (BOM, CRLF)."""
        return self._drive.export_text(file_id)

    def human_edit(self, file_id: str, html: str, editor: str) -> dict[str, Any]:
        """A person (owner or writer, else PermissionError) edits the Doc in the browser: new content
        (``<body>`` of ``html``), version bump, ``modifiedTime`` now, ``lastModifyingUser`` = ``editor``."""
        return self._drive.human_edit(file_id, html, editor)

    def permissions_of(self, file_id: str) -> list[dict[str, Any]]:
        """The file's permissions, owner first, full resources (``emailAddress``, ``role`` ...)."""
        return self._drive.permissions(file_id)

    def trash(self, file_id: str) -> None:
        """The owner moves the file to the trash (``trashed`` true, version bump)."""
        self._drive.trash(file_id)

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

    def _display_name(self, email: str) -> str | None:
        user = self._users.get(email)
        return user.name if user is not None else None

    def _calendar(self, calendar_id: str) -> _Calendar:
        try:
            return self._calendars[calendar_id]
        except KeyError:
            raise KeyError(f"no calendar {calendar_id!r}: call add_calendar first") from None

    def _new_event_id(self) -> str:
        alphabet = "0123456789abcdefghijklmnopqrstuv"
        return "".join(secrets.choice(alphabet) for _ in range(26))

    def _full_resource(self, stored: _Stored) -> dict[str, Any]:
        """A new dict of the stored resource's members (which are shared: change it by replacing them,
        as :func:`_merge` does)."""
        resource = dict(stored.resource)
        resource.setdefault("iCalUID", stored.ical_uid)
        return resource

    def _store(self, calendar: _Calendar, resource: dict[str, Any], created: Any = None) -> _Stored:
        event_id = str(resource["id"])
        previous = calendar.events.get(event_id)
        stamp = self._tick()
        self._seq += 1
        etag = f'"{int(stamp.timestamp() * 1000) * 1000}"'
        stamp_text = _rfc3339(stamp)
        created_text = str(created or (previous.created if previous else stamp_text))
        # an exception of a series shares the series' iCalUID
        master = calendar.events.get(str(resource.get("recurringEventId", "")))
        ical_uid = str(
            resource.get("iCalUID")
            or (previous.ical_uid if previous else None)
            or (master.ical_uid if master is not None else f"{event_id}@google.com")
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
                    out["originalStartTime"] = copy_json(resource["originalStartTime"])
        else:
            out = {"kind": "calendar#event", "etag": etag, "id": event_id, "status": "confirmed"}
            out.update(
                {k: v for k, v in resource.items() if k not in ("kind", "etag", "updated", "htmlLink")}
            )
            eid = base64.urlsafe_b64encode(f"{event_id} {calendar.calendar_id}".encode()).decode().rstrip("=")
            out["htmlLink"] = f"https://www.google.com/calendar/event?eid={eid}"
            out["created"] = created_text
            out["updated"] = stamp_text
            out["iCalUID"] = ical_uid
            out.setdefault("sequence", 0)
        if previous is None:
            self._order += 1
        # an exception is of its series' type; a tombstone of the type of what it replaces
        event_type = str(
            resource.get("eventType")
            or (previous.event_type if previous is not None else None)
            or (master.event_type if master is not None else "default")
        )
        if out.get("status") != "cancelled":
            out.setdefault("eventType", event_type)
        stored = _Stored(
            out,
            previous.order if previous else self._order,
            self._seq,
            stamp,
            created_text,
            ical_uid,
            event_type=event_type,
        )
        with contextlib.suppress(TypeError, ValueError):  # what JSON cannot carry fails when served
            stored.json()  # encoded now, while loading, not by the first listing
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
        payload: dict[str, Any] | RawBody
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
            except ErrorAnswer as error:
                status, payload, headers = error.status, error.payload, error.headers
            except Exception:
                self.internal_errors.append(traceback.format_exc())
                status, payload = 500, _envelope(500, "fakeInternalError", "Internal error in the fake")
        record.status = status
        if isinstance(payload, RawBody):
            data, content_type = payload.data, payload.content_type
        else:
            data, content_type = encode_json(payload), "application/json; charset=UTF-8"
        standard = [
            ("Content-Type", content_type),
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
    ) -> tuple[int, dict[str, Any] | RawBody]:
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
            instances = len(rest) == 5 and rest[0] == "calendars" and rest[2:5:2] == ["events", "instances"]
            if instances and method == "GET":
                return 200, self._list_instances(token, rest[1], rest[3], query)
            if len(rest) == 4 and rest[0] == "calendars" and rest[2] == "events":
                if method == "GET":
                    return 200, self._get_event(token, rest[1], rest[3])
                if method == "PATCH":
                    return 200, self._patch_event(token, rest[1], rest[3], query, handler, body, record)
        if segments[:2] == ["drive", "v3"] or segments[:3] == ["upload", "drive", "v3"]:
            token = self._require_token(handler)
            self._drive.page_size_cap = self.page_size_cap
            return self._drive.route(
                method, segments, query, handler.headers, body, token.subject, token.scopes, record
            )
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
        event_types = _event_types(query)

        page_token = q.get("pageToken")
        if page_token is not None:
            cursor = self._cursors.get(page_token)
            if cursor is None or cursor.snapshot.calendar_id != calendar.calendar_id:
                raise _api_error(400, "invalid", "Invalid page token value")
        else:
            if sync_token is not None:
                items = self._incremental_items(calendar, sync_token, event_types)
            else:
                items = self._full_items(calendar, query, event_types)
            snapshot = _Snapshot(items, calendar.calendar_id, self._seq, event_types=event_types)
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
        selection = _event_fields(q)
        if selection is None:
            answer["items"] = [i.json() if isinstance(i, _Stored) else i for i in items_page]
        else:
            spec, tree = selection
            within = tree.get("items", {})
            answer["items"] = [
                i.selected(spec, within) if isinstance(i, _Stored) else select_fields(i, within)
                for i in items_page
            ]
        if next_cursor is not None:
            answer["nextPageToken"] = self._cursor_token(next_cursor)
        else:
            snapshot = cursor.snapshot
            if snapshot.sync_token is None:
                snapshot.sync_token = "CP" + secrets.token_urlsafe(24)
                self._sync_tokens[snapshot.sync_token] = _SyncToken(
                    snapshot.calendar_id, snapshot.seq, event_types=snapshot.event_types
                )
            answer["nextSyncToken"] = snapshot.sync_token
        return answer if selection is None else select_fields(answer, selection[1])

    def _page(self, cursor: _Cursor, page_size: int) -> tuple[list[dict[str, Any]], _Cursor | None]:
        snapshot = cursor.snapshot
        if cursor.empty_left > 0:
            return [], _Cursor(snapshot, cursor.offset, cursor.empty_left - 1)
        end = cursor.offset + page_size
        items = snapshot.items[cursor.offset : end]  # never changed: served as they are
        return items, (_Cursor(snapshot, end, 0) if end < len(snapshot.items) else None)

    def _cursor_token(self, cursor: _Cursor) -> str:
        token = "EN" + secrets.token_urlsafe(24)
        self._cursors[token] = cursor
        return token

    def _incremental_items(
        self, calendar: _Calendar, sync_token: str, event_types: frozenset[str] | None
    ) -> list[_Stored]:
        issued = self._sync_tokens.get(sync_token)
        if issued is None or issued.expired or issued.calendar_id != calendar.calendar_id:
            raise _api_error(410, "fullSyncRequired")
        if event_types != issued.event_types:
            raise _api_error(
                400,
                "invalid",
                "Invalid value for eventTypes",
                fakeDetail=(
                    f"the sync token was issued for eventTypes {_types_text(issued.event_types)}, this "
                    f"request asks for {_types_text(event_types)}: Google leaves this undefined (all other "
                    "query parameters should be the same as for the initial synchronization)"
                ),
            )
        changed = [
            s
            for s in calendar.events.values()
            if s.seq > issued.seq and (event_types is None or s.event_type in event_types)
        ]
        return sorted(changed, key=lambda s: s.order)

    def _full_items(
        self, calendar: _Calendar, query: dict[str, list[str]], event_types: frozenset[str] | None = None
    ) -> list[_Stored]:
        q = {k: v[-1] for k, v in query.items()}
        show_deleted = q.get("showDeleted") == "true"
        time_min = _parse_timestamp(q["timeMin"], "timeMin") if "timeMin" in q else None
        time_max = _parse_timestamp(q["timeMax"], "timeMax") if "timeMax" in q else None
        updated_min = _parse_timestamp(q["updatedMin"], "updatedMin") if "updatedMin" in q else None
        if time_min and time_max and time_min >= time_max:
            raise _api_error(400, "timeRangeEmpty", "The specified time range is empty.")
        text = q.get("q")
        ical_uid = q.get("iCalUID")
        private = query.get("privateExtendedProperty", [])
        shared = query.get("sharedExtendedProperty", [])
        selected: list[_Stored] = []
        for stored in calendar.events.values():
            resource = stored.resource
            cancelled = resource.get("status") == "cancelled"
            if event_types is not None and stored.event_type not in event_types:
                continue
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
            if private and not _extended_matches(resource, "private", private):
                continue
            if shared and not _extended_matches(resource, "shared", shared):
                continue
            if (time_min or time_max) and not self._overlaps(calendar, stored, time_min, time_max):
                continue
            selected.append(stored)
        key = (lambda s: s.updated) if q.get("orderBy") == "updated" else (lambda s: s.order)
        return sorted(selected, key=key)

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
        if stored is not None:
            return stored.resource
        found = self._instance_by_id(calendar, event_id)
        if found is None:
            raise _api_error(404, "notFound", "Not Found")
        return found[0]

    # ------------------------------------------------------------------ recurring events: instances

    def _occurrences(self, calendar: _Calendar, series: _Series) -> Iterator[tuple[datetime, datetime]]:
        """(expansion value, instant) of each instance in order: the value is zoned wall clock for timed
        series and a floating midnight for all-day ones (whose instant is midnight in the calendar's zone)."""
        day_zone = _zone(None, calendar.time_zone)
        for count, value in enumerate(series.rules):
            if count >= 100_000:
                return
            if series.all_day:
                yield value, value.replace(tzinfo=day_zone)
            else:
                local = value.replace(tzinfo=series.zone)
                yield local, local

    def _instance_resource(
        self, calendar: _Calendar, master: _Stored, series: _Series, value: datetime
    ) -> dict[str, Any]:
        """The virtual instance of ``master`` starting (originally) at ``value``: a copy of the master
        without ``recurrence``, with its own id, start/end, ``originalStartTime`` and etag."""
        resource = self._full_resource(master)
        resource.pop("recurrence", None)
        master_id = str(master.resource["id"])
        if series.all_day:
            start: dict[str, Any] = {"date": value.date().isoformat()}
            end: dict[str, Any] = {"date": (value + series.duration).date().isoformat()}
            suffix = value.strftime("%Y%m%d")
        else:
            finish = (value.replace(tzinfo=None) + series.duration).replace(tzinfo=series.zone)
            end_zone = _zone(series.end_zone, calendar.time_zone)
            start = {"dateTime": value.isoformat(), "timeZone": series.start_zone}
            end = {"dateTime": finish.astimezone(end_zone).isoformat(), "timeZone": series.end_zone}
            suffix = value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        instance_id = f"{master_id}_{suffix}"
        digest = hashlib.sha256(f"{master.resource['etag']} {instance_id}".encode()).hexdigest()
        eid = base64.urlsafe_b64encode(f"{instance_id} {calendar.calendar_id}".encode()).decode().rstrip("=")
        resource.update(
            {
                "etag": f'"{int(digest, 16) % 10**16:016d}"',
                "id": instance_id,
                "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
                "recurringEventId": master_id,
                "originalStartTime": dict(start),
                "start": start,
                "end": end,
            }
        )
        return resource

    def _exceptions(self, calendar: _Calendar, master_id: str) -> dict[datetime, _Stored]:
        """The stored exceptions of a series by the instant they replace (their ``originalStartTime``)."""
        found: dict[datetime, _Stored] = {}
        for stored in calendar.events.values():
            if stored.resource.get("recurringEventId") == master_id:
                original = _event_time(stored.resource.get("originalStartTime"), calendar.time_zone)
                if original is not None:
                    found[original] = stored
        return found

    def _instance_by_id(
        self, calendar: _Calendar, event_id: str
    ) -> tuple[dict[str, Any], _Stored | None] | None:
        """The instance ``{masterId}_{YYYYMMDDTHHMMSSZ}`` / ``{masterId}_{YYYYMMDD}``: (resource, the
        stored exception or None for a virtual one), or None when the series has no such instance."""
        master_id, sep, suffix = event_id.rpartition("_")
        master = calendar.events.get(master_id)
        if not sep or master is None or master.resource.get("status") == "cancelled":
            return None
        series = _series(master.resource, calendar.time_zone)
        if series is None:
            return None
        try:
            if series.all_day:
                wanted = datetime.strptime(suffix, "%Y%m%d")
            else:
                wanted = datetime.strptime(suffix, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return None
        exceptions = self._exceptions(calendar, master_id)
        for value, instant in self._occurrences(calendar, series):
            if value > wanted:
                return None
            if value == wanted:
                stored = exceptions.get(instant)
                if stored is not None:
                    return stored.resource, stored
                return self._instance_resource(calendar, master, series, value), None
        return None

    def _list_instances(
        self, token: _TokenInfo, calendar_id: str, event_id: str, query: dict[str, list[str]]
    ) -> dict[str, Any]:
        self._require_scope(token, CALENDAR_READ_SCOPES)
        calendar = self._visible_calendar(token, calendar_id)
        q = {k: v[-1] for k, v in query.items()}
        master = calendar.events.get(event_id)
        if master is None:
            raise _api_error(404, "notFound", "Not Found")
        if master.resource.get("status") == "cancelled":
            raise _api_error(410, "deleted")
        try:
            max_results = int(q.get("maxResults", DEFAULT_EVENT_RESULTS))
        except ValueError:
            raise _api_error(400, "invalid", "Invalid value for maxResults") from None
        if max_results < 1:
            raise _api_error(400, "invalid", f"Invalid value for maxResults: {max_results}")
        page_size = min(max_results, MAX_EVENT_RESULTS)
        if self.page_size_cap is not None:
            page_size = min(page_size, max(self.page_size_cap, 1))
        page_token = q.get("pageToken")
        if page_token is not None:
            cursor = self._cursors.get(page_token)
            if cursor is None or cursor.snapshot.calendar_id != calendar.calendar_id:
                raise _api_error(400, "invalid", "Invalid page token value")
        else:
            items = self._instance_items(calendar, master, q)
            cursor = _Cursor(_Snapshot(items, calendar.calendar_id, self._seq), 0, 0)
        items_page, next_cursor = self._page(cursor, page_size)
        answer: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"p{self._seq:015d}"',
            "summary": calendar.calendar_id,
            "description": "",
            "updated": _rfc3339(calendar.updated),
            "timeZone": calendar.time_zone,
            "accessRole": "owner",
            "defaultReminders": [],
            "items": items_page,
        }
        if next_cursor is not None:
            answer["nextPageToken"] = self._cursor_token(next_cursor)
        return answer

    def _instance_items(
        self, calendar: _Calendar, master: _Stored, q: dict[str, str]
    ) -> list[dict[str, Any]]:
        show_deleted = q.get("showDeleted") == "true"
        time_min = _parse_timestamp(q["timeMin"], "timeMin") if "timeMin" in q else None
        time_max = _parse_timestamp(q["timeMax"], "timeMax") if "timeMax" in q else None
        original: datetime | None = None
        if "originalStart" in q:
            raw = q["originalStart"]
            if len(raw) == 10:  # an all-day instance may be named by its date
                try:
                    original = datetime.fromisoformat(raw).replace(tzinfo=_zone(None, calendar.time_zone))
                except ValueError:
                    raise _api_error(400, "invalid", f"Invalid value for originalStart: {raw}") from None
            else:
                original = _parse_timestamp(raw, "originalStart")
        tz = calendar.time_zone
        series = _series(master.resource, tz)
        if series is None:
            # not recurring: the event is its own (only) instance
            resource = master.resource
            start = _event_time(resource.get("start"), tz)
            if original is not None and start != original:
                return []
            return [resource]
        exceptions = self._exceptions(calendar, str(master.resource["id"]))
        # a moved exception may start inside the window although its original start is after it
        horizon = (
            None if time_max is None else time_max + (timedelta(days=366) if exceptions else timedelta(0))
        )
        items: list[dict[str, Any]] = []
        for value, instant in self._occurrences(calendar, series):
            if original is not None and instant > original:
                break
            if (horizon is not None and instant >= horizon) or len(items) >= MAX_UNBOUNDED_INSTANCES:
                break
            if original is not None and instant != original:
                continue
            stored = exceptions.get(instant)
            if stored is not None:
                resource = stored.resource
            else:
                resource = self._instance_resource(calendar, master, series, value)
            cancelled = resource.get("status") == "cancelled"
            if cancelled and not show_deleted:
                continue
            start = instant if cancelled else (_event_time(resource.get("start"), tz) or instant)
            end = (start + series.duration) if cancelled else (_event_time(resource.get("end"), tz) or start)
            if time_max is not None and start >= time_max:
                continue
            if time_min is not None and end <= time_min:
                continue
            items.append(resource)
        return items

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
        created: Any = None
        if stored is not None:
            current = self._full_resource(stored)
        else:
            found = self._instance_by_id(calendar, event_id)
            if found is None:
                raise _api_error(404, "notFound", "Not Found")
            current, stored = found
            if stored is not None:  # a stored exception (put under another id): patch that one
                event_id, current = str(stored.resource["id"]), self._full_resource(stored)
            else:
                master = calendar.events[event_id.rpartition("_")[0]]
                created = master.created  # a virtual instance becomes an exception of its series
        q = {k: v[-1] for k, v in query.items()}
        if q.get("sendUpdates", "none") not in ("all", "externalOnly", "none"):
            raise _api_error(400, "invalid", f"Invalid value for sendUpdates: {q['sendUpdates']}")
        if_match = handler.headers.get("If-Match")
        if if_match is not None and if_match.strip() not in ("*", current["etag"]):
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
            else:
                changes["attachments"] = self._attachments(token, changes["attachments"])
        if "sequence" in changes:
            sequence = int(current.get("sequence", 0))
            if not isinstance(changes["sequence"], int) or changes["sequence"] < sequence:
                raise _api_error(
                    400,
                    "invalid",
                    "Invalid sequence value. The specified sequence number is below the current sequence "
                    "number of the resource. Re-fetch the resource and use its sequence number on the "
                    "following update.",
                )
        was = str(current.get("eventType") or "default")
        merged = _merge(current, changes)  # (current itself is changed)
        merged["id"] = event_id
        _check_event_type(merged, calendar.events.get(event_id), was)
        return self._store(calendar, merged, created=created).resource

    def _attachments(self, token: _TokenInfo, attachments: Any) -> list[dict[str, Any]] | None:
        """Each attachment needs a ``fileUrl``; one naming a Drive file the user can see gets Google's
        ``fileId``, ``title`` (the file's name), ``mimeType`` and ``iconLink``."""
        if attachments is None:
            return None
        if not isinstance(attachments, list):
            raise _api_error(400, "invalid", "Invalid value for attachments")
        out: list[dict[str, Any]] = []
        for attachment in attachments:
            if not isinstance(attachment, dict) or not attachment.get("fileUrl"):
                raise _api_error(400, "required", "Missing attachment file URL.")
            attachment = copy.deepcopy(attachment)
            file = self._drive.file_by_url(str(attachment["fileUrl"]))
            if file is not None and self._drive.can_see(file["id"], token.subject):
                attachment.update(
                    {
                        "fileId": file["id"],
                        "title": file["name"],
                        "mimeType": file["mimeType"],
                        "iconLink": file["iconLink"],
                    }
                )
            out.append(attachment)
        return out

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
