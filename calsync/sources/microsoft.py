"""Microsoft Graph: calendarView instances and series masters -> the normalised model (groundwork for
the Microsoft 365 source; no sync or auth yet).

Graph's ``calendarView`` returns instances, not rules: ``occurrence`` and ``exception`` items of a
series (pointing at it by ``seriesMasterId``) and ``singleInstance`` events. A series master, fetched
on its own, carries the ``recurrence``. Each becomes the VEVENT it stands for and goes through the
ICS reader, so Graph series are expanded by the same engine as every other provider's:

- a master gets an RRULE from its pattern, in the zone it was scheduled in (Windows names mapped);
- each instance becomes an override at its ``originalStart``;
- an occurrence the pattern produces but the view does not list was cancelled (Graph may simply drop
  it): the master says the view listed every instance of its span, and the reader marks those
  missing as cancelled;
- ``isCancelled`` instances are cancelled; stubs without subject or attendees inherit the master's;
- the mailbox owner's own answer (``responseStatus``) is their attendee status; ``resource``
  attendees are rooms; ``isAllDay`` events are whole days.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, tzinfo
from typing import Any

import icalendar

from calsync.model import CalendarData, Problem
from calsync.sources.base import Window
from calsync.sources.graph_recurrence import iana_zone, rrule_for
from calsync.sources.ics import LISTED_FROM, LISTED_TO, read_converted

Event = Mapping[str, Any]

_RESPONSE = {
    "accepted": "ACCEPTED",
    "organizer": "ACCEPTED",
    "declined": "DECLINED",
    "tentativelyAccepted": "TENTATIVE",
    "notResponded": "NEEDS-ACTION",
    "none": "NEEDS-ACTION",
}
_FRACTION = re.compile(r"(\.\d{6})\d+")


def graph_calendar_data(
    instances: Iterable[Event],
    masters: Mapping[str, Event],
    mailbox: str,
    listed: Window,
    window: Window,
    default_tz: tzinfo,
) -> tuple[CalendarData, list[Problem]]:
    """One mailbox's calendar: the view's instances (listed over ``listed``) and their series masters."""
    owner = mailbox.lower()

    def convert(item: tuple[bool, Event]) -> icalendar.Event | None:
        is_master, event = item
        return _master(event, owner, listed) if is_master else _instance(event, masters, owner)

    items = [(True, master) for master in masters.values()] + [(False, instance) for instance in instances]
    return read_converted(items, convert, lambda item: _describe(item[1]), mailbox, window, default_tz)


def _zone_of(event: Event) -> tzinfo:
    return iana_zone(event.get("originalStartTimeZone") or (event.get("start") or {}).get("timeZone"))


def _moment(value: Mapping[str, Any], zone: tzinfo) -> datetime:
    """A Graph dateTimeTimeZone, in ``zone``."""
    text = _FRACTION.sub(r"\1", str(value["dateTime"]))
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=iana_zone(value.get("timeZone")))
    return moment.astimezone(zone)


def _times(event: Event, zone: tzinfo) -> tuple[date | datetime, date | datetime]:
    start, end = _moment(event["start"], zone), _moment(event["end"], zone)
    if event.get("isAllDay"):
        return start.date(), end.date()
    return start, end


def _common(vevent: icalendar.Event, event: Event, owner: str, zone: tzinfo) -> None:
    if "start" in event:
        start, end = _times(event, zone)
        vevent.add("dtstart", start)
        vevent.add("dtend", end)
    if event.get("subject"):
        vevent.add("summary", str(event["subject"]))
    if event.get("isCancelled"):
        vevent.add("status", "CANCELLED")
    if event.get("lastModifiedDateTime"):
        vevent.add(
            "last-modified", datetime.fromisoformat(_FRACTION.sub(r"\1", str(event["lastModifiedDateTime"])))
        )
    organizer = ((event.get("organizer") or {}).get("emailAddress") or {}).get("address")
    if organizer:
        vevent.add("organizer", icalendar.vCalAddress(f"mailto:{organizer}"))
    own = (event.get("responseStatus") or {}).get("response")
    for attendee in event.get("attendees") or ():
        address = (attendee.get("emailAddress") or {}).get("address")
        if not address:
            continue
        response = (attendee.get("status") or {}).get("response")
        if str(address).lower() == owner and own:
            response = own  # the mailbox owner's own answer is the authoritative one
        entry = icalendar.vCalAddress(f"mailto:{address}")
        entry.params["PARTSTAT"] = _RESPONSE.get(str(response), "NEEDS-ACTION")
        entry.params["CUTYPE"] = "RESOURCE" if attendee.get("type") == "resource" else "INDIVIDUAL"
        name = (attendee.get("emailAddress") or {}).get("name")
        if name:
            entry.params["CN"] = str(name)
        vevent.add("attendee", entry)


def _master(master: Event, owner: str, listed: Window) -> icalendar.Event:
    zone = _zone_of(master)
    vevent = icalendar.Event()
    vevent.add("uid", str(master["iCalUId"]))
    _common(vevent, master, owner, zone)
    start = _moment(master["start"], zone)
    vevent["RRULE"] = icalendar.vRecur.from_ical(rrule_for(master["recurrence"], start))
    vevent.add(LISTED_FROM, listed.start.astimezone(UTC).isoformat())
    vevent.add(LISTED_TO, listed.end.astimezone(UTC).isoformat())
    return vevent


def _instance(instance: Event, masters: Mapping[str, Event], owner: str) -> icalendar.Event | None:
    kind = instance.get("type", "singleInstance")
    if kind == "seriesMaster":
        return None  # masters come through ``masters``
    if kind == "singleInstance":
        vevent = icalendar.Event()
        vevent.add("uid", str(instance["iCalUId"]))
        _common(vevent, instance, owner, _zone_of(instance))
        return vevent
    master = masters.get(str(instance.get("seriesMasterId")))
    if master is None:
        raise ValueError(f"its series master {instance.get('seriesMasterId')!r} was not fetched")
    zone = _zone_of(master)
    vevent = icalendar.Event()
    vevent.add("uid", str(master["iCalUId"]))
    original = instance.get("originalStart") or instance["start"]["dateTime"]
    vevent.add("recurrence-id", datetime.fromisoformat(_FRACTION.sub(r"\1", str(original))).astimezone(zone))
    _common(vevent, instance, owner, zone)
    return vevent


def _describe(event: Event) -> str:
    subject = event.get("subject")
    ident = event.get("id", "?")
    return f"event {subject!r} (id {ident})" if subject else f"event (id {ident})"
