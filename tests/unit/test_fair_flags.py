"""DESIGN.md section 3b's effects on section 3: excused dates, gaps with absence, new pairs, people
who do not count, unknown. Pure: assessments and reports built from plain values."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from calsync.absence import AbsenceEntry
from calsync.cadence import Assessment, Gap, PairStatus, assess, find_gaps
from calsync.detect import Ignored, one_on_ones, resolve
from calsync.model import Absence, CalendarData, Occurrence, Problem, Status
from calsync.org import Org, Person
from calsync.report import (
    Coverage,
    Fairness,
    PairReport,
    Policy,
    Report,
    build_report,
    render_csv,
    render_json,
    render_table,
)
from tests.builders import AS_OF, PAIR, A, B, at, clock, occ, series_copy

LIMIT = 17  # cadence 14 + 3 grace


def day(offset: int) -> date:
    return AS_OF + timedelta(days=offset)


def away(first: int, last: int) -> frozenset[date]:
    """The dates from day ``first`` to day ``last`` (inclusive), relative to AS_OF."""
    return frozenset(day(n) for n in range(first, last + 1))


def fair(
    occurrences: list[Occurrence],
    excused: frozenset[date] = frozenset(),
    since: date | None = None,
    cadence: int = 14,
) -> Assessment:
    return assess(occurrences, PAIR, clock(), cadence, 3, excused=excused, since=since)


# -- gaps ------------------------------------------------------------------------------------------------


def test_a_gap_without_absence_is_as_in_section_3():
    gaps = find_gaps([day(-60), day(-30)], AS_OF, LIMIT)
    assert gaps == (Gap(day(-60), day(-30), 30, 0), Gap(day(-30), None, 30, 0))


def test_excused_dates_strictly_between_two_held_dates_are_taken_off_a_gap():
    # 30 days apart, 13 of them away: 17 counted, not more than 17: no gap.
    excused = away(-50, -38)
    assert find_gaps([day(-60), day(-30)], day(-29), LIMIT, excused) == ()
    # 12 away: 18 counted: a gap, which says how many days were not counted
    assert find_gaps([day(-60), day(-30)], day(-29), LIMIT, away(-50, -39)) == (
        Gap(day(-60), day(-30), 30, 12),
    )


def test_excused_dates_on_the_held_dates_themselves_do_not_count():
    # away on both held dates and one day between: only the one day between is taken off
    excused = frozenset({day(-60), day(-45), day(-30)})
    assert find_gaps([day(-60), day(-30)], day(-29), LIMIT, excused) == (Gap(day(-60), day(-30), 30, 1),)


def test_the_open_gap_subtracts_the_absence_since_the_last_one_held():
    excused = away(-25, -10)  # 16 days away of the 30 since
    assert find_gaps([day(-30)], AS_OF, LIMIT, excused) == ()
    assert find_gaps([day(-40)], AS_OF, LIMIT, excused) == (Gap(day(-40), None, 40, 16),)


def test_overdue_uses_the_days_since_minus_absence_and_says_how_many_were_not_counted():
    occurrences = [occ(at(-30))]
    assert fair(occurrences).status is PairStatus.OVERDUE
    excused = away(-22, -10)  # 13 days away: 17 counted
    result = fair(occurrences, excused)
    assert result.status is not PairStatus.OVERDUE
    assert (result.days_since_last, result.absent_days_since_last) == (30, 13)
    longer = fair(occurrences, away(-22, -11))
    assert longer.status is PairStatus.OVERDUE
    assert longer.reasons[0] == "no 1:1 held for 30 days, 12 of them away (cadence 14 + 3 grace)"


def test_absent_days_since_last_is_null_without_a_1on1_held():
    assert fair([]).absent_days_since_last is None
    assert fair([occ(at(-3))]).absent_days_since_last == 0


# -- excused cancellations and declines -------------------------------------------------------------------


def test_a_cancellation_or_decline_on_an_excused_date_is_listed_and_not_counted():
    occurrences = [
        occ(at(-10), status=Status.CANCELLED),
        occ(at(-17), declined=(B,)),
        occ(at(-24)),
        occ(at(-3), status=Status.CANCELLED),
    ]
    result = fair(occurrences, frozenset({day(-10), day(-17)}))
    states = result.states
    assert states.cancelled == (day(-10), day(-3)) and states.declined == (day(-17),)
    assert states.excused == (day(-17), day(-10))
    assert states.counted_cancelled == (day(-3),) and states.counted_declined == ()
    assert "1 cancelled in the last 90 days" in result.reasons
    assert "2 cancelled or declined while away, not counted" in result.reasons


def test_all_cancelled_is_overdue_only_for_cancellations_on_dates_that_are_not_excused():
    cancelled = [occ(at(-30), status=Status.CANCELLED), occ(at(-16), status=Status.CANCELLED)]
    assert fair(cancelled).status is PairStatus.OVERDUE
    excused = fair(cancelled, frozenset({day(-30), day(-16)}))
    assert excused.status is PairStatus.NO_SERIES  # nothing counted, nothing held or scheduled
    one_counted = fair(cancelled, frozenset({day(-30)}))
    assert one_counted.status is PairStatus.OVERDUE
    assert one_counted.reasons[0].endswith("all 1 that fell in it were cancelled or declined")


# -- at-risk with absence ahead ---------------------------------------------------------------------


def test_the_schedule_clause_subtracts_absence_between_the_last_and_the_next():
    occurrences = [occ(at(-5)), occ(at(20))]  # 25 days apart
    assert fair(occurrences).status is PairStatus.AT_RISK
    # away from day 0 to day 9 (out-of-office ahead): 10 days off, 15 counted
    result = fair(occurrences, away(0, 9))
    assert result.status is PairStatus.OK
    partly = fair(occurrences, away(0, 6))  # 7 off: 18 counted
    assert partly.status is PairStatus.AT_RISK
    assert "25 days after the last one held, 7 of them away" in partly.reasons[0]


# -- new pairs ---------------------------------------------------------------------------------------


def test_a_young_pair_with_nothing_is_at_risk_and_an_old_one_no_series():
    assert fair([], since=day(-10)).status is PairStatus.AT_RISK
    assert fair([], since=day(-10)).reasons[0] == f"new since {day(-10)}: no 1:1 scheduled yet"
    assert fair([], since=day(-17)).status is PairStatus.AT_RISK  # 17 is not more than 17
    assert fair([], since=day(-18)).status is PairStatus.NO_SERIES
    # absence since `since` makes the pair younger
    assert fair([], since=day(-30), excused=away(-25, -10)).status is PairStatus.AT_RISK
    assert fair([], since=day(-30)).since == day(-30)


def test_overdue_and_the_open_gap_are_measured_from_since_when_it_is_later():
    # held 60 days ago (say, as peers), the manager -> report line began 10 days ago
    occurrences = [occ(at(-60))]
    result = fair(occurrences, since=day(-10))
    assert result.status is PairStatus.AT_RISK  # nothing scheduled, but not overdue
    assert result.gaps == ()
    later = fair(occurrences, since=day(-20))
    assert later.status is PairStatus.OVERDUE
    assert later.gaps[-1] == Gap(day(-20), None, 20, 0)
    assert later.reasons[0].startswith(f"no 1:1 held in the 20 days since {day(-20)} (new pair)")


def test_cancellations_before_since_do_not_make_a_new_pair_overdue():
    cancelled = [occ(at(-40), status=Status.CANCELLED), occ(at(-5), status=Status.CANCELLED)]
    assert fair(cancelled, since=day(-20)).status is PairStatus.OVERDUE  # day -5 counts
    assert fair(cancelled[:1], since=day(-10)).status is PairStatus.AT_RISK  # new: nothing yet
    assert fair(cancelled[:1], since=day(-20)).status is PairStatus.NO_SERIES  # 20 days: not new


# -- people who do not count ---------------------------------------------------------------------------


def test_ignore_patterns_match_addresses_and_domains_case_insensitively():
    ignored = Ignored(["EA@acme.test", "*@Notetaker.example"])
    assert ignored("ea@ACME.test") and ignored("bot@notetaker.example")
    assert not ignored("ann@acme.test") and not ignored("bot@sub.notetaker.example")
    assert not Ignored() and Ignored(["*@x.example"])


def test_an_assistant_or_a_bot_does_not_stop_a_meeting_being_a_1on1():
    members = Org([Person(A, "Ann", None), Person(B, "Bob", A)], ["acme.test"]).is_member
    ea = "ea@acme.test"
    scheduled_by_ea = occ(at(-3), people=(ea, A, B), organizer=ea)
    with_bot = occ(at(-10), people=(A, B, "rec@notetaker.example"), series="s2")
    ignored = Ignored([ea, "*@notetaker.example"])
    assert one_on_ones([scheduled_by_ea, with_bot], members).pairs == {}
    assert {len(v) for v in one_on_ones([scheduled_by_ea, with_bot], members, ignored).pairs.values()} == {2}


# -- reports ------------------------------------------------------------------------------------------

BOSS, ANN, BOB, CAT = "boss@acme.test", "ann@acme.test", "bob@acme.test", "cat@acme.test"


def org(**bob: Any) -> Org:
    return Org(
        [
            Person(BOSS, "Boss", None),
            Person(ANN, "Ann", BOSS),
            Person(BOB, "Bob", ANN, **bob),
            Person(CAT, "Cat", ANN),
        ],
        ["acme.test"],
    )


def pairs_of(report: Report) -> dict[tuple[str, str], PairReport]:
    return {p.people: p for p in report.pairs}


def test_out_of_office_of_the_report_excuses_the_gap_and_the_reasons_never_name_it():
    calendar = CalendarData(
        "bob.ics",
        (occ(at(-30), people=(ANN, BOB), calendar="bob.ics"),),
        (series_copy("bob.ics"),),
        absences=(
            Absence(
                BOB, datetime.combine(day(-25), time(0), UTC), datetime.combine(day(-11), time(0), UTC), True
            ),
        ),
    )
    report = build_report(org(), resolve([calendar]), clock(), Policy(), fairness=Fairness(calendar.absences))
    bob = pairs_of(report)[(ANN, BOB)]
    assert bob.status is PairStatus.AT_RISK  # nothing scheduled; not overdue: 14 of 30 days away
    assert bob.assessment.absent_days_since_last == 14
    data = json.loads(render_json(report))
    bob_json = next(p for p in data["pairs"] if p["people"] == [ANN, BOB])
    assert bob_json["absent_days_since_last"] == 14 and bob_json["since"] is None
    assert bob_json["excused"] == []
    assert all("absent_days" in gap for p in data["pairs"] for gap in p["gaps"])


def test_config_absence_holidays_and_the_persons_own_calendar_come_together():
    # Bob's last 1:1 was 25 days ago (a Thursday); [[absence]] and Bob's holidays take off days
    occurrences = (occ(at(-25), people=(ANN, BOB), calendar="ann.ics"),)
    calendar = CalendarData("ann.ics", occurrences, (series_copy("ann.ics"),))
    entry = AbsenceEntry(ANN, day(-12), day(-9), reason="conference")
    policy = Policy(absences=(entry,))
    report = build_report(org(), resolve([calendar]), clock(), policy)
    bob = pairs_of(report)[(ANN, BOB)].assessment
    assert bob.absent_days_since_last == 4
    assert "conference" not in render_json(report) + render_table(report) + render_csv(report)
    # Thanksgiving (26 November 2026) is ahead: a holiday of Bob's in the US, not of the org's
    with_holidays = build_report(
        org(holidays="US"), resolve([calendar]), clock(as_of=date(2026, 12, 5)), policy
    )
    assert pairs_of(with_holidays)[(ANN, BOB)].assessment.absent_days_since_last == 5


def test_since_comes_from_the_roster_before_the_state():
    fairness = Fairness(since={(ANN, BOB): day(-5), (ANN, CAT): day(-6)})
    report = build_report(org(since=day(-3)), resolve([]), clock(), Policy(), fairness=fairness)
    pairs = pairs_of(report)
    assert pairs[(ANN, BOB)].assessment.since == day(-3)
    assert pairs[(ANN, CAT)].assessment.since == day(-6)
    assert pairs[(ANN, BOSS)].assessment.since is None
    assert (
        pairs[(ANN, BOB)].status is PairStatus.AT_RISK and pairs[(ANN, BOSS)].status is PairStatus.NO_SERIES
    )


def test_a_pair_whose_managers_calendar_could_not_be_read_is_unknown_not_no_series():
    problem = Problem("workspace: ann@acme.test", "HTTP 403: no access", unread=True, owner=ANN)
    # Cat's 1:1 with Ann is in Cat's calendar: it was read, so that pair is judged
    cat = CalendarData(
        "cat", (occ(at(-3), people=(ANN, CAT), calendar="cat"),), (series_copy("cat"),), owner=CAT
    )
    coverage = Coverage.of([cat], [problem])
    report = build_report(org(), resolve([cat]), clock(), Policy(), [problem], Fairness(coverage=coverage))
    pairs = pairs_of(report)
    assert pairs[(ANN, BOB)].status is PairStatus.UNKNOWN
    assert (
        pairs[(ANN, BOB)]
        .assessment.reasons[0]
        .startswith("could not be checked: Ann's calendar could not be read")
    )
    assert pairs[(ANN, CAT)].status is not PairStatus.UNKNOWN
    assert pairs[(ANN, BOSS)].status is PairStatus.NO_SERIES  # Boss's calendar was not unread
    assert report.unknown_count == 1 and report.count(PairStatus.NO_SERIES) == 1
    table = render_table(report)
    assert table.index("COULD NOT BE CHECKED (1)") < table.index("unknown") < table.index("no-series")
    assert "1 could not be checked." in table
    statuses = {tuple(p["people"]): p["status"] for p in json.loads(render_json(report))["pairs"]}
    assert statuses[(ANN, BOB)] == "unknown"


def test_a_stored_reading_is_not_unknown_and_says_how_old_it_is():
    problem = Problem("workspace: ann@acme.test", "HTTP 503", unread=False, owner=ANN)
    stored = CalendarData("ann", (), (), owner=ANN, stored_at="2026-11-19T08:00:00+00:00")
    coverage = Coverage.of([stored], [problem])
    report = build_report(org(), resolve([stored]), clock(), Policy(), [problem], Fairness(coverage=coverage))
    bob = pairs_of(report)[(ANN, BOB)]
    assert bob.status is PairStatus.NO_SERIES
    assert (
        "judged from Ann's calendar as last synced on 2026-11-19T08:00:00+00:00" in bob.assessment.reasons[-1]
    )


def test_a_calendar_of_unknown_owner_that_could_not_be_read_leaves_every_empty_pair_unknown():
    problem = Problem("calendars/x.ics", "not a valid iCalendar file", unread=True)
    cat = CalendarData("cat", (occ(at(-3), people=(ANN, CAT), calendar="cat"),), (series_copy("cat"),))
    coverage = Coverage.of([cat], [problem])
    report = build_report(org(), resolve([cat]), clock(), Policy(), [problem], Fairness(coverage=coverage))
    statuses = {p.people: p.status for p in report.pairs}
    assert statuses[(ANN, BOB)] is PairStatus.UNKNOWN and statuses[(ANN, BOSS)] is PairStatus.UNKNOWN
    assert statuses[(ANN, CAT)] is not PairStatus.UNKNOWN


def test_an_absentees_out_of_office_does_not_count_as_their_calendar_read():
    problem = Problem("team.ics", "not a valid iCalendar file", unread=True, owner=ANN)
    absentee = CalendarData("ann@acme.test (out of office)", owner=ANN, absences_only=True)
    assert Coverage.of([absentee], [problem]).unread == {ANN: str(problem)}
