"""Graph calendarView instances + series masters -> the model, as calendarView answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from calsync.detect import one_on_ones, resolve
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
