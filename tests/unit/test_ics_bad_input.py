"""Bad input that should not cost a meeting: unreadable CREATED / LAST-MODIFIED / DTSTAMP, events without
UID; and every iCalendar file the icalendar and recurring-ical-events packages test themselves with."""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
from icalendar.timezone import tzp

from calsync.detect import one_on_ones, resolve
from calsync.model import Version
from calsync.sources.base import Window
from calsync.sources.ics import DERIVED_UID_PREFIX, read_ics

BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = Window(datetime(2026, 8, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))
HEAD = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
TAIL = "END:VCALENDAR\r\n"
PEOPLE = "ORGANIZER;CN=Ann:mailto:ann@acme.test\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@acme.test\r\n"
DATA = Path(__file__).parent.parent / "data" / "ics"


def vevent(*lines: str, people: str = PEOPLE) -> str:
    return "BEGIN:VEVENT\r\n" + "".join(f"{line}\r\n" for line in lines) + people + "END:VEVENT\r\n"


def read(*events: str, label: str = "ann.ics", tz=BERLIN):
    calendar, problems = read_ics(HEAD + "".join(events) + TAIL, label, WINDOW, tz)
    assert calendar is not None, problems
    return calendar, problems


def is_member(email: str) -> bool:
    return email.endswith("@acme.test")


# -- CREATED, LAST-MODIFIED, DTSTAMP -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CREATED", "LAST-MODIFIED", "DTSTAMP"])
@pytest.mark.parametrize("value", ["yesterday", "20261301T000000Z", "2026-10-01 12:00", ""])
def test_an_unreadable_version_property_is_reported_and_the_event_read_without_it(name, value):
    calendar, problems = read(
        vevent("UID:s1", "SUMMARY:Ann / Bob", f"{name}:{value}", "DTSTART:20261006T080000Z", "SEQUENCE:3")
    )
    (occurrence,) = calendar.occurrences
    assert occurrence.version == Version(3, None)
    (problem,) = problems
    assert not problem.unread and problem.source == "ann.ics"
    assert problem.message.startswith(
        f"event 'Ann / Bob' (UID s1) starting 2026-10-06T08:00:00+00:00: its {name} could not be read ("
    )
    assert problem.message.endswith("); read without it")


def test_several_unreadable_properties_of_an_override_are_reported_once_and_the_series_read():
    calendar, problems = read(
        vevent(
            "UID:s1",
            "DTSTART;TZID=Europe/Berlin:20261006T100000",
            "RRULE:FREQ=WEEKLY;COUNT=3",
            "LAST-MODIFIED:20261001T120000Z",
        ),
        vevent(
            "UID:s1",
            "RECURRENCE-ID;TZID=Europe/Berlin:20261013T100000",
            "DTSTART;TZID=Europe/Berlin:20261014T100000",
            "DTSTAMP:never",
            "LAST-MODIFIED:never",
            "SEQUENCE:1",
        ),
    )
    assert [o.start.date() for o in calendar.occurrences] == [
        date(2026, 10, 6),
        date(2026, 10, 14),
        date(2026, 10, 20),
    ]
    assert calendar.occurrences[1].version == Version(1, None)
    assert calendar.series[0].version.updated == datetime(2026, 10, 1, 12, tzinfo=UTC)
    (problem,) = problems
    assert problem.message.startswith(
        "event (UID s1) occurrence 2026-10-13T10:00:00+02:00 starting 2026-10-14T10:00:00+02:00: "
        "its DTSTAMP and LAST-MODIFIED could not be read"
    )
    assert problem.message.endswith("read without them")


def test_a_copy_with_an_unreadable_last_modified_is_older_than_one_with_a_readable_one():
    """Read without it, the copy has no last-modified time: at the same SEQUENCE, the other copy wins."""
    ann, _ = read(vevent("UID:m", "DTSTART:20261006T080000Z", "LAST-MODIFIED:garbage", "STATUS:CANCELLED"))
    bob, _ = read(
        vevent("UID:m", "DTSTART:20261006T080000Z", "LAST-MODIFIED:20261002T000000Z"), label="bob.ics"
    )
    (merged,) = resolve([ann, bob]).occurrences
    assert merged.calendar == "bob.ics" and not merged.cancelled


def test_last_modified_given_twice_counts_with_the_later():
    calendar, problems = read(
        vevent(
            "UID:m",
            "DTSTART:20261006T080000Z",
            "LAST-MODIFIED:20261001T120000Z",
            "LAST-MODIFIED:20261003T120000Z",
        )
    )
    assert problems == []
    assert calendar.occurrences[0].version.updated == datetime(2026, 10, 3, 12, tzinfo=UTC)


def test_the_broken_version_fixture_yields_every_event():
    calendar, problems = read_ics((DATA / "broken_versions.ics").read_bytes(), "export.ics", WINDOW, BERLIN)
    assert calendar is not None
    assert {o.series_id for o in calendar.occurrences} == {
        "broken-created@acme.test",
        "broken-last-modified@acme.test",
        "broken-dtstamp@acme.test",
    }
    assert len(calendar.occurrences) == 5  # the weekly series thrice
    found = {p.message.split(":")[0].split("(UID ")[1].split(")")[0]: p.message for p in problems}
    assert set(found) == {
        "broken-created@acme.test",
        "broken-last-modified@acme.test",
        "broken-dtstamp@acme.test",
    }
    assert "its CREATED could not be read" in found["broken-created@acme.test"]
    assert "its LAST-MODIFIED could not be read" in found["broken-last-modified@acme.test"]
    assert "its DTSTAMP could not be read" in found["broken-dtstamp@acme.test"]
    by_id = {o.series_id: o for o in calendar.occurrences}
    assert by_id["broken-last-modified@acme.test"].version == Version(2, None)
    assert by_id["broken-dtstamp@acme.test"].version.updated == datetime(2026, 10, 1, 12, tzinfo=UTC)
    assert set(one_on_ones(resolve([calendar]).occurrences, is_member).pairs) == {
        ("ann@acme.test", "bob@acme.test"),
        ("ann@acme.test", "carl@acme.test"),
        ("ann@acme.test", "dora@acme.test"),
    }


def test_other_broken_properties_still_skip_the_event():
    calendar, problems = read(vevent("UID:x", "DTSTART:20261006T080000Z", "RRULE:FREQ=SOMETIMES"))
    assert calendar.occurrences == ()
    (problem,) = problems
    assert "skipped: bad RRULE" in problem.message


# -- events without UID --------------------------------------------------------------------------------


def test_an_event_without_uid_is_read_with_a_derived_one_and_reported():
    calendar, problems = read(vevent("SUMMARY:Ann / Bob", "DTSTART:20261006T080000Z"))
    (occurrence,) = calendar.occurrences
    assert occurrence.series_id.startswith(DERIVED_UID_PREFIX)
    assert "Ann" not in occurrence.series_id  # a hash, not the title
    (problem,) = problems
    assert not problem.unread
    assert problem.message.startswith(
        "event 'Ann / Bob' without UID starting 2026-10-06T08:00:00+00:00: has no UID; read with one made "
        "from its organizer, start and title"
    )


def test_the_same_meeting_without_uid_in_two_files_counts_once():
    # Ann's export says it in Berlin time, Bob's in UTC: the same instant, the same meeting.
    ann, _ = read(
        vevent(
            "SUMMARY:Ann / Bob",
            "DTSTART;TZID=Europe/Berlin:20261006T100000",
            "DTEND;TZID=Europe/Berlin:20261006T103000",
        )
    )
    bob, _ = read(
        vevent("SUMMARY:Ann / Bob", "DTSTART:20261006T080000Z", "DTEND:20261006T083000Z"),
        label="bob.ics",
    )
    merged = resolve([ann, bob]).occurrences
    assert len(merged) == 1
    found = one_on_ones(merged, is_member)
    assert [len(v) for v in found.pairs.values()] == [1]


def test_different_meetings_without_uid_stay_apart():
    calendar, _ = read(
        vevent("SUMMARY:Ann / Bob", "DTSTART:20261006T080000Z"),
        vevent("SUMMARY:Ann / Bob", "DTSTART:20261013T080000Z"),  # another start
        vevent("SUMMARY:Planning", "DTSTART:20261006T080000Z"),  # another title
        vevent("SUMMARY:Ann / Bob", "DTSTART:20261006T080000Z", people="ORGANIZER:mailto:bob@acme.test\r\n"),
    )
    assert len({o.series_id for o in calendar.occurrences}) == 4
    assert len(resolve([calendar]).occurrences) == 4


def test_an_override_without_uid_joins_its_series_without_uid():
    calendar, problems = read(
        vevent(
            "SUMMARY:Ann / Bob", "DTSTART;TZID=Europe/Berlin:20261006T100000", "RRULE:FREQ=WEEKLY;COUNT=3"
        ),
        vevent(
            "SUMMARY:Ann / Bob",
            "RECURRENCE-ID;TZID=Europe/Berlin:20261013T100000",
            "DTSTART;TZID=Europe/Berlin:20261015T100000",
        ),
    )
    assert len({o.series_id for o in calendar.occurrences}) == 1
    assert [o.start.date() for o in calendar.occurrences] == [
        date(2026, 10, 6),
        date(2026, 10, 15),  # moved, not also held on the 13th
        date(2026, 10, 20),
    ]
    assert len(problems) == 2  # each event without UID is reported


def test_a_broken_event_without_uid_is_reported_once():
    calendar, problems = read(vevent("SUMMARY:No start"))
    assert calendar.occurrences == ()
    (problem,) = problems
    assert (
        problem.message
        == "event 'No start' without UID: skipped: DTSTART is missing or not a date or date-time"
    )


# -- every file the parsers test themselves with ------------------------------------------------------

PACKAGES = {
    "icalendar": Path(icalendar.__file__).parent / "tests",
    "recurring_ical_events": Path(recurring_ical_events.__file__).parent / "test",
}
SWEEP = Window(datetime(1990, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC))
# Files whose events have no UID (but a start): each must be read, with one series per event.
WITHOUT_UID = {
    "icalendar/events/event_with_recurrence.ics": 1,
    "icalendar/events/issue_157_removes_trailing_semicolon.ics": 1,
    "icalendar/events/rfc_7265_example_4.ics": 1,
    "icalendar/calendars/issue_156_RDATE_with_PERIOD_TZID_khal.ics": 1,
    "icalendar/calendars/issue_722_missing_VTIMEZONE_custom.ics": 1,
    "recurring_ical_events/calendars/duration.ics": 3,
    "recurring_ical_events/calendars/issue_15_duplicated_events.ics": 3,
    "recurring_ical_events/calendars/rdate.ics": 3,
    "recurring_ical_events/calendars/issue_128_only_first_event.ics": 1,
}


@pytest.fixture
def fresh_timezones():
    """icalendar keeps the VTIMEZONE of a TZID it does not know for the rest of the process, and reads
    later TZIDs of that name with it: the test calendars' odd zones must not change how the other tests
    read theirs (nor theirs these)."""
    tzp.use_default()  # the default provider, with nothing cached
    yield
    tzp.use_default()


def shipped_files() -> dict[str, Path]:
    missing = [f"{name} ({path})" for name, path in PACKAGES.items() if not path.is_dir()]
    if missing:
        pytest.skip(f"the installed packages ship no test calendars: {', '.join(missing)}")
    return {
        f"{name}/{path.relative_to(root).as_posix()}": path
        for name, root in PACKAGES.items()
        for path in sorted(root.rglob("*.ics"))
    }


def read_shipped(path: Path, label: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # icalendar warns of the odd TZIDs some of its files hold
        return read_ics(path.read_bytes(), label, SWEEP, BERLIN)


def test_no_shipped_test_calendar_makes_the_reader_fail(fresh_timezones):
    files = shipped_files()
    assert len(files) > 100
    unreadable = []
    for label, path in files.items():
        calendar, problems = read_shipped(path, label)  # no exception may escape
        assert all(p.source == label for p in problems), label
        assert all(p.message and "\n" not in p.message for p in problems), label
        if calendar is None:
            assert [p.unread for p in problems] == [True], label
            unreadable.append(label)
        else:
            assert not any(p.unread for p in problems), label
    # the few that are no whole calendar (cut off, fuzzed) are said to be unreadable, never read as empty
    assert "icalendar/calendars/small_bad_calendar.ics" in unreadable
    assert len(unreadable) < 15


def test_shipped_events_without_uid_are_read(fresh_timezones):
    files = shipped_files()
    for label, expected in WITHOUT_UID.items():
        calendar, problems = read_shipped(files[label], label)
        assert calendar is not None, label
        series = {o.series_id for o in calendar.occurrences}
        assert len(series) == expected, label
        assert all(s.startswith(DERIVED_UID_PREFIX) for s in series), label
        assert sum("has no UID; read with one" in p.message for p in problems) >= expected, label
