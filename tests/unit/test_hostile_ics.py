"""Hostile recurrences and dates (from a fuzzing campaign): a series that recurs more often than daily,
or with an INTERVAL below 1, is skipped before it is expanded; every expansion is bounded in
occurrences and in time; dates before 1900 or after 2200 are the problem of their event, never an
internal error downstream. Through read_ics, the Google and Graph converters, and `calsync report`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest

from calsync.demo import Attendee, EventSpec, ics_calendar
from calsync.detect import one_on_ones, resolve
from calsync.model import CalendarData, Problem
from calsync.sources import ics
from calsync.sources.base import Window
from calsync.sources.google import google_calendar_data
from calsync.sources.ics import LISTED_FROM, LISTED_TO, read_converted, read_ics
from calsync.sources.microsoft import graph_calendar_data
from tests.builders import occ
from tests.integration.cli import run_calsync

BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = Window(datetime(2026, 8, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))
HEAD = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
TAIL = "END:VCALENDAR\r\n"
ANN, BOB, CAT, DAN = (f"{n}@acme.test" for n in ("ann", "bob", "cat", "dan"))
PEOPLE = f"ORGANIZER:mailto:{ANN}\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:{BOB}\r\n"
GOOD = (
    "BEGIN:VEVENT\r\nUID:good\r\nSUMMARY:Ann / Bob\r\nDTSTART:20261006T080000Z\r\n"
    "DTEND:20261006T083000Z\r\nRRULE:FREQ=WEEKLY\r\n" + PEOPLE + "END:VEVENT\r\n"
)


def vevent(*lines: str, people: str = PEOPLE, uid: str = "hostile") -> str:
    return (
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nSUMMARY:Secret title\r\n"
        + "".join(f"{line}\r\n" for line in lines)
        + people
        + "END:VEVENT\r\n"
    )


def is_member(email: str) -> bool:
    return email.endswith("@acme.test")


#: Item 1 (each as the fuzzer found it) and its kin: (DTSTART, RRULE, what the problem says).
UNBOUNDED = {
    "secondly-100M": (
        "20260901T100000Z",
        "FREQ=SECONDLY;COUNT=100000000",
        "more often than daily (FREQ=SECONDLY)",
    ),
    "daily-interval-0": ("20260901T100000Z", "FREQ=DAILY;INTERVAL=0", "INTERVAL is 0"),
    "weekly-interval-0": ("20260901T100000Z", "FREQ=WEEKLY;INTERVAL=0", "INTERVAL is 0"),
    "negative-interval": ("20260901T100000Z", "FREQ=DAILY;INTERVAL=-3", "INTERVAL is -3"),
    "minutely-from-2000": ("20000101T000000Z", "FREQ=MINUTELY", "more often than daily (FREQ=MINUTELY)"),
    "hourly-from-year-1": ("00010101T000000", "FREQ=HOURLY", "DTSTART 0001-01-01T00:00:00 is before 1900"),
    "hourly-from-2000": ("20000101T000000Z", "FREQ=HOURLY", "more often than daily (FREQ=HOURLY)"),
    "secondly-never-matching": (
        "20260901T100000Z",
        "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30",
        "more often than daily (FREQ=SECONDLY)",
    ),
    "byhour-list": ("20260901T100000Z", "FREQ=DAILY;BYHOUR=9,10,11", "several times a day (BYHOUR=9,10,11)"),
    "byminute-list": (
        "20260901T100000Z",
        "FREQ=WEEKLY;BYMINUTE=0,15,30,45",
        "several times a day (BYMINUTE=0,15,30,45)",
    ),
}


def read(*events: str, label: str = "ann.ics") -> tuple[CalendarData, list[Problem]]:
    calendar, problems = read_ics(HEAD + "".join(events) + TAIL, label, WINDOW, BERLIN)
    assert calendar is not None, problems
    return calendar, problems


@pytest.mark.parametrize("with_people", [True, False], ids=["attendees", "no-attendees"])
@pytest.mark.parametrize("case", list(UNBOUNDED))
def test_a_series_recurring_more_often_than_daily_is_skipped_before_expansion(case, with_people):
    start, rule, why = UNBOUNDED[case]
    hostile = vevent(f"DTSTART:{start}", f"RRULE:{rule}", people=PEOPLE if with_people else "")
    calendar, problems = read(hostile, GOOD)
    (problem,) = problems
    assert problem.source == "ann.ics" and not problem.unread
    assert problem.message.startswith("event 'Secret title' (UID hostile) starting ")
    assert "skipped: " in problem.message and why in problem.message
    # the rest of the file is read
    assert {o.series_id for o in calendar.occurrences} == {"good"}
    assert (
        len(one_on_ones(resolve([calendar]).occurrences, is_member).pairs[(ANN, BOB)]) == 17
    )  # 6 Oct .. 26 Jan


def test_a_rule_giving_one_time_a_day_by_bysetpos_is_read():
    calendar, problems = read(
        vevent("DTSTART:20261005T080000Z", "RRULE:FREQ=WEEKLY;BYDAY=MO;BYHOUR=8,9;BYSETPOS=1;COUNT=3")
    )
    assert problems == []
    assert len(calendar.occurrences) == 3


def test_a_garbage_interval_is_reported_and_skipped():
    calendar, problems = read(vevent("DTSTART:20260901T100000Z", "RRULE:FREQ=DAILY;INTERVAL=often"), GOOD)
    (problem,) = problems
    assert "(UID hostile)" in problem.message and "skipped" in problem.message
    assert {o.series_id for o in calendar.occurrences} == {"good"}


def test_an_out_of_office_block_is_bounded_the_same_way_and_never_named():
    block = vevent(
        "DTSTART:20000101T000000Z",
        "DTEND:20000101T010000Z",
        "RRULE:FREQ=MINUTELY",
        "X-MICROSOFT-CDO-BUSYSTATUS:OOF",
        people=f"ORGANIZER:mailto:{ANN}\r\n",
        uid="block",
    )
    calendar, problems = read(block, GOOD)
    (problem,) = problems
    assert problem.message.startswith("out-of-office block (UID block) starting 2000-01-01T00:00:00+00:00")
    assert "FREQ=MINUTELY" in problem.message and "Secret" not in problem.message
    assert calendar.absences == ()
    assert {o.series_id for o in calendar.occurrences} == {"good"}


# -- item 3, and every date out of range ----------------------------------------------------------------


def test_a_year_1_start_with_a_2026_end_is_a_problem_of_its_event_not_an_internal_error():
    hostile = vevent("DTSTART:00010101T000000", "DTEND:20260901T100000")
    calendar, problems = read(hostile, GOOD)
    (problem,) = problems
    assert problem.message == (
        "event 'Secret title' (UID hostile) starting 0001-01-01T00:00:00: skipped: "
        "DTSTART 0001-01-01T00:00:00 is before 1900: not read"
    )
    resolved = resolve([calendar])  # raised OverflowError before
    assert set(one_on_ones(resolved.occurrences, is_member).pairs) == {(ANN, BOB)}


@pytest.mark.parametrize(
    ("lines", "why"),
    [
        (
            ["DTSTART:20261001T100000Z", "DTEND:99991231T235959Z"],
            "DTEND 9999-12-31T23:59:59+00:00 is after 2200",
        ),
        (["DTSTART;VALUE=DATE:00010101", "DTEND;VALUE=DATE:20261002"], "DTSTART 0001-01-01 is before 1900"),
        (["DTSTART:20261001T100000Z", "DURATION:P999999W"], "DURATION ends after 2200"),
        (["DTSTART:20261001T100000Z", "DURATION:P100000D"], "(DTSTART + DURATION) 2300-"),
        (["DTSTART:20261001T100000Z", "RRULE:FREQ=WEEKLY", "EXDATE:00010101T100000Z"], "EXDATE 0001-01-01"),
        (["DTSTART:20261001T100000Z", "RRULE:FREQ=WEEKLY", "RDATE:99991231T100000Z"], "RDATE 9999-12-31"),
        (
            ["DTSTART:20261001T100000Z", "RDATE;VALUE=PERIOD:18000101T100000Z/PT1H"],
            "RDATE 1800-01-01T10:00:00+00:00 is before 1900",
        ),
        (["DTSTART:20261001T100000Z", "RRULE:FREQ=DAILY;UNTIL=99991231T000000Z"], "UNTIL 9999-12-31"),
        (["RECURRENCE-ID:00010101T100000Z", "DTSTART:20261001T100000Z"], "RECURRENCE-ID 0001-01-01"),
    ],
    ids=[
        "dtend-9999",
        "date-year-1",
        "duration-overflow",
        "duration-2300",
        "exdate",
        "rdate",
        "rdate-period",
        "until",
        "recurrence-id",
    ],
)
def test_a_date_out_of_range_is_a_problem_of_its_event(lines, why):
    calendar, problems = read(vevent(*lines), GOOD)
    (problem,) = problems
    assert "(UID hostile)" in problem.message and "skipped: " in problem.message, problem.message
    assert why in problem.message, problem.message
    assert {o.series_id for o in calendar.occurrences} == {"good"}
    resolve([calendar])


def test_an_event_without_uid_starting_in_year_1_is_reported_not_an_internal_error():
    hostile = (
        "BEGIN:VEVENT\r\nDTSTART:00010101T000000\r\nDTEND:20260901T100000\r\n" + PEOPLE + "END:VEVENT\r\n"
    )
    calendar, problems = read(hostile, GOOD)
    (problem,) = problems
    assert problem.message.startswith("event without UID starting 0001-01-01T00:00:00: skipped: DTSTART")
    assert {o.series_id for o in calendar.occurrences} == {"good"}


def test_detection_drops_an_occurrence_whose_times_cannot_be_moved_to_utc():
    year_1 = datetime(1, 1, 1, 0, 0, tzinfo=BERLIN)  # before UTC's year 1: cannot be converted
    bad = occ(year_1, series="bad", rid=True)
    good = occ(datetime(2026, 10, 6, 8, tzinfo=UTC), series="good")
    calendar = CalendarData("cal-a", (bad, good), ())
    resolved = resolve([calendar])
    assert [o.series_id for o in resolved.occurrences] == ["good"]
    assert set(one_on_ones(resolved.occurrences, is_member).pairs) == {(ANN, BOB)}


# -- the bounds on the expansion itself -----------------------------------------------------------------


def test_a_series_with_more_occurrences_than_the_window_has_days_is_reported_and_skipped():
    # Once a day at most, but 300 RDATEs, several a day, in a window of 184 days.
    first = datetime(2026, 9, 1, 8, tzinfo=UTC)
    rdates = ",".join((first + timedelta(hours=5 * k)).strftime("%Y%m%dT%H%M%SZ") for k in range(300))
    calendar, problems = read(vevent("DTSTART:20260901T080000Z", "RRULE:FREQ=DAILY", f"RDATE:{rdates}"), GOOD)
    (problem,) = problems
    assert "(UID hostile)" in problem.message
    assert f"more than {184 + 1 + ics.OCCURRENCE_MARGIN} occurrences in the 184 days read" in problem.message
    assert {o.series_id for o in calendar.occurrences} == {"good"}


@pytest.fixture
def slow_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A clock that moves on a second each time it is read: every expansion runs out of time."""
    now = [0.0]

    def tick() -> float:
        now[0] += 1.0
        return now[0]

    monkeypatch.setattr(ics, "_clock", tick)
    yield


def test_an_expansion_past_its_deadline_is_stopped_reported_and_skipped(slow_clock, monkeypatch):
    monkeypatch.setattr(ics, "EVENT_SECONDS", 5.0)
    one_off = vevent("DTSTART:20261001T100000Z", "DTEND:20261001T103000Z", uid="one-off")
    calendar, problems = read(GOOD, one_off)
    (problem,) = problems
    assert problem.message.startswith(
        "event 'Ann / Bob' (UID good) starting 2026-10-06T08:00:00+00:00: skipped"
    )
    assert problem.message.endswith("reading its recurrence took longer than 5 s; stopped")
    # a one-off event is not expanded: still read
    assert [o.series_id for o in calendar.occurrences] == ["one-off"]


def test_a_document_past_its_deadline_has_its_remaining_series_reported(slow_clock, monkeypatch):
    monkeypatch.setattr(ics, "EVENT_SECONDS", 1000.0)
    monkeypatch.setattr(ics, "DOCUMENT_SECONDS", 30.0)
    series = [GOOD.replace("UID:good", f"UID:s{k}") for k in range(3)]
    calendar, problems = read(*series)
    assert problems  # the first series are read within the document's 30 ticks, the rest are not
    assert all(p.message.endswith("took longer than 30 s; stopped") for p in problems)
    assert len({o.series_id for o in calendar.occurrences}) + len(problems) == 3


# -- Google and Graph: converted to VEVENTs, read by the same code ---------------------------------------


GOOGLE_MASTER: dict[str, Any] = {
    "id": "m1",
    "iCalUID": "m1@google.com",
    "status": "confirmed",
    "summary": "Ann / Bob",
    "start": {"dateTime": "2026-10-06T10:00:00+02:00", "timeZone": "Europe/Berlin"},
    "end": {"dateTime": "2026-10-06T10:30:00+02:00", "timeZone": "Europe/Berlin"},
    "recurrence": ["RRULE:FREQ=WEEKLY"],
    "organizer": {"email": ANN},
    "attendees": [{"email": ANN, "responseStatus": "accepted"}, {"email": BOB, "responseStatus": "accepted"}],
}


@pytest.mark.parametrize(
    ("recurrence", "why"),
    [
        (["RRULE:FREQ=SECONDLY;COUNT=100000000"], "FREQ=SECONDLY"),
        (["RRULE:FREQ=DAILY;INTERVAL=0"], "INTERVAL is 0"),
        (["RRULE:FREQ=HOURLY"], "FREQ=HOURLY"),
    ],
)
def test_a_google_event_with_such_a_rule_is_skipped_with_a_problem(recurrence, why):
    hostile = {**GOOGLE_MASTER, "id": "h1", "iCalUID": "h1@google.com", "recurrence": recurrence}
    data, problems = google_calendar_data([GOOGLE_MASTER, hostile], ANN, "Europe/Berlin", WINDOW, BERLIN)
    (problem,) = problems
    assert "(UID h1@google.com)" in problem.message and why in problem.message
    assert {o.series_id for o in data.occurrences} == {"m1@google.com"}


def test_a_google_out_of_office_block_with_such_a_rule_is_skipped_and_not_named():
    block = {
        **GOOGLE_MASTER,
        "id": "b1",
        "iCalUID": "b1@google.com",
        "eventType": "outOfOffice",
        "summary": "Surgery",
        "attendees": [],
        "recurrence": ["RRULE:FREQ=MINUTELY"],
    }
    data, problems = google_calendar_data([GOOGLE_MASTER, block], ANN, "Europe/Berlin", WINDOW, BERLIN)
    (problem,) = problems
    assert problem.message.startswith("out-of-office block (UID b1@google.com)")
    assert "Surgery" not in problem.message and data.absences == ()


LISTED = Window(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))


def graph_vevent(uid: str, rule: str, start: datetime) -> icalendar.Event:
    """A series master as microsoft.py's ``_master`` builds it, with ``rule`` as its RRULE."""
    vevent = icalendar.Event()
    vevent.add("uid", uid)
    vevent.add("dtstart", start)
    vevent.add("dtend", start + timedelta(minutes=30))
    vevent.add("summary", "Ann / Bob")
    vevent.add("organizer", icalendar.vCalAddress(f"mailto:{ANN}"))
    for who in (ANN, BOB):
        entry = icalendar.vCalAddress(f"mailto:{who}")
        entry.params["PARTSTAT"] = "ACCEPTED"
        vevent.add("attendee", entry)
    vevent["RRULE"] = icalendar.vRecur.from_ical(rule)
    vevent.add(LISTED_FROM, LISTED.start.isoformat())
    vevent.add(LISTED_TO, LISTED.end.isoformat())
    return vevent


def test_a_graph_style_series_with_such_a_rule_is_skipped_with_a_problem():
    start = datetime(2026, 10, 6, 10, tzinfo=BERLIN)
    items = [("good", "FREQ=WEEKLY", start), ("hostile", "FREQ=MINUTELY", datetime(2000, 1, 1, tzinfo=UTC))]
    data, problems = read_converted(
        items, lambda item: graph_vevent(*item), lambda item: item[0], BOB, WINDOW, BERLIN, owner=BOB
    )
    (problem,) = problems
    assert "(UID hostile)" in problem.message and "FREQ=MINUTELY" in problem.message
    assert {o.series_id for o in data.series} == {"good"}


def test_a_graph_master_starting_in_year_1_is_a_problem_not_an_internal_error():
    master: dict[str, Any] = {
        "id": "AAMk-master",
        "type": "seriesMaster",
        "iCalUId": "year-1",
        "subject": "Ann / Bob",
        "originalStartTimeZone": "W. Europe Standard Time",
        "start": {"dateTime": "0001-01-01T00:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-10-06T08:30:00.0000000", "timeZone": "UTC"},
        "recurrence": {
            "pattern": {"type": "daily", "interval": 1},
            "range": {"type": "noEnd", "startDate": "0001-01-01", "recurrenceTimeZone": "UTC"},
        },
        "organizer": {"emailAddress": {"name": "Ann", "address": ANN}},
        "attendees": [],
    }
    data, problems = graph_calendar_data([], {master["id"]: master}, BOB, LISTED, WINDOW, BERLIN)
    (problem,) = problems
    assert (
        "(UID year-1)" in problem.message
        and "skipped: DTSTART 0001-01-01T00:53:28+00:53:28 is before 1900" in problem.message
    )
    assert data.occurrences == ()
    resolve([data])


# -- `calsync report` on a small org: one hostile file beside a good one --------------------------------


def berlin(y: int, m: int, d: int, h: int = 10) -> datetime:
    return datetime(y, m, d, h, tzinfo=BERLIN)


def write_org(root: Path, hostile: str | None) -> Path:
    (root / "calendars").mkdir(parents=True, exist_ok=True)
    (root / "org.csv").write_text(
        "email,name,manager_email,cadence_days\n"
        f"{ANN},Ann Alder,,\n{BOB},Bob Birch,{ANN},\n{CAT},Cat Cole,{ANN},\n{DAN},Dan Dorn,{ANN},\n"
    )
    ann_bob = EventSpec(
        uid="ab@acme.test",
        summary="Ann / Bob",
        organizer=ANN,
        rrule={"freq": "weekly"},
        start=berlin(2026, 9, 1),
        attendees=[Attendee(ANN, None, "ACCEPTED"), Attendee(BOB, None, "ACCEPTED")],
    )
    ann_cat = EventSpec(
        uid="ac@acme.test",
        summary="Ann / Cat",
        organizer=ANN,
        rrule={"freq": "weekly", "interval": 2},
        start=berlin(2026, 9, 3, 14),
        attendees=[Attendee(ANN, None, "ACCEPTED"), Attendee(CAT, None, "ACCEPTED")],
    )
    (root / "calendars" / "ann.ics").write_bytes(ics_calendar([ann_bob, ann_cat]))
    harmless = vevent(
        "DTSTART:20261103T100000Z",
        "DTEND:20261103T110000Z",
        uid="harmless",
        people=f"ORGANIZER:mailto:{DAN}\r\n",
    )
    (root / "calendars" / "dan.ics").write_text(HEAD + harmless + (hostile or "") + TAIL)
    config = root / "calsync.toml"
    config.write_text(
        '[org]\ndomains = ["acme.test"]\nroster = "org.csv"\n\n'
        '[cadence]\ndefault_days = 14\ngrace_days = 3\n\n[[sources]]\ntype = "ics"\npath = "calendars"\n'
    )
    return config


def report(config: Path) -> tuple[int, dict[str, Any], str]:
    result = run_calsync(
        "report", "--config", str(config), "--as-of", "2026-11-21", "--format", "json", timeout=60
    )
    return result.returncode, json.loads(result.stdout) if result.stdout else {}, result.stderr


CLI_CASES = {
    **{name: f"DTSTART:{start}\r\nRRULE:{rule}" for name, (start, rule, _) in UNBOUNDED.items()},
    "year-1-start": "DTSTART:00010101T000000\r\nDTEND:20261101T100000",
}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    code, out, err = report(write_org(tmp_path_factory.mktemp("baseline"), None))
    assert code == 0, err
    return out


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_calsync_report_skips_the_hostile_event_and_keeps_the_good_files_pairs(tmp_path, baseline, case):
    lines = CLI_CASES[case].split("\r\n")
    hostile = vevent(*lines, people=f"ORGANIZER:mailto:{DAN}\r\nATTENDEE:mailto:{ANN}\r\n")
    code, out, err = report(write_org(tmp_path, hostile))  # the run's own timeout is 60 s
    assert code == 3, err
    assert "internal error" not in err
    assert [e["source"] for e in out["errors"]] == ["calendars/dan.ics"]
    assert "(UID hostile)" in out["errors"][0]["message"] and "skipped" in out["errors"][0]["message"]
    pairs = {tuple(p["people"]): p for p in out["pairs"]}
    before = {tuple(p["people"]): p for p in baseline["pairs"]}
    for pair in ((ANN, BOB), (ANN, CAT)):
        assert pairs[pair] == before[pair]
    assert pairs[(ANN, BOB)]["held"][:2] == ["2026-09-01", "2026-09-08"]
