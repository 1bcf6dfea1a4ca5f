"""DESIGN.md section 3: occurrence states, gaps, next_scheduled and status, rule by rule."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from calsync.cadence import (
    Clock,
    Gap,
    PairStatus,
    assess,
    find_gaps,
    occurrence_states,
    scheduled_cadence_days,
)
from calsync.model import Status
from tests.builders import AS_OF, BERLIN, PAIR, A, B, at, clock, occ

D = AS_OF


def day(offset: int) -> date:
    return D + timedelta(days=offset)


def weekly(first: int, last: int, step: int = 7, **kw):
    """Occurrences every ``step`` days, counted back from day ``last`` to no earlier than ``first``."""
    return [occ(at(o), **kw) for o in range(last, first - 1, -step)]


# -- occurrence states ----------------------------------------------------------------------------


def test_held_cancelled_declined_are_sorted_by_state_and_date():
    occurrences = [
        occ(at(-3)),
        occ(at(-10), status=Status.CANCELLED),
        occ(at(-17), declined=(B,)),
        occ(at(-24), declined=(A,)),  # either of the two declining counts
        occ(at(-31)),
    ]
    states = occurrence_states(occurrences, PAIR, clock())
    assert states.held == (day(-31), day(-3))
    assert states.cancelled == (day(-10),)
    assert states.declined == (day(-24), day(-17))
    assert states.last_held == day(-3)


def test_decline_by_a_third_person_does_not_make_it_declined():
    states = occurrence_states(
        [occ(at(-3), people=(A, B, "carl@acme.test"), declined=("carl@acme.test",))], PAIR, clock()
    )
    assert states.held == (day(-3),)
    assert states.declined == ()


def test_window_edges_lookback_inclusive_as_of_exclusive():
    c = clock(lookback=90)
    occurrences = [occ(at(-90)), occ(at(-91)), occ(at(0, hour=0)), occ(at(0, hour=9))]
    states = occurrence_states(occurrences, PAIR, c)
    assert states.held == (day(-90),)  # day -91 is outside; as_of itself is not before as_of
    assert states.next_scheduled == day(0)


def test_cancelled_occurrence_is_listed_by_its_original_date():
    moved_then_cancelled = occ(at(-5), rid=at(-8), status=Status.CANCELLED)
    states = occurrence_states([moved_then_cancelled], PAIR, clock())
    assert states.cancelled == (day(-8),)


def test_moved_occurrence_counts_at_its_new_date():
    moved = occ(at(-2), rid=at(-4))
    states = occurrence_states([moved], PAIR, clock())
    assert states.held == (day(-2),)


def test_moved_from_past_into_future_is_scheduled_not_held():
    moved = occ(at(2), rid=at(-1))
    states = occurrence_states([moved], PAIR, clock())
    assert states.held == ()
    assert states.next_scheduled == day(2)


def test_next_scheduled_skips_cancelled_and_declined_and_respects_lookahead():
    c = clock(lookahead=30)
    occurrences = [
        occ(at(3), status=Status.CANCELLED),
        occ(at(5), declined=(A,)),
        occ(at(12)),
        occ(at(40)),
    ]
    assert occurrence_states(occurrences, PAIR, c).next_scheduled == day(12)
    assert occurrence_states([occ(at(40))], PAIR, c).next_scheduled is None


def test_dates_are_local_dates_in_the_events_time_zone():
    # 00:30 in Berlin on day -3 is still day -4 in UTC: the event's own zone decides.
    start = at(-3, hour=0, tz=BERLIN).replace(minute=30)
    states = occurrence_states([occ(start)], PAIR, clock())
    assert states.held == (day(-3),)


def test_as_of_in_org_time_zone():
    # as_of = 00:00 Berlin = 23:00 UTC the day before; a 23:30 UTC meeting is then not yet held...
    c = clock(tz=BERLIN)
    late = at(-1, hour=23).replace(minute=30)
    assert occurrence_states([occ(late)], PAIR, c).held == ()
    # ...whereas with UTC as_of it is.
    assert occurrence_states([occ(late)], PAIR, clock()).held == (day(-1),)


# -- gaps -----------------------------------------------------------------------------------------


def test_gap_is_more_than_cadence_plus_grace_between_consecutive_held_dates():
    held = [day(-60), day(-43), day(-25), day(-10)]  # 17 days: not a gap; 18 days: a gap
    assert find_gaps(held, D, 17) == (Gap(day(-43), day(-25), 18),)


def test_open_gap_ends_the_list():
    held = [day(-80), day(-50), day(-30)]
    assert find_gaps(held, D, 17) == (
        Gap(day(-80), day(-50), 30),
        Gap(day(-50), day(-30), 20),
        Gap(day(-30), None, 30),
    )


def test_no_held_dates_no_gaps():
    assert find_gaps([], D, 17) == ()


@given(
    st.lists(st.integers(min_value=-90, max_value=-1), max_size=20), st.integers(min_value=1, max_value=40)
)
def test_gaps_property(offsets, limit):
    held = sorted(day(o) for o in offsets)
    gaps = find_gaps(held, D, limit)
    closed = [g for g in gaps if g.end is not None]
    # every closed gap joins two consecutive held dates and is longer than the limit
    pairs = list(itertools.pairwise(held))
    assert [(g.start, g.end) for g in closed] == [(a, b) for a, b in pairs if (b - a).days > limit]
    assert all(g.end is not None and g.days == (g.end - g.start).days > limit for g in closed)
    opened = [g for g in gaps if g.end is None]
    assert len(opened) == (1 if held and (D - held[-1]).days > limit else 0)
    if opened:
        assert gaps[-1] is opened[0] and opened[0].start == held[-1]


# -- status ---------------------------------------------------------------------------------------


def status_of(occurrences, cadence=14, grace=3, c: Clock | None = None):
    return assess(occurrences, PAIR, c or clock(), cadence, grace)


def test_ok():
    a = status_of(weekly(-84, 4))
    assert a.status is PairStatus.OK
    assert a.states.last_held == day(-3)
    assert a.states.next_scheduled == day(4)
    assert a.days_since_last == 3
    assert a.reasons[0] == f"last 1:1 3 days ago; next scheduled {day(4)}"


def test_overdue_when_last_held_too_long_ago():
    a = status_of(weekly(-80, -18) + weekly(10, 80))
    assert a.status is PairStatus.OVERDUE
    assert a.days_since_last == 18
    assert a.reasons[0] == "no 1:1 held for 18 days (cadence 14 + 3 grace)"
    assert a.gaps[-1] == Gap(day(-18), None, 18)


def test_exactly_cadence_plus_grace_is_not_overdue():
    a = status_of([occ(at(-17)), occ(at(0, hour=9))])
    assert a.status is PairStatus.OK
    assert a.gaps == ()


def test_overdue_beats_no_series_when_series_ended():
    a = status_of(weekly(-80, -40))
    assert a.status is PairStatus.OVERDUE
    assert a.states.next_scheduled is None


def test_overdue_when_everything_in_window_was_cancelled_or_declined():
    a = status_of([occ(at(-20), status=Status.CANCELLED), occ(at(-6), declined=(B,)), occ(at(8))])
    assert a.status is PairStatus.OVERDUE
    assert a.states.held == ()
    assert a.states.next_scheduled == day(8)
    assert "all 2 that fell in it were cancelled or declined" in a.reasons[0]


def test_no_series_when_nothing_held_and_nothing_ahead():
    a = status_of([])
    assert a.status is PairStatus.NO_SERIES
    assert a.days_since_last is None and a.states.last_held is None
    assert a.gaps == ()


def test_no_series_when_only_old_history_outside_window():
    assert status_of(weekly(-140, -100)).status is PairStatus.NO_SERIES


def test_at_risk_nothing_held_yet_but_scheduled():
    a = status_of(weekly(3, 80))
    assert a.status is PairStatus.AT_RISK
    assert a.reasons[0] == f"no 1:1 held in the last 90 days; next scheduled {day(3)}"


def test_at_risk_nothing_scheduled_ahead():
    a = status_of(weekly(-60, -4))
    assert a.status is PairStatus.AT_RISK
    assert a.reasons[0] == "nothing scheduled in the next 90 days (last 1:1 4 days ago)"


def test_at_risk_schedule_slower_than_cadence():
    a = status_of(weekly(-66, 18, step=28))  # held day -10, next day 18: 28 days apart
    assert a.states.last_held == day(-10)
    assert a.states.next_scheduled == day(18)
    assert a.status is PairStatus.AT_RISK
    assert "28 days after the last one held" in a.reasons[0]


def test_roster_cadence_changes_the_limit():
    occurrences = weekly(-66, 4, step=14)  # held day -10, next day 4
    assert status_of(occurrences, cadence=14).status is PairStatus.OK
    # 10 days since the last is not more than 7 + 3, but the next one is 14 days after it.
    assert status_of(occurrences, cadence=7, grace=3).status is PairStatus.AT_RISK
    # 10 days since the last is more than 7 + 2.
    assert status_of(occurrences, cadence=7, grace=2).status is PairStatus.OVERDUE


def test_untracked_pairs_get_no_cadence_and_no_gaps():
    a = assess(weekly(-80, -40), PAIR, clock(), None, 3)
    assert a.status is PairStatus.UNTRACKED
    assert a.cadence_days is None
    assert a.gaps == ()
    assert a.states.last_held == day(-40)


def test_notes_count_cancellations_declines_and_gaps():
    occurrences = weekly(-70, 4)
    occurrences[2] = occ(occurrences[2].start, status=Status.CANCELLED)
    occurrences[3] = occ(occurrences[3].start, status=Status.CANCELLED)
    occurrences[4] = occ(occurrences[4].start, declined=(A,))
    a = status_of(occurrences)
    assert a.status is PairStatus.OK
    assert "2 cancelled in the last 90 days" in a.reasons
    assert "1 declined in the last 90 days" in a.reasons
    assert "1 gap between 1:1s longer than 17 days (longest 28 days)" in a.reasons


@given(
    st.sets(st.integers(min_value=-120, max_value=120), max_size=25), st.integers(1, 30), st.integers(0, 7)
)
def test_status_agrees_with_its_definition(offsets, cadence, grace):
    occurrences = [occ(at(o)) for o in offsets]
    a = status_of(occurrences, cadence, grace)
    limit = cadence + grace
    held = [o for o in offsets if -90 <= o < 0]
    ahead = [o for o in offsets if 0 <= o < 90]
    if held and -max(held) > limit:
        assert a.status is PairStatus.OVERDUE
    elif not held and not ahead:
        assert a.status is PairStatus.NO_SERIES
    elif not held or not ahead or min(ahead) - max(held) > limit:
        assert a.status is PairStatus.AT_RISK
    else:
        assert a.status is PairStatus.OK


# -- scheduled cadence ------------------------------------------------------------------------------


def test_scheduled_cadence_days_from_rrule():
    assert scheduled_cadence_days("FREQ=WEEKLY") == 7
    assert scheduled_cadence_days("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU") == 14
    assert scheduled_cadence_days("RRULE:FREQ=WEEKLY;BYDAY=MO,TH") == 4
    assert scheduled_cadence_days("FREQ=MONTHLY;BYDAY=2TU") == 30
    assert scheduled_cadence_days("FREQ=DAILY;INTERVAL=3") == 3
    assert scheduled_cadence_days(None) is None
    assert scheduled_cadence_days("FREQ=SECONDLY") is None
