"""Out-of-office through the real calsync Graph client (msal + requests against the https fake): the
blocks in the mailboxes read, the absentees' free/busy through getSchedule, and the stored reading of a
mailbox that cannot be read now."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calsync.config import MicrosoftSourceConfig
from calsync.model import CalendarData
from calsync.sources.base import ReadCache, Window
from calsync.sources.microsoft import (
    KEEP_RULE,
    SCHEDULE_DAYS_FALLBACK,
    SCHEDULES_PER_REQUEST,
    MicrosoftSource,
    graph_client,
    stored_calendars,
)
from calsync.sources.retry import RetryPolicy
from calsync.store import StateStore
from tests.fakes.graph import FakeGraph

APP = "5e1f0c2a-calsync-absence"
SECRET = "correct horse battery staple"
MAYA, OMAR, LENA, ANN = "maya@acme.test", "omar@acme.test", "lena@acme.test", "ann@acme.test"
GHOST = "ghost@acme.test"
BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = Window(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC))
#: As long as calsync's sync window (90 days back, 90 ahead, a week's margin either side).
LONG = Window(datetime(2026, 8, 16, tzinfo=UTC), datetime(2027, 2, 26, tzinfo=UTC))
SCHEDULE = "/calendar/getSchedule"

pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    with FakeGraph() as graph:
        for address in (MAYA, OMAR, LENA, ANN):
            graph.add_user(address, address.split("@")[0].title(), time_zone="Europe/Berlin")
        graph.add_app(APP, secret=SECRET, roles=("Calendars.ReadWrite", "User.Read.All"))
        yield graph
        assert graph.internal_errors == []


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    state = StateStore(tmp_path / "state.json")
    yield state
    state.close()


def client(fake: FakeGraph, tmp_path: Path, slept: list[float] | None = None) -> Any:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    config = MicrosoftSourceConfig(
        name="m365",
        tenant=fake.tenant,
        client_id=APP,
        client_secret_file=secret,
        authority_host=fake.authority_host,
        graph_endpoint=fake.graph_endpoint,
        ca_bundle=fake.ca_path,
        timeout_seconds=10,
    )
    sleep = slept.append if slept is not None else (lambda seconds: None)
    return graph_client(config, retry=RetryPolicy(attempts=4, sleep=sleep, jitter=lambda: 0.5))


def when(moment: datetime, zone: str = "W. Europe Standard Time") -> dict[str, str]:
    return {"dateTime": moment.replace(tzinfo=None).isoformat(), "timeZone": zone}


def block(subject: str, start: datetime, end: datetime, **extra: Any) -> dict[str, Any]:
    """A one-person event, as Outlook makes one (the fake makes the mailbox's owner its organizer)."""
    return {"subject": subject, "showAs": "oof", "start": when(start), "end": when(end), **extra}


def person(address: str) -> dict[str, Any]:
    return {"type": "required", "status": {"response": "accepted"}, "emailAddress": {"address": address}}


def weekly(subject: str, first: datetime, minutes: int, **extra: Any) -> dict[str, Any]:
    return {
        "subject": subject,
        "start": when(first),
        "end": when(first + timedelta(minutes=minutes)),
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [first.strftime("%A").lower()]},
            "range": {"type": "noEnd", "startDate": first.date().isoformat()},
        },
        **extra,
    }


def calendars(result: Any) -> dict[str, CalendarData]:
    """By calendar, an absentee's by their address."""
    return {c.calendar.removesuffix(" (out of office)"): c for c in result.calendars}


def spans(data: CalendarData) -> list[tuple[datetime, datetime, bool]]:
    return [(a.start, a.end, a.all_day) for a in sorted(data.absences, key=lambda a: a.start)]


def schedule_calls(fake: FakeGraph) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and SCHEDULE in r.path]


def free_busy_http_calls(fake: FakeGraph) -> int:
    """The HTTP requests that asked for free/busy: getSchedule sent alone, and the batches holding one
    (a batch is logged right before the requests in it)."""
    calls, batch = 0, None
    for record in fake.requests:
        if not record.batch:
            batch = record if record.path == "/v1.0/$batch" else None
            calls += SCHEDULE in record.path
        elif SCHEDULE in record.path and batch is not None:
            calls, batch = calls + 1, None
    return calls


def berlin(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN)


# ---------------------------------------------------------------------------------------------- mailboxes


def test_out_of_office_blocks_as_graph_serves_them(
    fake: FakeGraph, tmp_path: Path, store: StateStore
) -> None:
    one_on_one = fake.put_event(
        MAYA,
        weekly(
            "Maya / Omar",
            berlin(date(2026, 10, 6), 10),
            30,
            organizer={"emailAddress": {"address": MAYA}},
            attendees=[person(OMAR)],
        ),
    )
    fake.put_event(MAYA, block("Conference", berlin(date(2026, 11, 10), 9), berlin(date(2026, 11, 10), 17)))
    fake.put_event(  # all-day, three days
        MAYA, block("Holiday", berlin(date(2026, 11, 16), 0), berlin(date(2026, 11, 19), 0), isAllDay=True)
    )
    pickup = fake.put_event(
        MAYA, weekly("Kids pickup", berlin(date(2026, 10, 2), 14), 240, showAs="oof")
    )  # Fridays
    fake.put_exception(  # one Friday an hour later
        MAYA,
        pickup["id"],
        berlin(date(2026, 10, 16), 14),
        {"start": when(berlin(date(2026, 10, 16), 15)), "end": when(berlin(date(2026, 10, 16), 19))},
    )
    fake.cancel_occurrence(MAYA, pickup["id"], berlin(date(2026, 10, 23), 14))  # vanishes from the view
    fake.put_event(  # cancelled: takes no one away
        MAYA,
        block("Trip", berlin(date(2026, 11, 24), 9), berlin(date(2026, 11, 24), 17), isCancelled=True),
    )
    for subject, guests in (("Ann's offsite", [MAYA, LENA]), ("Ann's workshop", [MAYA])):
        fake.put_event(  # someone else's blocks Maya was invited to: not her absence
            MAYA,
            block(
                subject,
                berlin(date(2026, 11, 3), 9),
                berlin(date(2026, 11, 3), 17),
                organizer={"emailAddress": {"address": ANN}},
                attendees=[person(g) for g in guests],
            ),
        )
    fake.put_event(  # busy, one person: neither a meeting nor an absence
        MAYA,
        {
            "subject": "Dentist",
            "start": when(berlin(date(2026, 11, 12), 8)),
            "end": when(berlin(date(2026, 11, 12), 9)),
        },
    )

    source = MicrosoftSource("m365", [MAYA], client(fake, tmp_path), store, default_tz=BERLIN)
    result = source.fetch(WINDOW)
    assert result.problems == []
    (maya,) = result.calendars
    assert maya.owner == MAYA and maya.stored_at is None
    # only the 1:1 is a meeting: no block became one
    assert {o.series_id for o in maya.occurrences} == {one_on_one["iCalUId"]}
    assert {a.calendar for a in maya.absences} == {MAYA}
    # (the workshop, of two people, is kept as a 1:1 could be; its block is Ann's, never a meeting)
    assert {a.person for a in maya.absences} <= {MAYA, ANN}
    mine = [a for a in maya.absences if a.person == MAYA]
    assert all(a.start.date() != date(2026, 11, 3) for a in mine)
    fridays = [date(2026, 10, 2) + timedelta(weeks=k) for k in range(13)]  # 2 Oct .. 25 Dec
    expected = [
        (
            berlin(day, 15 if day == date(2026, 10, 16) else 14),
            berlin(day, 19 if day == date(2026, 10, 16) else 18),
        )
        for day in fridays
        if day != date(2026, 10, 23)
    ]
    expected.append((berlin(date(2026, 11, 10), 9), berlin(date(2026, 11, 10), 17)))
    timed = sorted((a.start, a.end) for a in mine if not a.all_day)
    assert timed == sorted(expected)
    (whole,) = [a for a in mine if a.all_day]
    assert (whole.start.date(), whole.end.date()) == (date(2026, 11, 16), date(2026, 11, 19))

    # the state keeps the blocks (one person, all-day), not the offsite (three people) nor the dentist
    state = store.load("m365", MAYA)
    assert state is not None and state.extra["kept"] == KEEP_RULE
    subjects = {e.get("subject") for e in state.events.values()} | {
        m.get("subject") for m in state.extra["masters"].values()
    }
    assert {"Conference", "Holiday", "Kids pickup", "Trip"} <= subjects
    assert not subjects & {"Ann's offsite", "Dentist"}

    # a new block arrives with the next delta round; a block shown as busy again leaves
    fake.put_event(MAYA, block("Offsite", berlin(date(2026, 12, 1), 9), berlin(date(2026, 12, 1), 17)))
    conference = next(e for e in fake.events(MAYA) if e["subject"] == "Conference")
    fake.patch_event(MAYA, conference["id"], {"showAs": "busy"})
    fake.reset_log()
    (again,) = source.fetch(WINDOW).calendars
    views = [r for r in fake.requests if "/calendarView/delta" in r.path]
    assert views and all("$deltatoken" in r.query for r in views)  # incremental: the delta links
    assert not any(r.path.endswith("/events") for r in fake.requests)  # no full read
    starts = {a.start for a in again.absences}
    assert berlin(date(2026, 12, 1), 9) in starts and berlin(date(2026, 11, 10), 9) not in starts


def test_a_state_kept_by_the_older_rule_is_read_in_full_once(
    fake: FakeGraph, tmp_path: Path, store: StateStore
) -> None:
    fake.put_event(MAYA, block("Conference", berlin(date(2026, 11, 10), 9), berlin(date(2026, 11, 10), 17)))
    source = MicrosoftSource("m365", [MAYA], client(fake, tmp_path), store, default_tz=BERLIN)
    state = source.sync(MAYA, None, WINDOW)
    # what an older calsync kept: no blocks, no "kept"
    state.events.clear()
    del state.extra["kept"]
    store.save("m365", state)
    fake.reset_log()
    (maya,) = source.fetch(WINDOW).calendars
    assert [r.path for r in fake.requests if not r.batch] == ["/v1.0/$batch"]  # the full read's
    assert [a.start for a in maya.absences] == [berlin(date(2026, 11, 10), 9)]
    fake.reset_log()
    source.fetch(WINDOW)
    views = [r for r in fake.requests if r.batch]
    assert len(views) == 2 and all("$deltatoken" in r.query for r in views)  # the two parts' links


# ---------------------------------------------------------------------------------------------- absentees


def test_absentees_through_get_schedule(fake: FakeGraph, tmp_path: Path, store: StateStore) -> None:
    reports = [f"r{i:02d}@acme.test" for i in range(25)]
    for address in reports:
        fake.add_user(address, address.split("@")[0], time_zone="Europe/Berlin")
    # across the edge of the first and second request's spans (61 days from 16 Aug: 16 Oct)
    fake.put_event(reports[0], block("Trek", berlin(date(2026, 10, 14), 8), berlin(date(2026, 10, 20), 18)))
    fake.put_event(  # all-day in Berlin: free/busy gives the instants of its midnights
        reports[1],
        block("Leave", berlin(date(2026, 12, 21), 0), berlin(date(2026, 12, 24), 0), isAllDay=True),
    )
    fake.put_event(  # busy is not away
        reports[2],
        {
            "subject": "Busy",
            "start": when(berlin(date(2026, 9, 1), 9)),
            "end": when(berlin(date(2026, 9, 1), 17)),
        },
    )
    series = fake.put_event(reports[3], weekly("Gym", berlin(date(2026, 9, 4), 13), 120, showAs="oof"))
    fake.cancel_occurrence(reports[3], series["id"], berlin(date(2026, 9, 11), 13))
    fake.put_event(MAYA, block("Conference", berlin(date(2026, 11, 10), 9), berlin(date(2026, 11, 10), 17)))

    source = MicrosoftSource(
        "m365",
        [MAYA, LENA],
        client(fake, tmp_path),
        store,
        default_tz=BERLIN,
        absentees=[*reports, GHOST.upper(), MAYA],  # Maya's own mailbox is read: not asked about
    )
    assert source.absentees == [*reports, GHOST]
    fake.reset_log()
    result = source.fetch(LONG)
    found = calendars(result)
    assert set(found) == {MAYA, LENA, *reports}
    for address in reports:
        assert found[address].calendar == f"{address} (out of office)" and found[address].owner == address
        assert found[address].occurrences == () and found[address].stored_at is None
        assert {a.calendar for a in found[address].absences} <= {f"{address} (out of office)"}
    # one block, though two requests' spans answered it (each whole)
    assert spans(found[reports[0]]) == [
        (berlin(date(2026, 10, 14), 8), berlin(date(2026, 10, 20), 18), False)
    ]
    assert spans(found[reports[1]]) == [(berlin(date(2026, 12, 21), 0), berlin(date(2026, 12, 24), 0), False)]
    assert spans(found[reports[2]]) == []
    gym = spans(found[reports[3]])
    assert (berlin(date(2026, 9, 4), 13), berlin(date(2026, 9, 4), 15), False) in gym
    assert all(start.date() != date(2026, 9, 11) for start, _end, _all_day in gym)
    assert len(gym) == len(range(0, (LONG.end - berlin(date(2026, 9, 4), 13)).days, 7)) - 1
    assert [a.start for a in found[MAYA].absences] == [berlin(date(2026, 11, 10), 9)]  # her own mailbox
    (problem,) = result.problems
    assert (problem.source, problem.owner, problem.unread) == (f"m365: {GHOST} (out of office)", GHOST, False)
    assert problem.message.startswith(f"could not read the out-of-office of {GHOST} from their free/busy (")
    assert "Unable to resolve e-mail address" in problem.message and "5009" in problem.message

    # 26 people: 2 requests a span (20 + 6), the span of 194 days in 4 (61, 61, 61, 11), asked through
    # the mailboxes just read in turn (at most 4 through one): 8 requests in one HTTP call
    calls = schedule_calls(fake)
    assert len(calls) == 2 * 4 and all(r.batch and r.status == 200 for r in calls)
    assert sorted(len(r.body["schedules"]) for r in calls) == [6] * 4 + [SCHEDULES_PER_REQUEST] * 4
    assert sorted(r.mailbox for r in calls) == [LENA] * 4 + [MAYA] * 4
    for r in calls:
        start = datetime.fromisoformat(r.body["startTime"]["dateTime"]).replace(tzinfo=UTC)
        end = datetime.fromisoformat(r.body["endTime"]["dateTime"]).replace(tzinfo=UTC)
        assert r.body["startTime"]["timeZone"] == "UTC" and end - start <= timedelta(days=61)
        assert r.headers.get("Prefer", "").startswith('outlook.timezone="UTC"')
    covered = sorted({(r.body["startTime"]["dateTime"], r.body["endTime"]["dateTime"]) for r in calls})
    assert covered[0][0] == "2026-08-16T00:00:00" and covered[-1][1] == "2027-02-26T00:00:00"
    assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))
    assert free_busy_http_calls(fake) == 1

    # the next cycle: the mailboxes' delta links, and the same 8 free/busy requests in one HTTP call
    fake.reset_log()
    source.fetch(LONG)
    assert len(schedule_calls(fake)) == 8 and free_busy_http_calls(fake) == 1


def test_requests_per_absentee_per_cycle(fake: FakeGraph, tmp_path: Path, store: StateStore) -> None:
    """The figures: 100 reports of 5 managers, the calsync window of 194 days."""
    managers = [MAYA, LENA, OMAR, ANN, "noah@acme.test"]
    fake.add_user(managers[-1], "Noah")
    reports = [f"p{i:03d}@acme.test" for i in range(100)]
    for address in reports:
        fake.add_user(address, address)
    source = MicrosoftSource(
        "m365", managers, client(fake, tmp_path), store, default_tz=BERLIN, absentees=reports
    )
    source.fetch(LONG)
    fake.reset_log()
    result = source.fetch(LONG)  # a cycle with nothing new
    assert result.problems == [] and len(result.calendars) == 105
    requests = len(schedule_calls(fake))
    assert requests == 100 // SCHEDULES_PER_REQUEST * 4 == 20  # 0.2 requests per absentee
    assert free_busy_http_calls(fake) == 1  # 0.01 HTTP calls per absentee
    # and each mailbox's two delta links, in one $batch a mailbox
    assert len([r for r in fake.requests if not r.batch]) == 1 + 5


def test_a_tenant_with_a_shorter_limit_is_asked_for_less(
    fake: FakeGraph, tmp_path: Path, store: StateStore
) -> None:
    fake.add_user("r@acme.test", "R")
    fake.put_event(
        "r@acme.test", block("Trek", berlin(date(2026, 10, 14), 8), berlin(date(2026, 10, 20), 18))
    )
    fake.schedule_max_days = 42  # EWS's default limit of the availability service
    source = MicrosoftSource(
        "m365", [MAYA], client(fake, tmp_path), store, default_tz=BERLIN, absentees=["r@acme.test"]
    )
    fake.reset_log()
    result = source.fetch(LONG)
    assert result.problems == []
    assert spans(calendars(result)["r@acme.test"]) == [
        (berlin(date(2026, 10, 14), 8), berlin(date(2026, 10, 20), 18), False)
    ]
    calls = schedule_calls(fake)
    assert [r.status for r in calls[:4]] == [400, 400, 400, 200]  # 61 days refused (the last is 11)
    assert len(calls) == 4 + 5 and all(r.status == 200 for r in calls[4:])  # 41, 41, 41, 41, 30
    assert source.schedule_days == SCHEDULE_DAYS_FALLBACK
    fake.reset_log()
    source.fetch(LONG)
    assert [r.status for r in schedule_calls(fake)] == [200] * 5  # remembered


def test_throttled_and_failed_free_busy(fake: FakeGraph, tmp_path: Path, store: StateStore) -> None:
    fake.add_user("r@acme.test", "R")
    fake.put_event(
        "r@acme.test", block("Trek", berlin(date(2026, 10, 14), 8), berlin(date(2026, 10, 20), 18))
    )
    slept: list[float] = []
    source = MicrosoftSource(
        "m365",
        [MAYA],
        client(fake, tmp_path, slept),
        store,
        default_tz=BERLIN,
        absentees=["r@acme.test"],
        parts=1,  # Maya's delta round: one GET, no batch
    )
    source.fetch(WINDOW)
    fake.fail_next(429, 1, retry_after=7, path_contains=SCHEDULE)
    slept.clear()
    fake.reset_log()
    result = source.fetch(WINDOW)
    assert result.problems == [] and spans(calendars(result)["r@acme.test"])
    assert slept == [7.0]  # its Retry-After, then sent alone
    assert [(r.batch, r.status) for r in schedule_calls(fake)] == [(True, 429), (True, 200), (False, 200)]

    # Graph keeps failing: a problem of that person, never an empty calendar nor an error of calsync's
    fake.fail_next(503, 20, retry_after=1, path_contains=SCHEDULE)
    result = source.fetch(WINDOW)
    assert "r@acme.test" not in calendars(result)
    (problem,) = result.problems
    assert (problem.owner, problem.unread) == ("r@acme.test", False)
    assert "their absences are not known" in problem.message and "gave up" in problem.message

    # the batch itself fails: the same
    fake.clear_faults()
    fake.fail_next(503, 4, retry_after=1, path_contains="$batch")
    result = source.fetch(WINDOW)
    assert list(calendars(result)) == [MAYA]
    (problem,) = result.problems
    assert problem.owner == "r@acme.test" and "gave up after 4 attempts" in problem.message


# ---------------------------------------------------------------------------------------------- stored


def test_a_mailbox_that_cannot_be_read_now(fake: FakeGraph, tmp_path: Path, store: StateStore) -> None:
    fake.put_event(
        MAYA,
        weekly(
            "Maya / Omar",
            berlin(date(2026, 10, 6), 10),
            30,
            organizer={"emailAddress": {"address": MAYA}},
            attendees=[person(OMAR)],
        ),
    )
    fake.put_event(MAYA, block("Conference", berlin(date(2026, 11, 10), 9), berlin(date(2026, 11, 10), 17)))
    reads = ReadCache()
    source = MicrosoftSource(
        "m365", [MAYA, LENA], client(fake, tmp_path), store, default_tz=BERLIN, reads=reads
    )
    fresh = calendars(source.fetch(WINDOW))[MAYA]
    synced_at = store.load("m365", MAYA).synced_at  # type: ignore[union-attr]
    assert synced_at

    # the app loses access to Maya's mailbox: her stored reading instead, and a problem saying so
    fake.restrict(APP, {LENA, OMAR})
    result = source.fetch(WINDOW)
    maya = calendars(result)[MAYA]
    assert maya.stored_at == synced_at
    assert maya.occurrences == fresh.occurrences and maya.absences == fresh.absences
    assert calendars(result)[LENA].stored_at is None
    (problem,) = result.problems
    assert (problem.source, problem.owner, problem.unread) == (f"m365: {MAYA}", MAYA, False)
    assert "could not be read now" in problem.message and "Exchange RBAC scope" in problem.message
    assert f"judged from calsync's stored reading of it, last synced {synced_at}" in problem.message
    assert store.load("m365", MAYA).synced_at == synced_at  # type: ignore[union-attr]  # not saved again

    # what the pipeline reads when the source cannot even sign in
    (stored,) = stored_calendars(store, "m365", [MAYA.upper(), GHOST], WINDOW, BERLIN)
    assert stored.calendar == MAYA and stored.stored_at == synced_at and stored.owner == MAYA
    assert stored.occurrences == fresh.occurrences

    # access back: read now again, the daemon's cache holding the reading as read
    fake.restrict(APP, None)
    again = source.fetch(WINDOW)
    assert again.problems == [] and calendars(again)[MAYA].stored_at is None
    assert calendars(again)[MAYA].occurrences == fresh.occurrences


def test_a_mailbox_never_read_is_unread_with_its_owner(
    fake: FakeGraph, tmp_path: Path, store: StateStore
) -> None:
    fake.fail_next(500, 20, path_contains=f"/users/{MAYA}/")
    source = MicrosoftSource("m365", [MAYA, LENA], client(fake, tmp_path), store, default_tz=BERLIN)
    result = source.fetch(WINDOW)
    assert list(calendars(result)) == [LENA]
    (problem,) = result.problems
    assert (problem.source, problem.owner, problem.unread) == (f"m365: {MAYA}", MAYA, True)
    assert "gave up after" in problem.message
    assert stored_calendars(store, "m365", [MAYA], WINDOW, BERLIN) == []
