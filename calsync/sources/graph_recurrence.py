"""Microsoft Graph's recurrence and time zones in iCalendar terms (groundwork for the Microsoft source).

Graph describes a series by a ``patternedRecurrence``: a ``pattern`` (daily, weekly, absoluteMonthly,
relativeMonthly, absoluteYearly, relativeYearly; with interval, daysOfWeek, firstDayOfWeek, index,
dayOfMonth, month) and a ``range`` (endDate, numbered, noEnd; with startDate, endDate,
numberOfOccurrences, recurrenceTimeZone). :func:`rrule_for` writes the RRULE that schedules the same
occurrences, so that Graph series are expanded by the same engine as every other provider's.
Time zones come as Windows names as often as IANA ones: :func:`iana_zone` maps them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

_DAYS = {
    "monday": "MO",
    "tuesday": "TU",
    "wednesday": "WE",
    "thursday": "TH",
    "friday": "FR",
    "saturday": "SA",
    "sunday": "SU",
}
_INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
_FREQ = {
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "absoluteMonthly": "MONTHLY",
    "relativeMonthly": "MONTHLY",
    "absoluteYearly": "YEARLY",
    "relativeYearly": "YEARLY",
}


def iana_zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """The zone a Graph time-zone name stands for: an IANA name, or a Windows name ("W. Europe
    Standard Time"); ``fallback`` when there is none. An unknown name is a ValueError."""
    if not name:
        name = fallback
    for candidate in (name, WINDOWS_TO_OLSON.get(name)):  # an IANA name as it is, else a Windows one
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file
                continue
    raise ValueError(f"unknown time zone {name!r}")


def _days(pattern: Mapping[str, Any]) -> list[str]:
    names = pattern.get("daysOfWeek") or []
    try:
        return [_DAYS[str(name).lower()] for name in names]
    except KeyError as exc:
        raise ValueError(f"unknown day of the week {exc.args[0]!r}") from None


def rrule_for(recurrence: Mapping[str, Any], start: datetime) -> str:
    """The RRULE (without "RRULE:") of a Graph ``patternedRecurrence`` whose series starts at ``start``.

    ``start`` is the first occurrence's start in the series' own zone; an ``endDate`` range ends at
    the end of that day there (UNTIL is written in UTC, as RFC 5545 requires with a zoned DTSTART).
    """
    pattern = recurrence.get("pattern") or {}
    kind = str(pattern.get("type", ""))
    if kind not in _FREQ:
        raise ValueError(f"unknown recurrence pattern type {kind!r}")
    interval = int(pattern.get("interval") or 1)
    if interval < 1:
        raise ValueError(f"recurrence interval must be at least 1, got {interval}")
    parts = [f"FREQ={_FREQ[kind]}"]
    if interval != 1:
        parts.append(f"INTERVAL={interval}")

    if kind == "weekly":
        days = _days(pattern) or [_weekday_code(start)]
        parts.append(f"BYDAY={','.join(days)}")
        first = str(pattern.get("firstDayOfWeek") or "sunday").lower()
        if first not in _DAYS:
            raise ValueError(f"unknown first day of the week {first!r}")
        parts.append(f"WKST={_DAYS[first]}")  # decides which weeks an INTERVAL > 1 skips
    elif kind in ("absoluteMonthly", "absoluteYearly"):
        parts.append(f"BYMONTHDAY={int(pattern.get('dayOfMonth') or start.day)}")
    elif kind in ("relativeMonthly", "relativeYearly"):
        days = _days(pattern) or [_weekday_code(start)]
        index = str(pattern.get("index") or "first").lower()
        if index not in _INDEX:
            raise ValueError(f"unknown week index {index!r}")
        # "the first of these days in the week given by index": BYDAY with BYSETPOS picks exactly one
        parts.append(f"BYDAY={','.join(days)}")
        parts.append(f"BYSETPOS={_INDEX[index]}")
    if kind in ("absoluteYearly", "relativeYearly"):
        parts.append(f"BYMONTH={int(pattern.get('month') or start.month)}")

    limit = recurrence.get("range") or {}
    range_kind = str(limit.get("type", "noEnd"))
    if range_kind == "numbered":
        count = int(limit.get("numberOfOccurrences") or 0)
        if count < 1:
            raise ValueError("a numbered recurrence needs numberOfOccurrences >= 1")
        parts.append(f"COUNT={count}")
    elif range_kind == "endDate":
        end = date.fromisoformat(str(limit["endDate"]))
        zone = start.tzinfo or iana_zone(limit.get("recurrenceTimeZone"))
        last_moment = datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone) - timedelta(seconds=1)
        parts.append(f"UNTIL={last_moment.astimezone(ZoneInfo('UTC')).strftime('%Y%m%dT%H%M%SZ')}")
    elif range_kind != "noEnd":
        raise ValueError(f"unknown recurrence range type {range_kind!r}")
    return ";".join(parts)


def _weekday_code(moment: datetime) -> str:
    return ("MO", "TU", "WE", "TH", "FR", "SA", "SU")[moment.weekday()]
