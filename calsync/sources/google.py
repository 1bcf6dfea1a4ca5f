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

from collections.abc import Iterable, Mapping
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar

from calsync.model import CalendarData, Problem
from calsync.sources.base import Window
from calsync.sources.ics import ATTENDEES_OMITTED, read_calendars

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
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//calsync//google//EN")
    calendar.add("version", "2.0")
    problems: list[Problem] = []
    for event in events:
        try:
            vevent = to_vevent(event, by_id, calendar_tz)
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(Problem(label, f"{_describe(event)}: skipped: {exc}"))
            continue
        if vevent is not None:
            calendar.add_component(vevent)
    data, more = read_calendars([calendar], label, window, default_tz)
    return data, problems + more


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
