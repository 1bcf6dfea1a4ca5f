"""DESIGN.md section 3b: which dates are absent for a person, rule by rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from calsync.absence import (
    AbsenceEntry,
    PersonRules,
    Span,
    absent_dates,
    everyone_absent,
    holiday_dates,
    holiday_problem,
)
from calsync.model import Absence

A = "ann@acme.test"
B = "bob@acme.test"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SPAN = Span(date(2026, 11, 1), date(2026, 12, 31))
UTC_RULES = PersonRules(UTC)


def timed(day: date, start: int, end: int, tz=UTC, person: str = A) -> Absence:
    return Absence(
        person,
        datetime.combine(day, time(start), tzinfo=tz),
        datetime.combine(day, time(0), tzinfo=tz) + timedelta(hours=end),
        all_day=False,
    )


def all_day(first: date, last: date, person: str = A) -> Absence:
    return Absence(
        person,
        datetime.combine(first, time(0), tzinfo=UTC),
        datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC),
        all_day=True,
    )


def dates(first: date, last: date) -> set[date]:
    return {first + timedelta(days=n) for n in range((last - first).days + 1)}


# -- out-of-office blocks -------------------------------------------------------------------------------


def test_an_all_day_block_covers_its_dates_and_not_the_exclusive_end():
    wed = date(2026, 11, 18)
    assert absent_dates([all_day(wed, wed + timedelta(days=1))], [], UTC_RULES, SPAN) == {
        wed,
        wed + timedelta(days=1),
    }


def test_the_four_hour_rule_counts_a_timed_block_of_four_hours_and_not_less():
    tue = date(2026, 11, 17)
    assert absent_dates([timed(tue, 9, 13)], [], UTC_RULES, SPAN) == {tue}  # exactly 4 hours
    assert absent_dates([timed(tue, 9, 12)], [], UTC_RULES, SPAN) == frozenset()  # 3 hours
    # two short blocks on one day do not add up: each block is judged by itself
    assert absent_dates([timed(tue, 8, 11), timed(tue, 13, 16)], [], UTC_RULES, SPAN) == frozenset()


def test_a_timed_block_is_judged_in_the_persons_time_zone():
    # 20:00 to 02:00 UTC is 6 hours, split 4 / 2 in UTC but 3 / 3 in New York (15:00 to 21:00 EST: one
    # date, 6 hours) and 21:00 to 03:00 in Berlin (3 hours on the 17th, 3 on the 18th).
    tue = date(2026, 11, 17)
    block = timed(tue, 20, 26)
    assert absent_dates([block], [], UTC_RULES, SPAN) == {tue}
    assert absent_dates([block], [], PersonRules(NEW_YORK), SPAN) == {tue}
    assert absent_dates([block], [], PersonRules(BERLIN), SPAN) == frozenset()


def test_a_multi_day_timed_block_covers_the_whole_days_and_the_ends_by_the_four_hour_rule():
    # Monday 15:00 to Thursday 11:00: Monday has 9 hours, Tuesday and Wednesday all day, Thursday 11.
    mon = date(2026, 11, 16)
    block = Absence(A, datetime(2026, 11, 16, 15, tzinfo=UTC), datetime(2026, 11, 19, 3, tzinfo=UTC))
    assert absent_dates([block], [], UTC_RULES, SPAN) == {mon, mon + timedelta(1), mon + timedelta(2)}


def test_a_dst_change_day_is_measured_in_real_hours():
    # 29 March 2026 in Berlin has 23 hours: 00:00 to 04:00 local is only 3 real hours.
    day = date(2026, 3, 29)
    block = Absence(A, datetime(2026, 3, 29, 0, tzinfo=BERLIN), datetime(2026, 3, 29, 4, tzinfo=BERLIN))
    spring = Span(date(2026, 3, 1), date(2026, 4, 30))
    assert absent_dates([block], [], PersonRules(BERLIN), spring) == frozenset()
    longer = Absence(A, datetime(2026, 3, 29, 0, tzinfo=BERLIN), datetime(2026, 3, 29, 5, tzinfo=BERLIN))
    assert absent_dates([longer], [], PersonRules(BERLIN), spring) == {day}


# -- the weekend rule ----------------------------------------------------------------------------------


def test_a_weekend_is_absent_only_when_the_working_days_on_both_sides_are():
    fri, mon = date(2026, 11, 20), date(2026, 11, 23)
    sat, sun = date(2026, 11, 21), date(2026, 11, 22)
    both = absent_dates([all_day(fri, fri), all_day(mon, mon)], [], UTC_RULES, SPAN)
    assert both == {fri, sat, sun, mon}
    before_only = absent_dates([all_day(fri, fri)], [], UTC_RULES, SPAN)
    assert before_only == {fri}
    after_only = absent_dates([all_day(mon, mon)], [], UTC_RULES, SPAN)
    assert after_only == {mon}


def test_the_weekend_rule_at_both_ends_of_the_span_looks_beyond_it():
    # The span starts on a Sunday and ends on a Saturday: the working days that decide lie outside it.
    span = Span(date(2026, 11, 22), date(2026, 11, 28))
    fri_before, mon, fri, mon_after = (
        date(2026, 11, 20),
        date(2026, 11, 23),
        date(2026, 11, 27),
        date(2026, 11, 30),
    )
    away = absent_dates([all_day(fri_before, mon), all_day(fri, mon_after)], [], UTC_RULES, span)
    assert date(2026, 11, 22) in away  # Sunday, first day of the span: Friday before and Monday away
    assert date(2026, 11, 28) in away  # Saturday, last day: Friday and the Monday after it away
    assert all(span.first <= d <= span.last for d in away)


def test_a_configured_weekend_replaces_saturday_and_sunday():
    thu, sun = date(2026, 11, 19), date(2026, 11, 22)
    fri, sat = date(2026, 11, 20), date(2026, 11, 21)
    friday_saturday = (4, 5)
    away = absent_dates([all_day(thu, thu), all_day(sun, sun)], [], UTC_RULES, SPAN, friday_saturday)
    assert away == {thu, fri, sat, sun}
    # with no weekend at all, nothing is filled in
    assert absent_dates([all_day(thu, thu), all_day(sun, sun)], [], UTC_RULES, SPAN, ()) == {thu, sun}


def test_a_weekend_between_holidays_and_leave_counts_whatever_made_the_days_absent():
    # Friday 25 December 2026 is a holiday in Germany, Monday 28 December is leave.
    entry = AbsenceEntry(A, date(2026, 12, 28), date(2026, 12, 28))
    away = absent_dates([], [entry], PersonRules(BERLIN, "DE"), SPAN)
    assert {date(2026, 12, 25), date(2026, 12, 26), date(2026, 12, 27), date(2026, 12, 28)} <= away


# -- [[absence]] and holidays -------------------------------------------------------------------------


def test_config_absences_are_inclusive_and_clipped_to_the_span():
    entry = AbsenceEntry(A, date(2026, 10, 20), date(2026, 11, 3), reason="parental leave")
    assert absent_dates([], [entry], UTC_RULES, SPAN) == dates(date(2026, 11, 1), date(2026, 11, 3))


def test_holidays_per_country_and_per_subdivision():
    # Epiphany (6 January) is a holiday in Bavaria, not in Berlin; New Year's Day in both.
    year = Span(date(2027, 1, 1), date(2027, 1, 10))
    bavaria = absent_dates([], [], PersonRules(BERLIN, "DE-BY"), year)
    berlin = absent_dates([], [], PersonRules(BERLIN, "DE-BE"), year)
    assert date(2027, 1, 6) in bavaria and date(2027, 1, 6) not in berlin
    assert date(2027, 1, 1) in bavaria and date(2027, 1, 1) in berlin
    # Thanksgiving in the US, not in Germany
    assert date(2026, 11, 26) in holiday_dates("US-CA", (2026,))
    assert date(2026, 11, 26) not in holiday_dates("DE", (2026,))


def test_holiday_codes_are_checked_with_what_would_be_valid():
    assert holiday_problem("DE-BY") is None and holiday_problem("us-ca") is None
    assert "country code" in (holiday_problem("XX") or "")
    assert "not a subdivision of DE" in (holiday_problem("DE-ZZ") or "")


def test_everyone_absent_uses_each_persons_rules_and_skips_people_never_away():
    thanksgiving = date(2026, 11, 26)
    found = everyone_absent(
        [A, B, "cat@acme.test"],
        [all_day(date(2026, 11, 2), date(2026, 11, 2), person=B)],
        [],
        {A: PersonRules(NEW_YORK, "US-CA")},
        PersonRules(BERLIN, None),
        SPAN,
    )
    assert thanksgiving in found.of(A)
    assert found.of(B) == {date(2026, 11, 2)}
    assert "cat@acme.test" not in found.by_person
    assert found.excused((A, B)) == found.of(A) | {date(2026, 11, 2)}
