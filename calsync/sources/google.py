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
- attendees with ``resource: true`` are rooms and resources;
- an out-of-office block (``eventType: "outOfOffice"``) becomes a VEVENT with
  ``X-MICROSOFT-CDO-BUSYSTATUS:OOF`` (as Outlook exports one), which the reader turns into absences of its
  organizer, never into meetings. The API cannot hold an all-day out-of-office event: one made "all day"
  in Calendar is a timed span from midnight to midnight in its zone, and is read as the all-day block it
  stands for (dates). Focus time, working locations and birthdays are never meetings either.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import google_auth_httplib2
import httplib2
import icalendar
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2 import service_account
from google.oauth2.credentials import Credentials as UserCredentials
from google_auth_oauthlib.flow import InstalledAppFlow
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from calsync.config import DEFAULT_CONCURRENCY
from calsync.detect import NOBODY, Ignored
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
#: Google's ``eventType`` of an out-of-office block.
OUT_OF_OFFICE = "outOfOffice"
#: How an out-of-office block is marked in the VEVENT it becomes: as Outlook exports one.
BUSY_STATUS = "X-MICROSOFT-CDO-BUSYSTATUS"
#: Event types that are never meetings (a person's status, or a contact's birthday).
_NEVER_MEETINGS = frozenset({"focusTime", "workingLocation", "birthday"})
#: Domains of Google calendar ids that are no person's address (secondary, resource, imported and
#: holiday calendars).
_CALENDAR_DOMAIN = ".calendar.google.com"


def calendar_owner(calendar: str) -> str | None:
    """Whose calendar a calendar id is: the id itself when it is a person's email address (a primary
    calendar), else None (``primary``, a secondary or resource calendar)."""
    name, at, domain = calendar.strip().lower().rpartition("@")
    if not at or not name or "." not in domain or domain.endswith(_CALENDAR_DOMAIN):
        return None
    return f"{name}@{domain}"


def google_calendar_data(
    events: Iterable[Event],
    label: str,
    calendar_tz: str,
    window: Window,
    default_tz: tzinfo,
    *,
    owner: str | None = None,
) -> tuple[CalendarData, list[Problem]]:
    """The normalised model of one Google calendar's events (as ``events.list`` returns them): its
    meetings and its out-of-office blocks (absences), ``owner`` its owner's address if known."""
    events = list(events)
    by_id = {str(e["id"]): e for e in events if "id" in e}
    return read_converted(
        events,
        lambda event: to_vevent(event, by_id, calendar_tz),
        _describe,
        label,
        window,
        default_tz,
        owner=owner,
    )


def to_vevent(event: Event, by_id: Mapping[str, Event], calendar_tz: str) -> icalendar.Event | None:
    """The VEVENT a Google event resource stands for, or None for a tombstone of an unknown event."""
    master = by_id.get(str(event["recurringEventId"])) if "recurringEventId" in event else None
    uid = event.get("iCalUID") or (master.get("iCalUID") if master is not None else None)
    if not uid:
        return None
    zone = _zone_name(event, master, calendar_tz)
    # A stripped tombstone carries no type: it has its series'.
    out_of_office = (event.get("eventType") or (master or {}).get("eventType")) == OUT_OF_OFFICE
    # An out-of-office block from midnight to midnight is all-day; a series is, or is not, as a whole.
    whole_days = out_of_office and _whole_days(event, zone)
    series_whole_days = out_of_office and _whole_days(master if master is not None else event, zone)

    vevent = icalendar.Event()
    vevent.add("uid", str(uid))
    if "originalStartTime" in event:
        original = _when(event["originalStartTime"], zone)
        vevent.add("recurrence-id", _day(original, zone) if series_whole_days else original)
    start = event.get("start") or event.get("originalStartTime")
    if start is None:
        if event.get("status") == "cancelled":
            return None  # a deleted event reduced to its id: nothing left to say
        raise ValueError("no start")
    begins = _when(start, zone)
    if "start" not in event and series_whole_days:
        begins = _day(begins, zone)  # a tombstone at its original start: a day of an all-day series
    vevent.add("dtstart", _day(begins, zone) if whole_days else begins)
    if "end" in event:
        ends = _when(event["end"], zone)
        vevent.add("dtend", _day(ends, zone) if whole_days else ends)

    status = str(event.get("status", "confirmed"))
    if status == "cancelled":
        vevent.add("status", "CANCELLED")
    elif status == "tentative":
        vevent.add("status", "TENTATIVE")
    if event.get("summary") and not out_of_office:  # an absence's title is never kept or shown
        vevent.add("summary", str(event["summary"]))

    # A tombstone carries no version: it is at least as new as its series.
    versioned = event if ("sequence" in event or "updated" in event or master is None) else master
    vevent.add("sequence", int(versioned.get("sequence", 0)))
    if versioned.get("updated"):
        vevent.add("last-modified", _timestamp(str(versioned["updated"])))

    if event.get("recurrence"):
        _copy_recurrence(vevent, event["recurrence"])
        if whole_days:
            _recurrence_in_days(vevent, zone)
    if out_of_office:
        vevent.add(BUSY_STATUS, "OOF")

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
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file
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


def _whole_days(event: Event, zone: str) -> bool:
    """Whether an event spans whole days in its zone: dates, or from midnight to a later midnight
    (how Google keeps an out-of-office block made "all day", which cannot have dates)."""
    start, end = event.get("start"), event.get("end")
    if not start or not end:
        return False
    try:
        begins, ends = _when(start, zone), _when(end, zone)
    except ValueError:
        return False  # its reading reports it
    if not isinstance(begins, datetime) or not isinstance(ends, datetime):
        return not isinstance(begins, datetime) and not isinstance(ends, datetime)
    return begins.time() == time(0) == ends.time() and ends.date() > begins.date()


def _day(value: date | datetime, zone: str) -> date:
    """The date of a time in the event's zone."""
    if not isinstance(value, datetime):
        return value
    return (value.astimezone(_zone(zone)) if value.tzinfo is not None else value).date()


def _recurrence_in_days(vevent: icalendar.Event, zone: str) -> None:
    """A series read as all-day: its UNTIL, EXDATEs and RDATEs as dates (in the series' zone), as
    RFC 5545 wants them with a DTSTART that is a date."""
    rule = vevent.get("RRULE")
    if rule is not None and rule.get("UNTIL"):
        rule["UNTIL"] = [_day(value, zone) for value in rule["UNTIL"]]
    for name in ("EXDATE", "RDATE"):
        found = vevent.get(name)
        if found is None:
            continue
        days = [
            _day(d.dt, zone) for prop in (found if isinstance(found, list) else [found]) for d in prop.dts
        ]
        del vevent[name]
        vevent.add(name, sorted(set(days)))


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
    ident = event.get("id", "?")
    if event.get("eventType") == OUT_OF_OFFICE:
        return f"out-of-office block (id {ident})"  # its title is private
    summary = event.get("summary")
    return f"event {summary!r} (id {ident})" if summary else f"event (id {ident})"


# -- sync --------------------------------------------------------------------------------------------

#: Read-only access to events is all a report needs (agendas will ask for more, and only then).
READ_SCOPES = ("https://www.googleapis.com/auth/calendar.events.readonly",)
PAGE_SIZE = 2500  # the most events.list allows
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
_RETRY_STATUS = {429, 500, 502, 503, 504}
_RETRY_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
IGNORED = "ignored"  # CalendarState.extra: the ids of series that are no 1:1 (see merge_changes)
#: CalendarState.extra: what the state keeps of each event (see :data:`KEPT_LAYOUT`).
KEPT = "kept"
#: 2: event types are kept, and so are the owner's out-of-office blocks. A state kept before (without
#: this mark) lacks the blocks, which no incremental listing would bring (they did not change): it is
#: read again in full, once. The people who do not count are part of the rule (see :func:`kept_rule`).
KEPT_LAYOUT = 2
#: The store's name for an absentee's out-of-office state (:class:`GoogleSource`'s ``absentees``).
ABSENCE_SUFFIX = " (out of office)"


def ignore_patterns(ignored: Callable[[str], bool]) -> list[str]:
    """The people who do not count, as sorted lower-case patterns (addresses, then ``*@domain``); a
    matcher other than :class:`calsync.detect.Ignored` is named by its qualified name. Empty for an
    empty :class:`~calsync.detect.Ignored` (nobody)."""
    if isinstance(ignored, Ignored):
        return sorted(ignored.addresses) + sorted(f"*@{domain}" for domain in ignored.domains)
    kind = ignored if hasattr(ignored, "__qualname__") else type(ignored)
    return [f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', '?')}"]


def kept_rule(ignored: Callable[[str], bool] = NOBODY) -> int | str:
    """The mark (``extra["kept"]``) of a state kept by this calsync with ``ignored`` people not counted
    (see :func:`matters`): :data:`KEPT_LAYOUT` when nobody is ignored, else the layout and a hash of the
    sorted patterns. A state kept under another list lacks the meetings that only the new list makes
    1:1s (or keeps some it no longer does), which no incremental listing would bring: it is read again
    in full, once."""
    patterns = ignore_patterns(ignored)
    if not patterns:
        return KEPT_LAYOUT
    digest = hashlib.sha256("\n".join(patterns).encode("utf-8")).hexdigest()[:16]
    return f"{KEPT_LAYOUT} ignoring {digest}"


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
    """Calendar v3 ``events.list`` for one calendar owner, with retries and the rate limit.

    ``event_types`` lists only events of those types (all when empty); an incremental listing asks for
    the same types as the full one that began it, as Google wants (it leaves any other undefined)."""

    def __init__(
        self,
        service: Any,
        owner: str,
        retry: RetryPolicy,
        limiter: RateLimiter,
        event_types: Iterable[str] = (),
    ) -> None:
        self.calendars = calendars_of(service)
        self.owner = owner
        self.retry = retry
        self.limiter = limiter
        self.event_types = list(event_types)
        self.requests = 0

    def list_events(self, calendar_id: str, sync_token: str | None) -> tuple[list[Event], str, str | None]:
        """Every page of a full (no token) or incremental listing: items, nextSyncToken, time zone."""
        items: list[Event] = []
        page_token: str | None = None
        time_zone: str | None = None
        types = self.event_types
        while True:
            params: dict[str, Any] = {
                "calendarId": calendar_id,
                "maxResults": PAGE_SIZE,
                "showDeleted": True,
                "fields": LIST_FIELDS,
            }
            if types:
                params["eventTypes"] = types
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


def matters(
    event: Event,
    ignored: frozenset[str] | set[str] = frozenset(),
    calendar: str | None = None,
    *,
    ignored_people: Callable[[str], bool] = NOBODY,
) -> bool:
    """Whether an event is worth keeping in the state: whether it could ever count for a 1:1, or is
    an absence of ``calendar``'s owner.

    Tombstones are (they may cancel what is kept), and so is a copy whose guest list is incomplete;
    all-day events, meetings of three or more people and events of one person alone (focus time,
    reminders) are not. Rooms and resources do not count as people, nor do ``ignored_people``
    (``[detect] ignore_attendees``: an assistant who organises the 1:1, a note-taking bot), whether
    organizer or guest. An out-of-office block is kept when the calendar's owner organises it (see
    :func:`organised_by_owner`): someone else's block on this calendar is not its owner's absence.
    Focus time, working locations and birthdays are never kept. An exception is kept unless its
    series is ``ignored`` (a series that is no 1:1, see :func:`merge_changes`) and it is no 1:1 by
    itself. A later change to such an event arrives whole and is judged again.
    """
    series = event.get("recurringEventId")
    if event.get("status") == "cancelled":
        return series not in ignored
    event_type = event.get("eventType")
    if event_type == OUT_OF_OFFICE:
        return organised_by_owner(event, calendar)
    if event_type in _NEVER_MEETINGS:
        return False
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
    return len({person for person in people if not ignored_people(person)}) == 2


def organised_by_owner(event: Event, calendar: str | None) -> bool:
    """Whether the owner of ``calendar`` organises ``event``: Google marks the organizer ``self``
    (the calendar this copy is on), or the organizer's address is the calendar id."""
    organizer = event.get("organizer") or {}
    if organizer.get("self") is True:
        return True
    email = organizer.get("email")
    return bool(email and calendar and str(email).lower() == calendar.strip().lower())


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
    "eventType",
)
_KEPT_ATTENDEE = ("email", "responseStatus", "resource")
#: What a listing asks for (a partial response): what is kept of each event, the organizer's ``self``
#: (whose an out-of-office block is), and the pages' tokens and the calendar's time zone. Only a third
#: of the bytes of whole events, and as much less JSON to parse.
LIST_FIELDS = (
    f"nextPageToken,nextSyncToken,timeZone,items({','.join(_KEPT)},organizer(email,self),"
    f"attendees({','.join(_KEPT_ATTENDEE)}))"
)


def lean(event: Event) -> dict[str, Any]:
    """An event resource as the state keeps it: the type only when it is not ``default``, and never
    the title of an out-of-office block (an absence's title or reason is private)."""
    kept = {key: event[key] for key in _KEPT if key in event}
    if kept.get("eventType") == "default":
        del kept["eventType"]
    elif kept.get("eventType") == OUT_OF_OFFICE:
        kept.pop("summary", None)
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
    events: dict[str, dict[str, Any]],
    changes: Iterable[Event],
    ignored: set[str] | None = None,
    calendar: str | None = None,
    *,
    ignored_people: Callable[[str], bool] = NOBODY,
) -> bool:
    """Apply an incremental listing of ``calendar`` to its stored events; whether they changed.

    A deletion arrives as a stripped tombstone. It keeps what it replaces (UID, times, people), so
    that it still outvotes stale copies of the event elsewhere, and it is newer than that: without a
    SEQUENCE of its own it gets the old one plus one.

    ``ignored`` (updated here) holds the series that are no 1:1 (standups, team meetings, focus
    time): their exceptions are not kept either. When such a series changes so that it could be a
    1:1, :class:`SeriesNowMatters` is raised, since its exceptions were not kept. ``ignored_people``
    never count (see :func:`matters`).
    """
    changes = list(changes)
    ignoring = ignored if ignored is not None else set()
    for change in changes:  # masters first: a listing may give an exception before its series
        if change.get("recurrence") and "id" in change and change.get("status") != "cancelled":
            ident = str(change["id"])
            if not matters(change, calendar=calendar, ignored_people=ignored_people):
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
        elif matters(change, ignoring, calendar, ignored_people=ignored_people):
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

    ``ignored`` people (``[detect] ignore_attendees``) never count when deciding whether an event could
    be a 1:1 and so is kept (see :func:`matters`); a state kept under another list is read in full once
    (see :func:`kept_rule`).

    ``absentees`` are people whose out-of-office calsync needs although their calendars are not read
    for meetings (the reports of the managers whose calendars are): of each, only the out-of-office
    blocks are listed (``eventTypes=outOfOffice``), as that person, kept incremental in the store as
    ``"<email> (out of office)"``. Each contributes a :class:`CalendarData` without occurrences.

    A calendar that cannot be read now but was read before is judged from its stored reading
    (:attr:`CalendarData.stored_at`), with a problem that says so; one never read is a problem of a
    calendar not read (``unread``).
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
        absentees: Iterable[str] = (),
        ignored: Callable[[str], bool] = NOBODY,
    ) -> None:
        self.name = name
        self.calendars = list(dict.fromkeys(calendars))
        #: The absentees whose calendars are not read anyway: by the name of their state in the store.
        self.absentees = absentee_states(self.calendars, absentees)
        self.stop = stop
        self.progress: Progress = progress if progress is not None else NoProgress()
        self.service_for = service_for
        self.store = store
        self.default_tz = default_tz
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or RateLimiter()
        self.concurrency = max(1, concurrency)
        self.reads = reads
        self.ignored = ignored
        self.requests = 0
        self._count = threading.Lock()

    def fetch(self, window: Window) -> SourceResult:
        return read_concurrently(
            self.name,
            [*self.calendars, *self.absentees],
            lambda calendar: self._read_one(calendar, window),
            workers=self.concurrency,
            progress=self.progress,
            reads=self.reads,
        )

    def _read_one(self, calendar: str, window: Window) -> Reading:
        check(self.stop)
        absentee = self.absentees.get(calendar)
        if absentee is not None:
            return self._read_absentee(absentee, calendar, window)
        owner = calendar_owner(calendar)
        try:
            state = self.sync(calendar, window.start)
        except CalendarUnavailable as exc:
            stored = self.store.load(self.name, calendar)
            if stored is None:
                return None, [Problem(f"{self.name}: {calendar}", str(exc), unread=True, owner=owner)]
            data, problems = self._reading(calendar, stored, window, owner)
            note = (
                f"could not be read now ({exc}); judged from calsync's stored reading of it {_synced(stored)}"
            )
            return stored_reading(data, stored), [
                *problems,
                Problem(f"{self.name}: {calendar}", note, owner=owner),
            ]
        return self._reading(calendar, state, window, owner)

    def _read_absentee(self, email: str, key: str, window: Window) -> Reading:
        try:
            state = self._sync(email, key, (OUT_OF_OFFICE,), window.start)
        except CalendarUnavailable as exc:
            stored = self.store.load(self.name, key)
            if stored is None:
                note = (
                    f"could not read the out-of-office of {email} ({exc}): their absences are not known "
                    "(their 1:1s are still read from their managers' calendars)"
                )
                return None, [Problem(f"{self.name}: {key}", note, owner=email)]
            data, problems = self._absences(email, key, stored, window)
            note = (
                f"could not read the out-of-office of {email} now ({exc}); their absences are judged "
                f"from calsync's stored reading of it {_synced(stored)}"
            )
            return stored_reading(data, stored), [
                *problems,
                Problem(f"{self.name}: {key}", note, owner=email),
            ]
        return self._absences(email, key, state, window)

    def _reading(
        self, calendar: str, state: CalendarState, window: Window, owner: str | None
    ) -> tuple[CalendarData, list[Problem]]:
        """A calendar's reading of its state (kept in the read cache)."""
        return cached_reading(
            self.reads,
            self.name,
            calendar,
            (state.revision, state.time_zone, window),
            lambda: google_calendar_data(
                state.events.values(),
                calendar,
                state.time_zone or "UTC",
                window,
                self.default_tz,
                owner=owner,
            ),
        )

    def _absences(
        self, email: str, key: str, state: CalendarState, window: Window
    ) -> tuple[CalendarData, list[Problem]]:
        """An absentee's reading of their out-of-office state: their absences, never a meeting."""
        return cached_reading(
            self.reads,
            self.name,
            key,
            (state.revision, state.time_zone, window),
            lambda: absence_data(state, email, key, window, self.default_tz),
        )

    def sync(self, calendar: str, prune_before: datetime | None = None) -> CalendarState:
        """Bring one calendar's stored state up to date: incrementally if possible, else in full.
        Events wholly before ``prune_before`` are forgotten (see :func:`prune`)."""
        return self._sync(calendar, calendar, (), prune_before)

    def _sync(
        self, calendar: str, key: str, event_types: tuple[str, ...], prune_before: datetime | None
    ) -> CalendarState:
        """:meth:`sync` of ``calendar``'s events of ``event_types`` (all when empty), its state kept in
        the store as ``key``. Until a full listing succeeds the stored state stays as it was (also after
        a 410): what was read before can still be judged from.

        An event is kept when it could count (see :func:`matters`), the source's ``ignored`` people not
        counted; a listing of out-of-office blocks alone (an absentee's) keeps them by their organizer,
        whatever the ignore list, and so is not read again when it changes."""
        people = self.ignored if not event_types else NOBODY
        rule = kept_rule(people)
        try:
            client = CalendarClient(
                self.service_for(calendar), calendar, self.retry, self.limiter, event_types
            )
        except RefreshError as exc:
            raise CalendarUnavailable(_auth_problem(exc)) from exc
        try:
            state = self.store.load(self.name, key)
            if state is not None and state.extra.get(KEPT) != rule:
                state = None  # kept by an older calsync or another ignore list: read again in full
            if state is not None and state.cursor:
                try:
                    changes, cursor, zone = client.list_events(calendar, state.cursor)
                    ignored = set(state.extra.get(IGNORED, ()))
                    changed = merge_changes(state.events, changes, ignored, calendar, ignored_people=people)
                except (SyncTokenExpired, SeriesNowMatters):
                    state = None
                else:
                    now_ignored = sorted(ignored)
                    if changed or now_ignored != state.extra.get(IGNORED, []) or state.revision is None:
                        state.revision = new_revision()  # see CalendarState.revision
                    state.cursor, state.time_zone = cursor, zone or state.time_zone
                    state.extra[IGNORED] = now_ignored
            if state is None or not state.cursor:
                try:
                    items, cursor, zone = client.list_events(calendar, None)
                except SyncTokenExpired as exc:  # a full listing has no token to expire
                    raise CalendarUnavailable(f"HTTP 410 without a sync token: {exc}") from exc
                state = CalendarState(key, cursor, zone, {}, revision=new_revision())
                ignored = set()
                merge_changes(state.events, items, ignored, calendar, ignored_people=people)
                state.extra[IGNORED] = sorted(ignored)
                state.extra[KEPT] = rule
        except RefreshError as exc:
            raise CalendarUnavailable(_auth_problem(exc)) from exc
        except TransportError as exc:
            raise CalendarUnavailable(f"could not reach Google's token endpoint: {exc}") from exc
        finally:
            with self._count:
                self.requests += client.requests
        if prune_before is not None:
            prune(state.events, prune_before)  # outside the window read: the reading is unchanged
        self.store.save(self.name, state)
        return state


def absentee_states(calendars: Iterable[str], absentees: Iterable[str]) -> dict[str, str]:
    """The absentees whose calendars are not among ``calendars`` (compared case-insensitively), by the
    name of their out-of-office state in the store: ``"<email> (out of office)"``."""
    read = {calendar.strip().lower() for calendar in calendars}
    found: dict[str, str] = {}
    for person in absentees:
        email = person.strip().lower()
        if email and email not in read:
            found[email + ABSENCE_SUFFIX] = email
    return found


def absence_data(
    state: CalendarState, email: str, key: str, window: Window, default_tz: tzinfo
) -> tuple[CalendarData, list[Problem]]:
    """An absentee's out-of-office state read: their absences, no occurrence and no series (an
    out-of-office block is never a meeting), ``owner`` the absentee."""
    data, problems = google_calendar_data(
        state.events.values(), key, state.time_zone or "UTC", window, default_tz, owner=email
    )
    return replace(data, occurrences=(), series=(), owner=email, absences_only=True), problems


def stored_reading(data: CalendarData, state: CalendarState) -> CalendarData:
    """``data``, read from a stored ``state`` because its calendar cannot be read now: marked so."""
    return replace(data, stored_at=state.synced_at or "")


def _synced(state: CalendarState) -> str:
    return f"of {state.synced_at}" if state.synced_at else "(when it was synced is not known)"


def stored_calendars(
    store: StateStore,
    source_name: str,
    calendars: Iterable[str],
    window: Window,
    default_tz: tzinfo,
    *,
    absentees: Iterable[str] = (),
) -> list[CalendarData]:
    """The stored readings of those of a Google source's ``calendars`` (and ``absentees``' out-of-office)
    that have a state, each marked with when it was synced (:attr:`CalendarData.stored_at`): for judging
    what calsync read before when the source cannot even be set up now (e.g. its key file is unreadable).
    Calendars without a state are left out."""
    calendars = list(dict.fromkeys(calendars))
    found: list[CalendarData] = []
    for calendar in calendars:
        state = store.load(source_name, calendar)
        if state is not None:
            data, _ = google_calendar_data(
                state.events.values(),
                calendar,
                state.time_zone or "UTC",
                window,
                default_tz,
                owner=calendar_owner(calendar),
            )
            found.append(stored_reading(data, state))
    for key, email in absentee_states(calendars, absentees).items():
        state = store.load(source_name, key)
        if state is not None:
            found.append(stored_reading(absence_data(state, email, key, window, default_tz)[0], state))
    return found


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
