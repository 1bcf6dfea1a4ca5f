"""Google event resources -> the model: the quirks, and the demo org giving the same report as ICS."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calsync.config import load_config
from calsync.demo import EventSpec, demo_calendars, write_demo
from calsync.detect import one_on_ones, resolve
from calsync.model import CalendarData, Problem, Status
from calsync.pipeline import Synced, load_org, make_clock, report_of, run_report, sync_window
from calsync.report import report_to_json
from calsync.sources.base import Window
from calsync.sources.google import (
    calendar_owner,
    google_calendar_data,
    lean,
    matters,
    merge_changes,
    to_vevent,
)
from tests.fakes.google import FakeGoogle
from tests.fakes.google_events import to_google

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


def test_the_fake_serves_an_outlook_oof_as_googles_out_of_office_and_all_day_events_their_length():
    away = EventSpec(
        uid="away@acme.test",
        summary="Away",
        start=date(2026, 10, 23),
        duration=timedelta(days=3),  # across the end of summer time in Berlin
        organizer=ANN,
        extra={"X-MICROSOFT-CDO-BUSYSTATUS": "OOF"},
    )
    served = to_google(away, "Europe/Berlin")
    assert served["eventType"] == "outOfOffice" and "autoDeclineMode" in served["outOfOfficeProperties"]
    assert served["start"] == {"dateTime": "2026-10-23T00:00:00+02:00", "timeZone": "Europe/Berlin"}
    assert served["end"] == {"dateTime": "2026-10-26T00:00:00+01:00", "timeZone": "Europe/Berlin"}
    fake = FakeGoogle()  # not started: what Google would accept is checked as events are put
    fake.add_calendar(ANN, "Europe/Berlin")
    fake.put_event(ANN, served)
    data, problems = google_calendar_data([served], ANN, "Europe/Berlin", WINDOW, BERLIN, owner=ANN)
    assert problems == [] and data.occurrences == ()
    assert spans(data) == [(ANN, date(2026, 10, 23), date(2026, 10, 26), True)]

    timed = to_google(
        replace(away, start=datetime(2026, 10, 7, 13, tzinfo=BERLIN), duration=timedelta(hours=5))
    )
    assert timed["eventType"] == "outOfOffice" and timed["end"]["dateTime"] == "2026-10-07T18:00:00+02:00"
    offsite = to_google(replace(away, extra={}), "Europe/Berlin")
    assert "eventType" not in offsite and "outOfOfficeProperties" not in offsite
    assert (offsite["start"], offsite["end"]) == ({"date": "2026-10-23"}, {"date": "2026-10-26"})
    assert to_google(replace(away, extra={}, duration=timedelta(0)))["end"] == {"date": "2026-10-24"}


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
            [to_google(spec, "Europe/Berlin") for spec in specs],
            f"{owner}@acme.test",
            "Europe/Berlin",
            sync_window(clock),
            BERLIN,
            owner=f"{owner}@acme.test",
        )
        assert problems == []
        calendars.append(data)
    assert any(c.absences for c in calendars)  # the demo's out-of-office, read as Google serves it
    # the planted broken ICS file is no Google calendar: its problem is the ICS report's
    synced = Synced(org, calendars, [], {}, {})
    actual = report_to_json(report_of(config, synced, clock))
    assert actual["pairs"] == expected["pairs"]


# -- out-of-office blocks ------------------------------------------------------------------------------


def berlin(day: str, clock: str) -> dict[str, str]:
    moment = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=BERLIN)
    return {"dateTime": moment.isoformat(), "timeZone": "Europe/Berlin"}


def block(event_id: str, start: dict[str, str], end: dict[str, str], **extra: Any) -> dict[str, Any]:
    """An out-of-office block as events.list serves it (always timed: the API has no all-day ones)."""
    return {
        "id": event_id,
        "iCalUID": f"{event_id}@google.com",
        "status": "confirmed",
        "eventType": "outOfOffice",
        "summary": "Surgery",
        "start": start,
        "end": end,
        "organizer": {"email": ANN, "self": True},
        "outOfOfficeProperties": {"autoDeclineMode": "declineAllConflictingInvitations"},
        **extra,
    }


def spans(data: CalendarData) -> list[tuple[str, object, object, bool]]:
    return sorted(
        ((a.person, a.start.date(), a.end.date(), a.all_day) for a in data.absences), key=lambda s: str(s)
    )


def test_an_out_of_office_block_becomes_an_oof_vevent_of_its_organizer_without_its_title():
    timed = block("t", berlin("2026-10-07", "13:00"), berlin("2026-10-07", "18:00"))
    vevent = to_vevent(timed, {}, "Europe/Berlin")
    assert vevent is not None
    assert vevent["X-MICROSOFT-CDO-BUSYSTATUS"] == "OOF"
    assert str(vevent["ORGANIZER"]) == f"mailto:{ANN}"
    assert "SUMMARY" not in vevent  # an absence's title is never kept
    assert vevent.decoded("DTSTART") == datetime(2026, 10, 7, 13, tzinfo=BERLIN)
    data, problems = read(timed, MASTER)
    assert problems == []
    assert {o.series_id for o in data.occurrences} == {"m1@google.com"}  # never a meeting
    (absence,) = data.absences
    assert (absence.person, absence.all_day) == (ANN, False)
    assert (absence.start, absence.end) == (
        datetime(2026, 10, 7, 13, tzinfo=BERLIN),
        datetime(2026, 10, 7, 18, tzinfo=BERLIN),
    )


def test_an_all_day_out_of_office_block_from_midnight_to_midnight_is_read_as_its_dates():
    days = block("d", berlin("2026-10-12", "00:00"), berlin("2026-10-14", "00:00"))
    vevent = to_vevent(days, {}, "Europe/Berlin")
    assert vevent is not None and vevent.decoded("DTSTART") == date(2026, 10, 12)
    assert vevent.decoded("DTEND") == date(2026, 10, 14)
    # midnight in another zone than the block's is no whole day there
    tokyo = block("x", berlin("2026-10-20", "00:00"), berlin("2026-10-21", "00:00"))
    tokyo["start"]["timeZone"] = tokyo["end"]["timeZone"] = "Asia/Tokyo"
    morning = block("m", berlin("2026-10-22", "00:00"), berlin("2026-10-22", "08:00"))
    data, problems = read(days, tokyo, morning)
    assert problems == []
    assert spans(data) == [
        (ANN, date(2026, 10, 12), date(2026, 10, 14), True),
        (ANN, date(2026, 10, 20), date(2026, 10, 21), False),
        (ANN, date(2026, 10, 22), date(2026, 10, 22), False),
    ]


def test_a_recurring_all_day_block_with_its_exdates_exceptions_and_cancellations():
    fridays = block(
        "f",
        berlin("2026-10-23", "00:00"),
        berlin("2026-10-24", "00:00"),
        recurrence=["RRULE:FREQ=WEEKLY;UNTIL=20261119T230000Z", "EXDATE;TZID=Europe/Berlin:20261030T000000"],
    )
    cancelled = {
        "id": "f_20261105T230000Z",
        "status": "cancelled",
        "recurringEventId": "f",
        "originalStartTime": berlin("2026-11-06", "00:00"),
    }
    morning = {
        **block("f_20261112T230000Z", berlin("2026-11-13", "08:00"), berlin("2026-11-13", "12:00")),
        "recurringEventId": "f",
        "originalStartTime": berlin("2026-11-13", "00:00"),
        "iCalUID": "f@google.com",
    }
    vevent = to_vevent(fridays, {}, "Europe/Berlin")
    assert vevent is not None
    rrule: Any = vevent["RRULE"]
    exdates: Any = vevent["EXDATE"]
    assert rrule["UNTIL"] == [date(2026, 11, 20)]  # 23:00 UTC is midnight in Berlin
    assert [d.dt for d in exdates.dts] == [date(2026, 10, 30)]
    data, problems = read(fridays, cancelled, morning)
    assert problems == []
    assert data.occurrences == ()
    assert spans(data) == [
        (ANN, date(2026, 10, 23), date(2026, 10, 24), True),  # 30 Oct: EXDATE, 6 Nov: cancelled
        (ANN, date(2026, 11, 13), date(2026, 11, 13), False),  # only the morning
        (ANN, date(2026, 11, 20), date(2026, 11, 21), True),  # UNTIL is inclusive
    ]


def test_a_recurring_timed_block_and_a_tombstone_without_its_type():
    mornings = block(
        "w",
        berlin("2026-10-05", "08:00"),
        berlin("2026-10-05", "13:00"),
        recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"],
    )
    tombstone = {
        "id": "w_20261012T060000Z",
        "status": "cancelled",
        "recurringEventId": "w",
        "originalStartTime": berlin("2026-10-12", "08:00"),
    }
    data, problems = read(mornings, tombstone)
    assert problems == [] and data.occurrences == ()
    assert [a.start.date() for a in sorted(data.absences, key=lambda a: a.start)] == [
        date(2026, 10, 5),
        date(2026, 10, 19),
    ]


def test_a_deleted_block_is_no_absence():
    gone = {**block("g", berlin("2026-10-07", "09:00"), berlin("2026-10-07", "17:00")), "status": "cancelled"}
    data, problems = read(gone)
    assert (data.occurrences, data.absences, problems) == ((), (), [])


def test_the_owner_is_the_calendar_id_when_it_is_a_persons_address():
    assert calendar_owner("Ann@Acme.test") == ANN
    for nobody in ("primary", "team@group.calendar.google.com", "r1@resource.calendar.google.com", "x"):
        assert calendar_owner(nobody) is None
    data, _ = google_calendar_data([MASTER], ANN, "Europe/Berlin", WINDOW, BERLIN, owner=ANN)
    assert data.owner == ANN


def test_only_the_owners_out_of_office_blocks_are_kept_and_never_focus_time_or_birthdays():
    own = block("o", berlin("2026-10-07", "09:00"), berlin("2026-10-07", "17:00"))
    by_address = {**own, "organizer": {"email": "ANN@acme.test"}}  # no `self` asked for: the address says
    others = {**own, "id": "x", "organizer": {"email": BOB}, "attendees": [{"email": ANN, "self": True}]}
    assert matters(own, calendar=ANN) and matters(own, calendar="primary")
    assert matters(by_address, calendar=ANN) and not matters(by_address, calendar="primary")
    assert not matters(others, calendar=ANN)  # an invitation to someone else's block
    assert matters({"id": "o", "status": "cancelled"}, calendar=ANN)  # a deletion may remove a kept block
    for kind in ("focusTime", "workingLocation", "birthday"):
        assert not matters({**MASTER, "recurrence": [], "eventType": kind}, calendar=ANN), kind
    assert matters({**MASTER, "eventType": "default"}, calendar=ANN)
    kept = lean(own)
    assert kept["eventType"] == "outOfOffice" and "summary" not in kept
    assert "outOfOfficeProperties" not in kept and kept["organizer"] == {"email": ANN}
    assert "eventType" not in lean({**MASTER, "eventType": "default"})  # the default goes without saying
    events: dict[str, dict[str, Any]] = {}
    ignored: set[str] = set()
    series = {**others, "id": "s", "recurrence": ["RRULE:FREQ=DAILY;COUNT=2"]}
    merge_changes(
        events, [own, others, series, {**others, "id": "s_1", "recurringEventId": "s"}], ignored, ANN
    )
    assert sorted(events) == ["o"] and ignored == {"s"}


def test_a_time_zone_name_too_long_for_a_file_is_an_unknown_zone_not_an_internal_error() -> None:
    from calsync.sources.google import _zone

    with pytest.raises(ValueError, match="unknown time zone"):
        _zone("X" * 1000)  # zoneinfo looks it up as a file: OSError (name too long), found by fuzzing
