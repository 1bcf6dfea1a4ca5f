"""The ICS source: iCalendar text in, normalised model out (no files, no network)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from calsync.demo import BROKEN_ICS
from calsync.model import Response, Status
from calsync.sources.base import Window
from calsync.sources.ics import read_ics

BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = Window(datetime(2026, 8, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))

HEAD = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
TAIL = "END:VCALENDAR\r\n"
PEOPLE = (
    "ORGANIZER;CN=Ann:MAILTO:Ann@Acme.test\r\n"
    "ATTENDEE;PARTSTAT=ACCEPTED;CN=Ann:mailto:ann@acme.test\r\n"
    "ATTENDEE;PARTSTAT=ACCEPTED;CN=Bob:mailto:bob@acme.test\r\n"
)


def vevent(*lines: str, people: str = PEOPLE) -> str:
    return "BEGIN:VEVENT\r\n" + "".join(f"{line}\r\n" for line in lines) + people + "END:VEVENT\r\n"


def read(*events: str, label: str = "ann.ics", tz=BERLIN, extra: str = ""):
    calendar, problems = read_ics(HEAD + extra + "".join(events) + TAIL, label, WINDOW, tz)
    assert calendar is not None, problems
    return calendar, problems


SERIES = (
    "UID:s1",
    "DTSTAMP:20260101T000000Z",
    "SUMMARY:Ann / Bob",
    "DTSTART;TZID=Europe/Berlin:20261006T100000",
    "DTEND;TZID=Europe/Berlin:20261006T103000",
)


def test_rrule_expands_in_the_events_time_zone_across_dst():
    calendar, problems = read(vevent(*SERIES, "RRULE:FREQ=WEEKLY;COUNT=6"))
    assert problems == []
    starts = [o.start for o in calendar.occurrences]
    assert [s.date() for s in starts] == [date(2026, 10, 6) + timedelta(weeks=k) for k in range(6)]
    assert {(s.hour, s.minute) for s in starts} == {(10, 0)}  # 10:00 local before and after the change
    assert {s.utcoffset() for s in starts} == {timedelta(hours=2), timedelta(hours=1)}  # DST ended Oct 25
    assert all(o.timezone == "Europe/Berlin" for o in calendar.occurrences)
    assert all(o.recurrence_id == o.start for o in calendar.occurrences)
    assert calendar.series[0].recurrence == "FREQ=WEEKLY;COUNT=6"


def test_rdate_adds_an_occurrence():
    calendar, _ = read(
        vevent(*SERIES, "RRULE:FREQ=WEEKLY;COUNT=2", "RDATE;TZID=Europe/Berlin:20261009T150000")
    )
    assert [o.start.date() for o in calendar.occurrences] == [
        date(2026, 10, 6),
        date(2026, 10, 9),
        date(2026, 10, 13),
    ]


def test_exdate_becomes_a_cancelled_occurrence_at_its_original_start():
    calendar, _ = read(
        vevent(
            *SERIES, "SEQUENCE:4", "RRULE:FREQ=WEEKLY;COUNT=4", "EXDATE;TZID=Europe/Berlin:20261013T100000"
        )
    )
    cancelled = [o for o in calendar.occurrences if o.cancelled]
    assert [o.original_start for o in cancelled] == [datetime(2026, 10, 13, 10, tzinfo=BERLIN)]
    assert cancelled[0].version.sequence == 4
    assert {p.email for p in cancelled[0].participants} == {"ann@acme.test", "bob@acme.test"}
    assert len([o for o in calendar.occurrences if not o.cancelled]) == 3


def test_moved_and_cancelled_overrides():
    calendar, _ = read(
        vevent(*SERIES, "SEQUENCE:1", "RRULE:FREQ=WEEKLY;COUNT=4"),
        vevent(
            "UID:s1",
            "DTSTAMP:20260101T000000Z",
            "SEQUENCE:2",
            "RECURRENCE-ID;TZID=Europe/Berlin:20261013T100000",
            "DTSTART;TZID=Europe/Berlin:20261015T143000",
            "DTEND;TZID=Europe/Berlin:20261015T150000",
        ),
        vevent(
            "UID:s1",
            "DTSTAMP:20260101T000000Z",
            "SEQUENCE:3",
            "RECURRENCE-ID;TZID=Europe/Berlin:20261020T100000",
            "DTSTART;TZID=Europe/Berlin:20261020T100000",
            "STATUS:CANCELLED",
            people="",  # some clients strip the attendees from a cancellation
        ),
    )
    by_rid = {o.recurrence_id.date(): o for o in calendar.occurrences if o.recurrence_id}
    moved = by_rid[date(2026, 10, 13)]
    assert moved.start == datetime(2026, 10, 15, 14, 30, tzinfo=BERLIN)
    assert moved.status is Status.CONFIRMED
    assert moved.title == "Ann / Bob"  # inherited from the series
    assert moved.version.sequence == 2
    cancelled = by_rid[date(2026, 10, 20)]
    assert cancelled.status is Status.CANCELLED
    assert {p.email for p in cancelled.participants} == {"ann@acme.test", "bob@acme.test"}
    assert cancelled.version.sequence == 3
    untouched = by_rid[date(2026, 10, 6)]
    assert untouched.version.sequence == 1  # the master's own version, not the series' highest


def test_the_occurrences_of_a_series_share_what_they_have_in_common():
    """A reading is kept between cycles: what occurrences share is held once, not once each."""
    calendar, _ = read(
        vevent(*SERIES, "SEQUENCE:1", "RRULE:FREQ=WEEKLY;COUNT=4"),
        vevent(
            "UID:s1",
            "DTSTAMP:20260101T000000Z",
            "RECURRENCE-ID;TZID=Europe/Berlin:20261020T100000",
            "DTSTART;TZID=Europe/Berlin:20261020T100000",
            "STATUS:CANCELLED",
            people="",
        ),
    )
    occurrences = calendar.occurrences
    assert len(occurrences) == 4
    for field in ("title", "participants", "organizer"):
        assert len({id(getattr(o, field)) for o in occurrences}) == 1, field  # the override's from the series
    assert len({id(o.version) for o in occurrences}) == 2  # the master's, and the override's own
    assert all(o.recurrence_id is o.start for o in occurrences)  # none moved


def test_series_cancelled_as_a_whole():
    calendar, _ = read(vevent(*SERIES, "RRULE:FREQ=WEEKLY;COUNT=4", "STATUS:CANCELLED", "SEQUENCE:5"))
    assert calendar.occurrences == ()
    assert calendar.series[0].cancelled and calendar.series[0].version.sequence == 5


def test_participants_responses_rooms_and_organizer():
    people = (
        "ORGANIZER:mailto:ANN@acme.test\r\n"
        "ATTENDEE;PARTSTAT=DECLINED;CN=Bob:mailto:Bob@Acme.Test\r\n"
        "ATTENDEE;CUTYPE=ROOM;PARTSTAT=ACCEPTED:mailto:room-1@acme.test\r\n"
        "ATTENDEE;CUTYPE=RESOURCE:mailto:beamer@acme.test\r\n"
        "ATTENDEE;PARTSTAT=TENTATIVE:mailto:carl@acme.test\r\n"
    )
    calendar, _ = read(vevent(*SERIES, people=people))
    (o,) = calendar.occurrences
    assert o.organizer == "ann@acme.test"
    assert o.recurrence_id is None  # a one-off
    found = {p.email: (p.response, p.resource) for p in o.participants}
    assert found == {
        "bob@acme.test": (Response.DECLINED, False),
        "room-1@acme.test": (Response.ACCEPTED, True),
        "beamer@acme.test": (Response.UNKNOWN, True),
        "carl@acme.test": (Response.TENTATIVE, False),
    }


def test_utc_floating_and_all_day_times():
    calendar, _ = read(
        vevent("UID:u", "DTSTAMP:20260101T000000Z", "DTSTART:20261006T230000Z", "DURATION:PT30M"),
        vevent("UID:f", "DTSTAMP:20260101T000000Z", "DTSTART:20261006T090000", "DTEND:20261006T093000"),
        vevent("UID:a", "DTSTAMP:20260101T000000Z", "DTSTART;VALUE=DATE:20261006"),
    )
    by_uid = {o.series_id: o for o in calendar.occurrences}
    assert by_uid["u"].timezone == "UTC" and by_uid["u"].start.date() == date(2026, 10, 6)
    assert by_uid["u"].end - by_uid["u"].start == timedelta(minutes=30)
    assert by_uid["f"].start == datetime(2026, 10, 6, 9, tzinfo=BERLIN)  # floating: the org's zone
    assert by_uid["f"].timezone == "Europe/Berlin"
    assert by_uid["a"].all_day and not by_uid["u"].all_day


def test_tzid_without_vtimezone_iana_and_windows_names():
    calendar, problems = read(
        vevent("UID:i", "DTSTAMP:20260101T000000Z", "DTSTART;TZID=America/New_York:20261006T090000"),
        vevent("UID:w", "DTSTAMP:20260101T000000Z", "DTSTART;TZID=W. Europe Standard Time:20261006T090000"),
    )
    assert problems == []
    by_uid = {o.series_id: o for o in calendar.occurrences}
    assert by_uid["i"].start.utcoffset() == timedelta(hours=-4)
    assert by_uid["w"].start == datetime(2026, 10, 6, 9, tzinfo=BERLIN)
    assert by_uid["w"].timezone == "Europe/Berlin"


def test_custom_vtimezone():
    vtimezone = (
        "BEGIN:VTIMEZONE\r\nTZID:Custom Pacific\r\n"
        "BEGIN:STANDARD\r\nDTSTART:19701101T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\n"
        "TZOFFSETFROM:-0700\r\nTZOFFSETTO:-0800\r\nEND:STANDARD\r\n"
        "BEGIN:DAYLIGHT\r\nDTSTART:19700308T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\n"
        "TZOFFSETFROM:-0800\r\nTZOFFSETTO:-0700\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
    )
    calendar, problems = read(
        vevent(
            "UID:c",
            "DTSTAMP:20260101T000000Z",
            "DTSTART;TZID=Custom Pacific:20261026T170000",
            "RRULE:FREQ=WEEKLY;COUNT=2",
        ),
        extra=vtimezone,
    )
    assert problems == []
    offsets = [o.start.utcoffset() for o in calendar.occurrences]
    assert offsets == [timedelta(hours=-7), timedelta(hours=-8)]
    assert calendar.occurrences[0].timezone == "Custom Pacific"
    # 17:00 Pacific is already the next day in UTC: the local date is the event's own.
    assert calendar.occurrences[0].start.date() == date(2026, 10, 26)


def test_unknown_tzid_is_read_in_the_org_zone_and_reported():
    calendar, problems = read(
        vevent(
            "UID:x", "DTSTAMP:20260101T000000Z", "SUMMARY:Sync", "DTSTART;TZID=Mars/Olympus:20261006T090000"
        )
    )
    (o,) = calendar.occurrences
    assert o.start == datetime(2026, 10, 6, 9, tzinfo=BERLIN)
    assert len(problems) == 1
    assert problems[0].source == "ann.ics"
    assert "'Mars/Olympus'" in problems[0].message and "'Sync'" in problems[0].message


def test_versions_are_read_from_sequence_and_last_modified():
    calendar, _ = read(vevent(*SERIES, "SEQUENCE:7", "LAST-MODIFIED:20261001T120000Z"))
    (o,) = calendar.occurrences
    assert o.version.sequence == 7
    assert o.version.updated == datetime(2026, 10, 1, 12, tzinfo=UTC)


def test_x_wr_timezone_calendars_are_read_in_their_zone():
    calendar, _ = read(
        vevent("UID:g", "DTSTAMP:20260101T000000Z", "DTSTART:20261006T230000Z", "DTEND:20261006T233000Z"),
        extra="X-WR-TIMEZONE:Europe/Berlin\r\n",
    )
    (o,) = calendar.occurrences
    assert o.timezone == "Europe/Berlin"
    assert o.start.date() == date(2026, 10, 7)  # 23:00 UTC is 01:00 the next day in Berlin


def test_events_outside_the_window_are_left_out():
    calendar, _ = read(vevent("UID:old", "DTSTAMP:20260101T000000Z", "DTSTART:20250106T090000Z"))
    assert calendar.occurrences == ()


def test_malformed_document_is_reported_with_its_name():
    calendar, problems = read_ics("this is not a calendar", "calendars/broken.ics", WINDOW, BERLIN)
    assert calendar is None
    assert [p.source for p in problems] == ["calendars/broken.ics"]
    assert problems[0].message.startswith("not a valid iCalendar file")
    calendar, problems = read_ics(b"", "empty.ics", WINDOW, BERLIN)
    assert calendar is None and problems[0].source == "empty.ics"


def test_a_file_cut_off_says_so_and_keeps_the_parser_s_error_as_detail():
    whole = HEAD + vevent(*SERIES) + vevent(*SERIES[:3], "DTSTART;TZID=Europe/Berlin:20261007T100000") + TAIL
    lines = whole.splitlines(keepends=True)
    # cut in the middle of line 16, in the second event (begun on line 14)
    calendar, problems = read_ics("".join(lines[:15]) + lines[15][:5], "calendars/ann.ics", WINDOW, BERLIN)
    assert calendar is None
    (problem,) = problems
    assert problem.source == "calendars/ann.ics" and problem.unread
    assert problem.message == (
        "not a valid iCalendar file: the file looks cut off (no END:VCALENDAR at the end; it stops at "
        "line 16, inside the VEVENT begun on line 14): export or download it again"
    )
    # cut where the parser itself fails: its error is kept as detail
    calendar, problems = read_ics(HEAD[:-2] + "\r\nBEG", "ann.ics", WINDOW, BERLIN)
    assert calendar is None and problems[0].message.startswith(
        "not a valid iCalendar file: the file looks cut off (no END:VCALENDAR at the end; it stops at "
        "line 4, inside the VCALENDAR begun on line 1): export or download it again; the parser said: "
        "Content line could not be parsed"
    )


def test_a_file_cut_off_after_a_complete_calendar_is_not_read_as_if_whole():
    first = HEAD + vevent(*SERIES) + TAIL
    second = HEAD + vevent(*SERIES[:3])  # a second VCALENDAR (some exports hold several), cut off
    calendar, problems = read_ics(first + second, "ann.ics", WINDOW, BERLIN)
    assert calendar is None and problems[0].unread
    assert problems[0].message.startswith("not a valid iCalendar file: the file looks cut off")
    # the demo's planted file
    calendar, problems = read_ics(BROKEN_ICS, "calendars/broken.ics", WINDOW, BERLIN)
    assert calendar is None
    assert problems[0].message == (
        "not a valid iCalendar file: the file looks cut off (no END:VCALENDAR at the end; it stops at "
        "line 7, inside the VEVENT begun on line 4): export or download it again"
    )


def test_an_event_never_ended_is_named_with_its_line():
    text = HEAD + "BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20261006T090000Z\r\n" + TAIL
    calendar, problems = read_ics(text, "ann.ics", WINDOW, BERLIN)
    assert calendar is None and problems[0].message == (
        "not a valid iCalendar file: the VEVENT begun on line 4 has no END:VEVENT before line 7 "
        "(END:VCALENDAR): the file looks cut off or badly edited; export or download it again"
    )
    # a file that is no calendar at all is not called cut off
    _, problems = read_ics("<html>login</html>\n", "ann.ics", WINDOW, BERLIN)
    assert "cut off" not in problems[0].message


def test_a_broken_event_is_skipped_and_the_rest_is_read():
    calendar, problems = read(
        vevent("UID:bad", "DTSTAMP:20260101T000000Z", "SUMMARY:Broken", "DTSTART:2026-13-45"),
        vevent(*SERIES),
        vevent("DTSTAMP:20260101T000000Z", "SUMMARY:No uid", "DTSTART:20261006T090000Z"),
    )
    # the event without UID is read (tests/unit/test_ics_bad_input.py), the broken one is not
    assert [o.series_id for o in calendar.occurrences] == ["s1", calendar.occurrences[1].series_id]
    assert calendar.occurrences[1].title == "No uid"
    messages = sorted(p.message for p in problems)
    assert len(messages) == 2
    assert "event 'Broken' (UID bad): skipped: bad DTSTART" in messages[0]
    assert messages[1].startswith(
        "event 'No uid' without UID starting 2026-10-06T09:00:00+00:00: has no UID; read with one made"
    )


def test_override_without_its_series_is_a_single_occurrence_of_that_series():
    # Bob was invited to one occurrence only: his file holds the override but not the master.
    calendar, _ = read(
        vevent(
            "UID:s1",
            "DTSTAMP:20260101T000000Z",
            "RECURRENCE-ID;TZID=Europe/Berlin:20261013T100000",
            "DTSTART;TZID=Europe/Berlin:20261013T110000",
        ),
    )
    (o,) = calendar.occurrences
    assert o.recurrence_id == datetime(2026, 10, 13, 10, tzinfo=BERLIN)
    assert o.start.hour == 11
    assert calendar.series == ()


def test_unknown_tzid_is_reported_once_per_event():
    calendar, problems = read(
        vevent(
            "UID:x",
            "DTSTAMP:20260101T000000Z",
            "SUMMARY:Sync",
            "DTSTART;TZID=Mars/Olympus:20261006T090000",
            "RRULE:FREQ=WEEKLY;COUNT=3",
        ),
        vevent(
            "UID:x",
            "DTSTAMP:20260101T000000Z",
            "RECURRENCE-ID;TZID=Mars/Olympus:20261013T090000",
            "DTSTART;TZID=Mars/Olympus:20261014T090000",
        ),
    )
    assert len(calendar.occurrences) == 3
    assert len(problems) == 1


def test_dst_across_the_window_keeps_a_weekly_series_weekly():
    from calsync.cadence import Clock, PairStatus, assess
    from calsync.detect import one_on_ones, resolve

    # 08:30 Berlin on Mondays from September to December: clocks go back on 25 October.
    calendar, _ = read(
        vevent(
            "UID:dst",
            "DTSTAMP:20260101T000000Z",
            "DTSTART;TZID=Europe/Berlin:20260907T083000",
            "RRULE:FREQ=WEEKLY;UNTIL=20261214T235959Z",
        ),
    )
    found = one_on_ones(resolve([calendar]).occurrences, lambda e: e.endswith("@acme.test"))
    pair = ("ann@acme.test", "bob@acme.test")
    clock = Clock(datetime(2026, 11, 21, tzinfo=BERLIN), 90, 90)
    result = assess(found.pairs[pair], pair, clock, 7, 0)
    held = result.states.held
    assert held[0] == date(2026, 9, 7) and held[-1] == date(2026, 11, 16)
    assert all((b - a).days == 7 for a, b in itertools.pairwise(held))
    assert result.gaps == ()
    assert result.states.next_scheduled == date(2026, 11, 23)
    assert result.status is PairStatus.OK
