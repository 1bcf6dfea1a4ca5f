"""The demo's / tests' event specs as Exchange mailbox contents in the Graph fake, the way Exchange keeps
them.

- A recurring spec becomes a ``seriesMaster`` with the equivalent ``patternedRecurrence`` (weekly on the
  start's weekday with ``firstDayOfWeek`` sunday, daily, monthly on the start's day of the month, yearly);
  ``until`` becomes an inclusive ``endDate`` (the last day an occurrence may start on, in the series'
  zone), ``count`` a ``numbered`` range. Anything else (``byday``, ``rdates`` ...) is a ValueError.
- ``exdates`` and cancelled overrides delete their occurrence (it vanishes from the calendarView, as on
  the organizer's calendar); other overrides become ``exception`` instances. A series cancelled as a whole
  is a master with ``isCancelled`` whose instances are all cancelled.
- Exchange keeps Windows zone names: a ``tzid`` spec is stored with that name; floating times are in the
  org's zone; other times in their own IANA zone. All-day specs are ``isAllDay`` midnight to midnight.
- Outlook's busy status (``X-MICROSOFT-CDO-BUSYSTATUS`` in a spec's ``extra``: OOF, BUSY, FREE,
  TENTATIVE, WORKINGELSEWHERE) is the event's ``showAs``; without it Exchange's default, ``busy``.
- Graph has no SEQUENCE: ``lastModifiedDateTime`` is ``spec.last_modified``, else 2026-01-01 UTC plus
  ``sequence`` hours; a master's is the latest of its own and its overrides' (in Exchange, changing an
  occurrence changes the master).
- The same meeting gets a different id in each mailbox (derived from the mailbox and the UID, so runs are
  reproducible) and the same ``iCalUId``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from calsync.demo import EventSpec
from tests.fakes.graph import FakeGraph, zone_info
from tests.fakes.https import no_cyclic_gc

BASE_VERSION = datetime(2026, 1, 1, tzinfo=UTC)
_RESPONSES = {"ACCEPTED": "accepted", "DECLINED": "declined", "TENTATIVE": "tentativelyAccepted"}
_RESOURCES = frozenset({"ROOM", "RESOURCE"})
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NEVER = "0001-01-01T00:00:00Z"
_SHOW_AS = {
    "FREE": "free",
    "TENTATIVE": "tentative",
    "BUSY": "busy",
    "OOF": "oof",
    "WORKINGELSEWHERE": "workingElsewhere",
}


def show_as(spec: EventSpec) -> str:
    """The spec's ``showAs``: its Outlook busy status, else ``busy``."""
    status = str(spec.extra.get("X-MICROSOFT-CDO-BUSYSTATUS", "BUSY")).upper()
    if status not in _SHOW_AS:
        raise ValueError(f"{spec.uid}: no showAs stands for X-MICROSOFT-CDO-BUSYSTATUS:{status}")
    return _SHOW_AS[status]


def version(spec: EventSpec) -> datetime:
    """The spec's ``lastModifiedDateTime``."""
    return spec.last_modified or BASE_VERSION + timedelta(hours=spec.sequence)


def event_id(mailbox: str, uid: str) -> str:
    """An Exchange-looking id of one meeting in one mailbox."""
    digest = hashlib.sha256(f"{mailbox.lower()}|{uid}".encode()).digest()
    return "AAMkAD" + base64.urlsafe_b64encode(digest).decode()


@functools.lru_cache(maxsize=4096)  # many specs share a version
def _stamp(moment: datetime) -> str:
    return _text(moment.astimezone(UTC)) + "Z"


def _zone_name(spec: EventSpec, org_tz: str) -> str:
    if spec.floating:
        return org_tz
    if spec.tzid:
        return spec.tzid
    start = spec.start
    if not isinstance(start, datetime):
        return org_tz
    tz = start.tzinfo
    if isinstance(tz, ZoneInfo):
        return tz.key
    if tz is not None and start.utcoffset() == timedelta(0):
        return "UTC"
    raise ValueError(f"{spec.uid}: cannot name the time zone {tz!r} the way Exchange does")


def _wall(spec: EventSpec, value: datetime, org_tz: str) -> datetime:
    """``value`` as naive wall-clock time in the spec's zone (floating and TZID specs are written naive)."""
    if spec.floating or spec.tzid or value.tzinfo is None:
        return value.replace(tzinfo=None)
    return value.astimezone(zone_info(_zone_name(spec, org_tz))).replace(tzinfo=None)


def _instant(spec: EventSpec, value: date | datetime, org_tz: str) -> datetime:
    zone = zone_info(_zone_name(spec, org_tz))
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=zone)
    return _wall(spec, value, org_tz).replace(tzinfo=zone)


def _text(moment: datetime) -> str:
    if moment.year >= 1000:  # isoformat's text, which is quicker to make (strftime does not pad years)
        return moment.isoformat(timespec="microseconds")[:26] + "0"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0"


def _times(spec: EventSpec, org_tz: str) -> dict[str, Any]:
    zone = _zone_name(spec, org_tz)
    start = spec.start
    if isinstance(start, datetime):
        # _wall, with the zone named once
        if spec.floating or spec.tzid or start.tzinfo is None:
            wall = start.replace(tzinfo=None)
        else:
            wall = start.astimezone(zone_info(zone)).replace(tzinfo=None)
        first, last, all_day = wall, wall + spec.duration, False
    else:
        first = datetime.combine(start, time())
        last, all_day = first + timedelta(days=max(1, spec.duration.days)), True
    return {
        "start": {"dateTime": _text(first), "timeZone": zone},
        "end": {"dateTime": _text(last), "timeZone": zone},
        "isAllDay": all_day,
    }


def _recurrence(spec: EventSpec, org_tz: str) -> dict[str, Any]:
    rule = {str(k).lower(): v for k, v in (spec.rrule or {}).items()}
    freq = str(rule.pop("freq", "")).lower()
    interval = int(rule.pop("interval", 1))
    until = rule.pop("until", None)
    count = rule.pop("count", None)
    if rule:
        raise ValueError(f"{spec.uid}: cannot express {sorted(rule)} of its RRULE as a Graph pattern")
    if until is not None and count is not None:
        raise ValueError(f"{spec.uid}: an RRULE cannot have both UNTIL and COUNT")
    zone_name = _zone_name(spec, org_tz)
    start = spec.start
    first = _wall(spec, start, org_tz) if isinstance(start, datetime) else datetime.combine(start, time())
    pattern: dict[str, Any]
    if freq == "weekly":
        pattern = {
            "type": "weekly",
            "interval": interval,
            "daysOfWeek": [_WEEKDAYS[first.weekday()]],
            "firstDayOfWeek": "sunday",
        }
    elif freq == "daily":
        pattern = {"type": "daily", "interval": interval}
    elif freq == "monthly":
        pattern = {"type": "absoluteMonthly", "interval": interval, "dayOfMonth": first.day}
    elif freq == "yearly":
        pattern = {
            "type": "absoluteYearly",
            "interval": interval,
            "dayOfMonth": first.day,
            "month": first.month,
        }
    else:
        raise ValueError(f"{spec.uid}: cannot express FREQ={freq or '?'} as a Graph pattern")
    rng: dict[str, Any] = {
        "type": "noEnd",
        "startDate": first.date().isoformat(),
        "recurrenceTimeZone": zone_name,
    }
    if isinstance(until, datetime):
        # the last day an occurrence may start on: UNTIL's day in the series' zone, or the day before
        # when that day's occurrence would start after UNTIL
        local = (
            until.replace(tzinfo=None)
            if until.tzinfo is None
            else until.astimezone(zone_info(zone_name)).replace(tzinfo=None)
        )
        last = local.date() if first.time() <= local.time() else local.date() - timedelta(days=1)
        rng.update({"type": "endDate", "endDate": last.isoformat()})
    elif isinstance(until, date):
        rng.update({"type": "endDate", "endDate": until.isoformat()})
    elif count is not None:
        rng.update({"type": "numbered", "numberOfOccurrences": int(count)})
    return {"pattern": pattern, "range": rng}


def _people(
    spec: EventSpec, mailbox: str, known: dict[int, tuple[str, str, str, dict[str, str]]] | None = None
) -> dict[str, Any]:
    """attendees, organizer, isOrganizer and responseStatus. ``known``: what each Attendee gives
    (``_load`` keeps one for a mailbox: its meetings share Attendee objects), by ``id``."""
    owner = mailbox.lower()
    stamp = _stamp(version(spec))
    organizer = spec.organizer.lower() if spec.organizer else None
    organizer_name: str | None = None
    attendees = []
    own = "none"
    for attendee in spec.attendees:
        found = known.get(id(attendee)) if known is not None else None
        if found is None:
            email = attendee.email
            found = (
                "resource" if attendee.cutype.upper() in _RESOURCES else "required",
                _RESPONSES.get(attendee.partstat.upper(), "none"),
                email.lower(),
                {"name": attendee.name or email, "address": email},  # shared: never changed
            )
            if known is not None:
                known[id(attendee)] = found
        kind, response, lowered, address = found
        if lowered == owner:
            own = response
        if attendee.name and lowered == organizer:
            organizer_name = attendee.name  # the last one named, as a dict of names would keep
        attendees.append(
            {
                "type": kind,
                "status": {"response": response, "time": stamp if response != "none" else _NEVER},
                "emailAddress": address if known is not None else dict(address),
            }
        )
    people: dict[str, Any] = {"attendees": attendees}
    if spec.organizer:
        people["organizer"] = {
            "emailAddress": {"name": organizer_name or spec.organizer, "address": spec.organizer}
        }
        if organizer == owner:
            own = "organizer"
    people["isOrganizer"] = own == "organizer"
    people["responseStatus"] = {
        "response": own,
        "time": stamp if own not in ("none", "organizer") else _NEVER,
    }
    return people


def _resource(
    spec: EventSpec,
    mailbox: str,
    org_tz: str,
    last_modified: datetime,
    known: dict[int, tuple[str, str, str, dict[str, str]]] | None = None,
) -> dict[str, Any]:
    if spec.rdates:
        raise ValueError(f"{spec.uid}: Graph cannot express RDATEs")
    zone = _zone_name(spec, org_tz)
    resource: dict[str, Any] = {
        "id": event_id(mailbox, spec.uid),
        "iCalUId": spec.uid,
        "subject": spec.summary,
        **_times(spec, org_tz),
        "originalStartTimeZone": zone,
        "originalEndTimeZone": zone,
        "isCancelled": spec.status == "CANCELLED",
        "showAs": show_as(spec),
        **_people(spec, mailbox, known),
        "createdDateTime": _stamp(min(BASE_VERSION, last_modified)),
        "lastModifiedDateTime": _stamp(last_modified),
    }
    if spec.rrule:
        resource["type"] = "seriesMaster"
        resource["recurrence"] = _recurrence(spec, org_tz)
    elif spec.exdates:
        raise ValueError(f"{spec.uid}: EXDATEs without an RRULE")
    else:
        resource["type"] = "singleInstance"
    return resource


def load_mailbox(fake: FakeGraph, mailbox: str, specs: Iterable[EventSpec], org_tz: str = "UTC") -> None:
    """Store one mailbox's specs (masters, their overrides, one-offs) in ``fake``."""
    with no_cyclic_gc():  # it makes no reference cycles, but many objects
        _load(fake, mailbox, list(specs), org_tz)


def _load(fake: FakeGraph, mailbox: str, specs: list[EventSpec], org_tz: str) -> None:
    overrides: dict[str, list[EventSpec]] = {}
    for spec in specs:
        if spec.recurrence_id is not None:
            overrides.setdefault(spec.uid, []).append(spec)
    masters = {spec.uid: spec for spec in specs if spec.recurrence_id is None and spec.rrule}
    orphans = sorted(set(overrides) - set(masters))
    if orphans:
        raise ValueError(f"overrides without their series in {mailbox}: {orphans}")
    known: dict[int, tuple[str, str, str, dict[str, str]]] = {}  # for _people: the specs keep them alive
    for spec in specs:
        if spec.recurrence_id is not None:
            continue
        own = overrides.get(spec.uid, [])
        latest = max([version(spec), *(version(o) for o in own)])
        stored = fake.put_event(mailbox, _resource(spec, mailbox, org_tz, latest, known), adopt=True)
        if not spec.rrule:
            continue
        for exdate in spec.exdates:
            fake.cancel_occurrence(
                mailbox, stored["id"], _instant(spec, exdate, org_tz), last_modified=version(spec)
            )
        for override in sorted(own, key=lambda o: _instant(spec, o.recurrence_id or o.start, org_tz)):
            assert override.recurrence_id is not None
            original = _instant(spec, override.recurrence_id, org_tz)
            if override.status == "CANCELLED":
                fake.cancel_occurrence(mailbox, stored["id"], original, last_modified=version(override))
                continue
            changes = {
                "subject": override.summary,
                **_times(override, org_tz),
                "isCancelled": False,
                "showAs": show_as(override),
                **_people(override, mailbox, known),
                "lastModifiedDateTime": _stamp(version(override)),
            }
            fake.put_exception(mailbox, stored["id"], original, changes, adopt=True)
