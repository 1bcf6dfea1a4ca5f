"""Graph recurrence patterns, expanded through the ICS engine, give the occurrences Graph means."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events

from calsync.sources.graph_recurrence import iana_zone, rrule_for

BERLIN = ZoneInfo("Europe/Berlin")


def dates(recurrence: dict[str, Any], start: datetime, until: datetime | None = None) -> list[date]:
    rule = rrule_for(recurrence, start)
    event = icalendar.Event()
    event.add("uid", "x")
    event.add("dtstart", start)
    event.add("rrule", icalendar.vRecur.from_ical(rule))
    calendar = icalendar.Calendar()
    calendar.add_component(event)
    end = until or datetime(2028, 1, 1, tzinfo=UTC)
    return [e["DTSTART"].dt.date() for e in recurring_ical_events.of(calendar).between(start, end)]


def rec(pattern: dict[str, Any], range_: dict[str, Any]) -> dict[str, Any]:
    return {"pattern": pattern, "range": range_}


def test_biweekly_until_an_end_date_that_is_itself_an_occurrence():
    start = datetime(2026, 10, 6, 10, tzinfo=BERLIN)  # a Tuesday
    r = rec(
        {"type": "weekly", "interval": 2, "daysOfWeek": ["tuesday"], "firstDayOfWeek": "monday"},
        {"type": "endDate", "startDate": "2026-10-06", "endDate": "2026-11-17"},
    )
    assert dates(r, start) == [date(2026, 10, 6), date(2026, 10, 20), date(2026, 11, 3), date(2026, 11, 17)]
    assert "WKST=MO" in rrule_for(r, start) and "UNTIL=20261117T225959Z" in rrule_for(r, start)


def test_weekly_on_two_days_numbered():
    start = datetime(2026, 10, 5, 9, tzinfo=BERLIN)  # a Monday
    r = rec(
        {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "thursday"]},
        {"type": "numbered", "numberOfOccurrences": 5},
    )
    assert dates(r, start) == [
        date(2026, 10, 5),
        date(2026, 10, 8),
        date(2026, 10, 12),
        date(2026, 10, 15),
        date(2026, 10, 19),
    ]


def test_daily_every_third_day():
    start = datetime(2026, 10, 5, 9, tzinfo=BERLIN)
    r = rec({"type": "daily", "interval": 3}, {"type": "numbered", "numberOfOccurrences": 3})
    assert dates(r, start) == [date(2026, 10, 5), date(2026, 10, 8), date(2026, 10, 11)]


def test_absolute_and_relative_monthly():
    start = datetime(2026, 10, 15, 9, tzinfo=BERLIN)
    absolute = rec(
        {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15},
        {"type": "numbered", "numberOfOccurrences": 3},
    )
    assert dates(absolute, start) == [date(2026, 10, 15), date(2026, 11, 15), date(2026, 12, 15)]
    second_tuesday = rec(
        {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["tuesday"], "index": "second"},
        {"type": "numbered", "numberOfOccurrences": 3},
    )
    assert dates(second_tuesday, datetime(2026, 10, 13, 9, tzinfo=BERLIN)) == [
        date(2026, 10, 13),
        date(2026, 11, 10),
        date(2026, 12, 8),
    ]
    last_friday = rec(
        {"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["friday"], "index": "last"},
        {"type": "numbered", "numberOfOccurrences": 2},
    )
    assert dates(last_friday, datetime(2026, 10, 30, 9, tzinfo=BERLIN)) == [
        date(2026, 10, 30),
        date(2026, 12, 25),
    ]


def test_yearly_patterns():
    start = datetime(2026, 3, 1, 9, tzinfo=BERLIN)
    absolute = rec(
        {"type": "absoluteYearly", "interval": 1, "dayOfMonth": 1, "month": 3},
        {"type": "numbered", "numberOfOccurrences": 2},
    )
    assert dates(absolute, start) == [date(2026, 3, 1), date(2027, 3, 1)]
    first_monday_of_june = rec(
        {"type": "relativeYearly", "interval": 1, "daysOfWeek": ["monday"], "index": "first", "month": 6},
        {"type": "numbered", "numberOfOccurrences": 2},
    )
    assert dates(first_monday_of_june, datetime(2026, 6, 1, 9, tzinfo=BERLIN)) == [
        date(2026, 6, 1),
        date(2027, 6, 7),
    ]


def test_no_end():
    start = datetime(2026, 10, 6, 10, tzinfo=BERLIN)
    r = rec(
        {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
        {"type": "noEnd", "startDate": "2026-10-06"},
    )
    assert len(dates(r, start, until=datetime(2026, 12, 31, tzinfo=UTC))) == 13


@pytest.mark.parametrize(
    ("pattern", "range_", "message"),
    [
        ({"type": "hourly"}, {"type": "noEnd"}, "unknown recurrence pattern type"),
        ({"type": "weekly", "daysOfWeek": ["funday"]}, {"type": "noEnd"}, "unknown day of the week"),
        (
            {"type": "relativeMonthly", "daysOfWeek": ["monday"], "index": "fifth"},
            {"type": "noEnd"},
            "unknown week index",
        ),
        ({"type": "daily"}, {"type": "numbered", "numberOfOccurrences": 0}, "numberOfOccurrences >= 1"),
        ({"type": "daily"}, {"type": "sometimes"}, "unknown recurrence range type"),
    ],
)
def test_bad_patterns_are_errors(pattern, range_, message):
    with pytest.raises(ValueError, match=message):
        rrule_for(rec(pattern, range_), datetime(2026, 10, 6, 10, tzinfo=BERLIN))


def test_time_zone_names():
    assert iana_zone("W. Europe Standard Time") == BERLIN
    assert iana_zone("Pacific Standard Time") == ZoneInfo("America/Los_Angeles")
    assert iana_zone("Europe/Berlin") == BERLIN
    assert iana_zone(None) == ZoneInfo("UTC")
    with pytest.raises(ValueError, match="unknown time zone 'Mars Standard Time'"):
        iana_zone("Mars Standard Time")
