"""A stateful fake of the Microsoft identity platform and Microsoft Graph v1.0 (calendars, users and
OneDrive files), served over https on 127.0.0.1 with a throwaway CA from ``trustme``.

It speaks the wire protocol the real client libraries (``msal`` 1.39 with a ``requests.Session`` as
``http_client``, and ``requests`` for Graph) expect. One server serves both hosts' paths:

* Identity (``authority_host``; the authority is ``f"{authority_host}/{tenant}"``):

  - ``GET /{tenant}/v2.0/.well-known/openid-configuration``: the OIDC discovery document msal reads
    when an application object is created (its only request then, given ``instance_discovery=False``).
  - ``POST /{tenant}/oauth2/v2.0/token``: ``client_credentials`` (a client secret in the body or in
    HTTP Basic, or a ``client_assertion`` JWT signed with a registered certificate), the device-code
    grant and ``refresh_token``. Errors in Entra ID's format (``error``, ``error_description`` starting
    with an ``AADSTS`` code, ``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``).
  - ``POST /{tenant}/oauth2/v2.0/devicecode`` and ``GET /{tenant}/discovery/v2.0/keys`` (the key the
    fake signs id_tokens with).

* Graph (``graph_endpoint`` = ``https://127.0.0.1:PORT/v1.0``): ``/users[/{id|upn}[/manager]]``,
  ``/users/{u}/calendarView/delta``, ``/users/{u}/calendarView``, ``/users/{u}/events`` (GET: list),
  ``/users/{u}/events/{id}`` (GET, PATCH, DELETE), ``/users/{u}/events/{id}/instances`` (GET),
  ``/users/{u}/mailboxSettings``, ``POST /users/{u}/calendar/getSchedule`` (see "Free/busy" below),
  OneDrive under ``/users/{u}/drive`` (see "OneDrive" below), the same under ``/me`` for delegated
  tokens, and ``POST /$batch`` (see "JSON batching" below). Errors in
  Graph's envelope ``{"error": {"code", "message", "innerError": {"date", "request-id",
  "client-request-id"}}}``.
* ``GET /_download/{key}``: the pre-authenticated download URLs of OneDrive files (no token needed).

What msal 1.39 does against a custom authority (read from its source, and what this fake relies on)
---------------------------------------------------------------------------------------------------
* ``instance_discovery=False`` is required: otherwise msal asks
  ``https://login.microsoftonline.com/common/discovery/instance`` about ``127.0.0.1`` (a real network
  request). With it, creating an application object GETs ``{authority}/v2.0/.well-known/openid-
  configuration`` and nothing else; msal reads ``authorization_endpoint`` and ``token_endpoint``
  (required), ``device_authorization_endpoint``, and takes the *tenant* (the cache's "realm") from the
  first path segment of ``token_endpoint``. The ``issuer`` is only validated with ``oidc_authority``.
  The token cache's "environment" is the authority's host name without the port (``127.0.0.1``).
* msal wraps the session in a throttling layer *per application object*: discovery answers are
  cached for 24 h, token-endpoint answers with 429/5xx (or any ``Retry-After``) for that long (5 s by
  default), and plain 400 answers (other than device-code polling) for 60 s for identical requests.
  Inject token-endpoint faults accordingly. A 5xx from the token endpoint is *raised* by msal as
  ``msal.exceptions.MsalServiceError`` (not a ``requests`` exception); a 4xx (429 included) comes back
  as an error dict.
* Client secret: sent in the form body (``client_secret``), not with HTTP Basic (both are accepted).
  Every request carries ``client_info=1``; the fake then answers ``client_info``
  (base64url ``{"uid": oid, "utid": tenant}``), without which msal creates no account.
* Certificates: with ``{"private_key", "thumbprint"}`` msal signs RS256 and sends ``x5t`` (the SHA-1
  thumbprint); with ``{"private_key", "public_certificate"}`` (and no thumbprint) it signs **PS256** and
  sends ``x5t#S256`` and ``x5c``. Claims: ``aud`` = the discovered token endpoint, ``iss`` = ``sub`` =
  client id, ``exp`` (10 minutes), ``iat``, ``jti``. msal reuses one assertion for up to 9 minutes, so
  the fake (like Entra ID) does not reject a replayed ``jti``.
* Device code: scopes are sent sorted with ``openid profile offline_access`` added; msal polls the
  token endpoint every ``interval`` seconds (it sleeps in 1 s steps, and warns when polled sooner). The
  fake answers ``interval`` = :attr:`FakeGraph.device_interval` (1 s): a flow approved in advance
  (``auto_approve``) completes on the first poll, one approved from another thread within a second.
  msal sends both ``device_code`` and ``code``.
* id_tokens are decoded but **not validated** by msal 1.39 (``iss``/``aud``/``exp`` unchecked); the
  fake still issues proper ones (RS256, published in the JWKS). The account's ``username`` is the
  ``preferred_username`` claim.
* Access tokens are kept in msal's cache and considered expired 5 minutes before ``expires_in``;
  ``acquire_token_silent`` then redeems the cached refresh token (first trying it as a "family" token,
  which needs no request because the fake never answers ``foci``).

Graph behaviour worth knowing when writing tests
------------------------------------------------
* Tokens are opaque random strings. Application tokens carry the app's consented roles *as they were
  when the token was issued* (like Entra ID): :meth:`FakeGraph.set_roles` affects the next token. The
  Exchange RBAC scope (:meth:`FakeGraph.restrict`) is checked on every request. An app token without a
  calendar role gets 403 ``ErrorAccessDenied``; outside its RBAC scope too.
* Order of checks on a mailbox request: 401 (token) -> 403 (no role/scope) -> 404 ``ErrorInvalidUser``
  (unknown user) -> 403 (delegated token for someone else's mailbox, or outside the RBAC scope) -> 404
  ``MailboxNotEnabledForRESTAPI`` (user without a mailbox).
* Times: ``start``/``end`` are answered in the zone of ``Prefer: outlook.timezone="Z"`` (IANA or Windows
  name; an unknown name is ignored) and in UTC without it, as ``"2026-11-10T08:00:00.0000000"``. All-day
  events (``isAllDay``) are answered with their stored midnight-to-midnight *dates*, never shifted into
  the preferred zone; their ``timeZone`` field still says Z. ``originalStartTimeZone`` stays what the
  event was created with: that is the zone a client must expand a series in.
* Series: the fake expands ``patternedRecurrence`` itself (with dateutil) in the wall-clock time of the
  series' zone (``range.recurrenceTimeZone``, else ``originalStartTimeZone``, else ``start.timeZone``;
  Windows names mapped with :data:`WINDOWS_ZONES`; an unknown zone counts as UTC). An
  ``absoluteMonthly``/``absoluteYearly`` ``dayOfMonth`` past the end of a month falls on its last day.
  ``endDate`` is inclusive (the whole day, in the series' zone).
* Instance ids are stable: an occurrence keeps its id when it becomes an exception. An occurrence's
  ``changeKey`` is derived from its master's, so any change to the master (an attendee added, an
  occurrence cancelled or turned into an exception) re-lists all its occurrences in the next delta
  round. Changing an occurrence (:meth:`FakeGraph.put_exception`, :meth:`FakeGraph.cancel_occurrence`,
  a PATCH of an occurrence or an exception) also changes the master: a new changeKey and a
  ``lastModifiedDateTime`` that never goes backwards.
* calendarView/delta: the whole round's items are computed at its first request and served in pages
  from that list (``@odata.nextLink`` with ``$skiptoken``; ``@odata.deltaLink`` with ``$deltatoken`` on
  the last page). A round's time zone is that of the request that started it (the initial request's
  ``Prefer``; for an incremental round the request's own ``Prefer`` if it names one, else the zone the
  delta token was issued with). The page size is the requesting page's ``odata.maxpagesize`` when it
  gives one, else the one remembered with the token (``page_size_default`` at first); at most 1000.
  ``Preference-Applied`` echoes what was applied of what was asked for. Items are ordered by start
  time, then id. Incremental rounds list instances (in the token's window) that are new or whose
  changeKey changed, and ``{"id", "@removed": {"reason": "deleted"}}`` for those gone. Delta tokens can
  be used more than once. A token this fake never issued (or issued for another mailbox) is a 400;
  after :meth:`FakeGraph.expire_delta_tokens` it is a 410 ``SyncStateNotFound``.
* ``showAs`` (free, tentative, busy, oof, workingElsewhere, unknown) is stored as given, ``busy`` when
  an event has none; an exception starts with its master's.
* Occurrences come as stubs (``id``, ``type``, ``seriesMasterId``, ``originalStart``, ``start``, ``end``,
  ``isCancelled``: no ``showAs``) unless :attr:`FakeGraph.full_occurrences` is set. A series master is
  never part of a calendarView; GET it by id. An exception carries every stored property plus
  ``originalStart``. A cancelled series (master ``isCancelled``) has all its instances ``isCancelled``.
* ``iCalUId``: exceptions and full occurrences carry the master's (real Graph gives each instance an
  iCalUId of its own; calsync does not rely on either).
* Concurrency: at most 4 requests in flight per mailbox on Exchange paths (calendarView, events,
  calendar, mailboxSettings); a 5th gets 429 ``ApplicationThrottled`` with ``Retry-After: 1`` at once
  (it takes no injected fault). :attr:`FakeGraph.max_in_flight` records the most seen per mailbox,
  the refused request included. A request in a JSON batch counts while it runs (see below).
* Faults (``fail_next``, ``slow_next``, ``drop_next``) with an empty ``path_contains`` apply to Graph
  requests only; a non-empty one is matched against any request target (raw or URL-decoded, with its
  query), identity included. ``requests`` does not retry a dropped connection: ``drop_next(1)`` surfaces
  as ``requests.ConnectionError``. For the requests in a JSON batch, see below.
* The fake's ``clock`` (default: the real time) stamps ``lastModifiedDateTime``/``createdDateTime`` and
  ``innerError.date``; token and device-code lifetimes use the real time (msal does).
* A bug inside the fake answers 500 (``FakeInternalError``) and appends the traceback to
  :attr:`FakeGraph.internal_errors`.

Event bodies, the events list, instances, and PATCH
---------------------------------------------------
* ``body`` is stored the way Exchange keeps it: HTML that is not a whole document (one that does not
  start with ``<html``, case-insensitive, after white space) is wrapped in :data:`HTML_BODY_WRAPPER`
  (``<html><head>\r\n<meta http-equiv=...>\r\n</head>\r\n<body>\r\n{content}\r\n</body>\r\n
  </html>\r\n``); a whole document, and a text body, are stored exactly as sent. GET answers exactly
  what is stored, so a client that PATCHes back the document it read (with its own insertion) finds it
  byte for byte. No body (``put_event`` or PATCH without one): an empty wrapped HTML document.
  ``contentType`` is case-insensitive (stored lower-case; missing: text). ``bodyPreview`` is derived
  (text conversion, white space collapsed, 255 characters).
* ``Prefer: outlook.body-content-type="text"`` answers a text conversion (:func:`html_to_text`: head
  and style dropped, a link as ``text<href>`` as Exchange writes it, tags stripped, entities decoded);
  ``"html"`` or none answers html (a stored text body converted: escaped lines in a ``<div>``, wrapped).
  ``Preference-Applied`` echoes it when asked for. Honoured by GET/PATCH of an event, the events list,
  instances, calendarView and its delta (whose stubs carry no body unless :attr:`full_occurrences`).
* Occurrences carry their master's (current) body; PATCHing an occurrence's body (or anything) turns it
  into an exception with its own copy; a later change to the master's body does not reach exceptions.
* Plain calendarView with ``$select`` answers full occurrences (as real Graph always does), so
  ``$select=body`` works there; without ``$select`` occurrences stay stubs unless ``full_occurrences``.
* ``GET /events``: single instances and series masters only (never occurrences or exceptions), ordered
  by start then id; ``$filter`` takes ``iCalUId eq '...'`` and ``type eq '...'`` clauses joined with
  ``and`` (``''`` escapes a quote); anything else is 400 ``ErrorInvalidUrlQueryFilter``. ``$select``,
  ``$top`` (default 10, at most 1000) and ``$skip``; ``@odata.nextLink`` carries ``$skip``.
  ``$orderby``/``$search``/``$expand``/``$count`` are 400 (not modelled).
* ``GET /events/{id}/instances?startDateTime=&endDateTime=`` (both required: 400
  ``ErrorInvalidParameter``): a master's occurrences and exceptions whose actual time overlaps the
  window, with calendarView's ids, full properties (``originalStart``, ``type``, ``seriesMasterId``,
  ``@odata.etag``, body ...), ``$select``, ``$top``/``$skip`` paging and ``Prefer: outlook.timezone``.
  Any other existing event has no instances (an empty list); an unknown id is 404.
* PATCH needs ``Calendars.ReadWrite`` (role or delegated scope; 403 ``ErrorAccessDenied`` otherwise).
  ``If-Match`` other than ``*`` or the current ``@odata.etag`` is 412 ``ErrorIrresolvableConflict``.
  Every successful PATCH over HTTP that sets one of :data:`MEETING_UPDATE_FIELDS` (body, subject,
  start, end, attendees, location(s), recurrence, isAllDay; whether or not the value changes) of an
  event that has attendees, in the organizer's mailbox (``isOrganizer``), appends ``(mailbox, event
  id)`` to :attr:`FakeGraph.meeting_updates` (Graph may mail the attendees an update). The Python
  helpers (``patch_event``, ``put_exception`` ...) never record one.

JSON batching
-------------
``POST /v1.0/$batch`` with ``{"requests": [{"id", "method", "url", "headers"?, "body"?}, ...]}``:

* The batch needs a valid token like any Graph request (else 401 for the whole batch, no request in it
  runs). Then each request is answered exactly as if it had been sent alone, one after the other in the
  order given, with the batch's ``Authorization`` (one in a request's own ``headers`` is ignored) and
  its own ``headers`` (``Prefer``, ``If-Match`` ...): the same routing and checks (401, 403, 404
  ``ErrorInvalidUser`` ...), the same per-mailbox concurrency accounting (a request is in flight for its
  mailbox while it runs; as they run one at a time a batch never crowds itself, whereas real Graph runs
  them in parallel and may answer 429 to some of more than 4 for one mailbox), the same faults and log.
  ``url`` is relative to ``/v1.0`` (``/users/...``; also without the leading ``/``); ``method`` one of
  GET, POST, PUT, PATCH, DELETE; ``body`` is JSON, or base64 for a non-JSON ``Content-Type`` (a body
  needs a ``Content-Type`` header).
* Answer: 200 ``{"responses": [{"id", "status", "headers", "body"}, ...]}``, one per request in the
  order of the requests. ``headers`` are those the request would get alone (``Content-Type``,
  ``Retry-After``, ``ETag``, ``Preference-Applied``, ``request-id`` ...; no ``Content-Length``); ``body``
  is its JSON (Graph's error envelope for an error; base64 for raw bytes; absent for no body, e.g. 204).
  Links in bodies (``@odata.nextLink``, ``@odata.deltaLink``) stay absolute, as Graph answers them: they
  can be followed alone, or in a batch once :attr:`FakeGraph.graph_endpoint` is cut off.
* 400 ``BadRequest`` for the whole batch (no request in it runs): a body that is not JSON, no or an
  empty ``requests``, more than 20 (:data:`MAX_BATCH`) requests, a request without a string ``id``, a
  valid ``method`` or a ``url``, an ``id`` used twice, an absolute ``url``, a ``body`` without
  ``Content-Type``, and ``dependsOn`` (not supported by the fake). A ``$batch`` inside a batch is that
  request's 400.
* Faults: the batch itself takes only a fault whose ``path_contains`` is found in ``/v1.0/$batch``
  (e.g. ``"$batch"``): ``fail`` answers the whole batch with that error (no request in it runs),
  ``slow`` delays it, ``drop`` closes its connection. A fault without a filter, or one whose filter is
  found in a request's target (``/v1.0`` + its ``url``), is taken by that request as if it were sent
  alone: ``fail`` becomes that request's ``status``, headers (``Retry-After``) and body, the others
  answered normally; ``slow`` delays it (and so the whole batch); ``drop`` closes the batch's connection
  unanswered (the requests before it have run and keep their effects and log records; the dropped one
  and the batch stay at status 0). The server's ``latency`` (a simulated round trip) is paid once per
  batch, not per request in it.
* Log: the batch is a :class:`RequestRecord` of its own (``POST``, path ``/v1.0/$batch``, status 200 or
  the whole batch's error), logged before its requests; each request in it is one more record (``path``
  with the ``/v1.0`` prefix as for a request sent alone, its ``query``, ``mailbox``, ``status`` and own
  ``headers``) with ``batch`` True. HTTP requests are the records with ``batch`` False; API calls every
  record but the ``$batch`` ones. :meth:`FakeGraph.count` counts both kinds unless told (``batch=``).

Free/busy
---------
``POST /users/{u}/calendar/getSchedule`` (and ``/me/...``; the path in any case), as documented for
calendar: getSchedule and the "Get free/busy schedule" concept page:

* Permission: ``Calendars.ReadBasic``, ``Calendars.Read`` or ``Calendars.ReadWrite`` (role or delegated
  scope), checked against ``{u}`` like any mailbox request (403, 404 ``ErrorInvalidUser``, a delegated
  token only for its own mailbox, the RBAC scope); the schedules asked about are not checked against
  the RBAC scope (the docs say nothing of it). ``{u}`` counts towards its mailbox's 4 requests in flight.
* Body: ``schedules`` (SMTP addresses), ``startTime`` and ``endTime`` (``dateTimeTimeZone``, wall clock
  in an IANA or Windows zone, or with an offset), ``availabilityViewInterval`` (minutes, 5-1440, default
  30; a number or a numeric string). Property names in any case (the concept page writes
  ``Schedules``). 400 for a body that is not a JSON object, no or an empty ``schedules``, a bad time,
  ``endTime`` not after ``startTime``, a bad interval (code ``ErrorInvalidParameter``: the docs name no
  code); more than :attr:`FakeGraph.schedule_limit` schedules (20, documented; Graph has been seen to take
  100) is a 400 ``ErrorMailboxDataArrayTooBig`` ("There are too many target users in the EmailAddress
  array. The allowed size = 20; the actual size = 21.", the message seen); a span of
  :attr:`FakeGraph.schedule_max_days` or more (documented: "less than 62 days") is a 400
  ``ErrorTimeIntervalTooBig`` (the availability service's code; set the attribute to 42 for its EWS
  default).
* Answer: 200 ``{"value": [scheduleInformation, ...]}``, one per schedule in the order asked, each with
  ``scheduleId`` as asked, ``availabilityView`` (one digit a slot: 0 free or working elsewhere, 1
  tentative, 2 busy, 3 out of office; the highest of the items overlapping the slot), ``scheduleItems``
  and ``workingHours`` (Monday to Friday 08:00-17:00 in the user's zone). Items: every instance of the
  schedule's calendar that overlaps the span, whole (not cut at its edges, as the availability service
  answers), but cancelled ones; ``status`` is the event's ``showAs`` (an occurrence's, its master's),
  ``start``/``end`` in the ``Prefer: outlook.timezone`` zone (UTC without it; all-day events as the
  instants of their midnights in their own zone). Another person's items carry only ``status``,
  ``start`` and ``end``; the caller's own also ``isPrivate``, and ``subject`` and ``location`` unless
  private. An address that is no user with a mailbox is ``{"scheduleId", "error": {"message": "Unable
  to resolve e-mail address ... to an Active Directory object.", "responseCode": "5009"}}`` (the answer
  seen; the concept page: "it returns a single schedule item and indicates the error").
* Faults, throttling (429 with ``Retry-After``), the log and JSON batching as for any Graph request; the
  request's JSON body is :attr:`RequestRecord.body`.

OneDrive
--------
Served by :class:`tests.fakes.graph_drive.DriveStore`, under ``/users/{u}/drive`` and ``/me/drive``:

* Access: app tokens need the role ``Files.ReadWrite.All`` or ``Sites.ReadWrite.All`` (reads also
  ``Files.Read.All``/``Sites.Read.All``); delegated tokens ``Files.ReadWrite``/``Files.ReadWrite.All``
  (reads also ``Files.Read``) and only for the signed-in user's own drive. Otherwise 403
  ``accessDenied``; unknown user 404 ``itemNotFound``; a user added with ``onedrive=False`` 404
  ``ResourceNotFound`` "User's mysite not found.". The Exchange RBAC scope (:meth:`FakeGraph.restrict`)
  does not apply (it is Exchange's); ``Sites.Selected`` is not modelled. A drive is created on first use.
* ``GET /drive``; ``GET|DELETE /drive/root``, ``/drive/root:/{path}`` (or ``...:``),
  ``/drive/items/{id}``; ``PUT /drive/root:/{path}:/content`` and ``PUT /drive/items/{id}/content``
  (the raw body is the file; folders on the path are created); ``GET .../content`` answers 302 with
  ``Location`` = the item's ``@microsoft.graph.downloadUrl`` (``{base_url}/_download/{key}``, no
  Authorization needed, always the current bytes, never expires); ``POST /drive/items/{id}/invite``;
  ``GET /drive/items/{id}/permissions``; ``DELETE /drive/items/{id}/permissions/{permId}``.
  Anything else under ``/drive`` is 400 (e.g. ``children``, upload sessions, ``createLink``).
* Paths: percent-encoded segments, names matched case-insensitively, ``"*:<>?/\\|`` or surrounding
  blanks in a name are 400 ``invalidRequest``.
* Upload: ``@microsoft.graph.conflictBehavior`` = ``replace`` (default) | ``fail`` (409
  ``nameAlreadyExists`` if the file exists) | ``rename`` (a new file ``name 1.ext``). ``If-Match`` (an
  eTag or a cTag, with or without quotes/``W/``; ``*`` matches any) that is not current is 412
  ``resourceModified``; so is an ``If-Match`` on a path with no file. 201 on create, 200 on replace,
  with the driveItem and an ``ETag`` header. ``file.mimeType`` comes from the extension (a small
  table: ``.md`` text/markdown, ``.docx``, ``.txt``, ``.html``, ...), else from ``Content-Type``.
* driveItem: ``id`` (``01`` + 32 base32 characters), ``name``, ``eTag`` ``"{GUID},N"`` and ``cTag``
  ``"c:{GUID},N"`` (both change with every content change; sharing changes neither), ``size``,
  ``webUrl`` (``https://{first label of the domain}-my.sharepoint.com/personal/{address with
  non-alphanumerics as _}/Documents/{path}``, never fetched), ``createdDateTime``,
  ``lastModifiedDateTime`` (the fake's clock), ``createdBy``/``lastModifiedBy`` (a delegated user or
  :meth:`FakeGraph.human_edit_item`: ``{"user": {"email", "id", "displayName"}}``; an app-only write:
  ``{"application": {"id": client id, "displayName": client id}, "user": {"displayName": "SharePoint
  App"}}`` as SharePoint shows it), ``file.mimeType`` or ``folder.childCount``, ``parentReference``
  (``driveType``, ``driveId``, ``id``, ``path`` ``"/drive/root:/Agendas"``), and
  ``@microsoft.graph.downloadUrl`` on files.
* ``/invite``: ``recipients`` by ``email`` only, ``roles`` exactly ``["read"]`` or ``["write"]``,
  ``message`` at most 2000 characters, ``requireSignIn``/``sendInvitation`` booleans (400
  ``invalidRequest`` otherwise). Answers 200 ``{"value": [permission]}``; a permission is ``{"id"
  (SharePoint's membership claim, base64), "roles", "grantedToV2": {"user": {"email", "displayName",
  "id"}}, "invitation": {"email", "signInRequired"}}``. One permission per recipient and item: inviting
  again answers the same one (``["write"]`` upgrades a read grant, ``["read"]`` never downgrades). An
  address that is not a user of the tenant (a new guest) is 403 ``accessDenied`` with an app-only
  token. ``(item id, email)`` is appended to :attr:`FakeGraph.sent_invitations` per recipient when
  ``sendInvitation`` is true; the docs name no default, so a missing one counts as
  :attr:`FakeGraph.send_invitation_default` (False; set True to check a client always says false).
* ``/permissions``: the owner's permission (``roles ["owner"]``) first, then the grants.
* Injected faults and the request log cover drive paths like any Graph path (``mailbox`` is the
  drive's owner); the default codes there are the driveItem API's (429 ``activityLimitReached``, 503
  ``serviceNotAvailable``, 500 ``generalException``). A download (``/_download/``) is not a Graph path:
  only a fault with a ``path_contains`` filter reaches it. Drive paths do not count towards the
  per-mailbox concurrency limit.
* Test helpers: :meth:`FakeGraph.drive_items`, :meth:`FakeGraph.item_content`,
  :meth:`FakeGraph.put_item`, :meth:`FakeGraph.human_edit_item`, :meth:`FakeGraph.item_permissions`.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import copy
import functools
import hashlib
import html
import http.client
import io
import json
import math
import operator
import re
import secrets
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from dateutil import rrule as du

from tests.fakes.graph_drive import DriveStore, RawBody
from tests.fakes.https import ErrorAnswer, HttpsFake, JsonText, RequestHandler, copy_json, encode_json

__all__ = [
    "HTML_BODY_WRAPPER",
    "MEETING_UPDATE_FIELDS",
    "WINDOWS_ZONES",
    "DeviceCode",
    "FakeGraph",
    "RequestRecord",
    "html_to_text",
    "make_certificate",
    "zone_info",
]

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TOKEN_LIFETIME = 3599
DEVICE_CODE_LIFETIME = 900
MAX_CONCURRENT = 4
MAX_BATCH = 20
#: getSchedule: schedules per request (documented: "up to 20"; Graph has been seen to allow 100), and
#: the span, which must be less than this many days (documented).
MAX_SCHEDULES = 20
SCHEDULE_MAX_DAYS = 62
_BATCH_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
MAX_PAGE_SIZE = 1000
DEFAULT_USERS_TOP = 100
MAX_USERS_TOP = 999
_CLOCK_SKEW = 300

CALENDAR_READ = frozenset({"Calendars.Read", "Calendars.ReadWrite"})
CALENDAR_WRITE = frozenset({"Calendars.ReadWrite"})
#: getSchedule's permissions (least privileged first, as documented).
SCHEDULE_READ = frozenset({"Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite"})
#: A getSchedule item's status, as a digit of ``availabilityView`` (working elsewhere is 0, documented).
_AVAILABILITY = {"free": 0, "workingElsewhere": 0, "tentative": 1, "busy": 2, "oof": 3, "unknown": 0}
_WORKING_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]
USERS_READ_ROLES = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
USERS_READ_SCOPES = USERS_READ_ROLES | {"User.ReadBasic.All"}
SETTINGS_READ = frozenset({"MailboxSettings.Read", "MailboxSettings.ReadWrite"})
#: Delegated scopes the device flow accepts (also with the ``https://graph.microsoft.com/`` prefix).
DEVICE_SCOPES = frozenset(
    {
        "Calendars.Read",
        "Calendars.ReadWrite",
        "User.Read",
        "User.Read.All",
        "MailboxSettings.Read",
        "Files.Read",
        "Files.ReadWrite",
        "Files.ReadWrite.All",
    }
)
#: PATCHed properties of an event with attendees (in the organizer's mailbox) that may mail an update.
MEETING_UPDATE_FIELDS = frozenset(
    {"body", "subject", "start", "end", "attendees", "location", "locations", "recurrence", "isAllDay"}
)
#: How Exchange wraps an HTML body that is not a whole document (``{}``: the content as sent).
HTML_BODY_WRAPPER = (
    '<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n</head>\r\n'
    "<body>\r\n{}\r\n</body>\r\n</html>\r\n"
)
OIDC_SCOPES = frozenset({"offline_access", "openid", "profile", "email"})

#: Windows time-zone names Exchange uses, as IANA zones (the fake's own small table).
WINDOWS_ZONES = {
    "UTC": "UTC",
    "tzone://Microsoft/Utc": "UTC",
    "Coordinated Universal Time": "UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver",
    "US Mountain Standard Time": "America/Phoenix",
    "Pacific Standard Time": "America/Los_Angeles",
    "India Standard Time": "Asia/Kolkata",
    "Tokyo Standard Time": "Asia/Tokyo",
    "China Standard Time": "Asia/Shanghai",
    "AUS Eastern Standard Time": "Australia/Sydney",
}

_WHOLE_DOCUMENT = re.compile(r"\s*<html", re.IGNORECASE)
_FILTER_CLAUSE = re.compile(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*(?:(and)\b|$)", re.IGNORECASE)
_FRACTION = re.compile(r"(\.\d{6})\d+")
#: A string as json.dumps writes it (ensure_ascii, the default).
_json_str = json.encoder.encode_basestring_ascii
_WHITESPACE = re.compile(r"\s+")
_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_DAYS = {
    "monday": du.MO,
    "tuesday": du.TU,
    "wednesday": du.WE,
    "thursday": du.TH,
    "friday": du.FR,
    "saturday": du.SA,
    "sunday": du.SU,
}
_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
_PATTERN_TYPES = ("daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly")

_EVENT_PROPERTIES = frozenset(
    {
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "transactionId",
        "originalStartTimeZone",
        "originalEndTimeZone",
        "iCalUId",
        "reminderMinutesBeforeStart",
        "isReminderOn",
        "hasAttachments",
        "subject",
        "bodyPreview",
        "importance",
        "sensitivity",
        "isAllDay",
        "isCancelled",
        "isOrganizer",
        "responseRequested",
        "seriesMasterId",
        "showAs",
        "type",
        "webLink",
        "onlineMeetingUrl",
        "isOnlineMeeting",
        "onlineMeetingProvider",
        "allowNewTimeProposals",
        "occurrenceId",
        "isDraft",
        "hideAttendees",
        "responseStatus",
        "body",
        "start",
        "end",
        "location",
        "locations",
        "recurrence",
        "attendees",
        "organizer",
        "onlineMeeting",
        "originalStart",
    }
)
#: Properties a PATCH may not set (ignored, as Graph ignores most read-only properties).
_READ_ONLY = frozenset(
    {"id", "@odata.etag", "@odata.type", "@odata.context", "changeKey", "type", "seriesMasterId",
     "originalStart", "createdDateTime"}
)  # fmt: skip
_USER_DEFAULT = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
_USER_PROPERTIES = frozenset({*_USER_DEFAULT, "accountEnabled", "department", "userType", "companyName"})
_DELTA_FORBIDDEN = ("$select", "$filter", "$orderby", "$search", "$expand")
_EXCHANGE_PATHS = frozenset({"calendarView", "events", "calendar", "calendars", "mailboxSettings"})

_GRAPH_CODES = {
    400: ("BadRequest", "Bad request."),
    401: ("InvalidAuthenticationToken", "Access token validation failure."),
    403: ("ErrorAccessDenied", "Access is denied. Check credentials and try again."),
    404: ("ErrorItemNotFound", "The specified object was not found in the store."),
    409: ("ErrorIrresolvableConflict", "The send or update operation could not be performed."),
    410: ("SyncStateNotFound", "The sync state could not be found."),
    412: ("ErrorIrresolvableConflict", "The change key passed in the request does not match the item."),
    429: ("TooManyRequests", "Too many requests. Please retry after some time."),
    500: ("InternalServerError", "An internal server error occurred."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
    504: ("GatewayTimeout", "Gateway timeout."),
}
#: Default codes of injected faults on OneDrive paths (the driveItem API's own error codes).
_DRIVE_CODES = {
    403: "accessDenied",
    404: "itemNotFound",
    409: "nameAlreadyExists",
    412: "resourceModified",
    429: "activityLimitReached",
    500: "generalException",
    503: "serviceNotAvailable",
}
_AAD_FAULTS = {
    400: ("invalid_request", 900144),
    401: ("invalid_client", 7000215),
    429: ("temporarily_unavailable", 50196),
    500: ("server_error", 90033),
    503: ("temporarily_unavailable", 90033),
}


# ---------------------------------------------------------------------------------------------- records


@dataclass
class RequestRecord:
    """One request the fake received. ``path`` is URL-decoded, without the query string; ``query`` maps
    each (decoded) parameter to its last value; ``mailbox`` is the lower-case address of the user a
    ``/users/{u}/...`` or ``/me/...`` request is about (the path segment itself when no such user
    exists), else None; ``status`` is 0 while the request is in flight and stays 0 for a dropped
    connection. ``body``: the JSON of an event PATCH, a getSchedule or a drive ``/invite``, or the
    non-secret fields of an identity form (an uploaded file's bytes are not kept here). ``batch``: one
    of the requests of a JSON batch (``POST /v1.0/$batch``, itself logged as a request of its own with
    ``batch`` False): so the HTTP requests are the records with ``batch`` False, the API calls every
    record but the ``$batch`` ones."""

    method: str
    path: str
    query: dict[str, str]
    mailbox: str | None
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    batch: bool = False


@dataclass
class DeviceCode:
    """One device-code sign-in, keyed by its ``user_code`` in :attr:`FakeGraph.device_codes`."""

    user_code: str
    device_code: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float
    state: Literal["pending", "approved", "denied", "redeemed"] = "pending"
    user_id: str | None = None


class _Error(ErrorAnswer):
    """An answer other than 2xx, already shaped (Graph's envelope or Entra ID's)."""


class _Dropped(Exception):
    """A request of a JSON batch took a ``drop`` fault: the batch's connection is closed unanswered."""


@dataclass
class _Answer:
    """What the fake answers one request, before it is written anywhere: ``status``, the ``payload``
    (JSON, raw bytes, or None for no body), the ``headers`` of its own; ``is_graph`` picks the standard
    headers (Graph's or the identity platform's)."""

    status: int
    payload: dict[str, Any] | RawBody | None
    headers: dict[str, str]
    is_graph: bool
    client_request_id: str

    def wire(self) -> tuple[bytes, list[tuple[str, str]]]:
        """The body's bytes and every header, in the order they are sent."""
        if isinstance(self.payload, RawBody):
            return self.payload.data, self._headers(len(self.payload.data))
        data = encode_json(self.payload) if self.payload is not None else b""
        return data, self._headers(len(data))

    def batch_headers(self) -> dict[str, str]:
        """The headers of the answer in a JSON batch: those it would be sent with but Content-Length
        (its body is not encoded for them)."""
        return {k: v for k, v in self._headers(0) if k.lower() != "content-length"}

    def _headers(self, length: int) -> list[tuple[str, str]]:
        """Every header of the answer, in the order they are sent, for a body of ``length`` bytes."""
        if isinstance(self.payload, RawBody):
            standard = [
                ("Content-Type", self.payload.content_type),
                ("Content-Length", str(length)),
                ("Cache-Control", "no-store, no-cache"),
            ]
            return [*standard, *self.headers.items()]
        headers = dict(self.headers)
        if self.is_graph:
            content_type = (
                "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
                "charset=utf-8"
            )
            headers.setdefault("request-id", str(uuid.uuid4()))
            headers.setdefault("client-request-id", self.client_request_id)
        else:
            content_type = "application/json; charset=utf-8"
        standard = [("Content-Type", content_type)] if self.payload is not None else []
        standard += [("Content-Length", str(length)), ("Cache-Control", "no-store, no-cache")]
        return [*standard, *headers.items()]


class _InnerRequest(RequestHandler):
    """One request of a JSON batch, dressed as the handler of a request of its own, so that it takes
    exactly the path a request sent alone takes (:meth:`FakeGraph._process`). It has no connection (the
    batch answers for it): it is never ``respond``-ed to or dropped."""

    def __init__(self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        # no super().__init__(): that would serve a connection
        self.command = method
        self.path = target
        self.request_version = "HTTP/1.1"
        self.headers = http.client.HTTPMessage()
        for name, value in headers:
            self.headers[name] = value
        if body:
            self.headers["Content-Length"] = str(len(body))
        self.rfile = io.BytesIO(body)

    def drop_connection(self) -> None:
        raise AssertionError("a request of a batch has no connection of its own")

    def respond(self, status: int, data: bytes, headers: Iterable[tuple[str, str]]) -> None:
        raise AssertionError("a request of a batch has no connection of its own")


# ---------------------------------------------------------------------------------------------- helpers


def zone_info(name: str | None) -> ZoneInfo:
    """The zone a Graph time-zone name stands for (IANA or Windows name); UTC when unknown or empty."""
    return _known_zone(name) or ZoneInfo("UTC")


@functools.lru_cache(maxsize=1024)
def _known_zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    for candidate in (WINDOWS_ZONES.get(name), name):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=1 << 16)
def _parse_iso(text: str) -> datetime:
    """An ISO 8601 date-time with up to 7 fractional digits and an optional offset or Z (naive if none).
    Remembered: a delta round reads the same stored times again and again."""
    return datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()))


def _parse_instant(text: str) -> datetime:
    """A query parameter's date-time: without an offset it is UTC."""
    moment = _parse_iso(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _local(value: Any) -> datetime:
    """The instant of a Graph ``dateTimeTimeZone`` (an offset in ``dateTime`` wins over ``timeZone``)."""
    if (type(value) is not dict and not isinstance(value, Mapping)) or "dateTime" not in value:
        raise ValueError(f"not a dateTimeTimeZone: {value!r}")
    zone = value.get("timeZone")
    if zone is None or type(zone) is str:
        return _local_text(str(value["dateTime"]), zone)
    moment = _parse_iso(str(value["dateTime"]))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone_info(zone))
    return moment


@functools.lru_cache(maxsize=1 << 16)
def _graph_wall(text: str, zone_name: str) -> str:
    """A ``dateTime`` as Graph stores it: wall-clock time in ``zone_name`` (one with an offset is moved
    into that zone), seven fractional digits. Remembered, as :func:`_parse_iso`."""
    moment = _parse_iso(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(zone_info(zone_name)).replace(tzinfo=None)
    return _wall(moment)


@functools.lru_cache(maxsize=1 << 16)
def _local_text(text: str, zone: str | None) -> datetime:
    """:func:`_local` of ``{"dateTime": text, "timeZone": zone}``, remembered (as :func:`_parse_iso`)."""
    moment = _parse_iso(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone_info(zone))
    return moment


def _wall(moment: datetime) -> str:
    """Graph's local date-time text: seven fractional digits, no offset."""
    if moment.year >= 1000:  # isoformat's text, which is quicker to make (strftime does not pad years)
        return moment.isoformat(timespec="microseconds")[:26] + "0"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0"


@functools.lru_cache(maxsize=1 << 14)
def _utc_z(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    if moment.year >= 1000:
        return moment.isoformat(timespec="seconds")[:19] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(moment: datetime) -> str:
    """A ``DateTimeOffset`` as Graph writes ``lastModifiedDateTime``: UTC, seven fractional digits, Z."""
    return _wall(moment.astimezone(UTC)) + "Z"


def _dtz(moment: datetime, zone_name: str) -> dict[str, str]:
    return {
        "dateTime": _wall(moment.astimezone(zone_info(zone_name)).replace(tzinfo=None)),
        "timeZone": zone_name,
    }


_URLSAFE_BYTES = bytes.maketrans(b"+/", b"-_")  # base64.urlsafe_b64encode's alphabet from b64encode's


def _new_id(raw: bytes | None = None) -> str:
    """An opaque Exchange-looking id: base64 (URL-safe alphabet) of 32 bytes, so it ends in ``=``."""
    return "AAMkAD" + base64.urlsafe_b64encode(raw if raw is not None else secrets.token_bytes(32)).decode()


def _change_key() -> str:
    return "DwAAABYAAA" + base64.b64encode(secrets.token_bytes(15)).decode()


def _stored_body(value: Any) -> dict[str, str]:
    """An ``itemBody`` as Exchange keeps it: HTML that is not a whole document wrapped in one (see
    :data:`HTML_BODY_WRAPPER`), text as sent; none at all is an empty HTML document. ValueError if invalid."""
    if value is None:
        return {"contentType": "html", "content": HTML_BODY_WRAPPER.format("")}
    if not isinstance(value, Mapping):
        raise ValueError("body must be an itemBody object {contentType, content}")
    kind = str(value.get("contentType") or "text").lower()
    content = value.get("content")
    content = "" if content is None else content
    if kind not in ("html", "text") or not isinstance(content, str):
        raise ValueError(f"invalid itemBody: contentType {value.get('contentType')!r}, content {content!r}")
    if kind == "html" and not _WHOLE_DOCUMENT.match(content):
        content = HTML_BODY_WRAPPER.format(content)
    return {"contentType": kind, "content": content}


@functools.lru_cache(maxsize=1024)
def html_to_text(content: str) -> str:
    """The fake's text conversion of an HTML body (what ``Prefer: outlook.body-content-type="text"``
    answers): head, style and script dropped, a link as ``text<href>``, line breaks for ``<br>`` and the
    end of block elements, other tags stripped, entities decoded, surrounding white space trimmed."""
    text = re.sub(r"(?is)<(head|style|script)\b.*?</\1\s*>", "", content)
    text = re.sub(
        r"(?is)<a\b[^>]*?\bhref\s*=\s*([\"'])(.*?)\1[^>]*>(.*?)</a\s*>",
        lambda m: f"{m.group(3)}<{m.group(2)}>" if m.group(3).strip() else f"<{m.group(2)}>",
        text,
    )
    text = re.sub(r"(?i)<br\s*/?>", "\r\n", text)
    text = re.sub(r"(?i)</(p|div|li|tr|h[1-6]|table)\s*>", "\r\n", text)
    text = re.sub(r"(?s)<(?!(?:https?|mailto):)[^<>]*>", "", text)
    text = html.unescape(text).replace("\xa0", " ")
    lines = [line.rstrip() for line in re.split(r"\r?\n", text)]
    text = "\r\n".join(lines).strip()
    return re.sub(r"(\r\n){3,}", "\r\n\r\n", text)


@functools.lru_cache(maxsize=1024)
def _preview(kind: str, content: str) -> str:
    """``bodyPreview`` of a stored body: its text, white space collapsed, 255 characters."""
    preview = html_to_text(content) if kind == "html" else content.strip()
    return _WHITESPACE.sub(" ", preview)[:255]


def _text_to_html(content: str) -> str:
    lines = [html.escape(line, quote=False) for line in re.split(r"\r?\n", content)]
    return HTML_BODY_WRAPPER.format("<div>" + "<br>\r\n".join(lines) + "</div>")


def _encoded_items(items: list[dict[str, Any] | bytes]) -> tuple[list[bytes], list[Any]]:
    """A delta round's items (views, or stubs already encoded) as JSON, and the contentType of each
    one's body (False: none), for :func:`_converted`."""
    texts: list[bytes] = []
    bodies: list[Any] = []
    for item in items:
        if isinstance(item, bytes):
            texts.append(item)
            bodies.append(False)
        else:
            texts.append(json.dumps(item).encode())
            body = item.get("body")
            bodies.append(body.get("contentType") if isinstance(body, dict) else False)
    return texts, bodies


def _converted(text: bytes, kind: str | None) -> bytes:
    """An encoded item of a delta round with its body converted (:func:`_render_body`)."""
    return json.dumps(_render_body(json.loads(text), kind)).encode()


def _render_body(view: dict[str, Any], kind: str | None) -> dict[str, Any]:
    """``view`` with its ``body`` (if any) converted to what was asked for (``None``: html, Graph's
    default): ``view`` itself when there is nothing to convert, else a new dict (a view may share its
    members with a stored resource or a delta round, which must not change)."""
    body = view.get("body")
    if not isinstance(body, dict):
        return view
    wanted = kind or "html"
    if body.get("contentType") == wanted:
        return view
    content = str(body.get("content") or "")
    converted = html_to_text(content) if wanted == "text" else _text_to_html(content)
    return {**view, "body": {"contentType": wanted, "content": converted}}


def make_certificate(common_name: str = "calsync") -> tuple[bytes, bytes, str]:
    """A fresh RSA key and a self-signed certificate for an app registration: (private key PEM,
    certificate PEM, SHA-1 thumbprint as upper-case hex, as the Entra portal shows it)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    return key_pem, cert_pem, certificate.fingerprint(hashes.SHA1()).hex().upper()


# ---------------------------------------------------------------------------------------------- recurrence


def _recurrence_zone(master: Mapping[str, Any]) -> str:
    rng = (master.get("recurrence") or {}).get("range") or {}
    return str(
        rng.get("recurrenceTimeZone")
        or master.get("originalStartTimeZone")
        or (master.get("start") or {}).get("timeZone")
        or "UTC"
    )


class _Starts:
    """The starts of a rule found so far, in order, as wall-clock times and as UTC instants: a pattern
    kept for a series answers which of its starts fall in a span without running the rule from its
    start again (at most :attr:`LIMIT` of them are kept; beyond them the rule is run)."""

    LIMIT = 20_000

    def __init__(self, rule: du.rrule, zone: ZoneInfo, step: timedelta | None = None) -> None:
        self.rule = rule
        self.zone = zone
        #: For a rule that only repeats its first start (see _step): the time between two starts.
        self.step = step
        self.walls: list[datetime] = []
        self.instants: list[datetime] = []
        self._more: Iterator[datetime] | None = None
        self._done = False

    def _stepped(self, step: timedelta) -> Iterator[datetime]:
        """What iterating the rule gives, for one that repeats its first start every ``step``: its
        dtstart (without microseconds, as dateutil keeps it) plus multiples of the step, up to UNTIL
        (inclusive) or COUNT starts (dateutil's rule iteration, in a fraction of the time)."""
        rule: Any = self.rule
        wall, until, count = rule._dtstart, rule._until, rule._count
        found = 0
        while (until is None or wall <= until) and (count is None or found < count):
            yield wall
            found += 1
            wall += step

    def through(self, wall: datetime) -> bool:
        """Find every start up to ``wall``; False when that would keep too many."""
        if self._more is None:
            self._more = iter(self.rule) if self.step is None else self._stepped(self.step)
        walls = self.walls
        while not self._done and (not walls or walls[-1] <= wall):
            if len(walls) >= self.LIMIT:
                return False
            found = next(self._more, None)
            if found is None:
                self._done = True
                break
            walls.append(found)
            self.instants.append(found.replace(tzinfo=self.zone).astimezone(UTC))
        return True


@dataclass(frozen=True)
class _Pattern:
    rule: du.rrule
    zone: ZoneInfo
    duration: timedelta
    all_day: bool
    starts: _Starts = field(compare=False, repr=False)


def _pattern(master: Mapping[str, Any]) -> _Pattern:
    """The dateutil rule of a series master, in its zone's wall-clock time. ValueError if invalid."""
    recurrence = master.get("recurrence")
    if not isinstance(recurrence, Mapping):
        raise ValueError("a series master needs a 'recurrence'")
    pattern = recurrence.get("pattern") or {}
    rng = recurrence.get("range") or {}
    kind = pattern.get("type")
    if kind not in _PATTERN_TYPES:
        raise ValueError(f"unknown recurrence pattern type {kind!r}")
    zone = zone_info(_recurrence_zone(master))
    all_day = bool(master.get("isAllDay"))
    start = _local(master.get("start"))
    end = _local(master.get("end"))
    if all_day:
        first_wall = datetime.combine(
            _parse_iso(str(master["start"]["dateTime"])).date(), datetime.min.time()
        )
        duration = timedelta(
            days=max(1, (_parse_iso(str(master["end"]["dateTime"])).date() - first_wall.date()).days)
        )
    else:
        first_wall = start.astimezone(zone).replace(tzinfo=None)
        duration = end - start
    if duration < timedelta(0):
        raise ValueError("an event cannot end before it starts")
    if rng.get("startDate"):
        first_wall = datetime.combine(date.fromisoformat(str(rng["startDate"])), first_wall.time())
    interval = int(pattern.get("interval") or 1)
    if interval < 1:
        raise ValueError(f"recurrence interval must be at least 1, got {interval}")
    days = []
    for name in pattern.get("daysOfWeek") or ():
        try:
            days.append(_DAYS[str(name).lower()])
        except KeyError:
            raise ValueError(f"unknown day of the week {name!r}") from None
    wkst = _DAYS.get(str(pattern.get("firstDayOfWeek") or "sunday").lower(), du.SU)
    index = _INDEX.get(str(pattern.get("index") or "first").lower())
    if index is None:
        raise ValueError(f"unknown week index {pattern.get('index')!r}")
    day_of_month = int(pattern.get("dayOfMonth") or 0)
    month = int(pattern.get("month") or 0)
    freq: Any
    options: dict[str, Any] = {"dtstart": first_wall, "interval": interval, "wkst": wkst}
    if kind == "daily":
        freq = du.DAILY
    elif kind == "weekly":
        freq = du.WEEKLY
        options["byweekday"] = days or [_DAYS[_WEEKDAY_NAMES[first_wall.weekday()]]]
    elif kind in ("absoluteMonthly", "absoluteYearly"):
        freq = du.MONTHLY if kind == "absoluteMonthly" else du.YEARLY
        if not 1 <= day_of_month <= 31:
            raise ValueError(f"{kind} needs a dayOfMonth from 1 to 31, got {day_of_month}")
        if day_of_month > 28:  # the last day of a shorter month, as Exchange does
            options["bymonthday"] = list(range(28, day_of_month + 1))
            options["bysetpos"] = -1
        else:
            options["bymonthday"] = day_of_month
        if kind == "absoluteYearly":
            if not 1 <= month <= 12:
                raise ValueError(f"absoluteYearly needs a month from 1 to 12, got {month}")
            options["bymonth"] = month
    else:
        freq = du.MONTHLY if kind == "relativeMonthly" else du.YEARLY
        if not days:
            raise ValueError(f"{kind} needs daysOfWeek")
        options["byweekday"] = days
        options["bysetpos"] = index
        if kind == "relativeYearly":
            if not 1 <= month <= 12:
                raise ValueError(f"relativeYearly needs a month from 1 to 12, got {month}")
            options["bymonth"] = month
    range_type = rng.get("type") or "noEnd"
    if range_type == "endDate":
        if not rng.get("endDate"):
            raise ValueError("an endDate range needs an endDate")
        options["until"] = datetime.combine(date.fromisoformat(str(rng["endDate"])), datetime.max.time())
    elif range_type == "numbered":
        count = int(rng.get("numberOfOccurrences") or 0)
        if count < 1:
            raise ValueError("a numbered range needs numberOfOccurrences of at least 1")
        options["count"] = count
    elif range_type != "noEnd":
        raise ValueError(f"unknown recurrence range type {range_type!r}")
    rule = du.rrule(freq, **options)
    return _Pattern(rule, zone, duration, all_day, _Starts(rule, zone, _step(freq, options, first_wall)))


def _step(freq: Any, options: dict[str, Any], first: datetime) -> timedelta | None:
    """The time between two starts of a daily rule, or of a weekly one on the weekday of its first start
    only: each start is the one before plus that (whole days of wall-clock time); None for any other."""
    if set(options) - {"dtstart", "interval", "wkst", "until", "count", "byweekday"}:
        return None
    if freq == du.DAILY and "byweekday" not in options:
        return timedelta(days=options["interval"])
    days: Any = options.get("byweekday") or []
    if freq == du.WEEKLY and len(days) == 1 and days[0] == _DAYS[_WEEKDAY_NAMES[first.weekday()]]:
        return timedelta(weeks=options["interval"])
    return None


def _pattern_starts(pattern: _Pattern, lo: datetime, hi: datetime) -> list[datetime]:
    """The original starts (UTC) the pattern produces in [lo, hi]."""
    zone = pattern.zone
    lo_wall = lo.astimezone(zone).replace(tzinfo=None) - timedelta(days=1)
    hi_wall = hi.astimezone(zone).replace(tzinfo=None) + timedelta(days=1)
    starts = pattern.starts
    if starts.through(hi_wall):  # the starts between the walls, as rule.between(inc=True) finds them
        first = bisect.bisect_left(starts.walls, lo_wall)
        last = bisect.bisect_right(starts.walls, hi_wall)
        return [moment for moment in starts.instants[first:last] if lo <= moment <= hi]
    out = []
    for wall in pattern.rule.between(lo_wall, hi_wall, inc=True):
        moment = wall.replace(tzinfo=zone).astimezone(UTC)
        if lo <= moment <= hi:
            out.append(moment)
    return out


def _overlaps(start: datetime, end: datetime, lo: datetime, hi: datetime) -> bool:
    if start == end:
        return lo <= start < hi
    return start < hi and end > lo


# ---------------------------------------------------------------------------------------------- state


@dataclass
class _App:
    client_id: str
    secret: str | None
    certificate: x509.Certificate | None
    roles: frozenset[str]
    mailboxes: frozenset[str] | None


@dataclass
class _AccessToken:
    client_id: str
    user_id: str | None  # None: an application token
    permissions: frozenset[str]  # roles (app) or scopes (delegated), short names
    expires_at: float
    expired: bool = False


@dataclass
class _RefreshToken:
    client_id: str
    user_id: str
    scopes: tuple[str, ...]
    revoked: bool = False


@dataclass
class _User:
    user_id: str
    email: str
    display_name: str
    manager: str | None
    enabled: bool
    mailbox: bool
    time_zone: str
    onedrive: bool = True


_NO_STARTS: Any = frozenset()  # the deleted and kept starts of an event that is no series master


@dataclass
class _Event:
    resource: dict[str, Any]
    # a master's bookkeeping: original starts (UTC) turned into exceptions, deleted, cancelled-but-kept
    # (other events share one empty frozenset for the last two: a mailbox has thousands of them)
    exceptions: dict[datetime, str] = field(default_factory=dict)
    deleted: set[datetime] = field(default_factory=lambda: _NO_STARTS)
    kept: set[datetime] = field(default_factory=lambda: _NO_STARTS)
    original: datetime | None = None  # an exception's original start (UTC)
    # a master's pattern, and the resource it was made from (what the pattern is made of is changed by
    # storing a new resource, never in place: see _pattern_of)
    pattern: _Pattern | None = None
    pattern_of: dict[str, Any] | None = None
    # the stored start and end, and the resource they were read from (replaced, never changed in place)
    start_end: tuple[datetime, datetime] | None = None
    start_end_of: dict[str, Any] | None = None

    def times(self) -> tuple[datetime, datetime]:
        """:func:`_stored_times` of the resource."""
        if self.start_end is None or self.start_end_of is not self.resource:
            self.start_end, self.start_end_of = _stored_times(self.resource), self.resource
        return self.start_end

    @property
    def kind(self) -> str:
        return str(self.resource["type"])

    @property
    def ident(self) -> str:
        return str(self.resource["id"])


@dataclass
class _Mailbox:
    user_id: str
    events: dict[str, _Event] = field(default_factory=dict)
    occurrences: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # id -> (master, original)


class _Instance(NamedTuple):  # a tuple: a round of a big mailbox makes thousands (quicker than a dataclass)
    ident: str
    change_key: str
    start: datetime
    kind: str  # occurrence, exception, singleInstance
    event: _Event  # the occurrence's master, else the event itself
    original: datetime | None
    end: datetime | None = None  # an occurrence's end, when known


@dataclass
class _Round:
    """One delta round (or users listing): its items computed at its first request, served in pages."""

    user_id: str | None
    items: list[Any]  # a delta round's: each item's JSON (see bodies); a users listing's: the views
    prefix: str
    page_size: int
    tz_name: str | None = None
    window: tuple[datetime, datetime] | None = None
    snapshot: dict[str, str] = field(default_factory=dict)
    expired: bool = False
    delta_token: str | None = None
    #: A delta round's: the contentType of each item's body (False: it has none), to convert it to what a
    #: page asks for (Prefer: outlook.body-content-type). Kept as JSON, a round of a big mailbox is a few
    #: objects (bytes) rather than thousands of dicts the cyclic garbage collector scans again and again.
    bodies: list[Any] | None = None


@dataclass
class _DeltaToken:
    user_id: str
    window: tuple[datetime, datetime]
    snapshot: dict[str, str]
    tz_name: str | None
    page_size: int
    prefix: str
    expired: bool = False


@dataclass
class _Fault:
    kind: Literal["fail", "slow", "drop"]
    remaining: int
    path_contains: str
    status: int = 0
    code: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0


_START_THEN_ID = operator.attrgetter("start", "ident")  # how instances are ordered


def _utc_start_then_id(instance: _Instance) -> tuple[datetime, str]:
    """:data:`_START_THEN_ID` with the start in UTC: the same order (aware datetimes compare as instants),
    quicker to sort (datetimes of one zone compare without asking it for offsets)."""
    return instance.start.astimezone(UTC), instance.ident


# ---------------------------------------------------------------------------------------------- the fake


class FakeGraph(HttpsFake):
    """In-memory Microsoft identity platform and Graph v1.0 calendars and users (see the module doc)."""

    make_certificate = staticmethod(make_certificate)

    def __init__(self, *, page_size_default: int = 10, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__("graph")  # ca_path, start/stop, base_url (tests/fakes/https.py)
        self._lock = threading.RLock()
        self.page_size_default = page_size_default
        self._clock = clock
        #: The directory (tenant) id; the authority is ``f"{authority_host}/{tenant}"``.
        self.tenant = str(uuid.uuid4())
        #: Other names the tenant answers to in the authority (e.g. a verified domain).
        self.tenant_aliases: set[str] = set()

        # identity
        self._apps: dict[str, _App] = {}
        self._public_clients: set[str] = set()
        self._tokens: dict[str, _AccessToken] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._signing_kid = _b64url(secrets.token_bytes(20))
        #: Device-code sign-ins by user code.
        self.device_codes: dict[str, DeviceCode] = {}
        #: When set (a user's address), each device code is approved for that user as it is issued
        #: (an unknown user is a bug in the test: the device-code request gets 500, see internal_errors).
        self.auto_approve: str | None = None
        #: The polling interval (seconds) the device-code answer tells the client to use.
        self.device_interval = 1

        # directory and mailboxes
        self._users: dict[str, _User] = {}
        # lower-case address and id -> the id of the first user (in order of addition) with either
        self._user_keys: dict[str, str] = {}
        self._mailboxes: dict[str, _Mailbox] = {}
        self._rounds: dict[str, tuple[_Round, int]] = {}
        self._delta_tokens: dict[str, _DeltaToken] = {}
        #: When true, occurrences in calendarView carry all their master's properties, not stubs.
        self.full_occurrences = False
        #: getSchedule's limits (see the module doc): schedules per request, and the span's days.
        self.schedule_limit = MAX_SCHEDULES
        self.schedule_max_days = SCHEDULE_MAX_DAYS
        #: ``(mailbox, event id)`` of every PATCH over HTTP that may have mailed the attendees an update:
        #: it set one of :data:`MEETING_UPDATE_FIELDS` of an event with attendees, in the organizer's
        #: mailbox (``mailbox`` lower-case). The Python helpers (``patch_event`` ...) record nothing.
        self.meeting_updates: list[tuple[str, str]] = []

        # OneDrive
        self._drive = DriveStore(self)
        #: ``(item id, recipient email)`` of every sharing invitation mailed by ``/invite``.
        self.sent_invitations: list[tuple[str, str]] = []
        #: What ``/invite`` does when the request has no ``sendInvitation`` (the docs name no default).
        self.send_invitation_default = False

        # faults and observation
        self._faults: list[_Fault] = []
        self._in_flight: dict[str, int] = {}
        #: The most requests seen in flight at once per mailbox (a refused one included).
        self.max_in_flight: dict[str, int] = {}
        self.requests: list[RequestRecord] = []
        #: Series patterns by what they are made of (see _pattern_for): one series in many mailboxes, or
        #: changed in ways that leave its pattern as it was, is expanded once.
        self._patterns: dict[str, _Pattern] = {}
        #: Each series's occurrences over a span, with the version of the series they were expanded from.
        self._expansions: dict[tuple[int, str, datetime, datetime], tuple[Any, list[tuple[Any, ...]]]] = {}
        self.internal_errors: list[str] = []

    # ------------------------------------------------------------------ endpoints

    @property
    def authority_host(self) -> str:
        """``https://127.0.0.1:PORT``: where login.microsoftonline.com would be."""
        return self.base_url

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.authority}/oauth2/v2.0/token"

    @property
    def issuer(self) -> str:
        return f"{self.authority}/v2.0"

    @property
    def graph_endpoint(self) -> str:
        """``https://127.0.0.1:PORT/v1.0``: where https://graph.microsoft.com/v1.0 would be."""
        return f"{self.base_url}/v1.0"

    # ------------------------------------------------------------------ apps and sign-ins

    def add_app(
        self,
        client_id: str,
        *,
        secret: str | None = None,
        certificate_pem: bytes | None = None,
        roles: Iterable[str] = ("Calendars.Read", "User.Read.All"),
        mailboxes: set[str] | None = None,
    ) -> None:
        """A confidential client (app registration) with a secret and/or a certificate. ``roles``: the
        application permissions an admin consented to (none: tokens are issued, Graph answers 403).
        ``mailboxes``: its Exchange RBAC for Applications scope (None: every mailbox)."""
        if secret is None and certificate_pem is None:
            raise ValueError("an app needs a secret or a certificate")
        certificate = x509.load_pem_x509_certificate(certificate_pem) if certificate_pem else None
        if certificate is not None and not isinstance(certificate.public_key(), rsa.RSAPublicKey):
            raise ValueError("the fake verifies RSA certificates only")
        with self._lock:
            self._apps[client_id] = _App(
                client_id, secret, certificate, frozenset(roles), _addresses(mailboxes)
            )

    def set_roles(self, client_id: str, roles: Iterable[str]) -> None:
        """Change the app's consented application permissions (tokens issued from now on carry them)."""
        with self._lock:
            self._apps[client_id].roles = frozenset(roles)

    def restrict(self, client_id: str, mailboxes: set[str] | None) -> None:
        """The app's Exchange RBAC for Applications scope (None: every mailbox), effective at once."""
        with self._lock:
            self._apps[client_id].mailboxes = _addresses(mailboxes)

    def add_public_client(self, client_id: str) -> None:
        """A public client (app registration with "Allow public client flows") for the device code."""
        with self._lock:
            self._public_clients.add(client_id)

    def approve_device(self, user_code: str, user: str) -> None:
        """The person enters ``user_code`` in a browser and signs in as ``user`` (id or address)."""
        with self._lock:
            found = self._find_user(user)
            if found is None:
                raise KeyError(f"no user {user!r}: call add_user first")
            code = self.device_codes[user_code]
            code.state, code.user_id = "approved", found.user_id

    def deny_device(self, user_code: str) -> None:
        with self._lock:
            self.device_codes[user_code].state = "denied"

    def expire_device(self, user_code: str) -> None:
        """The code runs out: the next poll gets ``expired_token``."""
        with self._lock:
            self.device_codes[user_code].expires_at = 0.0

    def expire_access_tokens(self) -> None:
        """Every access token issued so far now gets 401 from Graph (the client is expected to refresh)."""
        with self._lock:
            for token in self._tokens.values():
                token.expired = True

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token issued so far is revoked (``invalid_grant``): the person signs in again."""
        with self._lock:
            for token in self._refresh_tokens.values():
                token.revoked = True

    # ------------------------------------------------------------------ users

    def add_user(
        self,
        email: str,
        display_name: str,
        *,
        manager: str | None = None,
        enabled: bool = True,
        mailbox: bool = True,
        time_zone: str = "UTC",
        onedrive: bool = True,
    ) -> str:
        """A user of the tenant (UPN = ``email``); returns their object id. Adding an existing address
        again updates that user. ``manager``: an address or id (need not exist yet). ``onedrive=False``:
        no OneDrive provisioned (``/drive`` answers 404 ``ResourceNotFound``)."""
        with self._lock:
            existing = self._find_user(email)
            user_id = existing.user_id if existing else str(uuid.uuid4())
            self._users[user_id] = _User(
                user_id, email, display_name, manager, enabled, mailbox, time_zone, onedrive
            )
            if existing is not None and existing.email.lower() != email.lower():
                self._user_keys.clear()  # a user's address changed: index everyone again, in order
                for known in self._users.values():
                    self._user_keys.setdefault(known.email.lower(), known.user_id)
                    self._user_keys.setdefault(known.user_id.lower(), known.user_id)
            else:
                self._user_keys.setdefault(email.lower(), user_id)
                self._user_keys.setdefault(user_id.lower(), user_id)
            self._mailboxes.setdefault(user_id, _Mailbox(user_id))
            return user_id

    # ------------------------------------------------------------------ events

    def put_event(self, mailbox: str, event: dict[str, Any], *, adopt: bool = False) -> dict[str, Any]:
        """Store a ``singleInstance`` or (with ``recurrence``) a ``seriesMaster``; returns the stored
        resource. Replacing an existing id keeps a master's exceptions and cancellations. A ``body``
        (``{"contentType": "html", "content": ...}``, e.g. with a Teams meeting block) is stored the way
        Exchange keeps it (see the module doc); without one the event has an empty HTML body.
        ``adopt``: the fake stores ``event`` itself rather than a copy, and returns the stored resource
        itself rather than a copy (for loading many events: the caller must change neither, nor anything
        in them)."""
        with self._lock:
            box, user = self._box_for_put(mailbox)
            resource = event if adopt else copy_json(event)
            kind = "seriesMaster" if resource.get("recurrence") else "singleInstance"
            if resource.get("type") not in (None, kind):
                raise ValueError(
                    f"put_event stores singleInstance and seriesMaster events, not {resource['type']!r} "
                    "(use put_exception / cancel_occurrence)"
                )
            resource["type"] = kind
            event_id = str(resource.get("id") or _new_id())
            resource["id"] = event_id
            times = self._normalise(resource, user)
            if kind == "seriesMaster":
                self._pattern_for(resource)  # validate now, not when first listed
            previous = box.events.get(event_id)
            stored = (
                _Event(resource, deleted=set(), kept=set()) if kind == "seriesMaster" else _Event(resource)
            )
            stored.start_end, stored.start_end_of = times, resource
            if previous is not None and previous.kind == "seriesMaster" and kind == "seriesMaster":
                stored.exceptions, stored.deleted, stored.kept = (
                    previous.exceptions,
                    previous.deleted,
                    previous.kept,
                )
            elif previous is not None:
                self._remove(box, previous)
            self._new_version(resource, resource.get("lastModifiedDateTime"))
            box.events[event_id] = stored
            return resource if adopt else copy_json(resource)

    def put_exception(
        self,
        mailbox: str,
        master_id: str,
        original_start: datetime,
        changes: dict[str, Any],
        *,
        adopt: bool = False,
    ) -> dict[str, Any]:
        """Turn the occurrence of ``master_id`` that starts at ``original_start`` into an ``exception``
        with ``changes`` (top-level replace: start, end, subject, attendees, responseStatus, isCancelled,
        lastModifiedDateTime ...); an existing exception is changed further. Returns it as stored.
        ``adopt``: as for :meth:`put_event` (``changes`` kept, the stored resource itself returned)."""
        with self._lock:
            box, _ = self._box(mailbox)
            master = self._master(box, master_id)
            if not adopt:
                changes = copy_json(changes)
            exception = self._make_exception(box, master, original_start, changes)
            return exception.resource if adopt else copy_json(exception.resource)

    def cancel_occurrence(
        self,
        mailbox: str,
        master_id: str,
        original_start: datetime,
        *,
        keep: bool = False,
        last_modified: datetime | None = None,
    ) -> None:
        """Cancel one occurrence. ``keep=False``: it is deleted and vanishes from calendarView (the
        organizer's calendar); ``keep=True``: it stays with ``isCancelled: true`` (an attendee's copy after
        the cancellation notice). The master changes either way (``last_modified`` if given)."""
        with self._lock:
            box, _ = self._box(mailbox)
            master = self._master(box, master_id)
            original = self._check_original(master, original_start)
            stamp = _stamp(last_modified) if last_modified is not None else None
            exception_id = master.exceptions.get(original)
            if keep:
                if exception_id is not None:
                    exception = box.events[exception_id]
                    exception.resource["isCancelled"] = True
                    self._new_version(exception.resource, stamp)
                else:
                    master.kept.add(original)
            else:
                if exception_id is not None:
                    del box.events[exception_id]
                    del master.exceptions[original]
                master.kept.discard(original)
                master.deleted.add(original)
            self._touch_master(master, stamp)

    def patch_event(self, mailbox: str, event_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Top-level replace of an event's properties (an occurrence id makes it an exception); bumps its
        changeKey and ``lastModifiedDateTime`` (unless ``changes`` sets it). Returns it as stored."""
        with self._lock:
            box, user = self._box(mailbox)
            return copy_json(self._patch(box, user, event_id, copy_json(changes)).resource)

    def delete_event(self, mailbox: str, event_id: str) -> None:
        """Delete an event: a master takes its occurrences and exceptions with it; an exception or an
        occurrence id deletes that instance (as ``cancel_occurrence(keep=False)``)."""
        with self._lock:
            box, _ = self._box(mailbox)
            self._delete(box, event_id)

    def events(self, mailbox: str) -> list[dict[str, Any]]:
        """The stored resources (masters, exceptions, single instances) as deep copies."""
        with self._lock:
            box, _ = self._box(mailbox)
            return [copy_json(e.resource) for e in box.events.values()]

    def expire_delta_tokens(self, mailbox: str | None = None) -> None:
        """The skip and delta tokens issued so far (for one mailbox, or all) now get 410."""
        with self._lock:
            user_id = None
            if mailbox is not None:
                user = self._find_user(mailbox)
                if user is None:
                    raise KeyError(f"no user {mailbox!r}")
                user_id = user.user_id
            for round_, _ in self._rounds.values():
                if round_.window is not None and user_id in (None, round_.user_id):
                    round_.expired = True
            for token in self._delta_tokens.values():
                if user_id in (None, token.user_id):
                    token.expired = True

    # ------------------------------------------------------------------ OneDrive

    def drive_items(self, user: str) -> list[dict[str, Any]]:
        """Every file and folder in ``user``'s OneDrive (root excluded) as the driveItem JSON Graph
        answers, plus ``"path"`` (``"Agendas/1-1.md"``, relative to the root); ordered by path."""
        with self._lock:
            return self._drive.items(user)

    def item_content(self, user: str, path: str) -> bytes:
        """The bytes of the file at ``path`` (``"Agendas/1-1.md"``, not encoded; case-insensitive).
        KeyError if there is none."""
        with self._lock:
            return self._drive.content(user, path)

    def put_item(self, user: str, path: str, content: bytes, *, editor: str | None = None) -> dict[str, Any]:
        """Create (folders included) or replace the file at ``path`` in ``user``'s OneDrive, as
        ``editor`` (an address; default the owner) did it in the browser; returns the driveItem."""
        with self._lock:
            return self._drive.put(user, path, content, editor)

    def human_edit_item(self, user: str, item_id: str, content: bytes, editor: str) -> dict[str, Any]:
        """Someone (``editor``, an address) edits the file: new content, eTag and cTag,
        ``lastModifiedBy`` = editor. Returns the driveItem."""
        with self._lock:
            return self._drive.human_edit(user, item_id, content, editor)

    def item_permissions(self, user: str, item_id: str) -> list[dict[str, Any]]:
        """What ``GET .../items/{id}/permissions`` answers: the owner's, then each grant."""
        with self._lock:
            return self._drive.permissions(user, item_id)

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        path_contains: str = "",
    ) -> None:
        """The next ``count`` matching requests get ``status`` with Graph's envelope (429
        ``TooManyRequests``, 503 ``ServiceUnavailable`` ... unless ``code`` says otherwise), or Entra
        ID's on identity paths; ``Retry-After`` (whole seconds) when ``retry_after`` is given."""
        with self._lock:
            self._faults.append(_Fault("fail", count, path_contains, status, code, retry_after))

    def slow_next(self, count: int, seconds: float, *, path_contains: str = "") -> None:
        """The next ``count`` matching requests are answered after ``seconds`` (then normally)."""
        with self._lock:
            self._faults.append(_Fault("slow", count, path_contains, seconds=seconds))

    def drop_next(self, count: int, *, path_contains: str = "") -> None:
        """The next ``count`` matching requests get their connection closed without an answer."""
        with self._lock:
            self._faults.append(_Fault("drop", count, path_contains))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # ------------------------------------------------------------------ observation

    def count(self, method: str = "GET", path_contains: str = "", *, batch: bool | None = None) -> int:
        """Logged requests with ``method`` whose path contains ``path_contains``: those sent alone and
        those in a JSON batch alike, or only the one kind (``batch`` False or True)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if r.method == method and path_contains in r.path and (batch is None or r.batch == batch)
            )

    def reset_log(self) -> None:
        """Forget the request log and the in-flight maxima."""
        with self._lock:
            self.requests.clear()
            self.max_in_flight.clear()

    # ================================================================== internals: state

    def _now(self) -> datetime:
        now = self._clock() if self._clock is not None else datetime.now(UTC)
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)

    def _stamp_now(self) -> str:
        return _stamp(self._now())

    def _find_user(self, key: str) -> _User | None:
        """The user with this id, else the first one whose address or id is ``key`` ignoring case."""
        if key in self._users:
            return self._users[key]
        user_id = self._user_keys.get(key.lower())
        return self._users[user_id] if user_id is not None else None

    def _box(self, mailbox: str) -> tuple[_Mailbox, _User]:
        user = self._find_user(mailbox)
        if user is None:
            raise KeyError(f"no mailbox {mailbox!r}")
        return self._mailboxes[user.user_id], user

    def _box_for_put(self, mailbox: str) -> tuple[_Mailbox, _User]:
        """The mailbox to store into; a user is created for an unknown address (display name from it)."""
        if self._find_user(mailbox) is None:
            local = mailbox.partition("@")[0]
            self.add_user(mailbox, " ".join(p.capitalize() for p in re.split(r"[._-]", local) if p))
        return self._box(mailbox)

    def _master(self, box: _Mailbox, master_id: str) -> _Event:
        master = box.events.get(master_id)
        if master is None or master.kind != "seriesMaster":
            raise KeyError(f"no series master {master_id!r}")
        return master

    def _pattern_for(self, resource: Mapping[str, Any]) -> _Pattern:
        """:func:`_pattern` of a master, kept by what it is made of (ValueError if invalid)."""
        key = repr(
            [
                resource.get(name)
                for name in ("recurrence", "originalStartTimeZone", "start", "end", "isAllDay")
            ]
        )
        pattern = self._patterns.get(key)
        if pattern is None:
            pattern = self._patterns[key] = _pattern(resource)
        return pattern

    def _pattern_of(self, master: _Event) -> _Pattern:
        """The pattern of a stored master. A stored resource's recurrence, start, end ... are changed by
        storing a new resource (``_patch``), never in place (only its changeKey, etag, lastModifiedDateTime
        and isCancelled are), so the pattern is remembered for the resource it was made from."""
        resource = master.resource
        if master.pattern is None or master.pattern_of is not resource:
            master.pattern, master.pattern_of = self._pattern_for(resource), resource
        return master.pattern

    def _check_original(self, master: _Event, original_start: datetime) -> datetime:
        if original_start.tzinfo is None:
            raise ValueError("original_start must be an aware datetime")
        original = original_start.astimezone(UTC)
        if not _pattern_starts(self._pattern_of(master), original, original):
            raise ValueError(f"the series {master.ident} has no occurrence at {original.isoformat()}")
        if original in master.deleted:
            raise ValueError(f"the occurrence at {original.isoformat()} was deleted")
        return original

    def _normalise(self, resource: dict[str, Any], owner: _User) -> tuple[datetime, datetime]:
        """Fill in what Exchange always answers, and bring times into Graph's own text form; the start
        and end (:func:`_stored_times`)."""
        for name in ("start", "end"):
            value = resource.get(name)
            if (type(value) is not dict and not isinstance(value, Mapping)) or "dateTime" not in value:
                raise ValueError(f"an event needs {name} = {{'dateTime': ..., 'timeZone': ...}}")
            zone_name = str(value.get("timeZone") or "UTC")
            resource[name] = {
                "dateTime": _graph_wall(str(value["dateTime"]), zone_name),
                "timeZone": zone_name,
            }
        start, end = _stored_times(resource)
        if end < start:
            raise ValueError("an event cannot end before it starts")
        resource.setdefault("originalStartTimeZone", resource["start"]["timeZone"])
        resource.setdefault("originalEndTimeZone", resource["end"]["timeZone"])
        resource.setdefault("subject", "")
        body = resource["body"] = _stored_body(resource.get("body"))
        resource["bodyPreview"] = _preview(body["contentType"], body["content"])
        resource.setdefault("isAllDay", False)
        resource.setdefault("isCancelled", False)
        resource.setdefault("showAs", "busy")
        resource.setdefault("iCalUId", "040000008200E00074C5B7101A82E008" + secrets.token_hex(28).upper())
        if "organizer" not in resource:
            resource["organizer"] = {"emailAddress": {"name": owner.display_name, "address": owner.email}}
        if "attendees" not in resource:
            resource["attendees"] = []
        organizer = str(((resource["organizer"] or {}).get("emailAddress") or {}).get("address") or "")
        if "isOrganizer" not in resource:
            resource["isOrganizer"] = organizer.lower() == owner.email.lower()
        if "responseStatus" not in resource:
            resource["responseStatus"] = {
                "response": "organizer" if resource["isOrganizer"] else "none",
                "time": "0001-01-01T00:00:00Z",
            }
        resource.setdefault("createdDateTime", resource.get("lastModifiedDateTime") or _stamp(self._now()))
        recurrence = resource.get("recurrence")
        if isinstance(recurrence, dict):
            # new dicts, not changed in place: they may be shared with a stored resource
            recurrence = resource["recurrence"] = dict(recurrence)
            pattern = recurrence.setdefault("pattern", {})
            if isinstance(pattern, dict):
                pattern = recurrence["pattern"] = dict(pattern)
            for key, default in (
                ("interval", 1),
                ("month", 0),
                ("dayOfMonth", 0),
                ("firstDayOfWeek", "sunday"),
                ("index", "first"),
            ):
                pattern.setdefault(key, default)
            if pattern.get("type") in ("weekly", "relativeMonthly", "relativeYearly"):
                pattern.setdefault("daysOfWeek", [])
            rng = recurrence.setdefault("range", {"type": "noEnd"})
            if isinstance(rng, dict):
                rng = recurrence["range"] = dict(rng)
            rng.setdefault("type", "noEnd")
            rng.setdefault("startDate", _parse_iso(resource["start"]["dateTime"]).date().isoformat())
            rng.setdefault("endDate", "0001-01-01")
            rng.setdefault("recurrenceTimeZone", resource["originalStartTimeZone"])
            rng.setdefault("numberOfOccurrences", 0)
        elif recurrence is not None:
            raise ValueError("recurrence must be a patternedRecurrence object")
        return start, end

    def _new_version(self, resource: dict[str, Any], last_modified: Any = None) -> None:
        """A new changeKey and etag; ``lastModifiedDateTime`` = ``last_modified`` if given, else now."""
        key = _change_key()
        resource["changeKey"] = key
        resource["@odata.etag"] = f'W/"{key}"'
        resource["lastModifiedDateTime"] = str(last_modified) if last_modified else _stamp(self._now())

    def _touch_master(self, master: _Event, last_modified: str | None) -> None:
        """A change to one of its instances: a new changeKey, and a lastModifiedDateTime that never goes
        backwards."""
        current = str(master.resource.get("lastModifiedDateTime") or "")
        candidate = last_modified or _stamp(self._now())
        with contextlib.suppress(ValueError):
            if current and _parse_instant(current) > _parse_instant(candidate):
                candidate = current
        self._new_version(master.resource, candidate)

    def _make_exception(
        self, box: _Mailbox, master: _Event, original_start: datetime, changes: dict[str, Any]
    ) -> _Event:
        original = self._check_original(master, original_start)
        # Stored resources are changed by replacing their members, never inside them (_normalise too):
        # so the new resource shares members with the master, the exception before and the changes.
        changes = {k: v for k, v in changes.items() if k not in _READ_ONLY}
        owner = self._users[self._user_id_of(box)]
        existing_id = master.exceptions.get(original)
        if existing_id is not None:
            exception = box.events[existing_id]
            resource = dict(exception.resource)
        else:
            pattern = self._pattern_of(master)
            resource = {
                k: v
                for k, v in master.resource.items()
                if k not in ("recurrence", "id", "changeKey", "@odata.etag", "lastModifiedDateTime")
            }
            start, end = _instance_times(master.resource, pattern, original)
            zone_name = str(
                master.resource.get("originalStartTimeZone") or master.resource["start"]["timeZone"]
            )
            if pattern.all_day:
                resource["start"] = {"dateTime": _wall(start.replace(tzinfo=None)), "timeZone": zone_name}
                resource["end"] = {"dateTime": _wall(end.replace(tzinfo=None)), "timeZone": zone_name}
            else:
                resource["start"] = _dtz(start, zone_name)
                resource["end"] = _dtz(end, zone_name)
            resource["id"] = self._occurrence_id(box, master, original)
            resource["type"] = "exception"
            resource["seriesMasterId"] = master.ident
            resource["originalStart"] = _utc_z(original)
            resource["isCancelled"] = original in master.kept
        if "recurrence" in changes:
            raise ValueError("an exception cannot have a recurrence")
        resource.update(changes)
        times = self._normalise(resource, owner)
        self._new_version(resource, changes.get("lastModifiedDateTime"))
        exception = _Event(resource, original=original, start_end=times, start_end_of=resource)
        box.events[exception.ident] = exception
        master.exceptions[original] = exception.ident
        master.kept.discard(original)
        self._touch_master(master, str(resource["lastModifiedDateTime"]))
        return exception

    def _user_id_of(self, box: _Mailbox) -> str:
        return box.user_id

    def _occurrence_id(self, box: _Mailbox, master: _Event, original: datetime) -> str:
        digest = hashlib.sha256(f"{master.ident}|{_utc_z(original)}".encode()).digest()
        ident = _new_id(digest)
        box.occurrences[ident] = (master.ident, original)
        return ident

    def _patch(self, box: _Mailbox, owner: _User, event_id: str, changes: dict[str, Any]) -> _Event:
        event = box.events.get(event_id)
        if event is None:
            occurrence = self._resolve_occurrence(box, event_id)
            if occurrence is None:
                raise KeyError(f"no event {event_id!r}")
            master, original = occurrence
            return self._make_exception(box, master, original, changes)
        changes = {k: v for k, v in changes.items() if k not in _READ_ONLY}
        if event.kind == "exception":
            master = box.events[str(event.resource["seriesMasterId"])]
            return self._make_exception(box, master, event.original or datetime.min, changes)
        resource = dict(event.resource)  # its members are replaced, not changed (see _make_exception)
        if "recurrence" in changes and event.kind != "seriesMaster":
            raise ValueError("the fake does not turn a single event into a series")
        if event.kind == "seriesMaster" and "recurrence" in changes and not changes["recurrence"]:
            raise ValueError("the fake does not turn a series into a single event")
        resource.update(changes)
        times = self._normalise(resource, owner)
        if event.kind == "seriesMaster":
            self._pattern_for(resource)
        self._new_version(resource, changes.get("lastModifiedDateTime"))
        event.resource = resource
        event.start_end, event.start_end_of = times, resource
        return event

    def _resolve_occurrence(self, box: _Mailbox, ident: str) -> tuple[_Event, datetime] | None:
        """The (master, original start) of an occurrence id the fake handed out, if it still exists."""
        found = box.occurrences.get(ident)
        if found is None:
            return None
        master = box.events.get(found[0])
        original = found[1]
        if master is None or master.kind != "seriesMaster" or original in master.deleted:
            return None
        if original in master.exceptions:
            return None
        if not _pattern_starts(self._pattern_of(master), original, original):
            return None
        return master, original

    def _delete(self, box: _Mailbox, event_id: str) -> None:
        event = box.events.get(event_id)
        if event is None:
            occurrence = self._resolve_occurrence(box, event_id)
            if occurrence is None:
                raise KeyError(f"no event {event_id!r}")
            master, original = occurrence
            master.kept.discard(original)
            master.deleted.add(original)
            self._touch_master(master, None)
            return
        if event.kind == "exception":
            master = box.events[str(event.resource["seriesMasterId"])]
            assert event.original is not None
            master.exceptions.pop(event.original, None)
            master.deleted.add(event.original)
            del box.events[event_id]
            self._touch_master(master, None)
            return
        self._remove(box, event)

    def _remove(self, box: _Mailbox, event: _Event) -> None:
        box.events.pop(event.ident, None)
        for exception_id in event.exceptions.values():
            box.events.pop(exception_id, None)

    # ------------------------------------------------------------------ instances

    def _instances(self, box: _Mailbox, lo: datetime, hi: datetime) -> list[_Instance]:
        """Every instance whose [start, end) overlaps [lo, hi), ordered by start, then id."""
        out: list[_Instance] = []
        for event in box.events.values():
            kind = event.kind
            if kind == "seriesMaster":
                out.extend(self._occurrences(box, event, lo, hi))
            elif kind == "exception" or kind == "singleInstance":
                start, end = event.times()
                if _overlaps(start, end, lo, hi):
                    out.append(
                        _Instance(
                            event.ident, str(event.resource["changeKey"]), start, kind, event, event.original
                        )
                    )
        out.sort(key=_utc_start_then_id)
        return out

    def _occurrences(self, box: _Mailbox, master: _Event, lo: datetime, hi: datetime) -> list[_Instance]:
        # Every change to a series (its pattern, an exception, a deleted occurrence) gives its master a
        # new changeKey: until then its expansion over a span is the same (a delta round of a mailbox
        # where nothing changed would otherwise expand every series again).
        # (Kept as plain tuples, which the cyclic garbage collector stops looking at.)
        key = (master.resource.get("changeKey"), len(master.deleted), len(master.exceptions))
        memo = self._expansions.get((id(box), master.ident, lo, hi))
        if memo is not None and memo[0] == key:
            return [_Instance(i, k, s, "occurrence", master, o, e) for i, k, s, o, e in memo[1]]
        found = self._expand_occurrences(box, master, lo, hi)
        kept = [(i.ident, i.change_key, i.start, i.original, i.end) for i in found]
        self._expansions[(id(box), master.ident, lo, hi)] = (key, kept)
        return found

    def _expand_occurrences(
        self, box: _Mailbox, master: _Event, lo: datetime, hi: datetime
    ) -> list[_Instance]:
        pattern = self._pattern_of(master)
        deleted, exceptions, resource = master.deleted, master.exceptions, master.resource
        master_id, change_key = master.ident, resource["changeKey"]
        all_day, duration, occurrences = pattern.all_day, pattern.duration, box.occurrences
        sha256, b64, new = hashlib.sha256, binascii.b2a_base64, tuple.__new__
        out = []
        for original in _pattern_starts(pattern, lo - duration - timedelta(days=1), hi):
            if original in deleted or original in exceptions:
                continue
            if all_day:
                start, end = _instance_times(resource, pattern, original)
            else:  # _instance_times of a timed series
                start, end = original, original + duration
            if not (lo <= start < hi if start == end else start < hi and end > lo):  # _overlaps
                continue
            stamp = _utc_z(original)
            # _occurrence_id (its id's base64 in the URL-safe alphabet), and a changeKey derived from the
            # master's
            digest = sha256(f"{master_id}|{stamp}".encode()).digest()
            ident = "AAMkAD" + b64(digest, newline=False).translate(_URLSAFE_BYTES).decode()
            occurrences[ident] = (master_id, original)
            key = (
                "DwAAABYAAA"
                + b64(sha256(f"{change_key}|{stamp}".encode()).digest()[:15], newline=False).decode()
            )
            out.append(new(_Instance, (ident, key, start, "occurrence", master, original, end)))
        return out

    def _instance_view(
        self, box: _Mailbox, instance: _Instance, tz_name: str | None, full: bool | None = None
    ) -> dict[str, Any]:
        """An instance as calendarView (and its delta) answers it; an occurrence with all its master's
        properties when ``full`` (default :attr:`full_occurrences`), else as a stub."""
        if instance.kind != "occurrence":
            return {"@odata.type": "#microsoft.graph.event", **self._event_view(box, instance.event, tz_name)}
        master = instance.event
        assert instance.original is not None
        pattern = self._pattern_of(master)
        if instance.end is not None:  # found when the series was expanded, from the same pattern
            start, end = instance.start, instance.end
        else:
            start, end = _instance_times(master.resource, pattern, instance.original)
        view: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.event",
            "@odata.etag": f'W/"{instance.change_key}"',
        }
        if self.full_occurrences if full is None else full:
            # shared, not copied: a stored resource's members are replaced, never changed in place
            view.update({k: v for k, v in master.resource.items() if k not in ("recurrence", "@odata.etag")})
            view["changeKey"] = instance.change_key
        view.update(
            {
                "id": instance.ident,
                "type": "occurrence",
                "seriesMasterId": master.ident,
                "originalStart": _utc_z(instance.original),
                "start": _render_time(start, pattern.all_day, tz_name),
                "end": _render_time(end, pattern.all_day, tz_name),
                "isCancelled": bool(master.resource.get("isCancelled")) or instance.original in master.kept,
            }
        )
        return view

    def _delta_items(
        self, box: _Mailbox, instances: Iterable[_Instance], tz_name: str | None
    ) -> list[dict[str, Any] | bytes]:
        """Instances as a delta round lists them: :meth:`_instance_view`, but an occurrence's stub as its
        JSON, made directly (a big round has thousands): exactly json.dumps of the stub _instance_view
        makes, the same members in the same order."""
        name = tz_name or "UTC"
        zone, zone_json = zone_info(name), _json_str(name)
        # a timed occurrence's start and end are UTC instants: in UTC their digits are already the wall's
        in_utc = zone.key == "UTC"
        series: dict[int, tuple[_Pattern, str, bool]] = {}  # by id(master): the masters outlive the loop
        items: list[dict[str, Any] | bytes] = []
        for instance in instances:
            if instance.kind != "occurrence" or self.full_occurrences:
                items.append(self._instance_view(box, instance, tz_name))
                continue
            master, original = instance.event, instance.original
            assert original is not None
            known = series.get(id(master))
            if known is None:
                middle = (
                    f', "type": "occurrence", "seriesMasterId": {_json_str(master.ident)}, "originalStart": "'
                )
                known = (self._pattern_of(master), middle, bool(master.resource.get("isCancelled")))
                series[id(master)] = known
            pattern, middle, cancelled = known
            if instance.end is not None:
                start, end = instance.start, instance.end
            else:
                start, end = _instance_times(master.resource, pattern, original)
            if pattern.all_day:
                start_text, end_text = _render_wall(start, True, name), _render_wall(end, True, name)
            elif in_utc and start.tzinfo is UTC and end.tzinfo is UTC:
                start_text, end_text = _wall(start), _wall(end)
            else:
                start_text, end_text = _wall(start.astimezone(zone)), _wall(end.astimezone(zone))
            # change keys (base64), times and originalStart need no escaping in JSON
            items.append(
                "".join(
                    (
                        '{"@odata.type": "#microsoft.graph.event", "@odata.etag": "W/\\"',
                        instance.change_key,
                        '\\"", "id": ',
                        _json_str(instance.ident),
                        middle,
                        _utc_z(original),
                        '", "start": {"dateTime": "',
                        start_text,
                        '", "timeZone": ',
                        zone_json,
                        '}, "end": {"dateTime": "',
                        end_text,
                        '", "timeZone": ',
                        zone_json,
                        '}, "isCancelled": ',
                        "true" if cancelled or original in master.kept else "false",
                        "}",
                    )
                ).encode()
            )
        return items

    def _event_view(self, box: _Mailbox, event: _Event, tz_name: str | None) -> dict[str, Any]:
        """A stored event as GET answers it: times in the preferred zone (UTC by default)."""
        resource = event.resource
        view = {"@odata.etag": resource["@odata.etag"], "id": resource["id"], "type": resource["type"]}
        view.update(resource)  # its members are shared: they are never changed, only replaced
        all_day = bool(resource.get("isAllDay"))
        start, end = event.times()
        view["start"] = _render_time(start, all_day, tz_name)
        view["end"] = _render_time(end, all_day, tz_name)
        if event.kind == "exception":
            master = box.events.get(str(resource.get("seriesMasterId")))
            if master is not None and master.resource.get("isCancelled"):
                view["isCancelled"] = True
        return view

    # ================================================================== internals: HTTP

    def _handle(self, handler: RequestHandler) -> None:
        answer = self._process(handler)
        if answer is None:
            handler.drop_connection()
            return
        data, headers = answer.wire()
        handler.respond(answer.status, data, headers)

    def _process(self, handler: RequestHandler, *, batch: bool = False) -> _Answer | None:
        """Everything about one request but its connection: read it, log it, count it in flight for its
        mailbox, answer it (None: close the connection unanswered). A request sent alone and each request
        of a JSON batch (``batch``, an :class:`_InnerRequest`) come this way."""
        body, raw_path, path, query_multi, query = handler.read_request()
        is_graph = raw_path == "/v1.0" or raw_path.startswith("/v1.0/")
        record = RequestRecord(
            handler.command,
            path,
            query,
            None,
            0,
            handler.loggable_headers(),
            batch=batch,
        )
        segments = [urllib.parse.unquote(s) for s in raw_path.split("/")[1:]]
        tracked: str | None = None
        crowded = False  # decided as the request arrives: one that finishes later frees no earlier slot
        with self._lock:
            self.requests.append(record)
            if is_graph:
                record.mailbox = self._mailbox_of(segments, handler.headers)
                after = 3 if segments[1:2] == ["users"] else 2  # the segment after the user's
                if (
                    record.mailbox is not None
                    and len(segments) > after
                    and segments[after] in _EXCHANGE_PATHS
                ):
                    tracked = record.mailbox
                    now = self._in_flight.get(tracked, 0) + 1
                    self._in_flight[tracked] = now
                    self.max_in_flight[tracked] = max(self.max_in_flight.get(tracked, 0), now)
                    crowded = now > MAX_CONCURRENT
        try:
            return self._answer(handler, record, raw_path, segments, query_multi, body, is_graph, crowded)
        finally:
            if tracked is not None:
                with self._lock:
                    self._in_flight[tracked] -= 1

    def _answer(
        self,
        handler: RequestHandler,
        record: RequestRecord,
        raw_path: str,
        segments: list[str],
        query: dict[str, list[str]],
        body: bytes,
        is_graph: bool,
        crowded: bool = False,
    ) -> _Answer | None:
        headers: dict[str, str] = {}
        client_request_id = handler.headers.get("client-request-id") or str(uuid.uuid4())
        payload: dict[str, Any] | RawBody | None
        is_batch = is_graph and segments[1:] == ["$batch"]  # the envelope of a JSON batch
        if crowded:
            status, payload = (
                429,
                self._graph_envelope(
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    client_request_id,
                ),
            )
            headers["Retry-After"] = "1"
        else:
            # a fault without a filter is for the API calls, not for the envelope of a batch
            fault = self._take_fault(
                is_graph and not is_batch, handler.path, urllib.parse.unquote(handler.path)
            )
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.seconds)
            elif fault is not None and fault.kind == "drop":
                return None
            if fault is not None and fault.kind == "fail":
                drive = "/drive/" in raw_path or raw_path.endswith("/drive")
                status, payload = (
                    fault.status,
                    self._fault_payload(fault, is_graph, client_request_id, drive),
                )
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(math.ceil(fault.retry_after))
                if is_graph and fault.status == 401:
                    headers["WWW-Authenticate"] = self._www_authenticate()
            else:
                try:
                    if is_batch:  # not under the lock: its requests take it one by one, as they run
                        status, payload, extra = self._batch(handler, body, record)
                    else:
                        with self._lock:
                            status, payload, extra = self._route(
                                handler.command, raw_path, segments, query, handler, body, record
                            )
                    headers.update(extra)
                except _Dropped:
                    return None
                except _Error as error:
                    status, payload, headers = error.status, error.payload, error.headers
                    if is_graph and "error" in payload and isinstance(payload["error"], dict):
                        payload["error"]["innerError"]["client-request-id"] = client_request_id
                except Exception:
                    self.internal_errors.append(traceback.format_exc())
                    status = 500
                    payload = (
                        self._graph_envelope(
                            "FakeInternalError", "Internal error in the fake", client_request_id
                        )
                        if is_graph
                        else {"error": "server_error", "error_description": "Internal error in the fake"}
                    )
        record.status = status
        return _Answer(status, payload, headers, is_graph, client_request_id)

    def _take_fault(self, is_graph: bool, raw_target: str, decoded_target: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_contains == "":
                    matches = is_graph
                else:
                    matches = fault.path_contains in raw_target or fault.path_contains in decoded_target
                if matches:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _fault_payload(
        self, fault: _Fault, is_graph: bool, client_request_id: str, drive: bool = False
    ) -> dict[str, Any]:
        if is_graph:
            code, message = _GRAPH_CODES.get(fault.status, ("UnknownError", f"HTTP {fault.status}"))
            if drive and fault.status in _DRIVE_CODES:
                code = _DRIVE_CODES[fault.status]
            return self._graph_envelope(fault.code or code, message, client_request_id)
        error, number = _AAD_FAULTS.get(fault.status, ("server_error", 90033))
        return self._aad_body(
            fault.code or error, number, f"Fault injected by the test (HTTP {fault.status})."
        )

    def _graph_envelope(self, code: str, message: str, client_request_id: str = "") -> dict[str, Any]:
        return {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": self._now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": str(uuid.uuid4()),
                    "client-request-id": client_request_id or str(uuid.uuid4()),
                },
            }
        }

    def _graph_error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> _Error:
        return _Error(status, self._graph_envelope(code, message), headers)

    def _aad_body(self, error: str, number: int, description: str) -> dict[str, Any]:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": error,
            "error_description": f"AADSTS{number}: {description}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {stamp}",
            "error_codes": [number],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"{self.authority_host}/error?code={number}",
        }

    def _aad_error(self, status: int, error: str, number: int, description: str) -> _Error:
        return _Error(status, self._aad_body(error, number, description))

    def _www_authenticate(self) -> str:
        return (
            f'Bearer realm="", authorization_uri="{self.authority_host}/common/oauth2/authorize", '
            f'client_id="{GRAPH_APP_ID}"'
        )

    def _mailbox_of(self, segments: list[str], headers: Any) -> str | None:
        """The address a Graph request is about (for the log and the concurrency limit)."""
        if len(segments) >= 3 and segments[1] == "users":
            user = self._find_user(segments[2])
            return user.email.lower() if user else segments[2].lower()
        if len(segments) >= 2 and segments[1] == "me":
            token = self._token_for(headers)
            if token is not None and token.user_id is not None and token.user_id in self._users:
                return self._users[token.user_id].email.lower()
        return None

    # ------------------------------------------------------------------ routing

    def _route(
        self,
        method: str,
        raw_path: str,
        segments: list[str],
        query: dict[str, list[str]],
        handler: RequestHandler,
        body: bytes,
        record: RequestRecord,
    ) -> tuple[int, dict[str, Any] | RawBody | None, dict[str, str]]:
        if segments[:1] == ["v1.0"]:
            return self._route_graph(method, raw_path, segments[1:], query, handler, body, record)
        if segments[:1] == ["_download"] and len(segments) == 2 and method == "GET":
            return self._drive.download(segments[1])
        if len(segments) >= 2:
            tenant, rest = segments[0], segments[1:]
            known = tenant.lower() == self.tenant or tenant.lower() in {
                a.lower() for a in self.tenant_aliases
            }
            if rest == ["v2.0", ".well-known", "openid-configuration"] and method == "GET":
                if not known:
                    raise self._aad_error(
                        400,
                        "invalid_tenant",
                        90002,
                        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
                        "are signing into the correct cloud.",
                    )
                return 200, self._openid_configuration(), {}
            if rest == ["discovery", "v2.0", "keys"] and method == "GET":
                return 200, self._jwks(), {}
            if rest[:2] == ["oauth2", "v2.0"] and len(rest) == 3 and rest[2] in ("token", "devicecode"):
                if method != "POST":
                    raise self._aad_error(405, "invalid_request", 900561, "The endpoint only accepts POST.")
                if not known:
                    raise self._aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
                form = {
                    k: v[-1] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()
                }
                record.body = {
                    k: v
                    for k, v in form.items()
                    if k in ("grant_type", "scope", "client_id", "client_info", "client_assertion_type")
                }
                if rest[2] == "devicecode":
                    return 200, self._device_code(form), {}
                return 200, self._token(form, handler), {}
        raise self._aad_error(404, "invalid_request", 900561, f"The fake serves no {method} {raw_path}.")

    def _openid_configuration(self) -> dict[str, Any]:
        authority = self.authority
        return {
            "token_endpoint": self.token_endpoint,
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{authority}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self.issuer,
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.graph_endpoint}/me",
            "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{authority}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{authority}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{authority}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def _jwks(self) -> dict[str, Any]:
        numbers = self._signing_key.public_key().public_numbers()

        def encode(value: int) -> str:
            return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        key = {
            "kty": "RSA",
            "use": "sig",
            "kid": self._signing_kid,
            "x5t": self._signing_kid,
            "n": encode(numbers.n),
            "e": encode(numbers.e),
            "issuer": self.issuer,
        }
        return {"keys": [key]}

    # ------------------------------------------------------------------ identity: token endpoint

    def _token(self, form: dict[str, str], handler: RequestHandler) -> dict[str, Any]:
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            return self._client_credentials(form, handler)
        if grant == DEVICE_CODE_GRANT:
            return self._redeem_device_code(form)
        if grant == "refresh_token":
            return self._redeem_refresh_token(form)
        raise self._aad_error(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant}'.",
        )

    def _unknown_client(self, client_id: str) -> _Error:
        return self._aad_error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{self.tenant}'. "
            "This can happen if the application has not been installed by the administrator of the tenant "
            "or consented to by any user in the tenant. You may have sent your authentication request to "
            "the wrong tenant.",
        )

    def _client_credentials(self, form: dict[str, str], handler: RequestHandler) -> dict[str, Any]:
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        basic = str(handler.headers.get("Authorization") or "")
        if basic.lower().startswith("basic "):
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
                client_id = client_id or urllib.parse.unquote_plus(user)
                secret = secret or urllib.parse.unquote_plus(password)
        app = self._apps.get(client_id)
        if app is None:
            if client_id in self._public_clients:
                raise self._aad_error(
                    401,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or "
                    "'client_secret'.",
                )
            raise self._unknown_client(client_id)
        if form.get("client_assertion"):
            self._verify_assertion(app, form)
        elif secret is not None:
            if app.secret is None or not secrets.compare_digest(secret.encode(), app.secret.encode()):
                raise self._aad_error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    "client secret value, not the client secret ID, for a secret added to app "
                    f"'{client_id}'.",
                )
        else:
            raise self._aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        scopes = form.get("scope", "").split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise self._aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {form.get('scope', '')} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier (application ID "
                "URI).",
            )
        if scopes[0].rsplit("/", 1)[0] not in (GRAPH_RESOURCE, GRAPH_RESOURCE + "/", GRAPH_APP_ID):
            raise self._aad_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {scopes[0].rsplit('/', 1)[0]} was not found in the tenant "
                f"named {self.tenant}.",
            )
        token = self._issue_access_token(client_id, None, app.roles)
        return {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": token,
        }

    def _verify_assertion(self, app: _App, form: dict[str, str]) -> None:
        if form.get("client_assertion_type") != JWT_BEARER_ASSERTION:
            raise self._aad_error(
                400,
                "invalid_request",
                50027,
                f"client_assertion_type must be '{JWT_BEARER_ASSERTION}'.",
            )

        def refuse(number: int, reason: str) -> _Error:
            return self._aad_error(401, "invalid_client", number, reason)

        parts = form["client_assertion"].split(".")
        if len(parts) != 3:
            raise refuse(50027, "JWT token is invalid or malformed.")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except ValueError:
            raise refuse(50027, "JWT token is invalid or malformed.") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise refuse(50027, "JWT token is invalid or malformed.")
        certificate = app.certificate
        sent = header.get("x5t#S256") or header.get("x5t") or ""
        if certificate is None:
            raise refuse(
                700027,
                f"The certificate with identifier used to sign the client assertion is not registered on "
                f"application. [Reason - The key was not found., Thumbprint of key used by client: '{sent}']",
            )
        if "x5t#S256" in header:
            expected = _b64url(certificate.fingerprint(hashes.SHA256()))
            sent_thumbprint = str(header["x5t#S256"]).rstrip("=")
        else:
            expected = _b64url(certificate.fingerprint(hashes.SHA1()))
            sent_thumbprint = str(header.get("x5t", "")).rstrip("=")
        if sent_thumbprint != expected:
            raise refuse(
                700027,
                "The certificate with identifier used to sign the client assertion is not registered on "
                f"application. [Reason - The key was not found., Thumbprint of key used by client: '{sent}']",
            )
        public_key = certificate.public_key()
        assert isinstance(public_key, rsa.RSAPublicKey)
        signed = f"{parts[0]}.{parts[1]}".encode()
        algorithm = header.get("alg")
        try:
            if algorithm == "RS256":
                public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            elif algorithm == "PS256":
                public_key.verify(
                    signature,
                    signed,
                    padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
                    hashes.SHA256(),
                )
            else:
                raise refuse(
                    5002738, f"Invalid JWT token. '{algorithm}' is not a supported signature algorithm."
                )
        except InvalidSignature:
            raise refuse(700027, "Client assertion failed signature validation.") from None
        if claims.get("aud") != self.token_endpoint:
            raise refuse(
                700212,
                f"No matching federated identity record found for presented assertion audience "
                f"'{claims.get('aud')}'. The audience must be the token endpoint {self.token_endpoint}.",
            )
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise refuse(
                700021, "Client assertion application identifier doesn't match 'client_id' parameter."
            )
        now = time.time()
        try:
            expires = float(claims["exp"])
            not_before = float(claims["nbf"] if "nbf" in claims else claims.get("iat") or now)
        except (KeyError, TypeError, ValueError):
            raise refuse(700024, "Client assertion is not within its valid time range.") from None
        if expires <= now - _CLOCK_SKEW or not_before > now + _CLOCK_SKEW:
            raise refuse(700024, "Client assertion is not within its valid time range.")

    def _issue_access_token(self, client_id: str, user_id: str | None, permissions: Iterable[str]) -> str:
        token = "fake-graph-at." + secrets.token_urlsafe(40)
        self._tokens[token] = _AccessToken(
            client_id, user_id, frozenset(permissions), time.time() + TOKEN_LIFETIME
        )
        return token

    # ------------------------------------------------------------------ identity: device code

    def _delegated_scopes(self, raw: str) -> tuple[str, ...]:
        """The requested scopes (validated), as sent; raise invalid_scope for anything else."""
        scopes = tuple(dict.fromkeys(raw.split()))
        for scope in scopes:
            if _short_scope(scope) not in DEVICE_SCOPES | OIDC_SCOPES:
                raise self._aad_error(
                    400,
                    "invalid_scope",
                    70011,
                    f"The provided request must include a 'scope' input parameter. The provided value for "
                    f"the input parameter 'scope' is not valid. The scope '{scope}' does not exist.",
                )
        if not any(_short_scope(s) in DEVICE_SCOPES for s in scopes) and "openid" not in scopes:
            raise self._aad_error(
                400,
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' is not valid.",
            )
        return scopes

    def _check_public_client(self, client_id: str) -> None:
        if client_id in self._public_clients:
            return
        if client_id in self._apps:
            raise self._aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        raise self._unknown_client(client_id)

    def _device_code(self, form: dict[str, str]) -> dict[str, Any]:
        client_id = form.get("client_id", "")
        self._check_public_client(client_id)
        scopes = self._delegated_scopes(form.get("scope", ""))
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
        code = DeviceCode(
            user_code,
            "DAQABAAEAAA" + secrets.token_urlsafe(48),
            client_id,
            scopes,
            time.time() + DEVICE_CODE_LIFETIME,
        )
        self.device_codes[user_code] = code
        if self.auto_approve is not None:
            self.approve_device(user_code, self.auto_approve)
        where = f"{self.authority_host}/devicelogin"
        return {
            "user_code": user_code,
            "device_code": code.device_code,
            "verification_uri": where,
            "expires_in": DEVICE_CODE_LIFETIME,
            "interval": self.device_interval,
            "message": f"To sign in, use a web browser to open the page {where} and enter the code "
            f"{user_code} to authenticate.",
        }

    def _redeem_device_code(self, form: dict[str, str]) -> dict[str, Any]:
        client_id = form.get("client_id", "")
        self._check_public_client(client_id)
        value = form.get("device_code") or form.get("code") or ""
        code = next((c for c in self.device_codes.values() if c.device_code == value), None)
        if code is None or code.client_id != client_id:
            raise self._aad_error(
                400, "invalid_grant", 70000, "The provided value for 'device_code' is not valid."
            )
        if code.state == "redeemed":
            raise self._aad_error(
                400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed."
            )
        if time.time() >= code.expires_at:
            raise self._aad_error(
                400, "expired_token", 70020, "The provided authorization code or refresh token has expired."
            )
        if code.state == "denied":
            raise self._aad_error(
                400, "authorization_declined", 70019, "The user declined the authorization request."
            )
        if code.state == "pending" or code.user_id is None:
            raise self._aad_error(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        code.state = "redeemed"
        return self._user_tokens(client_id, code.user_id, code.scopes, form)

    def _redeem_refresh_token(self, form: dict[str, str]) -> dict[str, Any]:
        client_id = form.get("client_id", "")
        self._check_public_client(client_id)
        grant = self._refresh_tokens.get(form.get("refresh_token", ""))
        if grant is None or grant.client_id != client_id:
            raise self._aad_error(
                400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
            )
        if grant.revoked:
            raise self._aad_error(
                400,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The "
                "user might have changed or reset their password.",
            )
        user = self._users.get(grant.user_id)
        if user is None or not user.enabled:
            raise self._aad_error(400, "invalid_grant", 50057, "The user account is disabled.")
        scopes = self._delegated_scopes(form["scope"]) if form.get("scope") else grant.scopes
        return self._user_tokens(client_id, grant.user_id, scopes, form)

    def _user_tokens(
        self, client_id: str, user_id: str, scopes: tuple[str, ...], form: dict[str, str]
    ) -> dict[str, Any]:
        user = self._users[user_id]
        permissions = {_short_scope(s) for s in scopes} - OIDC_SCOPES
        refresh = "fake-graph-rt." + secrets.token_urlsafe(48)
        self._refresh_tokens[refresh] = _RefreshToken(client_id, user_id, scopes)
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(sorted(s for s in scopes if s != "offline_access")),
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": self._issue_access_token(client_id, user_id, permissions),
            "refresh_token": refresh,
        }
        if "openid" in scopes:
            answer["id_token"] = self._id_token(client_id, user)
        if form.get("client_info") == "1":
            answer["client_info"] = _b64url(json.dumps({"uid": user.user_id, "utid": self.tenant}).encode())
        return answer

    def _id_token(self, client_id: str, user: _User) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self._signing_kid}
        claims = {
            "aud": client_id,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "name": user.display_name,
            "oid": user.user_id,
            "preferred_username": user.email,
            "sub": _b64url(hashlib.sha256(f"{user.user_id}|{client_id}".encode()).digest()),
            "tid": self.tenant,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._signing_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    # ------------------------------------------------------------------ Graph

    def _token_for(self, headers: Any) -> _AccessToken | None:
        scheme, _, value = str(headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self._tokens.get(value.strip())

    def _require_token(self, handler: RequestHandler) -> _AccessToken:
        header = str(handler.headers.get("Authorization") or "")
        challenge = {"WWW-Authenticate": self._www_authenticate()}
        if not header.strip():
            raise self._graph_error(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
        token = self._token_for(handler.headers)
        if token is None:
            raise self._graph_error(
                401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.", challenge
            )
        if token.expired or token.expires_at <= time.time():
            raise self._graph_error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                challenge,
            )
        return token

    def _route_graph(
        self,
        method: str,
        raw_path: str,
        segments: list[str],
        query: dict[str, list[str]],
        handler: RequestHandler,
        body: bytes,
        record: RequestRecord,
    ) -> tuple[int, dict[str, Any] | RawBody | None, dict[str, str]]:
        token = self._require_token(handler)
        raw_segments = raw_path.split("/")[2:]  # after "", "v1.0"
        if segments == ["users"]:
            if method != "GET":
                raise self._not_served(method, raw_path)
            return 200, self._list_users(token, query), {}
        if segments[:1] == ["users"] and len(segments) >= 2:
            user_segment, rest, raw_prefix = segments[1], segments[2:], "/".join(raw_segments[:2])
            raw_rest = raw_segments[2:]
        elif segments[:1] == ["me"]:
            if token.user_id is None:
                raise self._graph_error(
                    400, "BadRequest", "/me request is only valid with delegated authentication flow."
                )
            user_segment, rest, raw_prefix = token.user_id, segments[1:], "me"
            raw_rest = raw_segments[1:]
        else:
            raise self._not_served(method, raw_path)
        prefix = f"{self.graph_endpoint}/{raw_prefix}"
        if rest[:1] == ["drive"]:
            return self._drive.route(
                method, token, user_segment, "/".join(raw_rest[1:]), query, handler, body, record
            )
        if rest == ["events"] and method == "GET":
            return self._list_events(token, user_segment, query, handler, f"{prefix}/events")
        if len(rest) == 3 and rest[0] == "events" and rest[2] == "instances" and method == "GET":
            return self._list_instances(
                token, user_segment, rest[1], query, handler, f"{prefix}/events/{raw_rest[1]}/instances"
            )
        if rest == [] and method == "GET":
            return 200, self._get_user(token, user_segment, query), {}
        if rest == ["manager"] and method == "GET":
            return 200, self._get_manager(token, user_segment, query), {}
        if rest == ["mailboxSettings"] and method == "GET":
            user, _ = self._mailbox_access(token, user_segment, SETTINGS_READ)
            return (
                200,
                {
                    "@odata.context": f"{self.graph_endpoint}/$metadata#users('{user.user_id}')/"
                    "mailboxSettings",
                    "timeZone": user.time_zone,
                },
                {},
            )
        if [r.lower() for r in rest] == ["calendar", "getschedule"]:  # paths ignore case
            if method != "POST":
                raise self._not_served(method, raw_path)
            return self._get_schedule(token, user_segment, handler, body, record)
        if rest == ["calendarView", "delta"] and method == "GET":
            return self._delta(token, user_segment, query, handler, f"{prefix}/calendarView/delta")
        if rest == ["calendarView"] and method == "GET":
            return self._calendar_view(token, user_segment, query, handler, f"{prefix}/calendarView")
        if len(rest) == 2 and rest[0] == "events":
            if method == "GET":
                return self._get_event(token, user_segment, rest[1], query, handler)
            if method == "PATCH":
                return self._patch_event_http(token, user_segment, rest[1], handler, body, record)
            if method == "DELETE":
                user, box = self._mailbox_access(token, user_segment, CALENDAR_WRITE)
                try:
                    self._delete(box, rest[1])
                except KeyError:
                    raise self._item_not_found() from None
                return 204, None, {}
        raise self._not_served(method, raw_path)

    def _not_served(self, method: str, raw_path: str) -> _Error:
        return self._graph_error(
            400, "BadRequest", f"Resource not found for the segment (the fake serves no {method} {raw_path})."
        )

    def _item_not_found(self) -> _Error:
        return self._graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")

    def _mailbox_access(
        self, token: _AccessToken, user_segment: str, needed: frozenset[str]
    ) -> tuple[_User, _Mailbox]:
        """401 is done; now 403 (no permission), 404 (no user), 403 (not theirs / RBAC), 404 (no mailbox)."""
        if not (token.permissions & needed):
            raise self._graph_error(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        user = self._find_user(user_segment)
        if user is None:
            raise self._graph_error(
                404, "ErrorInvalidUser", f"The requested user '{user_segment}' is invalid."
            )
        if token.user_id is not None:
            if token.user_id != user.user_id:
                raise self._graph_error(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
        else:
            app = self._apps.get(token.client_id)
            if app is not None and app.mailboxes is not None and user.email.lower() not in app.mailboxes:
                raise self._graph_error(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
        if not user.mailbox:
            raise self._graph_error(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        return user, self._mailboxes[user.user_id]

    # ------------------------------------------------------------------ Graph: JSON batching

    def _batch(
        self, handler: RequestHandler, body: bytes, record: RequestRecord
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """``POST /v1.0/$batch``: each request answered as if it were sent alone (see the module doc)."""
        with self._lock:
            self._require_token(handler)
        if handler.command != "POST":
            raise self._not_served(handler.command, "/v1.0/$batch")
        if record.batch:
            raise self._graph_error(400, "BadRequest", "A batch request cannot contain another batch.")
        authorization = handler.headers.get("Authorization")
        responses: list[dict[str, Any]] = []
        for ident, method, target, headers, data in self._batch_requests(body):
            if authorization is not None:
                headers.append(("Authorization", str(authorization)))
            answer = self._process(_InnerRequest(method, target, headers, data), batch=True)
            if answer is None:
                raise _Dropped
            responses.append(self._batch_response(ident, answer))
        return 200, {"responses": responses}, {}

    def _batch_requests(self, body: bytes) -> list[tuple[str, str, str, list[tuple[str, str]], bytes]]:
        """The requests of a batch as ``(id, method, target, headers, body)``, the target with ``/v1.0``;
        anything malformed is a 400 for the whole batch."""

        def bad(message: str) -> _Error:
            return self._graph_error(400, "BadRequest", message)

        try:
            document = json.loads(body or b"null")
        except ValueError:
            raise bad("Invalid batch payload format: the body is not JSON.") from None
        requests = document.get("requests") if isinstance(document, dict) else None
        if not isinstance(requests, list) or not requests:
            raise bad("Invalid batch payload format: 'requests' must be a non-empty array.")
        if len(requests) > MAX_BATCH:
            raise bad(f"Batch request has more than {MAX_BATCH} requests ({len(requests)}).")
        calls: list[tuple[str, str, str, list[tuple[str, str]], bytes]] = []
        seen: set[str] = set()
        for index, request in enumerate(requests):
            if not isinstance(request, dict):
                raise bad(f"Invalid batch payload format: request {index} is not an object.")
            ident, method, url = request.get("id"), request.get("method"), request.get("url")
            if not isinstance(ident, str) or not ident:
                raise bad(f"Invalid batch payload format: request {index} has no 'id' (a string).")
            if ident in seen:
                raise bad(f"Batch request contains the id '{ident}' more than once.")
            seen.add(ident)
            if "dependsOn" in request:
                raise bad(f"Request '{ident}': dependsOn is not supported by the fake.")
            if not isinstance(method, str) or method.upper() not in _BATCH_METHODS:
                raise bad(f"Request '{ident}' has no valid 'method'.")
            if not isinstance(url, str) or not url:
                raise bad(f"Request '{ident}' has no 'url'.")
            split = urllib.parse.urlsplit(url)
            if split.scheme or split.netloc or url.startswith("//"):
                raise bad(f"Request '{ident}': the url must be relative to the version (e.g. /users/...).")
            raw_headers = request.get("headers", {})
            if not isinstance(raw_headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in raw_headers.items()
            ):
                raise bad(f"Request '{ident}': 'headers' must be an object of strings.")
            # the batch's own Authorization stands for every request in it
            headers = [(k, v) for k, v in raw_headers.items() if k.lower() != "authorization"]
            data = b""
            if "body" in request:
                content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
                if content_type is None:
                    raise bad(f"Request '{ident}' has a body but no Content-Type header.")
                media = content_type.partition(";")[0].strip().lower()
                if media == "application/json" or media.endswith("+json"):
                    data = json.dumps(request["body"]).encode()
                else:  # any other content is base64 in a batch
                    try:
                        data = base64.b64decode(str(request["body"]), validate=True)
                    except ValueError:
                        raise bad(f"Request '{ident}': a body that is not JSON must be base64.") from None
            target = "/v1.0" + (url if url.startswith("/") else f"/{url}")
            calls.append((ident, method.upper(), target, headers, data))
        return calls

    def _batch_response(self, ident: str, answer: _Answer) -> dict[str, Any]:
        """One entry of ``responses``: the answer's status, its headers (but ``Content-Length``), its body
        as JSON (raw bytes base64, none for no body)."""
        entry: dict[str, Any] = {"id": ident, "status": answer.status, "headers": answer.batch_headers()}
        if isinstance(answer.payload, RawBody):
            entry["body"] = base64.b64encode(answer.payload.data).decode()
        elif answer.payload is not None:
            entry["body"] = answer.payload
        return entry

    # ------------------------------------------------------------------ Graph: calendarView

    def _prefer(self, handler: RequestHandler) -> tuple[str | None, int | None, list[str]]:
        """``Prefer``: (time zone name if known, max page size if given, what to echo as applied)."""
        tz_name: str | None = None
        page: int | None = None
        applied: list[str] = []
        for header in handler.headers.get_all("Prefer") or []:
            for part in str(header).split(","):
                name, _, value = part.strip().partition("=")
                name, value = name.strip().lower(), value.strip().strip('"')
                if name == "outlook.timezone" and _known_zone(value) is not None:
                    tz_name = value
                    applied.append(f'outlook.timezone="{value}"')
                elif name == "odata.maxpagesize":
                    with contextlib.suppress(ValueError):
                        page = min(max(int(value), 1), MAX_PAGE_SIZE)
                        applied.append(f"odata.maxpagesize={page}")
        return tz_name, page, applied

    def _prefer_body(self, handler: RequestHandler) -> tuple[str | None, list[str]]:
        """``Prefer: outlook.body-content-type``: ("text" | "html" | None, what to echo as applied)."""
        kind: str | None = None
        for header in handler.headers.get_all("Prefer") or []:
            for part in str(header).split(","):
                name, _, value = part.strip().partition("=")
                value = value.strip().strip('"').lower()
                if name.strip().lower() == "outlook.body-content-type" and value in ("text", "html"):
                    kind = value
        return kind, ([f'outlook.body-content-type="{kind}"'] if kind else [])

    def _window(self, query: dict[str, str]) -> tuple[datetime, datetime]:
        if "startDateTime" not in query or "endDateTime" not in query:
            raise self._graph_error(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string parameters "
                "StartDateTime and EndDateTime.",
            )
        bounds = []
        for name in ("startDateTime", "endDateTime"):
            try:
                bounds.append(_parse_instant(query[name]))
            except ValueError:
                raise self._graph_error(
                    400,
                    "ErrorInvalidParameter",
                    f"The value '{query[name]}' of parameter '{name}' is invalid.",
                ) from None
        if bounds[1] <= bounds[0]:
            raise self._graph_error(
                400,
                "ErrorInvalidParameter",
                "The parameter 'EndDateTime' must be later than 'StartDateTime'.",
            )
        return bounds[0], bounds[1]

    def _delta(
        self,
        token: _AccessToken,
        user_segment: str,
        query_multi: dict[str, list[str]],
        handler: RequestHandler,
        link: str,
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        user, box = self._mailbox_access(token, user_segment, CALENDAR_READ)
        query = {k: v[-1] for k, v in query_multi.items()}
        clashing = [name for name in _DELTA_FORBIDDEN if name in query]
        if clashing:
            raise self._graph_error(
                400,
                "ErrorInvalidUrlQuery",
                "The following parameters are not supported with change tracking over the 'CalendarView' "
                f"resource: '{', '.join(clashing)}'.",
            )
        tz_name, page_size, applied = self._prefer(handler)
        skip, delta = query.get("$skiptoken"), query.get("$deltatoken")
        if skip is not None and delta is not None:
            raise self._graph_error(400, "ErrorInvalidUrlQuery", "Use either $skiptoken or $deltatoken.")
        if skip is not None:
            found = self._rounds.get(skip)
            if found is None or found[0].window is None or found[0].user_id != user.user_id:
                raise self._bad_token()
            round_, offset = found
            if round_.expired:
                raise self._sync_state_gone()
        else:
            if delta is not None:
                state = self._delta_tokens.get(delta)
                if state is None or state.user_id != user.user_id:
                    raise self._bad_token()
                if state.expired:
                    raise self._sync_state_gone()
                window, round_tz = state.window, tz_name or state.tz_name
                items, snapshot = self._incremental(box, state, round_tz)
                size = state.page_size
            else:
                window, round_tz = self._window(query), tz_name
                instances = self._instances(box, *window)
                items = self._delta_items(box, instances, round_tz)
                snapshot = {i.ident: i.change_key for i in instances}
                size = self.page_size_default
            texts, bodies = _encoded_items(items)
            round_ = _Round(user.user_id, texts, link, size, round_tz, window, snapshot, bodies=bodies)
            offset = 0
        if page_size is not None:
            round_.page_size = page_size
        body_kind, body_applied = self._prefer_body(handler)
        applied += body_applied
        answer = self._page(round_, offset, page_size or round_.page_size, "Collection(event)", body_kind)
        if "@odata.nextLink" not in answer:
            if round_.delta_token is None:
                round_.delta_token = "dt" + secrets.token_urlsafe(36)
                assert round_.window is not None
                self._delta_tokens[round_.delta_token] = _DeltaToken(
                    user.user_id,
                    round_.window,
                    round_.snapshot,
                    round_.tz_name,
                    round_.page_size,
                    round_.prefix,
                )
            answer["@odata.deltaLink"] = f"{round_.prefix}?$deltatoken={round_.delta_token}"
        headers = {"Preference-Applied": ", ".join(applied)} if applied else {}
        return 200, answer, headers

    def _page(
        self, round_: _Round, offset: int, size: int, context: str, body_kind: str | None = None
    ) -> dict[str, Any]:
        """A page of a round; a delta round's items with their bodies as ``body_kind`` asks."""
        end = offset + size
        value: Any = round_.items[offset:end]  # a users listing's views: never changed
        if round_.bodies is not None:
            wanted = body_kind or "html"
            texts = [
                text if body is False or body == wanted else _converted(text, body_kind)
                for text, body in zip(value, round_.bodies[offset:end], strict=True)
            ]
            value = JsonText(b"[" + b", ".join(texts) + b"]")  # as json.dumps writes a list
        answer: dict[str, Any] = {
            "@odata.context": f"{self.graph_endpoint}/$metadata#{context}",
            "value": value,
        }
        if end < len(round_.items):
            token = "st" + secrets.token_urlsafe(36)
            self._rounds[token] = (round_, end)
            answer["@odata.nextLink"] = f"{round_.prefix}?$skiptoken={token}"
        return answer

    def _incremental(
        self, box: _Mailbox, state: _DeltaToken, tz_name: str | None
    ) -> tuple[list[Any], dict[str, str]]:
        instances = self._instances(box, *state.window)
        snapshot = {i.ident: i.change_key for i in instances}
        items = self._delta_items(
            box, (i for i in instances if state.snapshot.get(i.ident) != i.change_key), tz_name
        )
        for ident in sorted(set(state.snapshot) - set(snapshot)):
            items.append(
                {"@odata.type": "#microsoft.graph.event", "id": ident, "@removed": {"reason": "deleted"}}
            )
        return items, snapshot

    def _bad_token(self) -> _Error:
        return self._graph_error(
            400, "ErrorInvalidUrlQuery", "The sync state token in the request is not valid."
        )

    def _sync_state_gone(self) -> _Error:
        return self._graph_error(
            410,
            "SyncStateNotFound",
            "The sync state could not be found: it has expired or was invalidated. Start a new sync "
            "without a delta or skip token.",
        )

    def _calendar_view(
        self,
        token: _AccessToken,
        user_segment: str,
        query_multi: dict[str, list[str]],
        handler: RequestHandler,
        link: str,
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        """The plain calendarView (no change tracking): ``$top`` (default 10) and ``$skip`` paging,
        ``$select`` honoured."""
        _, box = self._mailbox_access(token, user_segment, CALENDAR_READ)
        query = {k: v[-1] for k, v in query_multi.items()}
        window = self._window(query)
        tz_name, _, applied = self._prefer(handler)
        try:
            top = int(query.get("$top", "10"))
            skip = int(query.get("$skip", "0"))
        except ValueError:
            raise self._graph_error(400, "ErrorInvalidUrlQuery", "Invalid $top or $skip.") from None
        select = self._event_select(query.get("$select"))
        body_kind, body_applied = self._prefer_body(handler)
        applied += body_applied
        instances = self._instances(box, *window)
        page = instances[skip : skip + top]
        full = self.full_occurrences or select is not None  # real calendarView answers full occurrences
        values = [
            _render_body(_select(self._instance_view(box, i, tz_name, full), select), body_kind) for i in page
        ]
        answer: dict[str, Any] = {
            "@odata.context": f"{self.graph_endpoint}/$metadata#Collection(event)",
            "value": values,
        }
        if skip + top < len(instances):
            rest = {k: v for k, v in query.items() if k != "$skip"}
            rest["$skip"] = str(skip + top)
            answer["@odata.nextLink"] = f"{link}?{urllib.parse.urlencode(rest, safe='$:,')}"
        return 200, answer, ({"Preference-Applied": ", ".join(applied)} if applied else {})

    # ------------------------------------------------------------------ Graph: getSchedule

    def _get_schedule(
        self,
        token: _AccessToken,
        user_segment: str,
        handler: RequestHandler,
        body: bytes,
        record: RequestRecord,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """``POST /users/{u}/calendar/getSchedule`` (see the module doc)."""
        asker, _ = self._mailbox_access(token, user_segment, SCHEDULE_READ)
        try:
            document = json.loads(body or b"null")
        except ValueError:
            raise self._graph_error(400, "BadRequest", "The request body is not valid JSON.") from None
        if not isinstance(document, dict):
            raise self._graph_error(400, "BadRequest", "The request body must be a JSON object.")
        record.body = document
        fields = {str(k).lower(): v for k, v in document.items()}  # Graph reads them in any case
        schedules = fields.get("schedules")
        if not isinstance(schedules, list) or not schedules or not all(isinstance(x, str) for x in schedules):
            raise self._graph_error(
                400, "ErrorInvalidParameter", "'schedules' must be a non-empty collection of SMTP addresses."
            )
        if len(schedules) > self.schedule_limit:
            raise self._graph_error(
                400,
                "ErrorMailboxDataArrayTooBig",
                "There are too many target users in the EmailAddress array. The allowed size = "
                f"{self.schedule_limit}; the actual size = {len(schedules)}.",
            )
        bounds = []
        for name in ("startTime", "endTime"):
            value = fields.get(name.lower())
            zone = value.get("timeZone") if isinstance(value, dict) else None
            try:
                if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
                    raise ValueError(name)
                if zone is not None and _known_zone(str(zone)) is None:
                    raise ValueError(zone)
                bounds.append(_local(value))
            except ValueError:
                raise self._graph_error(
                    400, "ErrorInvalidParameter", f"'{name}' must be a dateTimeTimeZone."
                ) from None
        lo, hi = bounds
        if hi <= lo:
            raise self._graph_error(400, "ErrorInvalidParameter", "'endTime' must be later than 'startTime'.")
        if hi - lo >= timedelta(days=self.schedule_max_days):
            raise self._graph_error(
                400,
                "ErrorTimeIntervalTooBig",
                f"The time period must be less than {self.schedule_max_days} days.",
            )
        interval = fields.get("availabilityviewinterval", 30)
        try:
            minutes = int(interval)
            if isinstance(interval, bool) or not 5 <= minutes <= 1440:
                raise ValueError(interval)
        except (TypeError, ValueError):
            raise self._graph_error(
                400, "ErrorInvalidParameter", "'availabilityViewInterval' must be 5 to 1440 (minutes)."
            ) from None
        tz_name, _, applied = self._prefer(handler)
        applied = [a for a in applied if a.startswith("outlook.timezone")]
        value = [self._schedule(address, asker, lo, hi, minutes, tz_name) for address in schedules]
        context = f"{self.graph_endpoint}/$metadata#Collection(microsoft.graph.scheduleInformation)"
        answer = {"@odata.context": context, "value": value}
        return 200, answer, ({"Preference-Applied": ", ".join(applied)} if applied else {})

    def _schedule(
        self, address: str, asker: _User, lo: datetime, hi: datetime, minutes: int, tz_name: str | None
    ) -> dict[str, Any]:
        """One scheduleInformation: the schedule's items over [lo, hi), its availabilityView, its
        working hours; for an address that is no mailbox, only an ``error``."""
        user = self._find_user(address)
        if user is None or not user.mailbox or user.email.lower() != address.strip().lower():
            return {
                "scheduleId": address,
                "error": {
                    "message": f"Unable to resolve e-mail address {address} to an Active Directory object.",
                    "responseCode": "5009",
                },
            }
        own = user.user_id == asker.user_id
        items: list[dict[str, Any]] = []
        busy: list[tuple[datetime, datetime, int]] = []
        for instance in self._instances(self._mailboxes[user.user_id], lo, hi):
            event = instance.event
            if instance.kind == "occurrence":
                resource = event.resource
                cancelled = bool(resource.get("isCancelled")) or instance.original in event.kept
                if instance.end is not None:
                    start, end = instance.start, instance.end
                else:
                    assert instance.original is not None
                    start, end = _instance_times(resource, self._pattern_of(event), instance.original)
            else:
                resource = event.resource
                cancelled = bool(resource.get("isCancelled"))
                if instance.kind == "exception":
                    master = self._mailboxes[user.user_id].events.get(str(resource.get("seriesMasterId")))
                    cancelled = cancelled or bool(master is not None and master.resource.get("isCancelled"))
                start, end = event.times()
            if cancelled:
                continue  # a cancelled meeting takes no time
            status = str(resource.get("showAs") or "busy")
            item: dict[str, Any] = {"status": status}
            if own:  # the caller's own calendar says more; another's only when and how busy
                private = resource.get("sensitivity") == "private"
                item["isPrivate"] = private
                if not private:
                    item["subject"] = str(resource.get("subject") or "")
                    item["location"] = str(((resource.get("location") or {}).get("displayName")) or "")
            item["start"] = _render_time(start, False, tz_name)
            item["end"] = _render_time(end, False, tz_name)
            items.append(item)
            busy.append((start, end, _AVAILABILITY.get(status, 0)))
        view = []
        slot = timedelta(minutes=minutes)
        at = lo
        while at < hi:
            following = at + slot
            view.append(str(max((code for s, e, code in busy if s < following and e > at), default=0)))
            at = following
        return {
            "scheduleId": address,
            "availabilityView": "".join(view),
            "scheduleItems": items,
            "workingHours": {
                "daysOfWeek": list(_WORKING_DAYS),
                "startTime": "08:00:00.0000000",
                "endTime": "17:00:00.0000000",
                "timeZone": {"name": user.time_zone},
            },
        }

    # ------------------------------------------------------------------ Graph: events

    def _event_select(self, raw: str | None) -> set[str] | None:
        if raw is None:
            return None
        names = {n.strip() for n in raw.split(",") if n.strip()}
        lowered = {p.lower(): p for p in _EVENT_PROPERTIES}
        out = set()
        for name in names:
            if name.lower() not in lowered:
                raise self._graph_error(
                    400,
                    "RequestBroker--ParseUri",
                    f"Could not find a property named '{name}' on type 'microsoft.graph.event'.",
                )
            out.add(lowered[name.lower()])
        return out

    def _find_event(
        self, box: _Mailbox, event_id: str
    ) -> tuple[dict[str, Any] | None, _Event | None, _Instance | None]:
        event = box.events.get(event_id)
        if event is not None:
            return event.resource, event, None
        occurrence = self._resolve_occurrence(box, event_id)
        if occurrence is None:
            raise self._item_not_found()
        master, original = occurrence
        pattern = self._pattern_of(master)
        start, _ = _instance_times(master.resource, pattern, original)
        seed = f"{master.resource['changeKey']}|{_utc_z(original)}".encode()
        key = "DwAAABYAAA" + base64.b64encode(hashlib.sha256(seed).digest()[:15]).decode()
        return None, None, _Instance(event_id, key, start, "occurrence", master, original)

    def _get_event(
        self,
        token: _AccessToken,
        user_segment: str,
        event_id: str,
        query_multi: dict[str, list[str]],
        handler: RequestHandler,
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        user, box = self._mailbox_access(token, user_segment, CALENDAR_READ)
        query = {k: v[-1] for k, v in query_multi.items()}
        select = self._event_select(query.get("$select"))
        tz_name, _, applied = self._prefer(handler)
        _, event, instance = self._find_event(box, event_id)
        if event is not None:
            view = self._event_view(box, event, tz_name)
        else:
            assert instance is not None
            view = self._instance_view(box, instance, tz_name, full=True)
            view.pop("@odata.type", None)
        view = _select(view, select)
        body_kind, body_applied = self._prefer_body(handler)
        view = _render_body(view, body_kind)
        applied += body_applied
        view = {
            "@odata.context": f"{self.graph_endpoint}/$metadata#users('{user.user_id}')/events/$entity",
            **view,
        }
        headers = {"ETag": view["@odata.etag"]}
        if applied:
            headers["Preference-Applied"] = ", ".join(applied)
        return 200, view, headers

    def _patch_event_http(
        self,
        token: _AccessToken,
        user_segment: str,
        event_id: str,
        handler: RequestHandler,
        body: bytes,
        record: RequestRecord,
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        user, box = self._mailbox_access(token, user_segment, CALENDAR_WRITE)
        try:
            changes = json.loads(body or b"{}")
        except ValueError:
            raise self._graph_error(400, "RequestBodyRead", "Invalid JSON in the request body.") from None
        if not isinstance(changes, dict):
            raise self._graph_error(400, "RequestBodyRead", "The request body must be a JSON object.")
        record.body = copy.deepcopy(changes)
        changes.pop("lastModifiedDateTime", None)  # read-only over HTTP (the Python API may set it)
        resource, _, instance = self._find_event(box, event_id)
        etag = (
            resource["@odata.etag"]
            if resource is not None
            else f'W/"{instance.change_key if instance else ""}"'
        )
        if_match = handler.headers.get("If-Match")
        if if_match is not None and if_match.strip() not in ("*", etag):
            raise self._graph_error(
                412,
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed in the "
                "request does not match the current change key for the item.",
            )
        try:
            patched = self._patch(box, user, event_id, changes)
        except (ValueError, KeyError) as exc:
            raise self._graph_error(400, "ErrorInvalidRequest", str(exc)) from None
        if (
            changes.keys() & MEETING_UPDATE_FIELDS
            and patched.resource.get("attendees")
            and patched.resource.get("isOrganizer")
        ):
            self.meeting_updates.append((user.email.lower(), event_id))
        tz_name, _, applied = self._prefer(handler)
        body_kind, body_applied = self._prefer_body(handler)
        applied += body_applied
        view = self._event_view(box, patched, tz_name)
        view = _render_body(view, body_kind)
        view = {
            "@odata.context": f"{self.graph_endpoint}/$metadata#users('{user.user_id}')/events/$entity",
            **view,
        }
        headers = {"ETag": view["@odata.etag"]}
        if applied:
            headers["Preference-Applied"] = ", ".join(applied)
        return 200, view, headers

    def _event_filter(self, raw: str | None) -> list[tuple[str, str]]:
        """``$filter`` on /events: ``iCalUId eq '...'`` and ``type eq '...'`` joined with ``and``."""
        if raw is None:
            return []
        clauses: list[tuple[str, str]] = []
        position = 0
        while position < len(raw):
            match = _FILTER_CLAUSE.match(raw, position)
            names = {"icaluid": "iCalUId", "type": "type"}
            if match is None or match.group(1).lower() not in names:
                raise self._graph_error(
                    400,
                    "ErrorInvalidUrlQueryFilter",
                    f"The query filter contains one or more invalid nodes (the fake takes iCalUId eq '...' "
                    f"and type eq '...' joined with 'and', not {raw!r}).",
                )
            clauses.append((names[match.group(1).lower()], match.group(2).replace("''", "'")))
            position = match.end()
            if match.group(3) is None and position < len(raw):
                raise self._graph_error(400, "ErrorInvalidUrlQueryFilter", f"Invalid filter {raw!r}.")
            if match.group(3) is not None and position >= len(raw.rstrip()):
                raise self._graph_error(400, "ErrorInvalidUrlQueryFilter", f"Invalid filter {raw!r}.")
        return clauses

    def _paging(self, query: dict[str, str]) -> tuple[int, int]:
        try:
            top = int(query.get("$top", "10"))
            skip = int(query.get("$skip", "0"))
        except ValueError:
            raise self._graph_error(400, "ErrorInvalidUrlQuery", "Invalid $top or $skip.") from None
        if not 1 <= top <= MAX_PAGE_SIZE or skip < 0:
            raise self._graph_error(400, "ErrorInvalidUrlQuery", f"Invalid $top {top} or $skip {skip}.")
        return top, skip

    def _list_events(
        self,
        token: _AccessToken,
        user_segment: str,
        query_multi: dict[str, list[str]],
        handler: RequestHandler,
        link: str,
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        """``GET /events``: single instances and series masters (never occurrences or exceptions),
        ``$filter`` (see :meth:`_event_filter`), ``$select``, ``$top`` (default 10) and ``$skip``."""
        user, box = self._mailbox_access(token, user_segment, CALENDAR_READ)
        query = {k: v[-1] for k, v in query_multi.items()}
        for unsupported in ("$orderby", "$search", "$expand", "$count"):
            if unsupported in query:
                raise self._graph_error(
                    400, "ErrorInvalidUrlQuery", f"The fake does not support {unsupported} on /events."
                )
        clauses = self._event_filter(query.get("$filter"))
        top, skip = self._paging(query)
        select = self._event_select(query.get("$select"))
        tz_name, _, applied = self._prefer(handler)
        body_kind, body_applied = self._prefer_body(handler)
        applied += body_applied
        events = [
            e
            for e in box.events.values()
            if e.kind in ("singleInstance", "seriesMaster")
            and all(str(e.resource.get(name)) == value for name, value in clauses)
        ]
        events.sort(key=lambda e: (e.times()[0], e.ident))
        values = []
        for event in events[skip : skip + top]:
            view = _select(self._event_view(box, event, tz_name), select)
            values.append(_render_body(view, body_kind))
        answer: dict[str, Any] = {
            "@odata.context": f"{self.graph_endpoint}/$metadata#users('{user.user_id}')/events",
            "value": values,
        }
        if skip + top < len(events):
            rest = {k: v for k, v in query.items() if k != "$skip"}
            rest["$skip"] = str(skip + top)
            answer["@odata.nextLink"] = _next_link(link, rest)
        return 200, answer, ({"Preference-Applied": ", ".join(applied)} if applied else {})

    def _list_instances(
        self,
        token: _AccessToken,
        user_segment: str,
        event_id: str,
        query_multi: dict[str, list[str]],
        handler: RequestHandler,
        link: str,
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        """``GET /events/{id}/instances``: a master's occurrences and exceptions in the window (the ids
        calendarView gives, full properties); any other event has none."""
        user, box = self._mailbox_access(token, user_segment, CALENDAR_READ)
        query = {k: v[-1] for k, v in query_multi.items()}
        window = self._window(query)
        top, skip = self._paging(query)
        select = self._event_select(query.get("$select"))
        tz_name, _, applied = self._prefer(handler)
        body_kind, body_applied = self._prefer_body(handler)
        applied += body_applied
        event = box.events.get(event_id)
        if event is None and self._resolve_occurrence(box, event_id) is None:
            raise self._item_not_found()
        instances: list[_Instance] = []
        if event is not None and event.kind == "seriesMaster":
            instances = list(self._occurrences(box, event, *window))  # its own: exceptions are added
            for exception_id in event.exceptions.values():
                exception = box.events[exception_id]
                start, end = exception.times()
                if _overlaps(start, end, *window):
                    key = str(exception.resource["changeKey"])
                    instances.append(
                        _Instance(exception.ident, key, start, "exception", exception, exception.original)
                    )
            instances.sort(key=_START_THEN_ID)
        values = []
        for instance in instances[skip : skip + top]:
            view = self._instance_view(box, instance, tz_name, full=True)
            view.pop("@odata.type", None)
            view = _select(view, select)
            values.append(_render_body(view, body_kind))
        answer: dict[str, Any] = {
            "@odata.context": f"{self.graph_endpoint}/$metadata#users('{user.user_id}')/events"
            f"('{event_id}')/instances",
            "value": values,
        }
        if skip + top < len(instances):
            rest = {k: v for k, v in query.items() if k != "$skip"}
            rest["$skip"] = str(skip + top)
            answer["@odata.nextLink"] = _next_link(link, rest)
        return 200, answer, ({"Preference-Applied": ", ".join(applied)} if applied else {})

    # ------------------------------------------------------------------ Graph: users

    def _require_directory(self, token: _AccessToken, *, self_ok: str | None = None) -> None:
        own = token.user_id is not None and self_ok is not None and token.user_id == self_ok
        if own and token.permissions & (USERS_READ_SCOPES | {"User.Read"}):
            return
        allowed = USERS_READ_SCOPES if token.user_id is not None else USERS_READ_ROLES
        if not (token.permissions & allowed):
            raise self._graph_error(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )

    def _user_select(self, raw: str | None) -> tuple[str, ...]:
        if raw is None:
            return _USER_DEFAULT
        lowered = {p.lower(): p for p in _USER_PROPERTIES}
        out = []
        for name in (n.strip() for n in raw.split(",")):
            if not name:
                continue
            if name.lower() not in lowered:
                raise self._graph_error(
                    400,
                    "Request_BadRequest",
                    f"Could not find a property named '{name}' on type 'microsoft.graph.user'.",
                )
            out.append(lowered[name.lower()])
        return tuple(out)

    def _user_view(self, user: _User, select: tuple[str, ...]) -> dict[str, Any]:
        given, _, family = user.display_name.partition(" ")
        full: dict[str, Any] = {
            "id": user.user_id,
            "businessPhones": [],
            "displayName": user.display_name,
            "givenName": given or None,
            "surname": family or None,
            "jobTitle": None,
            "mail": user.email if user.mailbox else None,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": None,
            "userPrincipalName": user.email,
            "accountEnabled": user.enabled,
            "department": None,
            "userType": "Member",
            "companyName": None,
        }
        return {name: full[name] for name in select}

    def _manager_of(self, user: _User) -> _User | None:
        return self._find_user(user.manager) if user.manager else None

    def _list_users(self, token: _AccessToken, query_multi: dict[str, list[str]]) -> dict[str, Any]:
        self._require_directory(token)
        query = {k: v[-1] for k, v in query_multi.items()}
        skip = query.get("$skiptoken")
        if skip is not None:
            found = self._rounds.get(skip)
            if found is None or found[0].window is not None:
                raise self._graph_error(
                    400, "Directory_ExpiredPageToken", "The specified page token value has expired."
                )
            round_, offset = found
            return self._page(round_, offset, round_.page_size, "users")
        for unsupported in ("$filter", "$orderby", "$search", "$count", "$skip"):
            if unsupported in query:
                raise self._graph_error(
                    400, "Request_UnsupportedQuery", f"The fake does not support {unsupported} on /users."
                )
        try:
            top = int(query.get("$top", str(DEFAULT_USERS_TOP)))
        except ValueError:
            raise self._graph_error(400, "Request_BadRequest", "Invalid page size specified.") from None
        if not 1 <= top <= MAX_USERS_TOP:
            raise self._graph_error(
                400,
                "Request_BadRequest",
                f"Invalid page size specified: '{top}'. Must be between 1 and {MAX_USERS_TOP} inclusive.",
            )
        select = self._user_select(query.get("$select"))
        expand = self._manager_expand(query.get("$expand"))
        items = []
        for user in self._users.values():
            view = self._user_view(user, select)
            if expand is not None:
                manager = self._manager_of(user)
                if manager is not None:
                    view["manager"] = {
                        "@odata.type": "#microsoft.graph.user",
                        **self._user_view(manager, expand),
                    }
            items.append(view)
        round_ = _Round(None, items, f"{self.graph_endpoint}/users", top)
        return self._page(round_, 0, top, "users")

    def _manager_expand(self, raw: str | None) -> tuple[str, ...] | None:
        if raw is None:
            return None
        match = re.fullmatch(r"\s*manager\s*(?:\(\s*\$select\s*=\s*([^)]*)\))?\s*", raw)
        if match is None:
            raise self._graph_error(
                400, "Request_UnsupportedQuery", f"The fake expands only manager, not {raw!r}."
            )
        return self._user_select(match.group(1)) if match.group(1) is not None else _USER_DEFAULT

    def _directory_user(self, user_segment: str) -> _User:
        user = self._find_user(user_segment)
        if user is None:
            raise self._graph_error(
                404,
                "Request_ResourceNotFound",
                f"Resource '{user_segment}' does not exist or one of its queried reference-property objects "
                "are not present.",
            )
        return user

    def _get_user(
        self, token: _AccessToken, user_segment: str, query_multi: dict[str, list[str]]
    ) -> dict[str, Any]:
        found = self._find_user(user_segment)
        self._require_directory(token, self_ok=found.user_id if found else None)
        user = self._directory_user(user_segment)
        query = {k: v[-1] for k, v in query_multi.items()}
        return {
            "@odata.context": f"{self.graph_endpoint}/$metadata#users/$entity",
            **self._user_view(user, self._user_select(query.get("$select"))),
        }

    def _get_manager(
        self, token: _AccessToken, user_segment: str, query_multi: dict[str, list[str]]
    ) -> dict[str, Any]:
        self._require_directory(token)
        user = self._directory_user(user_segment)
        manager = self._manager_of(user)
        if manager is None:
            raise self._graph_error(
                404,
                "Request_ResourceNotFound",
                "Resource 'manager' does not exist or one of its queried reference-property objects are not "
                "present.",
            )
        query = {k: v[-1] for k, v in query_multi.items()}
        return {
            "@odata.context": f"{self.graph_endpoint}/$metadata#directoryObjects/$entity",
            "@odata.type": "#microsoft.graph.user",
            **self._user_view(manager, self._user_select(query.get("$select"))),
        }


# ---------------------------------------------------------------------------------------------- more helpers


def _addresses(mailboxes: Iterable[str] | None) -> frozenset[str] | None:
    return None if mailboxes is None else frozenset(m.lower() for m in mailboxes)


def _short_scope(scope: str) -> str:
    for prefix in (GRAPH_RESOURCE + "/", GRAPH_APP_ID + "/"):
        if scope.startswith(prefix):
            return scope[len(prefix) :]
    return scope


def _stored_times(resource: Mapping[str, Any]) -> tuple[datetime, datetime]:
    """A stored event's [start, end) as instants (all-day: midnight in its own zone)."""
    return _local(resource["start"]), _local(resource["end"])


def _instance_times(
    master: Mapping[str, Any], pattern: _Pattern, original: datetime
) -> tuple[datetime, datetime]:
    """An occurrence's start and end: aware instants, or for an all-day series its midnights in the
    series' zone (as aware datetimes whose wall clock is midnight)."""
    if pattern.all_day:
        day = original.astimezone(pattern.zone).replace(tzinfo=None)
        start = datetime.combine(day.date(), datetime.min.time()).replace(tzinfo=pattern.zone)
        return start, (start.replace(tzinfo=None) + pattern.duration).replace(tzinfo=pattern.zone)
    return original, original + pattern.duration


def _render_time(moment: datetime, all_day: bool, tz_name: str | None) -> dict[str, str]:
    """A ``dateTimeTimeZone`` in the preferred zone (UTC by default). All-day: the stored date, unshifted."""
    name = tz_name or "UTC"
    return {"dateTime": _render_wall(moment, all_day, name), "timeZone": name}


def _render_wall(moment: datetime, all_day: bool, name: str) -> str:
    """The ``dateTime`` of :func:`_render_time` (``name``: the zone's name, not None)."""
    if all_day:
        return _wall(datetime.combine(moment.date(), datetime.min.time()))
    return _wall(moment.astimezone(zone_info(name)))  # _wall drops the offset


def _next_link(link: str, query: dict[str, str]) -> str:
    return f"{link}?{urllib.parse.urlencode(query, safe='$:,', quote_via=urllib.parse.quote)}"


def _select(view: dict[str, Any], select: set[str] | None) -> dict[str, Any]:
    if select is None:
        return view
    keep = select | {"id", "@odata.etag", "@odata.type", "@odata.context"}
    return {k: v for k, v in view.items() if k in keep}
