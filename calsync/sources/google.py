"""Google Calendar: event resources from ``events.list`` -> the normalised model.

Each Google event (a recurring master with its ``recurrence`` lines, an exception with
``recurringEventId`` and ``originalStartTime``, a one-off, or a cancelled tombstone) becomes the VEVENT
it stands for, and the VEVENTs of one calendar go through the same reader as an ICS file
(:func:`calsync.sources.ics.read_calendars`). Recurrences are therefore expanded locally in the event's
own time zone by one engine for every provider, and EXDATEs, overrides and versions mean the same
everywhere.

Quirks fixed here, at the boundary:

- a cancelled exception may carry only ``id``, ``recurringEventId`` and ``originalStartTime``: its UID
  comes from its master, and it takes its master's version (it is at least as new as the series);
- a deleted event may carry only ``id`` and ``status``: without its master or its iCalUID it is gone,
  which is what it says;
- a dateTime without a ``timeZone`` is read in the calendar's time zone, so that dates are local;
- ``attendeesOmitted`` marks the guest list as incomplete: that copy alone never makes a 1:1;
- attendees with ``resource: true`` are rooms and resources.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import google_auth_httplib2
import httplib2
import icalendar
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from google.oauth2.credentials import Credentials as UserCredentials
from google_auth_oauthlib.flow import InstalledAppFlow
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from calsync.config import DEFAULT_CONCURRENCY
from calsync.model import CalendarData, Problem
from calsync.progress import NoProgress, Progress
from calsync.sources.base import (
    ReadCache,
    Reading,
    SourceResult,
    Window,
    cached_reading,
    new_revision,
    read_concurrently,
)
from calsync.sources.ics import ATTENDEES_OMITTED, read_converted
from calsync.sources.retry import RateLimiter, RetryPolicy, check
from calsync.store import CalendarState, StateStore, write_private
from calsync.telemetry import GOOGLE, REQUESTS

Event = Mapping[str, Any]

_PARTSTAT = {
    "accepted": "ACCEPTED",
    "declined": "DECLINED",
    "tentative": "TENTATIVE",
    "needsAction": "NEEDS-ACTION",
}
_RECURRENCE_PROPERTIES = ("RRULE", "RDATE", "EXDATE")


def google_calendar_data(
    events: Iterable[Event], label: str, calendar_tz: str, window: Window, default_tz: tzinfo
) -> tuple[CalendarData, list[Problem]]:
    """The normalised model of one Google calendar's events (as ``events.list`` returns them)."""
    events = list(events)
    by_id = {str(e["id"]): e for e in events if "id" in e}
    return read_converted(
        events, lambda event: to_vevent(event, by_id, calendar_tz), _describe, label, window, default_tz
    )


def to_vevent(event: Event, by_id: Mapping[str, Event], calendar_tz: str) -> icalendar.Event | None:
    """The VEVENT a Google event resource stands for, or None for a tombstone of an unknown event."""
    master = by_id.get(str(event["recurringEventId"])) if "recurringEventId" in event else None
    uid = event.get("iCalUID") or (master.get("iCalUID") if master is not None else None)
    if not uid:
        return None
    zone = _zone_name(event, master, calendar_tz)

    vevent = icalendar.Event()
    vevent.add("uid", str(uid))
    if "originalStartTime" in event:
        vevent.add("recurrence-id", _when(event["originalStartTime"], zone))
    start = event.get("start") or event.get("originalStartTime")
    if start is None:
        if event.get("status") == "cancelled":
            return None  # a deleted event reduced to its id: nothing left to say
        raise ValueError("no start")
    vevent.add("dtstart", _when(start, zone))
    if "end" in event:
        vevent.add("dtend", _when(event["end"], zone))

    status = str(event.get("status", "confirmed"))
    if status == "cancelled":
        vevent.add("status", "CANCELLED")
    elif status == "tentative":
        vevent.add("status", "TENTATIVE")
    if event.get("summary"):
        vevent.add("summary", str(event["summary"]))

    # A tombstone carries no version: it is at least as new as its series.
    versioned = event if ("sequence" in event or "updated" in event or master is None) else master
    vevent.add("sequence", int(versioned.get("sequence", 0)))
    if versioned.get("updated"):
        vevent.add("last-modified", _timestamp(str(versioned["updated"])))

    if event.get("recurrence"):
        _copy_recurrence(vevent, event["recurrence"])

    organizer = (event.get("organizer") or {}).get("email")
    if organizer:
        vevent.add("organizer", icalendar.vCalAddress(f"mailto:{organizer}"))
    for attendee in event.get("attendees") or ():
        email = attendee.get("email")
        if not email:
            continue
        address = icalendar.vCalAddress(f"mailto:{email}")
        address.params["PARTSTAT"] = _PARTSTAT.get(str(attendee.get("responseStatus")), "NEEDS-ACTION")
        address.params["CUTYPE"] = "RESOURCE" if attendee.get("resource") else "INDIVIDUAL"
        if attendee.get("displayName"):
            address.params["CN"] = str(attendee["displayName"])
        vevent.add("attendee", address)
    if event.get("attendeesOmitted"):
        vevent.add(ATTENDEES_OMITTED, "TRUE")
    return vevent


def _zone_name(event: Event, master: Event | None, calendar_tz: str) -> str:
    for source in (event, master or {}):
        for key in ("start", "originalStartTime"):
            name = (source.get(key) or {}).get("timeZone")
            if name:
                return str(name)
    return calendar_tz


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _when(value: Mapping[str, Any], zone: str) -> date | datetime:
    """A Google ``start``/``end``/``originalStartTime`` as a date, or a datetime in the event's zone."""
    if "dateTime" in value:
        moment = datetime.fromisoformat(str(value["dateTime"]))
        tz = _zone(str(value.get("timeZone") or zone))
        return moment.astimezone(tz) if moment.tzinfo is not None else moment.replace(tzinfo=tz)
    if "date" in value:
        return date.fromisoformat(str(value["date"]))
    raise ValueError("a time with neither dateTime nor date")


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _copy_recurrence(vevent: icalendar.Event, lines: Iterable[str]) -> None:
    """RRULE / RDATE / EXDATE lines, as Google keeps them, parsed by icalendar."""
    text = "BEGIN:VEVENT\r\n" + "".join(f"{line}\r\n" for line in lines) + "END:VEVENT\r\n"
    parsed = icalendar.Event.from_ical(text)
    if parsed.errors:
        prop, message = parsed.errors[0]
        raise ValueError(f"bad recurrence {prop}: {message}")
    for name in _RECURRENCE_PROPERTIES:
        if name in parsed:
            vevent[name] = parsed[name]


def _describe(event: Event) -> str:
    summary = event.get("summary")
    ident = event.get("id", "?")
    return f"event {summary!r} (id {ident})" if summary else f"event (id {ident})"


# -- sync --------------------------------------------------------------------------------------------

#: Read-only access to events is all a report needs (agendas will ask for more, and only then).
READ_SCOPES = ("https://www.googleapis.com/auth/calendar.events.readonly",)
PAGE_SIZE = 2500  # the most events.list allows
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
_RETRY_STATUS = {429, 500, 502, 503, 504}
_RETRY_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
IGNORED = "ignored"  # CalendarState.extra: the ids of series that are no 1:1 (see merge_changes)


class CalendarUnavailable(Exception):
    """One calendar could not be synced: reported with its owner, the others go on."""


class SyncTokenExpired(Exception):
    """Google answered 410: the calendar's state must be dropped and fully synced again."""


def _error_reason(exc: HttpError) -> tuple[str, str]:
    """Google's error envelope: the first ``reason`` and the ``message``."""
    try:
        error = json.loads(exc.content.decode("utf-8", "replace")).get("error", {})
        details = error.get("errors") or [{}]
        return str(details[0].get("reason", "")), str(error.get("message", ""))
    except (ValueError, AttributeError):
        return "", ""


def _retry_after(exc: HttpError) -> float | None:
    value = exc.resp.get("retry-after") if exc.resp is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    httplib2.HttpLib2Error,
    http.client.HTTPException,
)


@dataclass(frozen=True)
class Calendars:
    """What one owner's calendars are read through: the ``events`` collection, and the HTTP
    connection that sends its requests as that owner (None: the collection's own)."""

    events: Any
    http: Any = None


def calendars_of(service: Any) -> Calendars:
    """A :class:`Calendars` as it is, or a whole googleapiclient client's ``events`` collection."""
    return service if isinstance(service, Calendars) else Calendars(events_of(service))


class CalendarClient:
    """Calendar v3 ``events.list`` for one calendar owner, with retries and the rate limit."""

    def __init__(self, service: Any, owner: str, retry: RetryPolicy, limiter: RateLimiter) -> None:
        self.calendars = calendars_of(service)
        self.owner = owner
        self.retry = retry
        self.limiter = limiter
        self.requests = 0

    def list_events(self, calendar_id: str, sync_token: str | None) -> tuple[list[Event], str, str | None]:
        """Every page of a full (no token) or incremental listing: items, nextSyncToken, time zone."""
        items: list[Event] = []
        page_token: str | None = None
        time_zone: str | None = None
        while True:
            params: dict[str, Any] = {
                "calendarId": calendar_id,
                "maxResults": PAGE_SIZE,
                "showDeleted": True,
                "fields": LIST_FIELDS,
            }
            if sync_token:
                params["syncToken"] = sync_token
            if page_token:
                params["pageToken"] = page_token
            page = self._execute(self.calendars.events.list(**params))
            items.extend(page.get("items") or ())
            time_zone = page.get("timeZone") or time_zone
            page_token = page.get("nextPageToken")
            if page_token:
                continue  # pages may be short or even empty and still go on
            next_sync = page.get("nextSyncToken")
            if not next_sync:
                raise CalendarUnavailable("the last page of events carried no nextSyncToken")
            return items, str(next_sync), time_zone

    def _execute(self, request: Any) -> dict[str, Any]:
        self.requests += 1
        return execute(request, self.owner, self.retry, self.limiter, http=self.calendars.http)


def events_of(service: Any) -> Any:
    """``service.events()``, made once per client: googleapiclient builds a collection's methods afresh
    on every call (milliseconds each), which a sync of a thousand calendars would pay every cycle."""
    events = getattr(service, "_calsync_events", None)
    if events is None:
        events = service.events()
        service._calsync_events = events
    return events


def execute(
    request: Any, key: str, retry: RetryPolicy, limiter: RateLimiter, *, http: Any = None
) -> dict[str, Any]:
    """Run one Google API request (sent through ``http`` if given): rate-limited per ``key``, retried
    when retrying can help.

    410 raises :class:`SyncTokenExpired`; errors that retrying cannot fix, and exhausted retries,
    raise :class:`CalendarUnavailable` with a message that says why.
    """
    last = ""
    for attempt in range(retry.attempts):
        limiter.acquire(key)
        retry_after: float | None = None
        try:
            result: dict[str, Any] = request.execute(http=http, num_retries=0)
            REQUESTS.record(GOOGLE)
            return result
        except HttpError as exc:
            REQUESTS.record(GOOGLE, error=True)
            status = int(exc.resp.status)
            reason, message = _error_reason(exc)
            if status == 410:
                raise SyncTokenExpired(message or "sync token expired") from exc
            if not (status in _RETRY_STATUS or (status == 403 and reason in _RETRY_REASONS)):
                raise CalendarUnavailable(_explain(status, reason, message)) from exc
            retry_after = _retry_after(exc)
            last = f"HTTP {status} {reason or message}".strip()
        except _NETWORK_ERRORS as exc:
            REQUESTS.record(GOOGLE, error=True)
            last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if attempt + 1 < retry.attempts:
            retry.sleep(retry.delay(attempt, retry_after))
    raise CalendarUnavailable(f"gave up after {retry.attempts} attempts; last: {last}")


def _explain(status: int, reason: str, message: str) -> str:
    hint = {
        401: "the credentials were refused",
        403: "no access to this calendar",
        404: "no such calendar, or the account cannot see it",
    }.get(status, "")
    detail = f"HTTP {status}" + (f" {reason}" if reason else "") + (f": {message}" if message else "")
    return f"{hint} ({detail})" if hint else detail


def matters(event: Event, ignored: frozenset[str] | set[str] = frozenset()) -> bool:
    """Whether an event is worth keeping in the state: whether it could ever count for a 1:1.

    Tombstones are (they may cancel what is kept), and so is a copy whose guest list is incomplete;
    all-day events, meetings of three or more people and events of one person alone (focus time,
    reminders) are not. An exception is kept unless its series is ``ignored`` (a series that is no
    1:1, see :func:`merge_changes`) and it is no 1:1 by itself. A later change to such an event
    arrives whole and is judged again.
    """
    series = event.get("recurringEventId")
    if event.get("status") == "cancelled":
        return series not in ignored
    if series is not None and series not in ignored:
        return True
    if event.get("attendeesOmitted"):
        return True
    if "date" in (event.get("start") or {}):
        return False
    people = {
        str(a["email"]).lower()
        for a in event.get("attendees") or ()
        if a.get("email") and not a.get("resource")
    }
    organizer = (event.get("organizer") or {}).get("email")
    if organizer:
        people.add(str(organizer).lower())
    return len(people) == 2


class SeriesNowMatters(Exception):
    """A series that was ignored (and whose exceptions were not kept) could now be a 1:1: the
    calendar must be read again in full."""


#: What is kept of an event resource: what its reading needs (etags, links, creators, conference data
#: and descriptions are not kept).
_KEPT = (
    "id",
    "status",
    "summary",
    "start",
    "end",
    "originalStartTime",
    "recurringEventId",
    "recurrence",
    "iCalUID",
    "sequence",
    "updated",
    "attendeesOmitted",
)
_KEPT_ATTENDEE = ("email", "responseStatus", "resource")
#: What a listing asks for (a partial response): what is kept of each event, and the pages' tokens and
#: the calendar's time zone. Only a third of the bytes of whole events, and as much less JSON to parse.
LIST_FIELDS = (
    f"nextPageToken,nextSyncToken,timeZone,items({','.join(_KEPT)},organizer/email,"
    f"attendees({','.join(_KEPT_ATTENDEE)}))"
)


def lean(event: Event) -> dict[str, Any]:
    """An event resource as the state keeps it."""
    kept = {key: event[key] for key in _KEPT if key in event}
    organizer = (event.get("organizer") or {}).get("email")
    if organizer:
        kept["organizer"] = {"email": organizer}
    if "attendees" in event:
        kept["attendees"] = [
            {key: a[key] for key in _KEPT_ATTENDEE if key in a}
            for a in event.get("attendees") or ()
            if isinstance(a, Mapping)
        ]
    return kept


def merge_changes(
    events: dict[str, dict[str, Any]], changes: Iterable[Event], ignored: set[str] | None = None
) -> bool:
    """Apply an incremental listing to the stored events; whether the stored events changed.

    A deletion arrives as a stripped tombstone. It keeps what it replaces (UID, times, people), so
    that it still outvotes stale copies of the event elsewhere, and it is newer than that: without a
    SEQUENCE of its own it gets the old one plus one.

    ``ignored`` (updated here) holds the series that are no 1:1 (standups, team meetings, focus
    time): their exceptions are not kept either. When such a series changes so that it could be a
    1:1, :class:`SeriesNowMatters` is raised, since its exceptions were not kept.
    """
    changes = list(changes)
    ignoring = ignored if ignored is not None else set()
    for change in changes:  # masters first: a listing may give an exception before its series
        if change.get("recurrence") and "id" in change and change.get("status") != "cancelled":
            ident = str(change["id"])
            if not matters(change):
                ignoring.add(ident)
            elif ident in ignoring:
                raise SeriesNowMatters(ident)
    changed = False
    for change in changes:
        if "id" not in change:
            continue
        ident = str(change["id"])
        previous = events.get(ident)
        if change.get("status") == "cancelled" and ident in ignoring:
            ignoring.discard(ident)  # a series that was no 1:1 is gone: nothing to remember
            continue
        if previous is not None and change.get("status") == "cancelled":
            merged = {**previous, **lean(change)}
            if "sequence" not in change:
                merged["sequence"] = int(previous.get("sequence", 0)) + 1
            events[ident] = merged
            changed = True
        elif matters(change, ignoring):
            kept = lean(change)
            changed = changed or kept != previous
            events[ident] = kept
        elif events.pop(ident, None) is not None:  # e.g. a third person was invited: no longer a 1:1
            changed = True
    return changed


def prune(events: dict[str, dict[str, Any]], before: datetime) -> int:
    """Forget one-off events and exceptions that lie wholly before ``before`` (the start of the sync
    window, which only moves forward): they can no longer count. Series masters are kept, and so are
    tombstones without times. Returns how many were forgotten."""
    old = [
        ident
        for ident, event in events.items()
        if not event.get("recurrence")
        and (times := [t for t in (event.get("start"), event.get("originalStartTime")) if t])
        and all(_before(t, before) for t in times)
    ]
    for ident in old:
        del events[ident]
    return len(old)


def _before(value: Mapping[str, Any], moment: datetime) -> bool:
    """Whether a Google time lies before ``moment`` (a day's date is compared a day late: whatever
    its zone, it is over by then)."""
    try:
        if "dateTime" in value:
            at = datetime.fromisoformat(str(value["dateTime"]))
            return at.tzinfo is not None and at < moment - timedelta(days=1)
        if "date" in value:
            return date.fromisoformat(str(value["date"])) < (moment - timedelta(days=2)).date()
    except ValueError:
        return False  # kept: its reading reports it
    return False


class GoogleSource:
    """Google Calendar for a list of calendars, each read as its owner (domain-wide delegation).

    ``concurrency`` calendars are synced at once (each calendar by one worker, its pages in turn);
    Google's limit of 600 requests a minute per user is kept by the rate limiter.
    """

    def __init__(
        self,
        name: str,
        calendars: Iterable[str],
        service_for: Callable[[str], Any],
        store: StateStore,
        *,
        default_tz: tzinfo,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        reads: ReadCache | None = None,
    ) -> None:
        self.name = name
        self.calendars = list(dict.fromkeys(calendars))
        self.stop = stop
        self.progress: Progress = progress if progress is not None else NoProgress()
        self.service_for = service_for
        self.store = store
        self.default_tz = default_tz
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or RateLimiter()
        self.concurrency = max(1, concurrency)
        self.reads = reads
        self.requests = 0
        self._count = threading.Lock()

    def fetch(self, window: Window) -> SourceResult:
        return read_concurrently(
            self.name,
            self.calendars,
            lambda calendar: self._read_one(calendar, window),
            workers=self.concurrency,
            progress=self.progress,
            reads=self.reads,
        )

    def _read_one(self, calendar: str, window: Window) -> Reading:
        check(self.stop)
        try:
            state = self.sync(calendar, window.start)
        except CalendarUnavailable as exc:
            return None, [Problem(f"{self.name}: {calendar}", str(exc), unread=True)]
        return cached_reading(
            self.reads,
            self.name,
            calendar,
            (state.revision, state.time_zone, window),
            lambda: google_calendar_data(
                state.events.values(), calendar, state.time_zone or "UTC", window, self.default_tz
            ),
        )

    def sync(self, calendar: str, prune_before: datetime | None = None) -> CalendarState:
        """Bring one calendar's stored state up to date: incrementally if possible, else in full.
        Events wholly before ``prune_before`` are forgotten (see :func:`prune`)."""
        try:
            client = CalendarClient(self.service_for(calendar), calendar, self.retry, self.limiter)
        except RefreshError as exc:
            raise CalendarUnavailable(_auth_problem(exc)) from exc
        try:
            state = self.store.load(self.name, calendar)
            if state is not None and state.cursor:
                try:
                    changes, cursor, zone = client.list_events(calendar, state.cursor)
                    ignored = set(state.extra.get(IGNORED, ()))
                    changed = merge_changes(state.events, changes, ignored)
                except (SyncTokenExpired, SeriesNowMatters):
                    self.store.drop(self.name, calendar)
                    state = None
                else:
                    now_ignored = sorted(ignored)
                    if changed or now_ignored != state.extra.get(IGNORED, []) or state.revision is None:
                        state.revision = new_revision()  # see CalendarState.revision
                    state.cursor, state.time_zone = cursor, zone or state.time_zone
                    state.extra[IGNORED] = now_ignored
            if state is None or not state.cursor:
                items, cursor, zone = client.list_events(calendar, None)
                state = CalendarState(calendar, cursor, zone, {}, revision=new_revision())
                ignored = set()
                merge_changes(state.events, items, ignored)
                state.extra[IGNORED] = sorted(ignored)
        except RefreshError as exc:
            raise CalendarUnavailable(_auth_problem(exc)) from exc
        finally:
            with self._count:
                self.requests += client.requests
        if prune_before is not None:
            prune(state.events, prune_before)  # outside the window read: the reading is unchanged
        self.store.save(self.name, state)
        return state


def _auth_problem(exc: RefreshError) -> str:
    text = str(exc)
    if "unauthorized_client" in text:
        return (
            "the service account may not act as this user: grant domain-wide delegation for its client ID "
            "with the calendar scope in the Admin console (Security > API controls)"
        )
    if "invalid_grant" in text:
        return "the sign-in was refused (invalid_grant): run `calsync auth google` again"
    return f"could not get an access token: {text}"


def build_client(
    api: str, version: str, credentials: Any, endpoint: str | None, ca_bundle: Path | None, timeout: float
) -> Any:
    """A googleapiclient client with its own authorised HTTP connection (see :func:`_discovered`)."""
    authed = google_auth_httplib2.AuthorizedHttp(credentials, http=_connection(ca_bundle, timeout))
    return _discovered(api, version, authed, endpoint)


def _connection(ca_bundle: Path | None, timeout: float) -> httplib2.Http:
    """An HTTP connection with its timeout and the CA bundle to trust."""
    return httplib2.Http(ca_certs=str(ca_bundle) if ca_bundle else None, timeout=timeout)


def _discovered(api: str, version: str, http: Any, endpoint: str | None) -> Any:
    """A googleapiclient client from the bundled discovery document (works offline), sending through
    ``http``, at another API root when configured."""
    options = {"api_endpoint": endpoint} if endpoint else None
    return build(
        api, version, http=http, static_discovery=True, cache_discovery=False, client_options=options
    )


class SharedCalendars:
    """Calendar v3 for many owners through one client: the discovery document is read once (a client
    per owner cost milliseconds of CPU and about a megabyte each), each owner's credentials (and so
    their access token) are kept, and each worker thread keeps one HTTP connection for every owner it
    reads, instead of a TLS handshake per owner. Called with an owner, it gives their :class:`Calendars`.
    """

    def __init__(
        self,
        credentials_for: Callable[[str], Any],
        endpoint: str | None,
        ca_bundle: Path | None,
        timeout: float,
    ) -> None:
        self._credentials_for = credentials_for
        self._ca_bundle = ca_bundle
        self._timeout = timeout
        self._credentials: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._events = events_of(_discovered("calendar", "v3", self._connection(), endpoint))

    def __call__(self, owner: str) -> Calendars:
        with self._lock:
            credentials = self._credentials.get(owner)
            if credentials is None:
                credentials = self._credentials[owner] = self._credentials_for(owner)
        return Calendars(
            self._events, google_auth_httplib2.AuthorizedHttp(credentials, http=self._connection())
        )

    def _connection(self) -> httplib2.Http:
        """This thread's HTTP connection (httplib2 is not thread-safe; one per thread is)."""
        http: httplib2.Http | None = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = _connection(self._ca_bundle, self._timeout)
        return http


def service_account_calendars(
    key_file: Path,
    *,
    endpoint: str | None = None,
    ca_bundle: Path | None = None,
    timeout: float = 30.0,
) -> SharedCalendars:
    """Read-only Calendar access to every user's calendars as that user (domain-wide delegation)."""
    base = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
        str(key_file), scopes=list(READ_SCOPES)
    )
    return SharedCalendars(base.with_subject, endpoint, ca_bundle, timeout)


def user_token_calendars(
    token_file: Path,
    *,
    endpoint: str | None = None,
    ca_bundle: Path | None = None,
    timeout: float = 30.0,
) -> SharedCalendars:
    """Read-only Calendar access as the person who ran ``calsync auth google``, to every calendar."""
    credentials = load_user_credentials(token_file, READ_SCOPES)
    return SharedCalendars(lambda _calendar: credentials, endpoint, ca_bundle, timeout)


def service_account_service(
    key_file: Path,
    *,
    scopes: Iterable[str] = READ_SCOPES,
    api: tuple[str, str] = ("calendar", "v3"),
    endpoint: str | None = None,
    ca_bundle: Path | None = None,
    timeout: float = 30.0,
) -> Callable[[str], Any]:
    """A function giving an ``api`` client (Calendar v3 by default) that acts as a given user
    (domain-wide delegation)."""
    base = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
        str(key_file), scopes=list(scopes)
    )

    services: dict[str, Any] = {}

    def service_for(user: str) -> Any:
        # One client per user, kept: its access token serves every later cycle until it expires.
        if user not in services:
            services[user] = build_client(*api, base.with_subject(user), endpoint, ca_bundle, timeout)
        return services[user]

    return service_for


def sign_in(
    client_secrets: Path,
    token_file: Path,
    *,
    scopes: Iterable[str] = READ_SCOPES,
    open_browser: bool = True,
    browser: str | None = None,
    flow_factory: Callable[..., Any] | None = None,
) -> str:
    """The installed-app flow for one person: a browser sign-in, then the token stored 0600.

    Returns the granted scopes. ``flow_factory`` defaults to google-auth-oauthlib's InstalledAppFlow.
    """
    factory = flow_factory or InstalledAppFlow.from_client_secrets_file
    flow = factory(str(client_secrets), scopes=list(scopes))
    credentials = flow.run_local_server(
        host="localhost",
        port=0,
        open_browser=open_browser,
        browser=browser,
        authorization_prompt_message="Open this URL in a browser and sign in:\n{url}",
        success_message="calsync is signed in. You may close this window.",
    )
    write_private(token_file, credentials.to_json())
    return " ".join(credentials.scopes or scopes)


def load_user_credentials(token_file: Path, scopes: Iterable[str] = READ_SCOPES) -> UserCredentials:
    """The credentials ``calsync auth google`` stored.

    google-auth's own loader always refreshes at Google's token endpoint, whatever the file says;
    calsync wrote this file itself from the OAuth client it was given, so its token endpoint is kept
    (which is how tests, emulators and proxies are reached).
    """
    info = json.loads(token_file.read_text(encoding="utf-8"))
    missing = [key for key in ("refresh_token", "client_id", "client_secret") if not info.get(key)]
    if missing:
        raise ValueError(f"{token_file} lacks {', '.join(missing)}: run `calsync auth google` again")
    return UserCredentials(  # type: ignore[no-untyped-call]
        token=None,
        refresh_token=info["refresh_token"],
        token_uri=info.get("token_uri") or GOOGLE_TOKEN_URI,
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        scopes=list(scopes),
    )


def user_token_service(
    token_file: Path,
    *,
    scopes: Iterable[str] = READ_SCOPES,
    api: tuple[str, str] = ("calendar", "v3"),
    endpoint: str | None = None,
    ca_bundle: Path | None = None,
    timeout: float = 30.0,
) -> Callable[[str], Any]:
    """An ``api`` client (Calendar v3 by default) acting as the person who ran ``calsync auth google``."""
    credentials = load_user_credentials(token_file, scopes)

    def service_for(calendar: str) -> Any:
        return build_client(*api, credentials, endpoint, ca_bundle, timeout)

    return service_for


# -- the org chart from the Google Directory -----------------------------------------------------------

DIRECTORY_SCOPES = ("https://www.googleapis.com/auth/admin.directory.user.readonly",)


def directory_users(service: Any, admin: str, retry: RetryPolicy, limiter: RateLimiter) -> list[Event]:
    """Every user of the Workspace account (``users.list``, all pages)."""
    users: list[Event] = []
    request = service.users().list(customer="my_customer", maxResults=500, projection="full", orderBy="email")
    while request is not None:
        page = execute(request, admin, retry, limiter)
        users.extend(page.get("users") or ())
        request = service.users().list_next(request, page)
    return users


def directory_roster_csv(users: Iterable[Event]) -> str:
    """The roster CSV the directory stands for: active users, their names and their managers.

    Going through the CSV means the directory gets exactly the roster's checks (unknown managers,
    duplicates, cycles).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "name", "manager_email"])
    for user in users:
        if user.get("suspended") or not user.get("primaryEmail"):
            continue
        name = (user.get("name") or {}).get("fullName") or ""
        managers = [r.get("value", "") for r in user.get("relations") or () if r.get("type") == "manager"]
        writer.writerow([user["primaryEmail"], name, managers[0] if managers else ""])
    return out.getvalue()


def service_account_directory(
    key_file: Path,
    admin: str,
    *,
    endpoint: str | None = None,
    ca_bundle: Path | None = None,
    timeout: float = 30.0,
) -> Any:
    """A Directory API client acting as ``admin`` (domain-wide delegation, read-only user scope)."""
    credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
        str(key_file), scopes=list(DIRECTORY_SCOPES)
    ).with_subject(admin)
    return build_client("admin", "directory_v1", credentials, endpoint, ca_bundle, timeout)
