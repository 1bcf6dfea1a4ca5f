"""Out-of-office blocks through the real client library (google-api-python-client, static discovery)
against the Google fake: on the calendars read for meetings, of absentees whose calendars are not read,
and calendars judged from their stored reading when they cannot be read now."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calsync.model import Absence, CalendarData
from calsync.sources.base import ReadCache, SourceResult, Window
from calsync.sources.google import GoogleSource, SharedCalendars, service_account_calendars, stored_calendars
from calsync.sources.retry import RateLimiter, RetryPolicy
from calsync.store import StateStore
from tests.fakes.google import FakeGoogle

pytestmark = pytest.mark.usefixtures("loopback_only")

BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = Window(datetime(2026, 8, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))
ANN, BOB, CARA = "ann@acme.test", "bob@acme.test", "cara@acme.test"
EVENTS = "/events"
OOF = {"autoDeclineMode": "declineOnlyNewConflictingInvitations", "declineMessage": "Away"}


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with FakeGoogle() as server:
        for person in (ANN, BOB, CARA):
            server.add_calendar(person, "Europe/Berlin")
        yield server
        assert server.internal_errors == []


@pytest.fixture
def calendars(fake: FakeGoogle, tmp_path: Path) -> Iterator[SharedCalendars]:
    key = tmp_path / "key.json"
    key.write_text(json.dumps(fake.service_account_info()))
    yield service_account_calendars(key, endpoint=fake.calendar_endpoint, ca_bundle=fake.ca_path, timeout=10)


def source(
    tmp_path: Path,
    calendars: SharedCalendars,
    read: list[str],
    absentees: tuple[str, ...] = (),
    reads: ReadCache | None = None,
) -> GoogleSource:
    return GoogleSource(
        "workspace",
        read,
        calendars,
        StateStore(tmp_path / "state.json", lock=False),  # each source() is a new run
        default_tz=BERLIN,
        retry=RetryPolicy(attempts=3, sleep=lambda s: None, jitter=lambda: 1.0),
        limiter=RateLimiter(per_minute=6000, sleep=lambda s: None),
        absentees=absentees,
        reads=reads,
    )


def at(day: str, clock: str) -> dict[str, str]:
    return {
        "dateTime": datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=BERLIN).isoformat(),
        "timeZone": "Europe/Berlin",
    }


def block(
    event_id: str, owner: str, start: dict[str, str], end: dict[str, str], **extra: Any
) -> dict[str, Any]:
    """An out-of-office block as Calendar keeps it: timed (an "all day" one from midnight to midnight)."""
    return {
        "id": event_id,
        "eventType": "outOfOffice",
        "summary": "Dentist, then the kids",  # private: never kept, never shown
        "start": start,
        "end": end,
        "organizer": {"email": owner, "self": True},
        "creator": {"email": owner, "self": True},
        "outOfOfficeProperties": OOF,
        **extra,
    }


def one_on_one(event_id: str, day: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "summary": "Ann / Bob",
        "start": at(day, "10:00"),
        "end": at(day, "10:30"),
        "organizer": {"email": ANN, "self": True},
        "attendees": [{"email": ANN, "self": True, "responseStatus": "accepted"}, {"email": BOB}],
    }


def days(absences: tuple[Absence, ...]) -> list[tuple[str, date, date, bool]]:
    return sorted((a.person, a.start.date(), a.end.date(), a.all_day) for a in absences)


def by_calendar(result: SourceResult) -> dict[str, CalendarData]:
    return {data.calendar: data for data in result.calendars}


def test_out_of_office_on_a_calendar_read_for_meetings(
    tmp_path: Path, fake: FakeGoogle, calendars: SharedCalendars
) -> None:
    fake.put_event(ANN, one_on_one("m1", "2026-10-06"))
    fake.put_event(ANN, block("timed", ANN, at("2026-10-07", "13:00"), at("2026-10-07", "18:00")))
    fake.put_event(ANN, block("allday", ANN, at("2026-10-12", "00:00"), at("2026-10-14", "00:00")))
    weekly = block(
        "fridays",
        ANN,
        at("2026-11-06", "00:00"),
        at("2026-11-07", "00:00"),
        recurrence=["RRULE:FREQ=WEEKLY;COUNT=4", "EXDATE;TZID=Europe/Berlin:20261113T000000"],
    )
    fake.put_event(ANN, weekly)
    # one Friday off cancelled, the last one only a morning
    cancelled = {
        "status": "cancelled",
        "recurringEventId": "fridays",
        "originalStartTime": at("2026-11-20", "00:00"),
    }
    fake.put_event(ANN, {"id": "fridays_20261119T230000Z", **cancelled})
    fake.put_event(
        ANN,
        block(
            "fridays_20261126T230000Z",
            ANN,
            at("2026-11-27", "08:00"),
            at("2026-11-27", "12:00"),
            recurringEventId="fridays",
            originalStartTime=at("2026-11-27", "00:00"),
        ),
    )
    fake.put_event(ANN, block("gone", ANN, at("2026-12-01", "09:00"), at("2026-12-01", "17:00")))
    fake.delete_event(ANN, "gone")
    # an invitation to someone else's block is not Ann's absence (nor a meeting)
    fake.put_event(
        ANN,
        block(
            "bobs",
            BOB,
            at("2026-10-20", "09:00"),
            at("2026-10-20", "17:00"),
            organizer={"email": BOB},
            attendees=[{"email": ANN, "self": True, "responseStatus": "needsAction"}],
        ),
    )

    result = source(tmp_path, calendars, [ANN]).fetch(WINDOW)
    assert result.problems == []
    (ann,) = result.calendars
    assert ann.owner == ANN and ann.stored_at is None
    assert [o.series_id for o in ann.occurrences] == ["m1@google.com"]  # blocks are never meetings
    assert days(ann.absences) == [
        (ANN, date(2026, 10, 7), date(2026, 10, 7), False),
        (ANN, date(2026, 10, 12), date(2026, 10, 14), True),  # "all day": the dates it covers
        (ANN, date(2026, 11, 6), date(2026, 11, 7), True),  # 13 Nov: EXDATE; 20 Nov: cancelled
        (ANN, date(2026, 11, 27), date(2026, 11, 27), False),  # the moved exception, timed
    ]
    stored = StateStore(tmp_path / "state.json", lock=False).load("workspace", ANN)
    assert stored is not None and "bobs" not in stored.events
    assert "Dentist" not in json.dumps(stored.events)  # an absence's title is never kept

    # a new block and a deletion arrive incrementally, in one request
    fake.reset_log()
    fake.put_event(ANN, block("later", ANN, at("2026-12-07", "00:00"), at("2026-12-08", "00:00")))
    fake.delete_event(ANN, "timed")
    again = source(tmp_path, calendars, [ANN]).fetch(WINDOW)
    assert fake.count("GET", EVENTS) == 1
    assert days(again.calendars[0].absences) == [
        (ANN, date(2026, 10, 12), date(2026, 10, 14), True),
        (ANN, date(2026, 11, 6), date(2026, 11, 7), True),
        (ANN, date(2026, 11, 27), date(2026, 11, 27), False),
        (ANN, date(2026, 12, 7), date(2026, 12, 8), True),
    ]


def test_absentees_are_listed_for_their_out_of_office_only_and_incrementally(
    tmp_path: Path, fake: FakeGoogle, calendars: SharedCalendars
) -> None:
    fake.put_event(ANN, one_on_one("m1", "2026-10-06"))
    fake.put_event(BOB, one_on_one("m1", "2026-10-06"))  # Bob's copy of the 1:1: not read again
    fake.put_event(BOB, block("away", BOB, at("2026-10-19", "00:00"), at("2026-10-24", "00:00")))
    focus = {"id": "focus", "eventType": "focusTime", "start": at("2026-10-08", "09:00")}
    fake.put_event(
        BOB, {**focus, "end": at("2026-10-08", "11:00"), "organizer": {"email": BOB, "self": True}}
    )

    fake.reset_log()
    first = source(tmp_path, calendars, [ANN], absentees=(BOB, ANN.upper(), CARA)).fetch(WINDOW)
    assert first.problems == []
    found = by_calendar(first)
    assert set(found) == {ANN, f"{BOB} (out of office)", f"{CARA} (out of office)"}  # Ann is read anyway
    bob = found[f"{BOB} (out of office)"]
    assert bob.owner == BOB and bob.occurrences == () and bob.series == ()
    assert days(bob.absences) == [(BOB, date(2026, 10, 19), date(2026, 10, 24), True)]
    assert found[f"{CARA} (out of office)"].absences == ()
    listings = [r for r in fake.requests if r.path.endswith(EVENTS)]
    of_bob = [r for r in listings if r.path == f"/calendar/v3/calendars/{BOB}/events"]
    assert len(of_bob) == 1  # the first sync of an absentee: one request (one page)
    assert of_bob[0].subject == BOB  # as that person
    assert of_bob[0].query["eventTypes"] == "outOfOffice" and of_bob[0].query["showDeleted"] == "true"
    assert all("eventTypes" not in r.query for r in listings if r.path.endswith(f"/{ANN}/events"))

    # nothing changed: one request per absentee
    fake.reset_log()
    quiet = source(tmp_path, calendars, [ANN], absentees=(BOB, CARA)).fetch(WINDOW)
    assert quiet.problems == []
    assert fake.count("GET", f"/{BOB}/events") == 1 and fake.count("GET", f"/{CARA}/events") == 1
    assert all(
        "syncToken" in r.query and r.query["eventTypes"] == "outOfOffice"
        for r in fake.requests
        if "/bob@" in r.path
    )
    assert by_calendar(quiet)[f"{BOB} (out of office)"].absences == bob.absences

    # a change of a meeting on Bob's calendar is no change of his out-of-office: nothing to list
    fake.patch_event(BOB, "m1", {"summary": "Bob / Ann"})
    fake.put_event(BOB, block("sick", BOB, at("2026-11-02", "09:00"), at("2026-11-02", "17:00")))
    fake.delete_event(BOB, "away")
    fake.reset_log()
    changed = source(tmp_path, calendars, [ANN], absentees=(BOB,)).fetch(WINDOW)
    sync = [r for r in fake.requests if "/bob@" in r.path]
    assert len(sync) == 1
    assert days(by_calendar(changed)[f"{BOB} (out of office)"].absences) == [
        (BOB, date(2026, 11, 2), date(2026, 11, 2), False)
    ]
    stored = StateStore(tmp_path / "state.json", lock=False).load("workspace", f"{BOB} (out of office)")
    assert stored is not None and set(stored.events) == {"away", "sick"}  # the deletion kept as a tombstone


def test_an_absentees_expired_token_lists_in_full_and_a_refused_one_is_a_problem_not_an_unread_calendar(
    tmp_path: Path, fake: FakeGoogle, calendars: SharedCalendars
) -> None:
    fake.put_event(BOB, block("away", BOB, at("2026-10-19", "00:00"), at("2026-10-24", "00:00")))
    source(tmp_path, calendars, [ANN], absentees=(BOB,)).fetch(WINDOW)

    fake.expire_sync_tokens(BOB)
    fake.reset_log()
    result = source(tmp_path, calendars, [ANN], absentees=(BOB,)).fetch(WINDOW)
    assert result.problems == []
    listed = [r for r in fake.requests if "/bob@" in r.path]
    assert [r.status for r in listed] == [410, 200]
    assert "syncToken" in listed[0].query and "syncToken" not in listed[1].query
    assert listed[1].query["eventTypes"] == "outOfOffice"
    assert len(by_calendar(result)[f"{BOB} (out of office)"].absences) == 1

    # throttled, then fine: retried
    fake.fail_next(1, 429, path_contains="/bob@")
    fake.reset_log()
    retried = source(tmp_path, calendars, [ANN], absentees=(BOB,)).fetch(WINDOW)
    assert retried.problems == [] and [r.status for r in fake.requests if "/bob@" in r.path] == [429, 200]

    # Dan was never read and may not be: a problem of his absences only, owned by him
    fake.add_calendar("dan@acme.test")
    fake.revoke_delegation("dan@acme.test")
    refused = source(tmp_path, calendars, [ANN], absentees=(BOB, "dan@acme.test")).fetch(WINDOW)
    (problem,) = refused.problems
    assert problem.owner == "dan@acme.test" and not problem.unread
    assert problem.source == "workspace: dan@acme.test (out of office)"
    assert "could not read the out-of-office of dan@acme.test" in problem.message
    assert "domain-wide delegation" in problem.message
    assert set(by_calendar(refused)) == {ANN, f"{BOB} (out of office)"}

    # Bob, read before, now refused: his stored absences, marked as such
    fake.revoke_delegation(BOB)
    fake.expire_access_tokens()
    stale = source(tmp_path, calendars, [ANN], absentees=(BOB,)).fetch(WINDOW)
    (problem,) = stale.problems
    assert problem.owner == BOB and not problem.unread and "stored reading" in problem.message
    bob = by_calendar(stale)[f"{BOB} (out of office)"]
    assert bob.stored_at and len(bob.absences) == 1


def test_a_calendar_that_cannot_be_read_now_is_judged_from_its_stored_reading(
    tmp_path: Path, fake: FakeGoogle, calendars: SharedCalendars
) -> None:
    fake.put_event(ANN, one_on_one("m1", "2026-10-06"))
    fake.put_event(ANN, block("away", ANN, at("2026-10-12", "00:00"), at("2026-10-13", "00:00")))
    reads = ReadCache()
    first = source(tmp_path, calendars, [ANN, CARA], reads=reads).fetch(WINDOW)
    assert first.problems == []
    synced = StateStore(tmp_path / "state.json", lock=False).load("workspace", ANN)
    assert synced is not None and synced.synced_at

    # Ann's calendar now answers 403, Dan's (never read) too
    fake.add_calendar("dan@acme.test")
    fake.fail_next(10, 403, reason="forbidden", path_contains="/calendars/")
    failed = source(tmp_path, calendars, [ANN, "dan@acme.test"], reads=reads).fetch(WINDOW)
    problems = {p.source: p for p in failed.problems}
    ann_problem, dan_problem = problems[f"workspace: {ANN}"], problems["workspace: dan@acme.test"]
    assert dan_problem.unread and dan_problem.owner == "dan@acme.test"
    assert not ann_problem.unread and ann_problem.owner == ANN
    assert "could not be read now (no access to this calendar (HTTP 403 forbidden" in ann_problem.message
    assert f"stored reading of it of {synced.synced_at}" in ann_problem.message
    (ann,) = failed.calendars
    assert ann.stored_at == synced.synced_at and ann.owner == ANN
    assert [o.series_id for o in ann.occurrences] == ["m1@google.com"]
    assert days(ann.absences) == [(ANN, date(2026, 10, 12), date(2026, 10, 13), True)]

    # read again: no stored mark left behind in the daemon's cache
    fake.clear_faults()
    fine = source(tmp_path, calendars, [ANN], reads=reads).fetch(WINDOW)
    assert fine.problems == [] and fine.calendars[0].stored_at is None

    # the source cannot even be set up: the pipeline asks for the stored readings
    store = StateStore(tmp_path / "state.json", lock=False)
    readings = stored_calendars(store, "workspace", [ANN, "dan@acme.test"], WINDOW, BERLIN)
    assert [(d.calendar, d.owner, bool(d.stored_at)) for d in readings] == [(ANN, ANN, True)]
    assert readings[0].occurrences == ann.occurrences and readings[0].absences == ann.absences
