"""DESIGN.md section 3: what a 1:1 is, and the same meeting seen in several calendars."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from calsync.detect import human_participants, one_on_ones, resolve
from calsync.model import CalendarData, Status
from tests.builders import PAIR, A, B, at, occ, series_copy, v


def member(email: str) -> bool:
    return email.endswith("@acme.test")


def cal(name: str, *occurrences, series=()):
    return CalendarData(name, tuple(occurrences), tuple(series))


# -- the participant rule ---------------------------------------------------------------------------


def test_two_org_members_make_a_one_on_one():
    found = one_on_ones([occ(at(-3))], member)
    assert list(found.pairs) == [PAIR]


def test_rooms_and_resources_do_not_count():
    o = occ(at(-3), rooms=("room-1@acme.test", "beamer@acme.test"))
    assert human_participants(o) == PAIR
    assert list(one_on_ones([o], member).pairs) == [PAIR]


def test_organizer_counts_as_a_participant():
    o = occ(at(-3), people=(B,), organizer=A)  # organizer not on the attendee list
    assert human_participants(o) == PAIR
    three = occ(at(-3), people=PAIR, organizer="assistant@acme.test")
    assert one_on_ones([three], member).pairs == {}


def test_three_people_is_not_a_one_on_one_whatever_the_title():
    o = occ(at(-3), people=(A, B, "carl@acme.test"), title="1:1 Ann / Bob")
    assert one_on_ones([o], member).pairs == {}


def test_a_single_person_is_not_a_one_on_one():
    assert one_on_ones([occ(at(-3), people=(A,))], member).pairs == {}


def test_external_pairs_are_ignored_and_counted():
    found = one_on_ones([occ(at(-3), people=(A, "guest@client.example"))], member)
    assert found.pairs == {}
    assert found.external == 1


def test_all_day_events_are_not_meetings():
    assert one_on_ones([occ(at(-3), all_day=True)], member).pairs == {}


def test_one_off_cancelled_as_a_whole_is_not_a_meeting_but_a_cancelled_occurrence_is():
    whole = occ(at(-3), rid=False, status=Status.CANCELLED, series="one-off")
    single = occ(at(-10), status=Status.CANCELLED, series="weekly")
    found = one_on_ones([whole, single], member)
    assert found.pairs == {PAIR: [single]}


def test_one_offs_between_the_same_people_join_the_pair():
    found = one_on_ones([occ(at(-3), rid=False, series="x"), occ(at(-10), series="y")], member)
    assert len(found.pairs[PAIR]) == 2


# -- the same meeting in several calendars ------------------------------------------------------------


def test_same_meeting_in_two_calendars_counts_once():
    resolved = resolve(
        [
            cal("ann.ics", occ(at(-3), calendar="ann.ics"), series=[series_copy("ann.ics")]),
            cal("bob.ics", occ(at(-3), calendar="bob.ics"), series=[series_copy("bob.ics")]),
        ]
    )
    assert len(resolved.occurrences) == 1


def test_newest_copy_wins_by_sequence_then_last_modified():
    old = occ(at(-3), calendar="bob.ics", version=v(1, -30))
    newer_lm = occ(at(-3), calendar="ann.ics", version=v(1, -10), declined=(B,))
    higher_seq = occ(at(-3), calendar="carl.ics", version=v(2, -40))
    assert resolve([cal("bob.ics", old), cal("ann.ics", newer_lm)]).occurrences == (newer_lm,)
    assert resolve([cal("b", old), cal("a", newer_lm), cal("c", higher_seq)]).occurrences == (higher_seq,)


def test_stale_copy_never_brings_back_a_cancelled_occurrence():
    cancelled = occ(at(-3), calendar="ann.ics", status=Status.CANCELLED, version=v(2))
    stale = occ(at(-3), calendar="bob.ics", version=v(1))
    assert resolve([cal("bob.ics", stale), cal("ann.ics", cancelled)]).occurrences == (cancelled,)


def test_a_tie_is_won_by_the_cancellation():
    cancelled = occ(at(-3), calendar="ann.ics", status=Status.CANCELLED, version=v(1))
    confirmed = occ(at(-3), calendar="bob.ics", version=v(1))
    for order in ([confirmed, cancelled], [cancelled, confirmed]):
        calendars = [cal(o.calendar, o) for o in order]
        assert resolve(calendars).occurrences == (cancelled,)


def test_a_tie_between_accepted_and_declined_is_won_by_the_decline():
    declined = occ(at(-3), calendar="bob.ics", declined=(B,))
    accepted = occ(at(-3), calendar="ann.ics")
    assert resolve([cal("ann.ics", accepted), cal("bob.ics", declined)]).occurrences == (declined,)


def test_a_newer_confirmation_beats_an_older_cancellation():
    cancelled = occ(at(-3), calendar="ann.ics", status=Status.CANCELLED, version=v(1))
    reinstated = occ(at(-3), calendar="bob.ics", version=v(2))
    assert resolve([cal("ann.ics", cancelled), cal("bob.ics", reinstated)]).occurrences == (reinstated,)


def test_a_newer_copy_that_no_longer_has_the_occurrence_removes_it():
    # Ann's newer copy of the series ended it; Bob's stale copy still shows the occurrence.
    stale = occ(at(-3), calendar="bob.ics", version=v(1))
    resolved = resolve(
        [
            cal("ann.ics", series=[series_copy("ann.ics", version=v(2))]),
            cal("bob.ics", stale, series=[series_copy("bob.ics", version=v(1))]),
        ]
    )
    assert resolved.occurrences == ()


def test_an_older_copy_missing_an_occurrence_does_not_remove_it():
    fresh = occ(at(-3), calendar="ann.ics", version=v(2))
    resolved = resolve(
        [
            cal("ann.ics", fresh, series=[series_copy("ann.ics", version=v(2))]),
            cal("bob.ics", series=[series_copy("bob.ics", version=v(1))]),
        ]
    )
    assert resolved.occurrences == (fresh,)


def test_series_cancelled_as_a_whole_in_the_newest_copy_disappears():
    stale = occ(at(-3), calendar="bob.ics", version=v(1))
    resolved = resolve(
        [
            cal("ann.ics", series=[series_copy("ann.ics", version=v(3), cancelled=True)]),
            cal("bob.ics", stale, series=[series_copy("bob.ics", version=v(1))]),
        ]
    )
    assert resolved.occurrences == ()


def test_moved_occurrence_is_matched_by_original_start():
    moved = occ(at(-2), rid=at(-3), calendar="ann.ics", version=v(2))
    stale = occ(at(-3), calendar="bob.ics", version=v(1))
    resolved = resolve([cal("ann.ics", moved), cal("bob.ics", stale)])
    assert resolved.occurrences == (moved,)


def test_different_series_are_kept_apart():
    one = occ(at(-3), series="s1")
    two = occ(at(-3), series="s2")
    assert len(resolve([cal("x", one, two)]).occurrences) == 2


def test_one_off_copies_merge_by_uid_even_when_moved():
    old = occ(at(-3), rid=False, series="x", calendar="bob.ics", version=v(0))
    moved = occ(at(-1), rid=False, series="x", calendar="ann.ics", version=v(1))
    assert resolve([cal("bob.ics", old), cal("ann.ics", moved)]).occurrences == (moved,)


def test_resolve_reports_the_newest_master_of_each_series():
    resolved = resolve(
        [
            cal("ann.ics", series=[series_copy("ann.ics", version=v(2))]),
            cal("bob.ics", series=[series_copy("bob.ics", version=v(1))]),
        ]
    )
    assert resolved.series["s1"].calendar == "ann.ics"


# -- property: the merge rule, for any copies in any order ---------------------------------------------

_STATES = ("confirmed", "declined", "absent", "cancelled")  # weakest to strongest on a version tie


@given(
    st.lists(
        st.tuples(st.sampled_from(_STATES), st.integers(0, 3), st.sampled_from([None, -30, -20, -10])),
        min_size=1,
        max_size=6,
    ),
    st.randoms(use_true_random=False),
)
def test_newest_claim_wins_and_ties_favour_removal_in_any_order(copies, rnd):
    calendars = []
    claims = []
    for index, (state, seq, updated) in enumerate(copies):
        name = f"cal{index}"
        version = v(seq, updated)
        claims.append((version.key(), _STATES.index(state), state))
        copy = series_copy(name, version=version)
        if state == "absent":
            calendars.append(cal(name, series=[copy]))
            continue
        o = occ(
            at(-3),
            calendar=name,
            version=version,
            status=Status.CANCELLED if state == "cancelled" else Status.CONFIRMED,
            declined=(B,) if state == "declined" else (),
        )
        calendars.append(cal(name, o, series=[copy]))
    expected = max(claims)[2]
    rnd.shuffle(calendars)
    result = resolve(calendars).occurrences
    if expected == "absent":
        assert result == ()
    else:
        (winner,) = result
        state = (
            "cancelled"
            if winner.cancelled
            else ("declined" if winner.participants[1].response == "declined" else "confirmed")
        )
        assert state == expected


def test_a_copy_with_hidden_guests_is_not_counted_but_loses_ties_to_a_complete_one():
    partial = replace(occ(at(-3), calendar="bob"), participants_complete=False)
    assert one_on_ones([partial], member).pairs == {}
    complete = occ(at(-3), calendar="ann")
    for order in ([partial, complete], [complete, partial]):
        assert resolve([cal(o.calendar, o) for o in order]).occurrences == (complete,)
    # ...but a newer or stronger claim still wins: a cancellation seen only in the partial copy stands
    cancelled = replace(partial, status=Status.CANCELLED)
    assert resolve([cal("bob", cancelled), cal("ann", complete)]).occurrences == (cancelled,)
