"""The demo's / tests' event specs as Google Calendar event resources, the way Google stores them.

Google has no floating times or Windows zone names: such events carry the zone the user's client
resolved (here: the org's). A cancelled exception is stored as Google's stripped tombstone (id,
recurringEventId, originalStartTime, status only), which is what ``events.list`` returns for it.
An all-day event lasts its days (its ``end`` date exclusive, as the ICS writer's DTEND).

An Outlook-style out-of-office spec (``X-MICROSOFT-CDO-BUSYSTATUS:OOF``) is what Calendar keeps for an
out-of-office block: ``eventType: "outOfOffice"`` with its ``outOfOfficeProperties``, opaque, and always
timed, since the API refuses an all-day one: a spec of whole days is served as Calendar's UI keeps an
"all day" block, a span from midnight to midnight in the calendar's zone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar

from calsync.demo import Attendee, EventSpec
from tests.fakes.google import FakeGoogle

WINDOWS_ZONES = {"W. Europe Standard Time": "Europe/Berlin"}
_RESPONSES = {"ACCEPTED": "accepted", "DECLINED": "declined", "TENTATIVE": "tentative"}
#: What an out-of-office block carries (no decline message: it could say why the person is away).
OUT_OF_OFFICE_PROPERTIES = {"autoDeclineMode": "declineOnlyNewConflictingInvitations"}


def out_of_office(spec: EventSpec) -> bool:
    """Whether a spec is an out-of-office block, as Outlook exports one."""
    return any(
        key.upper() == "X-MICROSOFT-CDO-BUSYSTATUS" and value.upper() == "OOF"
        for key, value in spec.extra.items()
    )


def event_id(uid: str) -> str:
    """Google event ids are base32hex-like: lowercase letters a-v and digits (as hex digits are)."""
    return hashlib.sha1(uid.encode(), usedforsecurity=False).hexdigest()[:26]


def _zone_name(spec: EventSpec, value: datetime, org_tz: str) -> str:
    if spec.floating:
        return org_tz
    if spec.tzid:
        return WINDOWS_ZONES.get(spec.tzid, spec.tzid)
    tz = value.tzinfo
    return tz.key if isinstance(tz, ZoneInfo) else "UTC"


def _time(spec: EventSpec, value: date | datetime, org_tz: str) -> dict[str, str]:
    if not isinstance(value, datetime):
        return {"date": value.isoformat()}
    zone = _zone_name(spec, value, org_tz)
    local = value.replace(tzinfo=ZoneInfo(zone)) if (spec.floating or spec.tzid) else value
    return {"dateTime": local.isoformat(), "timeZone": zone}


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _recurrence(spec: EventSpec, org_tz: str) -> list[str]:
    lines: list[str] = []
    if spec.rrule:
        rule: Any = icalendar.vRecur(spec.rrule)  # what calsync.demo.ics_event writes
        lines.append("RRULE:" + rule.to_ical().decode())
    for name, values in (("EXDATE", spec.exdates), ("RDATE", spec.rdates)):
        for value in values:
            zone = _zone_name(spec, value, org_tz)
            local = value.replace(tzinfo=ZoneInfo(zone)) if (spec.floating or spec.tzid) else value
            local = local.astimezone(ZoneInfo(zone))
            lines.append(f"{name};TZID={zone}:{local.strftime('%Y%m%dT%H%M%S')}")
    return lines


def _midnight(day: date, zone: str) -> dict[str, str]:
    """The start of a day in a zone, as a timed Google time (how an "all day" out-of-office is kept)."""
    return {"dateTime": datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).isoformat(), "timeZone": zone}


def to_google(spec: EventSpec, org_tz: str = "UTC") -> dict[str, Any]:
    """One spec (a master, an override or a one-off) as a Google event resource."""
    master_id = event_id(spec.uid)
    resource: dict[str, Any] = {}
    if spec.recurrence_id is not None:
        rid = spec.recurrence_id
        resource["id"] = f"{master_id}_{rid.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        resource["recurringEventId"] = master_id
        resource["originalStartTime"] = _time(spec, rid, org_tz)
        if spec.status == "CANCELLED":  # Google's stripped tombstone
            return {**resource, "status": "cancelled"}
    else:
        resource["id"] = master_id
    start = spec.start
    if isinstance(start, datetime):
        begins, ends = _time(spec, start, org_tz), _time(spec, start + spec.duration, org_tz)
    else:
        last = start + max(timedelta(days=1), spec.duration)  # exclusive, as ics_event's DTEND
        if out_of_office(spec):
            begins, ends = _midnight(start, org_tz), _midnight(last, org_tz)
        else:
            begins, ends = {"date": start.isoformat()}, {"date": last.isoformat()}
    resource.update(
        {
            "iCalUID": spec.uid,
            "status": "cancelled" if spec.status == "CANCELLED" else "confirmed",
            "summary": spec.summary,
            "start": begins,
            "end": ends,
            "sequence": spec.sequence,
        }
    )
    if out_of_office(spec):
        resource.update(eventType="outOfOffice", outOfOfficeProperties=dict(OUT_OF_OFFICE_PROPERTIES))
    if spec.last_modified is not None:
        resource["updated"] = _rfc3339(spec.last_modified)
    if spec.rrule or spec.exdates or spec.rdates:
        resource["recurrence"] = _recurrence(spec, org_tz)
    if spec.organizer:
        resource["organizer"] = {"email": spec.organizer}
    resource["attendees"] = [_attendee(a) for a in spec.attendees]
    return resource


def _attendee(attendee: Attendee) -> dict[str, Any]:
    out: dict[str, Any] = {"email": attendee.email}
    if attendee.name:
        out["displayName"] = attendee.name
    out["responseStatus"] = _RESPONSES.get(attendee.partstat, "needsAction")
    if attendee.cutype in ("ROOM", "RESOURCE"):
        out["resource"] = True
    return out


def calendar_events(specs: Iterable[EventSpec], org_tz: str = "UTC") -> list[dict[str, Any]]:
    return [to_google(spec, org_tz) for spec in specs]


def load_calendar(fake: FakeGoogle, calendar: str, specs: Iterable[EventSpec], org_tz: str = "UTC") -> None:
    """One calendar of event specs in the Google fake, in the org's zone (like ``load_mailbox`` for Graph)."""
    fake.add_calendar(calendar, org_tz)
    fake.put_events(calendar, calendar_events(specs, org_tz))  # fresh dicts: the fake may keep them
