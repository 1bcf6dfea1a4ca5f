"""Graph calendarView instances + series masters -> the model, as calendarView answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from calsync.detect import Ignored, one_on_ones, resolve
from calsync.model import Response, Status
from calsync.sources.base import Window
from calsync.sources.microsoft import graph_calendar_data

BERLIN = ZoneInfo("Europe/Berlin")
LISTED = Window(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
ANN, BOB = "ann@acme.test", "bob@acme.test"


def when(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def person(address: str, response: str = "none", kind: str = "required") -> dict[str, Any]:
    return {
        "type": kind,
        "status": {"response": response, "time": "0001-01-01T00:00:00Z"},
        "emailAddress": {"name": address.split("@")[0].title(), "address": address},
    }


MASTER: dict[str, Any] = {
    "id": "AAMk-master",
    "type": "seriesMaster",
    "iCalUId": "040000008200E00074C5B7101A82E008-ann-bob",
    "subject": "Ann / Bob",
    "originalStartTimeZone": "W. Europe Standard Time",
    "start": when(datetime(2026, 10, 6, 10, tzinfo=BERLIN)),
    "end": when(datetime(2026, 10, 6, 10, 30, tzinfo=BERLIN)),
    "recurrence": {
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"], "firstDayOfWeek": "monday"},
        "range": {
            "type": "noEnd",
            "startDate": "2026-10-06",
            "recurrenceTimeZone": "W. Europe Standard Time",
        },
    },
    "organizer": {"emailAddress": {"name": "Ann", "address": ANN}},
    "attendees": [person(ANN, "organizer"), person(BOB), person("room-1@acme.test", "accepted", "resource")],
    "responseStatus": {"response": "accepted"},
    "lastModifiedDateTime": "2026-09-30T12:00:00.1234567Z",
}


def occurrence(day: date, **changes: Any) -> dict[str, Any]:
    original = datetime.combine(day, datetime.min.time(), tzinfo=BERLIN).replace(hour=10)
    item = {
        **{k: v for k, v in MASTER.items() if k not in ("recurrence", "id")},
        "id": f"AAMk-{day.isoformat()}",
        "type": "occurrence",
        "seriesMasterId": MASTER["id"],
        "originalStart": original.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "start": when(original),
        "end": when(original + timedelta(minutes=30)),
    }
    item.update(changes)
    return item


def read(instances: list[dict[str, Any]], mailbox: str = BOB, window: Window = LISTED):
    return graph_calendar_data(instances, {MASTER["id"]: MASTER}, mailbox, LISTED, window, BERLIN)


TUESDAYS = [date(2026, 10, 6) + timedelta(weeks=k) for k in range(8)]  # 6 Oct .. 24 Nov


def member(email: str) -> bool:
    return email.endswith("@acme.test")


def test_the_view_decides_which_occurrences_exist():
    moved_start = datetime(2026, 10, 28, 15, tzinfo=BERLIN)
    instances = [
        occurrence(TUESDAYS[0]),
        # 13 Oct is simply missing: Graph dropped the cancelled occurrence
        occurrence(TUESDAYS[2], type="exception", isCancelled=True),
        occurrence(
            TUESDAYS[3],
            type="exception",
            start=when(moved_start),
            end=when(moved_start + timedelta(minutes=30)),
        ),
        {
            k: v for k, v in occurrence(TUESDAYS[4]).items() if k not in ("subject", "attendees", "organizer")
        },  # a stub
        occurrence(TUESDAYS[5], responseStatus={"response": "declined"}),
        *[occurrence(day) for day in TUESDAYS[6:]],
    ]
    data, problems = read(instances)
    assert problems == []
    by_date = {o.original_start.date(): o for o in data.occurrences}
    assert sorted(by_date) == TUESDAYS
    assert by_date[TUESDAYS[1]].status is Status.CANCELLED  # vanished
    assert by_date[TUESDAYS[2]].status is Status.CANCELLED  # isCancelled
    assert by_date[TUESDAYS[3]].start == moved_start and by_date[TUESDAYS[3]].status is Status.CONFIRMED
    stub = by_date[TUESDAYS[4]]
    assert stub.title == "Ann / Bob" and {p.email for p in stub.participants} >= {ANN, BOB}
    declined = {p.email: p.response for p in by_date[TUESDAYS[5]].participants}
    assert declined[BOB] is Response.DECLINED  # the mailbox owner's own answer
    assert all(o.timezone == "Europe/Berlin" and o.start.tzinfo == BERLIN for o in data.occurrences)
    assert (
        data.series[0].series_id == MASTER["iCalUId"]
        and data.series[0].recurrence == "FREQ=WEEKLY;BYDAY=TU;WKST=MO"
    )
    found = one_on_ones(resolve([data]).occurrences, lambda e: e.endswith("@acme.test"))
    assert list(found.pairs) == [(ANN, BOB)]  # the room does not count


def test_nothing_is_assumed_outside_the_listed_span():
    wider = Window(LISTED.start, LISTED.end + timedelta(days=21))
    data, _ = read([occurrence(day) for day in TUESDAYS], window=wider)
    assert max(o.original_start.date() for o in data.occurrences) == TUESDAYS[-1]


def test_single_instances_all_day_events_and_bad_items():
    one_off = {**occurrence(date(2026, 10, 8)), "type": "singleInstance", "iCalUId": "one-off-1"}
    del one_off["seriesMasterId"], one_off["originalStart"]
    all_day = {
        **one_off,
        "iCalUId": "offsite",
        "isAllDay": True,
        "start": {"dateTime": "2026-10-09T00:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-10-10T00:00:00.0000000", "timeZone": "UTC"},
    }
    orphan = {**occurrence(date(2026, 10, 20)), "seriesMasterId": "unknown-master", "subject": "Orphan"}
    data, problems = read([one_off, all_day, orphan])
    by_uid = {o.series_id: o for o in data.occurrences if o.recurrence_id is None}
    assert by_uid["one-off-1"].start == datetime(2026, 10, 8, 10, tzinfo=BERLIN)
    assert by_uid["offsite"].all_day
    assert (
        len(problems) == 1 and "'Orphan'" in problems[0].message and "was not fetched" in problems[0].message
    )


def test_a_series_organised_by_an_assistant_with_a_bot_invited_is_a_1on1_when_they_do_not_count():
    """As Graph serves it: the assistant organises (and is not among the attendees), a note-taking bot
    is invited; with both in [detect] ignore_attendees, Ann and Bob's series is their 1:1."""
    ea, bot = "kim.ea@acme.test", "notes@notetaker.example"
    master = {
        **MASTER,
        "organizer": {"emailAddress": {"name": "Kim (EA)", "address": ea}},
        "attendees": [person(ANN, "accepted"), person(BOB), person(bot, "accepted")],
    }
    instances = [
        {**occurrence(day), "organizer": master["organizer"], "attendees": master["attendees"]}
        for day in TUESDAYS
    ]
    data, problems = graph_calendar_data(instances, {MASTER["id"]: master}, BOB, LISTED, LISTED, BERLIN)
    assert problems == []
    occurrences = resolve([data]).occurrences
    assert list(one_on_ones(occurrences, member).pairs) == []  # three people: Kim, Ann and Bob
    found = one_on_ones(occurrences, member, Ignored([ea, "*@notetaker.example"]))
    assert list(found.pairs) == [(ANN, BOB)]
    assert sorted(o.original_start.date() for o in found.pairs[(ANN, BOB)]) == TUESDAYS


def test_a_zone_no_table_knows_is_read_in_the_org_zone_not_lost():
    """Outlook writes "Customized Time Zone" for zones with custom rules: expand in the org's zone."""
    custom = {
        **MASTER,
        "originalStartTimeZone": "Customized Time Zone",
        "recurrence": {
            **MASTER["recurrence"],
            "range": {**MASTER["recurrence"]["range"], "recurrenceTimeZone": ""},
        },
    }
    instances = [{**occurrence(day), "originalStartTimeZone": "Customized Time Zone"} for day in TUESDAYS]
    data, problems = graph_calendar_data(instances, {MASTER["id"]: custom}, BOB, LISTED, LISTED, BERLIN)
    assert problems == []
    starts = sorted(o.start for o in data.occurrences)
    # 10:00 in Berlin on both sides of the DST change of 25 October
    assert [s.astimezone(BERLIN).hour for s in starts] == [10] * len(TUESDAYS)


# -- out-of-office --------------------------------------------------------------------------------------

BLOCKS: dict[str, Any] = {
    "id": "AAMk-pickup",
    "type": "seriesMaster",
    "iCalUId": "pickup",
    "subject": "Kids pickup",
    "showAs": "oof",
    "originalStartTimeZone": "W. Europe Standard Time",
    "start": when(datetime(2026, 10, 2, 14, tzinfo=BERLIN)),
    "end": when(datetime(2026, 10, 2, 18, tzinfo=BERLIN)),
    "recurrence": {
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["friday"], "firstDayOfWeek": "monday"},
        "range": {
            "type": "noEnd",
            "startDate": "2026-10-02",
            "recurrenceTimeZone": "W. Europe Standard Time",
        },
    },
    "organizer": {"emailAddress": {"address": BOB}},
    "attendees": [],
}
FRIDAYS = [date(2026, 10, 2) + timedelta(weeks=k) for k in range(9)]  # 2 Oct .. 27 Nov


def friday(day: date, **changes: Any) -> dict[str, Any]:
    """An occurrence of the oof series as the delta lists it: a stub (no showAs, no organizer)."""
    original = datetime.combine(day, datetime.min.time(), tzinfo=BERLIN).replace(hour=14)
    return {
        "id": f"AAMk-pickup-{day.isoformat()}",
        "type": "occurrence",
        "seriesMasterId": BLOCKS["id"],
        "originalStart": original.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "start": when(original),
        "end": when(original + timedelta(hours=4)),
        **changes,
    }


def single(ident: str, start: datetime, end: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "singleInstance",
        "iCalUId": ident,
        "subject": ident,
        "start": when(start),
        "end": when(end),
        "organizer": {"emailAddress": {"address": BOB}},
        "attendees": [],
        **fields,
    }


def test_out_of_office_blocks_are_absences_of_their_organizer_never_meetings():
    moved = datetime(2026, 10, 16, 15, tzinfo=BERLIN)
    instances = [
        *[friday(day) for day in FRIDAYS if day not in (FRIDAYS[2], FRIDAYS[3], FRIDAYS[4])],
        # 16 Oct: an exception an hour later (it carries the master's properties, showAs included)
        friday(
            FRIDAYS[2],
            type="exception",
            showAs="oof",
            subject="Kids pickup",
            start=when(moved),
            end=when(moved + timedelta(hours=4)),
        ),
        # 23 Oct vanished (cancelled); 30 Oct kept as cancelled
        friday(FRIDAYS[4], type="exception", isCancelled=True),
        single(
            "conference",
            datetime(2026, 11, 10, 9, tzinfo=BERLIN),
            datetime(2026, 11, 10, 17, tzinfo=BERLIN),
            showAs="oof",
        ),
        {  # all-day: whole days, as written
            **single("holiday", datetime(2026, 11, 16), datetime(2026, 11, 19), showAs="oof", isAllDay=True),
            "start": {"dateTime": "2026-11-16T00:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-19T00:00:00.0000000", "timeZone": "UTC"},
        },
        single(  # no organizer given: the mailbox's own block
            "trip",
            datetime(2026, 11, 24, 9, tzinfo=BERLIN),
            datetime(2026, 11, 24, 17, tzinfo=BERLIN),
            showAs="oof",
            organizer=None,
        ),
        single(  # an oof block of two people: still no meeting
            "workshop",
            datetime(2026, 11, 25, 9, tzinfo=BERLIN),
            datetime(2026, 11, 25, 17, tzinfo=BERLIN),
            showAs="oof",
            attendees=[person(ANN, "accepted")],
        ),
        single(  # a 1:1 shown as busy: a meeting
            "one-on-one",
            datetime(2026, 11, 26, 9, tzinfo=BERLIN),
            datetime(2026, 11, 26, 9, 30, tzinfo=BERLIN),
            showAs="busy",
            attendees=[person(ANN, "accepted")],
        ),
    ]
    data, problems = graph_calendar_data(instances, {BLOCKS["id"]: BLOCKS}, BOB, LISTED, LISTED, BERLIN)
    assert problems == []
    assert data.owner == BOB
    assert [o.series_id for o in data.occurrences] == ["one-on-one"]
    assert {a.person for a in data.absences} == {BOB} and {a.calendar for a in data.absences} == {BOB}
    timed = sorted((a.start, a.end) for a in data.absences if not a.all_day)
    pickups = [
        (datetime.combine(day, datetime.min.time(), tzinfo=BERLIN).replace(hour=14),) for day in FRIDAYS
    ]
    expected = [
        (start, start + timedelta(hours=4))
        for (start,) in pickups
        if start.date() not in (FRIDAYS[2], FRIDAYS[3], FRIDAYS[4])
    ]
    expected += [(moved, moved + timedelta(hours=4))]
    expected += [
        (datetime(2026, 11, 10, 9, tzinfo=BERLIN), datetime(2026, 11, 10, 17, tzinfo=BERLIN)),
        (datetime(2026, 11, 24, 9, tzinfo=BERLIN), datetime(2026, 11, 24, 17, tzinfo=BERLIN)),
        (datetime(2026, 11, 25, 9, tzinfo=BERLIN), datetime(2026, 11, 25, 17, tzinfo=BERLIN)),
    ]
    assert timed == sorted(expected)
    (whole,) = [a for a in data.absences if a.all_day]
    assert (whole.start.date(), whole.end.date()) == (date(2026, 11, 16), date(2026, 11, 19))


def test_show_as_becomes_outlooks_busy_status_and_a_stub_takes_its_masters():
    from calsync.sources.microsoft import BUSY_STATUS, _instance, _master

    master = _master(BLOCKS, BOB, LISTED, BERLIN)
    assert str(master[BUSY_STATUS]) == "OOF" and str(master["ORGANIZER"]) == f"mailto:{BOB}"
    stub = _instance(friday(FRIDAYS[0]), {BLOCKS["id"]: BLOCKS}, BOB, BERLIN)
    assert stub is not None and str(stub[BUSY_STATUS]) == "OOF"
    busy = _instance(friday(FRIDAYS[1], showAs="busy"), {BLOCKS["id"]: BLOCKS}, BOB, BERLIN)
    assert busy is not None and str(busy[BUSY_STATUS]) == "BUSY"
    for show_as, status in (
        ("free", "FREE"),
        ("tentative", "TENTATIVE"),
        ("workingElsewhere", "WORKINGELSEWHERE"),
    ):
        event = _instance(single("x", LISTED.start, LISTED.start, showAs=show_as), {}, BOB, BERLIN)
        assert event is not None and str(event[BUSY_STATUS]) == status
    unknown = _instance(single("y", LISTED.start, LISTED.start, showAs="unknown"), {}, BOB, BERLIN)
    assert unknown is not None and BUSY_STATUS not in unknown
    ownerless = _instance(
        single("z", LISTED.start, LISTED.start, showAs="oof", organizer=None), {}, BOB, BERLIN
    )
    assert ownerless is not None and str(ownerless["ORGANIZER"]) == f"mailto:{BOB}"
