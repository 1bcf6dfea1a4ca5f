"""Out-of-office blocks in ICS (Outlook's X-MICROSOFT-CDO-BUSYSTATUS:OOF) become absences, never meetings;
and whose calendar a document is (the owner of the blocks that name no organizer)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest

from calsync.detect import one_on_ones, resolve
from calsync.model import Absence
from calsync.sources.base import Window
from calsync.sources.ics import IcsSource, read_calendars, read_converted, read_ics

BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = Window(datetime(2026, 8, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))
HEAD = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
TAIL = "END:VCALENDAR\r\n"
ANN = "ORGANIZER;CN=Ann:mailto:Ann@Acme.test\r\n"
SECRET = "Chemotherapy at St. Mary's"  # what an absence's title may say: never to be seen anywhere
OOF = f"X-MICROSOFT-CDO-BUSYSTATUS:OOF\r\nSUMMARY:{SECRET}\r\nDESCRIPTION:{SECRET}, ward 3\r\n"


def vevent(*lines: str, people: str = ANN, oof: str = OOF) -> str:
    return "BEGIN:VEVENT\r\n" + "".join(f"{line}\r\n" for line in lines) + people + oof + "END:VEVENT\r\n"


def read(*events: str, label: str = "ann.ics", owner: str | None = None, extra: str = ""):
    calendar, problems = read_ics(HEAD + extra + "".join(events) + TAIL, label, WINDOW, BERLIN, owner=owner)
    assert calendar is not None, problems
    assert calendar.occurrences == () and calendar.series == (), "a block is never a meeting"
    for problem in problems:
        assert "Chemotherapy" not in problem.message and "St. Mary" not in problem.message
    return calendar, problems


def utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def test_a_timed_block_is_an_absence_of_its_organizer():
    calendar, problems = read(
        vevent(
            "UID:oof1",
            "DTSTAMP:20260101T000000Z",
            "DTSTART;TZID=Europe/Berlin:20261006T130000",
            "DTEND;TZID=Europe/Berlin:20261006T180000",
        )
    )
    assert problems == []
    (absence,) = calendar.absences
    assert absence == Absence(
        "ann@acme.test",
        datetime(2026, 10, 6, 13, tzinfo=BERLIN),
        datetime(2026, 10, 6, 18, tzinfo=BERLIN),
        all_day=False,
        calendar="ann.ics",
    )
    assert absence.start.utcoffset() == timedelta(hours=2)  # an instant, in the event's own zone


def test_the_busy_status_is_read_case_insensitively():
    calendar, _ = read(
        vevent(
            "UID:o",
            "DTSTART:20261006T080000Z",
            "DTEND:20261006T160000Z",
            oof="X-MICROSOFT-CDO-BUSYSTATUS:oof\r\n",
        )
    )
    assert len(calendar.absences) == 1


def test_other_busy_statuses_are_meetings_as_before():
    text = (
        HEAD + vevent("UID:m", "DTSTART:20261006T080000Z", oof="X-MICROSOFT-CDO-BUSYSTATUS:BUSY\r\n") + TAIL
    )
    calendar, _ = read_ics(text, "ann.ics", WINDOW, BERLIN)
    assert calendar is not None
    assert [o.series_id for o in calendar.occurrences] == ["m"] and calendar.absences == ()


def test_an_all_day_block_covers_its_dates_at_midnight_utc():
    calendar, problems = read(vevent("UID:day", "DTSTART;VALUE=DATE:20261006", "DTEND;VALUE=DATE:20261007"))
    assert problems == []
    (absence,) = calendar.absences
    assert absence.all_day
    assert (absence.start, absence.end) == (utc(date(2026, 10, 6)), utc(date(2026, 10, 7)))


def test_an_all_day_block_without_dtend_is_one_day():
    calendar, _ = read(
        vevent("UID:day", "DTSTART;VALUE=DATE:20261006"),
        vevent("UID:same", "DTSTART;VALUE=DATE:20261009", "DTEND;VALUE=DATE:20261009"),  # DTEND = DTSTART
    )
    spans = sorted((a.start, a.end) for a in calendar.absences)
    assert spans == [
        (utc(date(2026, 10, 6)), utc(date(2026, 10, 7))),
        (utc(date(2026, 10, 9)), utc(date(2026, 10, 10))),
    ]


def test_a_multi_day_block_ends_the_day_after_its_last_date():
    calendar, _ = read(
        vevent("UID:trip", "DTSTART;VALUE=DATE:20261012", "DTEND;VALUE=DATE:20261024"),  # 12-23 October
        vevent("UID:dur", "DTSTART;VALUE=DATE:20261102", "DURATION:P3D"),
    )
    by_start = {a.start.date(): a for a in calendar.absences}
    assert by_start[date(2026, 10, 12)].end == utc(date(2026, 10, 24))
    assert by_start[date(2026, 11, 2)].end == utc(date(2026, 11, 5))
    assert all(a.all_day for a in calendar.absences)


def test_a_recurring_block_with_exdate_and_a_cancelled_override():
    calendar, problems = read(
        vevent(
            "UID:fridays",
            "DTSTAMP:20260101T000000Z",
            "DTSTART;TZID=Europe/Berlin:20261002T120000",
            "DTEND;TZID=Europe/Berlin:20261002T170000",
            "RRULE:FREQ=WEEKLY;COUNT=5",
            "EXDATE;TZID=Europe/Berlin:20261009T120000",
        ),
        vevent(
            "UID:fridays",
            "RECURRENCE-ID;TZID=Europe/Berlin:20261016T120000",
            "DTSTART;TZID=Europe/Berlin:20261016T120000",
            "DTEND;TZID=Europe/Berlin:20261016T170000",
            "STATUS:CANCELLED",
        ),
        vevent(
            "UID:fridays",
            "RECURRENCE-ID;TZID=Europe/Berlin:20261023T120000",
            "DTSTART;TZID=Europe/Berlin:20261022T120000",  # moved to Thursday
            "DTEND;TZID=Europe/Berlin:20261022T170000",
            people="",  # an override without organizer: the series' is the person's
        ),
    )
    assert problems == []
    assert [a.start.date() for a in calendar.absences] == [
        date(2026, 10, 2),  # 9 Oct: EXDATE; 16 Oct: cancelled
        date(2026, 10, 22),
        date(2026, 10, 30),
    ]
    assert {a.person for a in calendar.absences} == {"ann@acme.test"}
    # clocks go back on 25 October: 12:00 local before and after
    assert {(a.start.hour, a.end.hour) for a in calendar.absences} == {(12, 17)}


def test_a_cancelled_one_off_block_and_a_cancelled_series_are_no_absence():
    calendar, _ = read(
        vevent("UID:c1", "DTSTART:20261006T080000Z", "DTEND:20261006T160000Z", "STATUS:CANCELLED"),
        vevent("UID:c2", "DTSTART:20261006T080000Z", "RRULE:FREQ=DAILY;COUNT=3", "STATUS:CANCELLED"),
    )
    assert calendar.absences == ()


def test_only_occurrences_in_the_window_count():
    calendar, _ = read(
        vevent("UID:old", "DTSTART;VALUE=DATE:20250106"),
        vevent("UID:weekly", "DTSTART;VALUE=DATE:20270111", "RRULE:FREQ=WEEKLY;COUNT=10"),
    )
    assert [a.start.date() for a in calendar.absences] == [
        date(2027, 1, 11),
        date(2027, 1, 18),
        date(2027, 1, 25),
    ]


def test_floating_times_are_read_in_the_org_zone():
    calendar, _ = read(vevent("UID:f", "DTSTART:20261006T090000", "DTEND:20261006T170000"))
    (absence,) = calendar.absences
    assert absence.start == datetime(2026, 10, 6, 9, tzinfo=BERLIN)
    assert absence.end == datetime(2026, 10, 6, 17, tzinfo=BERLIN)
    assert absence.start.tzinfo is not None and not absence.all_day


def test_no_organizer_means_the_owner_is_away():
    calendar, problems = read(
        vevent("UID:o", "DTSTART;VALUE=DATE:20261006", people=""), owner="Maya@Acme.test", label="maya.ics"
    )
    assert problems == []
    assert [a.person for a in calendar.absences] == ["maya@acme.test"]
    assert calendar.owner == "maya@acme.test"


def test_blocks_with_neither_organizer_nor_owner_are_skipped_with_one_problem():
    calendar, problems = read(
        vevent("UID:o1", "DTSTART;VALUE=DATE:20261006", people=""),
        vevent("UID:o2", "DTSTART;VALUE=DATE:20261013", "RRULE:FREQ=DAILY;COUNT=3", people=""),
        vevent("UID:o3", "DTSTART;VALUE=DATE:20261020"),  # Ann's: read
        label="calendars/export.ics",
    )
    assert [a.person for a in calendar.absences] == ["ann@acme.test"]
    assert calendar.owner is None
    (problem,) = problems
    assert problem.source == "calendars/export.ics" and not problem.unread
    assert problem.message.startswith("2 out-of-office blocks skipped")
    for fix in ("<email>.ics", "owner", "ORGANIZER"):
        assert fix in problem.message


def test_a_block_with_two_people_is_not_a_one_on_one():
    people = ANN + "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@acme.test\r\n"
    calendar, _ = read(
        vevent(
            "UID:two",
            "DTSTART;TZID=Europe/Berlin:20261006T100000",
            "DTEND;TZID=Europe/Berlin:20261006T103000",
            "RRULE:FREQ=WEEKLY;COUNT=4",
            people=people,
        )
    )
    assert len(calendar.absences) == 4
    assert {a.person for a in calendar.absences} == {"ann@acme.test"}  # the organizer's, not Bob's
    found = one_on_ones(resolve([calendar]).occurrences, lambda email: email.endswith("@acme.test"))
    assert found.pairs == {}


def test_an_occurrence_of_a_meeting_turned_out_of_office_is_an_absence_not_a_meeting():
    people = ANN + "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@acme.test\r\n"
    text = (
        HEAD
        + vevent(
            "UID:1on1",
            "SUMMARY:Ann / Bob",
            "DTSTART;TZID=Europe/Berlin:20261006T100000",
            "DTEND;TZID=Europe/Berlin:20261006T103000",
            "RRULE:FREQ=WEEKLY;COUNT=3",
            "EXDATE;TZID=Europe/Berlin:20261020T100000",
            people=people,
            oof="",
        )
        + vevent(
            "UID:1on1",
            "RECURRENCE-ID;TZID=Europe/Berlin:20261013T100000",
            "DTSTART;TZID=Europe/Berlin:20261013T100000",
            "DTEND;TZID=Europe/Berlin:20261013T103000",
            people=people,
        )
        + TAIL
    )
    calendar, _ = read_ics(text, "ann.ics", WINDOW, BERLIN)
    assert calendar is not None
    by_day = {o.original_start.date(): o.cancelled for o in calendar.occurrences}
    assert by_day == {date(2026, 10, 6): False, date(2026, 10, 20): True}  # 13 Oct: no meeting, no EXDATE
    assert [a.start.date() for a in calendar.absences] == [date(2026, 10, 13)]


def test_the_title_never_appears_in_problems():
    calendar, problems = read(
        # an unknown time zone, an unreadable DTSTAMP, no UID: each reported, none by the title
        vevent(
            "UID:tz", "DTSTART;TZID=Mars/Olympus:20261006T090000", "DTEND;TZID=Mars/Olympus:20261006T170000"
        ),
        vevent("UID:stamp", "DTSTAMP:yesterday", "DTSTART;VALUE=DATE:20261007"),
        vevent("DTSTART;VALUE=DATE:20261008"),
        # broken beyond reading: skipped, and still not named by its title
        vevent("UID:broken", "DTSTART:2026-13-45"),
        vevent("UID:badline", "DTSTART;VALUE=DATE:20261009", f"{SECRET}, no colon on this line"),
        vevent("UID:rule", "DTSTART;VALUE=DATE:20261009", f"RRULE:FREQ=DAILY;X-NOTE={SECRET}"),
    )
    assert len(calendar.absences) == 3
    messages = "\n".join(p.message for p in problems)
    assert "out-of-office block (UID tz) starting 2026-10-06T09:00:00" in messages
    assert "out-of-office block (UID stamp) starting 2026-10-07: its DTSTAMP could not be read" in messages
    assert "out-of-office block without UID starting 2026-10-08: has no UID" in messages
    assert "out-of-office block (UID broken): skipped: bad DTSTART" in messages
    assert (
        "out-of-office block (UID badline) starting 2026-10-09: skipped: a line that could not be parsed"
        in messages
    )
    assert "out-of-office block (UID rule) starting 2026-10-09: skipped:" in messages
    assert len(problems) == 6
    # the absences themselves hold no title either
    assert all(SECRET not in repr(a) for a in calendar.absences)


def test_converted_events_of_other_providers_go_the_same_way():
    def convert(item: dict[str, str]) -> icalendar.Event:
        event = icalendar.Event()
        event.add("uid", item["id"])
        event.add("dtstart", datetime.fromisoformat(item["start"]))
        event.add("dtend", datetime.fromisoformat(item["end"]))
        event.add("summary", item["title"])
        if item["showAs"] == "oof":
            event.add("X-MICROSOFT-CDO-BUSYSTATUS", "OOF")
        return event

    items = [
        {
            "id": "a",
            "start": "2026-10-06T08:00:00+00:00",
            "end": "2026-10-06T16:00:00+00:00",
            "title": SECRET,
            "showAs": "oof",
        },
    ]
    calendar, problems = read_converted(
        items, convert, str, "maya@acme.test", WINDOW, BERLIN, owner="maya@acme.test"
    )
    assert problems == [] and calendar.occurrences == ()
    assert calendar.owner == "maya@acme.test"
    assert [(a.person, a.start) for a in calendar.absences] == [
        ("maya@acme.test", datetime(2026, 10, 6, 8, tzinfo=UTC))
    ]


# -- whose calendar a document is --------------------------------------------------------------------


def test_read_calendars_takes_an_email_calendar_name_when_no_owner_is_given():
    def calendar(name: str) -> icalendar.Calendar:
        cal = icalendar.Calendar()
        cal.add("X-WR-CALNAME", name)
        return cal

    assert read_calendars([calendar("Maya@Acme.test")], "x", WINDOW, BERLIN)[0].owner == "maya@acme.test"
    assert read_calendars([calendar("Maya's calendar")], "x", WINDOW, BERLIN)[0].owner is None
    given = read_calendars([calendar("maya@acme.test")], "x", WINDOW, BERLIN, owner="omar@acme.test")
    assert given[0].owner == "omar@acme.test"


BLOCK = vevent("UID:b", "DTSTART;VALUE=DATE:20261006", people="")


def document(name: str | None = None) -> str:
    extra = f"X-WR-CALNAME:{name}\r\n" if name else ""
    return (
        HEAD + extra + "BEGIN:VTIMEZONE\r\nTZID:UTC\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
        "TZOFFSETFROM:+0000\r\nTZOFFSETTO:+0000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n" + BLOCK + TAIL
    )


def owner_of(stem: str) -> str | None:
    return {"maya": "Maya@Acme.test", "omar": "omar@acme.test"}.get(stem)


def fetch(path: Path, **kwargs):
    source = IcsSource(str(path), name="calendars", default_tz=BERLIN, label_root=path.parent, **kwargs)
    return source.fetch(WINDOW)


@pytest.mark.parametrize(
    ("file", "calname", "kwargs", "expected"),
    [
        # the config's owner first
        ("maya.ics", "omar@acme.test", {"owner": "Ava@Acme.test", "owner_of": owner_of}, "ava@acme.test"),
        # then the calendar's name, if it is an address
        ("maya@acme.test.ics", "omar@acme.test", {"owner_of": owner_of}, "omar@acme.test"),
        # then a file named by email
        ("Maya@Acme.test.ics", "Maya's calendar", {"owner_of": owner_of}, "maya@acme.test"),
        ("diego@acme.test.ics", None, {}, "diego@acme.test"),
        # then the org member the stem names
        ("maya.ics", "Calendar", {"owner_of": owner_of}, "maya@acme.test"),
        ("omar.ics", None, {"owner_of": owner_of}, "omar@acme.test"),
        # else nobody
        ("export.ics", None, {"owner_of": owner_of}, None),
        ("maya.ics", None, {}, None),
    ],
)
def test_owner_inference_order(tmp_path, file, calname, kwargs, expected):
    path = tmp_path / file
    path.write_text(document(calname))
    result = fetch(path, **kwargs)
    (calendar,) = result.calendars
    assert calendar.owner == expected
    if expected is None:
        assert calendar.absences == () and len(result.problems) == 1  # the block has no one to be
    else:
        assert [a.person for a in calendar.absences] == [expected]


def test_each_file_of_a_directory_has_its_own_owner(tmp_path):
    (tmp_path / "cals").mkdir()
    for stem in ("maya", "omar@acme.test", "nobody"):
        (tmp_path / "cals" / f"{stem}.ics").write_text(document())
    result = fetch(tmp_path / "cals", owner_of=owner_of)
    owners = {c.calendar: c.owner for c in result.calendars}
    assert owners == {
        "cals/maya.ics": "maya@acme.test",
        "cals/nobody.ics": None,
        "cals/omar@acme.test.ics": "omar@acme.test",
    }


def test_a_calendar_name_after_the_first_component_is_not_the_calendar_s(tmp_path):
    # X-WR-CALNAME is a calendar property: one inside an event says nothing about whose calendar it is
    text = (
        HEAD
        + "BEGIN:VEVENT\r\nUID:x\r\nX-WR-CALNAME:omar@acme.test\r\nDTSTART:20261006T080000Z\r\nEND:VEVENT\r\n"
        + TAIL
    )
    (tmp_path / "maya.ics").write_text(text)
    (calendar,) = fetch(tmp_path / "maya.ics", owner_of=owner_of).calendars
    assert calendar.owner == "maya@acme.test"


def test_a_folded_calendar_name_is_unfolded(tmp_path):
    text = HEAD + "X-WR-CALNAME:omar@acme\r\n .test\r\n" + BLOCK + TAIL
    (tmp_path / "maya.ics").write_text(text)
    (calendar,) = fetch(tmp_path / "maya.ics", owner_of=owner_of).calendars
    assert calendar.owner == "omar@acme.test"


# -- the owner of what could not be read -------------------------------------------------------------


def test_an_invalid_file_s_problem_names_its_owner(tmp_path):
    cals = tmp_path / "cals"
    cals.mkdir()
    (cals / "maya.ics").write_text("<html>sign in</html>\n")
    (cals / "omar@acme.test.ics").write_text(HEAD + "BEGIN:VEVENT\r\nUID:x\r\n")  # cut off
    (cals / "export.ics").write_text("not a calendar")
    result = fetch(cals, owner_of=owner_of)
    assert result.calendars == []
    owners = {p.source: (p.unread, p.owner) for p in result.problems}
    assert owners == {
        "cals/export.ics": (True, None),
        "cals/maya.ics": (True, "maya@acme.test"),
        "cals/omar@acme.test.ics": (True, "omar@acme.test"),
    }


def test_an_unreadable_or_missing_file_s_problem_names_its_owner(tmp_path, monkeypatch):
    path = tmp_path / "maya.ics"
    path.write_text(document())
    real = Path.read_bytes

    def denied(self: Path) -> bytes:
        if self.name == "maya.ics":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    (problem,) = fetch(path, owner_of=owner_of).problems
    assert problem.message == "cannot read: Permission denied"
    assert (problem.unread, problem.owner) == (True, "maya@acme.test")

    (problem,) = fetch(tmp_path / "gone@acme.test.ics").problems
    assert problem.message == "no such file or directory"
    assert (problem.unread, problem.owner) == (True, "gone@acme.test")

    (problem,) = fetch(tmp_path / "other.ics", owner="Ava@Acme.test").problems
    assert (problem.unread, problem.owner) == (True, "ava@acme.test")


def test_read_ics_gives_its_owner_to_the_problem_of_an_unreadable_document():
    calendar, (problem,) = read_ics("garbage", "maya.ics", WINDOW, BERLIN, owner="maya@acme.test")
    assert calendar is None and problem.unread and problem.owner == "maya@acme.test"
    _, (problem,) = read_ics("garbage", "maya.ics", WINDOW, BERLIN)
    assert problem.owner is None


def test_a_failed_download_names_the_configured_owner(monkeypatch):
    import urllib.request

    def refused(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(urllib.request, "urlopen", refused)
    source = IcsSource(
        "https://cal.example/secret.ics", name="maya's feed", default_tz=BERLIN, owner="Maya@acme.test"
    )
    (problem,) = source.fetch(WINDOW).problems
    assert problem.source == "maya's feed" and problem.unread
    assert problem.owner == "maya@acme.test"
    assert "secret" not in problem.message
