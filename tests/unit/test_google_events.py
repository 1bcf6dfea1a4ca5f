"""Google event resources -> the model: the quirks, and the demo org giving the same report as ICS."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calsync.config import load_config
from calsync.demo import demo_calendars, write_demo
from calsync.detect import one_on_ones, resolve
from calsync.model import CalendarData, Problem, Status
from calsync.pipeline import load_org, make_clock, run_report, sync_window
from calsync.report import Policy, build_report, report_to_json
from calsync.sources.base import Window
from calsync.sources.google import google_calendar_data
from tests.fakes.google_events import calendar_events

BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = Window(datetime(2026, 8, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))
ANN, BOB = "ann@acme.test", "bob@acme.test"
PEOPLE = [{"email": ANN, "responseStatus": "accepted"}, {"email": BOB, "responseStatus": "accepted"}]
MASTER = {
    "id": "m1",
    "iCalUID": "m1@google.com",
    "status": "confirmed",
    "summary": "Ann / Bob",
    "start": {"dateTime": "2026-10-06T10:00:00+02:00", "timeZone": "Europe/Berlin"},
    "end": {"dateTime": "2026-10-06T10:30:00+02:00", "timeZone": "Europe/Berlin"},
    "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4", "EXDATE;TZID=Europe/Berlin:20261013T100000"],
    "organizer": {"email": ANN},
    "attendees": PEOPLE,
    "sequence": 2,
    "updated": "2026-10-01T08:00:00.000Z",
}


def read(*events: dict[str, Any], calendar_tz: str = "Europe/Berlin") -> tuple[CalendarData, list[Problem]]:
    return google_calendar_data(events, "ann@acme.test", calendar_tz, WINDOW, BERLIN)


def test_master_with_rrule_and_exdate():
    data, problems = read(MASTER)
    assert problems == []
    states = [(o.original_start.date(), o.status) for o in data.occurrences]
    assert sorted(states) == [
        (date(2026, 10, 6), Status.CONFIRMED),
        (date(2026, 10, 13), Status.CANCELLED),
        (date(2026, 10, 20), Status.CONFIRMED),
        (date(2026, 10, 27), Status.CONFIRMED),
    ]
    assert data.series[0].series_id == "m1@google.com" and data.series[0].version.sequence == 2
    assert all(o.start.tzinfo == BERLIN and o.start.hour == 10 for o in data.occurrences)  # across DST


def test_stripped_tombstone_of_an_exception_is_a_cancelled_occurrence_of_its_series():
    tombstone = {
        "id": "m1_20261020T080000Z",
        "status": "cancelled",
        "recurringEventId": "m1",
        "originalStartTime": {"dateTime": "2026-10-20T10:00:00+02:00", "timeZone": "Europe/Berlin"},
    }
    data, problems = read(MASTER, tombstone)
    assert problems == []
    (cancelled,) = [o for o in data.occurrences if o.original_start.date() == date(2026, 10, 20)]
    assert cancelled.status is Status.CANCELLED
    assert cancelled.series_id == "m1@google.com"
    assert {p.email for p in cancelled.participants} == {ANN, BOB}  # from the series
    assert cancelled.version.sequence == 2  # as new as its series


def test_moved_and_declined_exception():
    exception = {
        **{k: v for k, v in MASTER.items() if k not in ("recurrence", "id")},
        "id": "m1_20261027T090000Z",
        "recurringEventId": "m1",
        "originalStartTime": {"dateTime": "2026-10-27T10:00:00+01:00", "timeZone": "Europe/Berlin"},
        "start": {"dateTime": "2026-10-28T15:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-10-28T15:30:00+01:00", "timeZone": "Europe/Berlin"},
        "attendees": [PEOPLE[0], {"email": BOB, "responseStatus": "declined"}],
        "updated": "2026-10-20T08:00:00.000Z",
    }
    data, _ = read(MASTER, exception)
    (moved,) = [o for o in data.occurrences if o.original_start.date() == date(2026, 10, 27)]
    assert moved.start == datetime(2026, 10, 28, 15, tzinfo=BERLIN)
    assert any(p.email == BOB and p.response == "declined" for p in moved.participants)


def test_deleted_events_reduced_to_their_id_are_gone():
    data, problems = read({"id": "gone", "status": "cancelled"})
    assert (data.occurrences, problems) == ((), [])


def test_times_without_a_zone_are_read_in_the_calendars_zone_and_all_day_events_are_all_day():
    one_off = {
        "id": "x",
        "iCalUID": "x@google.com",
        "start": {"dateTime": "2026-10-06T23:30:00Z"},
        "end": {"dateTime": "2026-10-07T00:00:00Z"},
        "organizer": {"email": ANN},
        "attendees": PEOPLE,
    }
    day = {
        **one_off,
        "id": "d",
        "iCalUID": "d@google.com",
        "start": {"date": "2026-10-08"},
        "end": {"date": "2026-10-09"},
    }
    data, _ = read(one_off, day, calendar_tz="Europe/Berlin")
    by_uid = {o.series_id: o for o in data.occurrences}
    assert by_uid["x@google.com"].start.date() == date(2026, 10, 7)  # 01:30 in Berlin
    assert by_uid["d@google.com"].all_day


def test_rooms_and_omitted_attendees():
    room = {"email": "room@resource.calendar.google.com", "resource": True, "responseStatus": "accepted"}
    with_room = {**MASTER, "attendees": [*PEOPLE, room]}
    data, _ = read(with_room)
    assert any(p.resource for p in data.occurrences[0].participants)
    found = one_on_ones(resolve([data]).occurrences, lambda e: e.endswith("@acme.test"))
    assert list(found.pairs) == [(ANN, BOB)]
    hidden, _ = read({**MASTER, "attendeesOmitted": True})
    assert not any(o.participants_complete for o in hidden.occurrences)
    assert one_on_ones(resolve([hidden]).occurrences, lambda e: e.endswith("@acme.test")).pairs == {}


def test_a_bad_event_is_reported_and_the_rest_still_read():
    bad = {
        **MASTER,
        "id": "bad",
        "iCalUID": "bad@google.com",
        "summary": "Broken",
        "start": {"dateTime": "soon"},
    }
    data, problems = read(bad, MASTER)
    assert {o.series_id for o in data.occurrences} == {"m1@google.com"}
    assert len(problems) == 1 and "'Broken' (id bad)" in problems[0].message


@pytest.mark.parametrize("as_of", [date(2026, 11, 21), date(2026, 3, 29), date(2027, 1, 1)], ids=str)
def test_the_demo_org_served_as_google_events_gives_the_same_report_as_ics(
    tmp_path: Path, as_of: date
) -> None:
    config = load_config(write_demo(tmp_path, as_of)[0])
    expected = report_to_json(run_report(config, as_of))
    org, _ = load_org(config)
    clock = make_clock(config, as_of)
    calendars = []
    for owner, specs in sorted(demo_calendars(as_of).items()):
        data, problems = google_calendar_data(
            calendar_events(specs, "Europe/Berlin"),
            f"{owner}@acme.test",
            "Europe/Berlin",
            sync_window(clock),
            BERLIN,
        )
        assert problems == []
        calendars.append(data)
    policy = Policy(config.cadence.default_days, config.cadence.grace_days, config.cadence.skip_level_days)
    actual = report_to_json(build_report(org, resolve(calendars), clock, policy))
    assert actual["pairs"] == expected["pairs"]
