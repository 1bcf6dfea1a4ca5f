"""The Google sync engine with the real client library over scripted HTTP (googleapiclient's mocks)."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from google.auth.exceptions import RefreshError, TransportError
from googleapiclient.discovery import build
from googleapiclient.http import HttpMockSequence

from calsync.detect import NOBODY, Ignored
from calsync.sources.base import SourceResult, Window
from calsync.sources.google import (
    KEPT_LAYOUT,
    GoogleSource,
    SeriesNowMatters,
    absentee_states,
    kept_rule,
    merge_changes,
    sign_in,
    stored_calendars,
)
from calsync.sources.retry import RateLimiter, RetryPolicy
from calsync.store import CalendarState, StateStore

WINDOW = Window(datetime(2026, 8, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))
ANN = "ann@acme.test"
MASTER = {
    "id": "m1",
    "iCalUID": "m1@google.com",
    "status": "confirmed",
    "summary": "Ann / Bob",
    "start": {"dateTime": "2026-10-06T10:00:00+02:00", "timeZone": "Europe/Berlin"},
    "end": {"dateTime": "2026-10-06T10:30:00+02:00", "timeZone": "Europe/Berlin"},
    "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"],
    "organizer": {"email": ANN},
    "attendees": [{"email": ANN}, {"email": "bob@acme.test"}],
    "updated": "2026-10-01T08:00:00.000Z",
}
ONE_OFF = {**MASTER, "id": "o1", "iCalUID": "o1@google.com", "recurrence": []}


def page(
    items: list[dict[str, Any]], *, next_page: str | None = None, sync: str | None = None
) -> tuple[dict[str, str], str]:
    body: dict[str, Any] = {"kind": "calendar#events", "timeZone": "Europe/Berlin", "items": items}
    if next_page:
        body["nextPageToken"] = next_page
    if sync:
        body["nextSyncToken"] = sync
    return {"status": "200"}, json.dumps(body)


def error(status: int, reason: str, message: str = "x", **headers: str) -> tuple[dict[str, str], str]:
    envelope = {
        "error": {
            "errors": [{"domain": "global", "reason": reason, "message": message}],
            "code": status,
            "message": message,
        }
    }
    return {"status": str(status), **headers}, json.dumps(envelope)


class Scripted:
    """An httplib2-like object: scripted responses, or an exception to raise, in order; records URIs."""

    def __init__(self, *steps: tuple[dict[str, str], str] | BaseException) -> None:
        self.steps = list(steps)
        self.uris: list[str] = []

    def request(self, uri: str, method: str = "GET", body: Any = None, headers: Any = None, **kw: Any) -> Any:
        self.uris.append(uri)
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        return HttpMockSequence([step]).request(uri, method, body, headers)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def source(
    tmp_path: Path,
    https: dict[str, Scripted],
    sleeps: Sleeps | None = None,
    ignored: Ignored = NOBODY,
) -> GoogleSource:
    def service_for(user: str) -> Any:
        if user not in https:
            raise RefreshError("unauthorized_client: Client is unauthorized to retrieve access tokens")  # type: ignore[no-untyped-call]
        return build("calendar", "v3", http=https[user], static_discovery=True, cache_discovery=False)

    return GoogleSource(
        "workspace",
        list(https) + [u for u in ("nodelegation@acme.test",) if u not in https],
        service_for,
        StateStore(tmp_path / "state.json", lock=False),  # each source() is a new run
        default_tz=ZoneInfo("Europe/Berlin"),
        retry=RetryPolicy(attempts=4, sleep=sleeps if sleeps is not None else Sleeps(), jitter=lambda: 1.0),
        limiter=RateLimiter(per_minute=600, sleep=lambda s: None),
        ignored=ignored,
    )


def test_full_sync_pages_through_short_and_empty_pages_then_one_request_when_nothing_changed(
    tmp_path: Path,
) -> None:
    http = Scripted(page([], next_page="p2"), page([MASTER], next_page="p3"), page([ONE_OFF], sync="s1"))
    src = source(tmp_path, {ANN: http})
    result = src.fetch(WINDOW)
    assert [p.message for p in result.problems if ANN in p.source] == []
    (calendar,) = result.calendars
    assert {o.series_id for o in calendar.occurrences} == {"m1@google.com", "o1@google.com"}
    assert len(http.uris) == 3
    assert "showDeleted=true" in http.uris[0] and "maxResults=2500" in http.uris[0]
    assert "pageToken=p2" in http.uris[1] and "syncToken" not in http.uris[0]

    # a later run: one incremental request, nothing changed, same calendar from the stored state
    http2 = Scripted(page([], sync="s2"))
    src2 = source(tmp_path, {ANN: http2})
    again = src2.fetch(WINDOW)
    assert len(http2.uris) == 1 and "syncToken=s1" in http2.uris[0]
    assert again.calendars[0].occurrences == calendar.occurrences
    assert src2.store.load("workspace", ANN).cursor == "s2"  # type: ignore[union-attr]


def test_incremental_tombstone_keeps_what_google_strips(tmp_path: Path) -> None:
    source(tmp_path, {ANN: Scripted(page([MASTER, ONE_OFF], sync="s1"))}).fetch(WINDOW)
    tombstone = {"id": "o1", "status": "cancelled"}
    http = Scripted(page([tombstone], sync="s2"))
    result = source(tmp_path, {ANN: http}).fetch(WINDOW)
    assert {o.series_id for o in result.calendars[0].occurrences} == {"m1@google.com", "o1@google.com"}
    cancelled = [o for o in result.calendars[0].occurrences if o.series_id == "o1@google.com"]
    assert [o.status for o in cancelled] == ["cancelled"]  # the one-off is now cancelled as a whole


def test_410_drops_the_state_and_syncs_in_full(tmp_path: Path) -> None:
    source(tmp_path, {ANN: Scripted(page([MASTER, ONE_OFF], sync="s1"))}).fetch(WINDOW)
    gone = error(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
    http = Scripted(gone, page([MASTER], sync="s9"))
    result = source(tmp_path, {ANN: http}).fetch(WINDOW)
    assert len(http.uris) == 2 and "syncToken=s1" in http.uris[0] and "syncToken" not in http.uris[1]
    assert {o.series_id for o in result.calendars[0].occurrences} == {
        "m1@google.com"
    }  # o1 gone with the state


def test_429_and_rate_limit_403_are_retried_honouring_retry_after(tmp_path: Path) -> None:
    sleeps = Sleeps()
    http = Scripted(
        error(429, "rateLimitExceeded", **{"retry-after": "7"}),
        error(403, "userRateLimitExceeded"),
        error(503, "backendError"),
        page([MASTER], sync="s1"),
    )
    result = source(tmp_path, {ANN: http}, sleeps).fetch(WINDOW)
    assert [p for p in result.problems if ANN in p.source] == []
    assert sleeps == [7.0, 2.0, 4.0]  # Retry-After, then exponential backoff (jitter pinned to 1)
    assert len(result.calendars) == 1


def test_network_errors_are_retried(tmp_path: Path) -> None:
    http = Scripted(TimeoutError("timed out"), ConnectionResetError("reset"), page([MASTER], sync="s1"))
    result = source(tmp_path, {ANN: http}).fetch(WINDOW)
    assert len(result.calendars) == 1 and len(http.uris) == 3


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [(404, "notFound", "no such calendar"), (403, "forbidden", "no access"), (400, "invalid", "HTTP 400")],
)
def test_errors_that_retrying_cannot_fix_are_reported_at_once(
    tmp_path: Path, status, reason, expected
) -> None:
    http = Scripted(error(status, reason))
    result = source(tmp_path, {ANN: http}).fetch(WINDOW)
    assert len(http.uris) == 1  # never retried
    (problem,) = [p for p in result.problems if ANN in p.source]
    assert problem.source == f"workspace: {ANN}" and expected in problem.message
    assert result.calendars == []  # an error, never an empty calendar


def test_giving_up_after_the_bounded_attempts(tmp_path: Path) -> None:
    http = Scripted(*[error(503, "backendError")] * 4)
    result = source(tmp_path, {ANN: http}).fetch(WINDOW)
    (problem,) = [p for p in result.problems if ANN in p.source]
    assert "gave up after 4 attempts" in problem.message and len(http.uris) == 4
    assert StateStore(tmp_path / "state.json", lock=False).load("workspace", ANN) is None


def test_a_calendar_without_delegation_is_reported_and_the_others_synced(tmp_path: Path) -> None:
    result = source(tmp_path, {ANN: Scripted(page([MASTER], sync="s1"))}).fetch(WINDOW)
    assert len(result.calendars) == 1
    (problem,) = result.problems
    assert problem.source == "workspace: nodelegation@acme.test"
    assert "domain-wide delegation" in problem.message


def test_rate_limiter_keeps_a_user_under_its_quota() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(per_minute=3, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.acquire("ann")
    limiter.acquire("bob")  # another user has their own quota
    assert waits == []
    limiter.acquire("ann")
    assert waits == [60.0]


NEW = {"id": "n", "summary": "new", "attendees": [{"email": "a@x.test"}, {"email": "b@x.test"}]}


def test_merge_changes_replaces_by_id_and_a_tombstone_keeps_what_it_replaces() -> None:
    old = {"id": "m1_x", "iCalUID": "m1@google.com", "recurringEventId": "m1", "summary": "s", "sequence": 2}
    events = {"m1_x": dict(old)}
    merge_changes(events, [{"id": "m1_x", "status": "cancelled"}, NEW, {"summary": "?"}])
    assert events["m1_x"] == {**old, "status": "cancelled", "sequence": 3}  # newer than what it deletes
    assert events["n"] == NEW
    assert len(events) == 2


def test_sign_in_stores_the_token_privately(tmp_path: Path) -> None:
    class Creds:
        scopes = ("https://www.googleapis.com/auth/calendar.events.readonly",)

        def to_json(self) -> str:
            return json.dumps({"refresh_token": "r", "client_id": "c"})

    class Flow:
        def __init__(self) -> None:
            self.kwargs: dict[str, Any] = {}

        def run_local_server(self, **kwargs: Any) -> Creds:
            self.kwargs = kwargs
            return Creds()

    flow = Flow()
    seen: dict[str, Any] = {}

    def factory(path: str, scopes: list[str]) -> Flow:
        seen.update(path=path, scopes=scopes)
        return flow

    token = tmp_path / "conf" / "google-token.json"
    scopes = sign_in(tmp_path / "client.json", token, open_browser=False, flow_factory=factory)
    assert scopes == "https://www.googleapis.com/auth/calendar.events.readonly"
    assert seen["scopes"] == ["https://www.googleapis.com/auth/calendar.events.readonly"]  # read-only only
    assert flow.kwargs["open_browser"] is False and flow.kwargs["port"] == 0
    assert json.loads(token.read_text()) == {"refresh_token": "r", "client_id": "c"}
    assert stat.S_IMODE(token.stat().st_mode) == 0o600


def test_a_revoked_sign_in_says_to_sign_in_again(tmp_path: Path) -> None:
    def service_for(user: str) -> Any:
        raise RefreshError("invalid_grant: Token has been expired or revoked.")  # type: ignore[no-untyped-call]

    src = GoogleSource("me", ["primary"], service_for, StateStore(tmp_path / "s.json"), default_tz=UTC)
    (problem,) = src.fetch(WINDOW).problems
    assert problem.source == "me: primary"
    assert "run `calsync auth google` again" in problem.message


def test_only_events_that_could_count_are_kept() -> None:
    three = {**ONE_OFF, "id": "t", "attendees": [*MASTER["attendees"], {"email": "carl@acme.test"}]}
    room = {**ONE_OFF, "id": "r", "attendees": [*MASTER["attendees"], {"email": "room@x", "resource": True}]}
    all_day = {**ONE_OFF, "id": "d", "start": {"date": "2026-10-06"}, "end": {"date": "2026-10-07"}}
    hidden = {**three, "id": "h", "attendeesOmitted": True}
    exception = {**three, "id": "m1_x", "recurringEventId": "m1"}
    events: dict[str, dict[str, Any]] = {}
    merge_changes(events, [MASTER, ONE_OFF, three, room, all_day, hidden, exception])
    assert sorted(events) == ["h", "m1", "m1_x", "o1", "r"]
    merge_changes(events, [{**ONE_OFF, "attendees": three["attendees"]}])  # a third person was invited
    assert "o1" not in events


STANDUP = {
    **MASTER,
    "id": "s1",
    "iCalUID": "s1@google.com",
    "summary": "Standup",
    "attendees": [*MASTER["attendees"], {"email": "carl@acme.test"}],
}
MOVED = {
    **STANDUP,
    "id": "s1_x",
    "recurringEventId": "s1",
    "recurrence": [],
    "originalStartTime": STANDUP["start"],
}


def test_exceptions_of_a_series_that_is_no_1on1_are_not_kept_unless_they_are_1on1s() -> None:
    cancelled = {"id": "s1_c", "recurringEventId": "s1", "status": "cancelled"}
    pair = {**MOVED, "id": "s1_p", "attendees": MASTER["attendees"]}  # only two were invited to this one
    events: dict[str, dict[str, Any]] = {}
    ignored: set[str] = set()
    merge_changes(events, [MOVED, cancelled, pair, STANDUP, MASTER], ignored)  # the series after them
    assert sorted(events) == ["m1", "s1_p"] and ignored == {"s1"}
    merge_changes(events, [{"id": "s1", "status": "cancelled"}], ignored)  # the standup is deleted
    assert ignored == set() and "s1" not in events


def test_a_series_that_becomes_a_1on1_makes_the_calendar_be_read_again_in_full(tmp_path: Path) -> None:
    events: dict[str, dict[str, Any]] = {}
    ignored: set[str] = set()
    merge_changes(events, [STANDUP, MOVED], ignored)
    with pytest.raises(SeriesNowMatters):
        merge_changes(events, [{**STANDUP, "attendees": MASTER["attendees"]}], ignored)

    source(tmp_path, {ANN: Scripted(page([STANDUP, MOVED], sync="s1"))}).fetch(WINDOW)
    now_pair = {**STANDUP, "attendees": MASTER["attendees"]}
    http = Scripted(
        page([now_pair], sync="s2"),
        page([now_pair, {**MOVED, "attendees": MASTER["attendees"]}], sync="s3"),
    )
    source(tmp_path, {ANN: http}).fetch(WINDOW)
    assert "syncToken=s1" in http.uris[0] and "syncToken" not in http.uris[1]  # read again in full
    state = StateStore(tmp_path / "state.json", lock=False).load("workspace", ANN)
    assert state is not None and sorted(state.events) == ["s1", "s1_x"] and state.extra["ignored"] == []


def test_a_new_series_that_is_no_1on1_is_remembered_though_no_kept_event_changed(tmp_path: Path) -> None:
    """Remembering it is a change of the state (a new revision): were only the cursor saved, the
    series' exceptions would be dropped unremembered, and its becoming a 1:1 would go unnoticed."""
    first = source(tmp_path, {ANN: Scripted(page([MASTER], sync="s1"))})
    first.fetch(WINDOW)
    first.store.close()
    second = source(tmp_path, {ANN: Scripted(page([STANDUP, MOVED], sync="s2"))})
    second.fetch(WINDOW)
    second.store.close()
    now_pair = {**STANDUP, "attendees": MASTER["attendees"]}
    http = Scripted(page([now_pair], sync="s3"), page([MASTER, now_pair, MOVED], sync="s4"))
    source(tmp_path, {ANN: http}).fetch(WINDOW)
    assert "syncToken=s2" in http.uris[0] and "syncToken" not in http.uris[1]  # read again in full


def test_410_in_the_middle_of_an_incremental_sync_discards_the_partial_pages(tmp_path: Path) -> None:
    source(tmp_path, {ANN: Scripted(page([MASTER, ONE_OFF], sync="s1"))}).fetch(WINDOW)
    half = {**ONE_OFF, "summary": "changed on page one"}
    gone = error(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
    http = Scripted(page([half], next_page="p2"), gone, page([MASTER], sync="s9"))
    result = source(tmp_path, {ANN: http}).fetch(WINDOW)
    assert len(http.uris) == 3 and "pageToken=p2" in http.uris[1] and "syncToken" not in http.uris[2]
    assert {o.series_id for o in result.calendars[0].occurrences} == {
        "m1@google.com"
    }  # the full listing only
    state = StateStore(tmp_path / "state.json", lock=False).load("workspace", ANN)
    assert state is not None and state.cursor == "s9" and sorted(state.events) == ["m1"]


# -- out of office, absentees, stored readings ---------------------------------------------------------

BOB = "bob@acme.test"
AWAY = {
    "id": "away",
    "iCalUID": "away@google.com",
    "eventType": "outOfOffice",
    "summary": "Away",
    "start": {"dateTime": "2026-10-12T00:00:00+02:00", "timeZone": "Europe/Berlin"},
    "end": {"dateTime": "2026-10-14T00:00:00+02:00", "timeZone": "Europe/Berlin"},
    "organizer": {"email": BOB, "self": True},
    "updated": "2026-10-01T08:00:00.000Z",
}


def with_absentees(
    tmp_path: Path, https: dict[str, Scripted], *absentees: str, ignored: Ignored = NOBODY
) -> GoogleSource:
    made = source(tmp_path, https, ignored=ignored)
    made.calendars = [c for c in made.calendars if c not in absentees]
    made.absentees = absentee_states(made.calendars, absentees)
    return made


def test_the_listing_asks_for_the_event_type_and_whose_block_it_is(tmp_path: Path) -> None:
    http = Scripted(page([MASTER], sync="s1"))
    source(tmp_path, {ANN: http}).fetch(WINDOW)
    fields = parse_qs(urlsplit(http.uris[0]).query)["fields"][0]
    assert "eventType" in fields and "organizer(email,self)" in fields
    assert "eventTypes" not in http.uris[0]  # a calendar read for meetings: every type


def test_an_absentee_is_listed_as_themself_for_out_of_office_only_then_incrementally(tmp_path: Path) -> None:
    bob = Scripted(page([], next_page="p2"), page([AWAY], sync="b1"))
    result = with_absentees(tmp_path, {ANN: Scripted(page([MASTER], sync="s1")), BOB: bob}, BOB).fetch(WINDOW)
    assert [p for p in result.problems if "nodelegation" not in p.source] == []
    query = parse_qs(urlsplit(bob.uris[0]).query)
    assert urlsplit(bob.uris[0]).path.endswith("/calendars/bob%40acme.test/events")
    assert query["eventTypes"] == ["outOfOffice"] and query["showDeleted"] == ["true"]
    assert "pageToken=p2" in bob.uris[1] and "eventTypes=outOfOffice" in bob.uris[1]
    away = next(d for d in result.calendars if d.calendar == f"{BOB} (out of office)")
    assert away.owner == BOB and away.occurrences == () and away.series == ()
    assert [(a.person, a.all_day) for a in away.absences] == [(BOB, True)]

    again = Scripted(page([], sync="b2"))
    second = with_absentees(tmp_path, {ANN: Scripted(page([], sync="s2")), BOB: again}, BOB)
    second.fetch(WINDOW)
    assert len(again.uris) == 1
    assert parse_qs(urlsplit(again.uris[0]).query)["syncToken"] == ["b1"]
    assert "eventTypes=outOfOffice" in again.uris[0]  # the same types as the sync that gave the token
    assert second.store.load("workspace", f"{BOB} (out of office)").cursor == "b2"  # type: ignore[union-attr]
    assert second.store.load("workspace", BOB) is None  # Bob's calendar itself is not read


def test_an_absentee_that_cannot_be_read_is_a_problem_of_absences_only(tmp_path: Path) -> None:
    result = with_absentees(tmp_path, {ANN: Scripted(page([MASTER], sync="s1"))}, "nodelegation@acme.test")
    (problem,) = result.fetch(WINDOW).problems
    assert problem.source == "workspace: nodelegation@acme.test (out of office)"
    assert not problem.unread and problem.owner == "nodelegation@acme.test"
    assert problem.message.startswith("could not read the out-of-office of nodelegation@acme.test (")
    assert "their absences are not known" in problem.message


def test_a_state_kept_before_event_types_were_is_read_again_in_full_once(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json", lock=False)
    store.save(
        "workspace", CalendarState(ANN, "old", "Europe/Berlin", {"m1": dict(MASTER)}, {"ignored": []}, "r0")
    )
    store.close()
    mine = {**AWAY, "organizer": {"email": ANN, "self": True}}
    http = Scripted(page([MASTER, mine], sync="s1"))
    result = source(tmp_path, {ANN: http}).fetch(WINDOW)
    assert "syncToken" not in http.uris[0]  # the old state lacks Ann's blocks: read in full
    assert [a.person for a in result.calendars[0].absences] == [ANN]
    later = Scripted(page([], sync="s2"))
    source(tmp_path, {ANN: later}).fetch(WINDOW)
    assert "syncToken=s1" in later.uris[0]


def test_a_calendar_read_before_but_not_now_is_judged_from_its_stored_reading(tmp_path: Path) -> None:
    source(tmp_path, {ANN: Scripted(page([MASTER], sync="s1"))}).fetch(WINDOW)
    synced = StateStore(tmp_path / "state.json", lock=False).load("workspace", ANN)
    assert synced is not None and synced.synced_at

    result = source(tmp_path, {ANN: Scripted(error(404, "notFound"))}).fetch(WINDOW)
    problems = {p.source: p for p in result.problems}
    stale = problems[f"workspace: {ANN}"]
    assert not stale.unread and stale.owner == ANN
    assert stale.message == (
        "could not be read now (no such calendar, or the account cannot see it (HTTP 404 notFound: x)); "
        f"judged from calsync's stored reading of it of {synced.synced_at}"
    )
    (calendar,) = result.calendars
    assert calendar.stored_at == synced.synced_at and calendar.owner == ANN
    assert {o.series_id for o in calendar.occurrences} == {"m1@google.com"}
    never = problems["workspace: nodelegation@acme.test"]  # never read: its meetings are missing
    assert never.unread and never.owner == "nodelegation@acme.test"


def test_a_410_whose_full_listing_fails_keeps_the_stored_reading(tmp_path: Path) -> None:
    source(tmp_path, {ANN: Scripted(page([MASTER], sync="s1"))}).fetch(WINDOW)
    gone = error(410, "fullSyncRequired")
    result = source(tmp_path, {ANN: Scripted(gone, *[error(503, "backendError")] * 4)}).fetch(WINDOW)
    assert [c.calendar for c in result.calendars if c.stored_at] == [ANN]
    retry = Scripted(gone, page([ONE_OFF], sync="s9"))
    again = source(tmp_path, {ANN: retry}).fetch(WINDOW)
    assert "syncToken=s1" in retry.uris[0] and "syncToken" not in retry.uris[1]
    assert {o.series_id for o in again.calendars[0].occurrences} == {"o1@google.com"}


def test_a_410_to_a_full_listing_and_an_unreachable_token_endpoint_are_problems_not_crashes(
    tmp_path: Path,
) -> None:
    result = source(tmp_path, {ANN: Scripted(error(410, "deleted", "Resource has been deleted"))}).fetch(
        WINDOW
    )
    (problem,) = [p for p in result.problems if ANN in p.source]
    assert problem.unread and "HTTP 410 without a sync token" in problem.message
    unreachable = Scripted(TransportError("connection refused"))  # type: ignore[no-untyped-call]
    result = source(tmp_path, {ANN: unreachable}).fetch(WINDOW)
    (problem,) = [p for p in result.problems if ANN in p.source]
    assert problem.unread and "could not reach Google's token endpoint" in problem.message


def test_stored_calendars_are_the_stored_readings_of_those_with_a_state(tmp_path: Path) -> None:
    bob = Scripted(page([AWAY], sync="b1"))
    with_absentees(tmp_path, {ANN: Scripted(page([MASTER], sync="s1")), BOB: bob}, BOB).fetch(WINDOW)
    store = StateStore(tmp_path / "state.json", lock=False)
    found = stored_calendars(
        store, "workspace", [ANN, "carl@acme.test"], WINDOW, ZoneInfo("Europe/Berlin"), absentees=[BOB]
    )
    assert [(d.calendar, d.owner) for d in found] == [(ANN, ANN), (f"{BOB} (out of office)", BOB)]
    assert all(d.stored_at for d in found)
    assert {o.series_id for o in found[0].occurrences} == {"m1@google.com"}
    assert found[1].occurrences == () and len(found[1].absences) == 1


# -- people who do not count ([detect] ignore_attendees) -----------------------------------------------

EA, BOT = "kim.ea@acme.test", "notes@notetaker.example"
NOT_COUNTED = Ignored([EA, "*@notetaker.example"])
#: Ann and Bob's weekly 1:1, organised by Ann's assistant, who is a guest too.
BY_EA = {
    **MASTER,
    "id": "ea1",
    "iCalUID": "ea1@google.com",
    "organizer": {"email": EA},
    "attendees": [{"email": EA}, *MASTER["attendees"]],
}
#: A one-off 1:1 of Ann and Bob that a note-taking bot joins.
WITH_BOT = {
    **ONE_OFF,
    "id": "b1",
    "iCalUID": "b1@google.com",
    "attendees": [*MASTER["attendees"], {"email": BOT}],
}


def test_people_who_do_not_count_are_not_counted_when_deciding_what_is_kept() -> None:
    moved = {
        **BY_EA,
        "id": "ea1_x",
        "recurringEventId": "ea1",
        "recurrence": [],
        "originalStartTime": BY_EA["start"],
    }
    three = {**WITH_BOT, "id": "t", "attendees": [*WITH_BOT["attendees"], {"email": "carl@acme.test"}]}
    changes = [moved, BY_EA, WITH_BOT, three]
    events: dict[str, dict[str, Any]] = {}
    ignored: set[str] = set()
    merge_changes(events, changes, ignored, ANN, ignored_people=NOT_COUNTED)
    assert sorted(events) == ["b1", "ea1", "ea1_x"] and ignored == set()  # a real third person still counts
    counted: dict[str, dict[str, Any]] = {}
    merge_changes(counted, changes, ignored, ANN)  # everyone counts: three people each
    assert counted == {} and ignored == {"ea1"}


def test_the_ignore_list_is_part_of_the_keep_rule_hashed() -> None:
    assert kept_rule() == kept_rule(Ignored()) == KEPT_LAYOUT  # states kept with no list stay valid
    mark = kept_rule(NOT_COUNTED)
    assert mark == kept_rule(Ignored(["*@NoteTaker.example", " Kim.EA@acme.test"]))  # order and case
    assert mark != kept_rule(Ignored([EA])) and mark != KEPT_LAYOUT
    assert isinstance(mark, str) and EA not in mark and "notetaker" not in mark  # a hash, not the list


def series_of(result: SourceResult, calendar: str = ANN) -> set[str]:
    """The series with occurrences in one calendar's reading."""
    return {o.series_id for c in result.calendars if c.calendar == calendar for o in c.occurrences}


def test_a_state_kept_under_another_ignore_list_is_read_again_in_full_once(tmp_path: Path) -> None:
    bob = Scripted(page([AWAY], sync="b1"))
    first = with_absentees(
        tmp_path, {ANN: Scripted(page([MASTER, BY_EA, WITH_BOT], sync="s1")), BOB: bob}, BOB
    )
    result = first.fetch(WINDOW)
    assert series_of(result) == {"m1@google.com"}  # three people each
    first.store.close()

    # the list now names the assistant and the bot: their 1:1s, dropped before, come back
    ann = Scripted(page([MASTER, BY_EA, WITH_BOT], sync="s2"))
    away = Scripted(page([], sync="b2"))
    listed = with_absentees(tmp_path, {ANN: ann, BOB: away}, BOB, ignored=NOT_COUNTED)
    result = listed.fetch(WINDOW)
    assert "syncToken" not in ann.uris[0]  # read again in full
    assert "syncToken=b1" in away.uris[0]  # an out-of-office listing is not, whatever the list
    assert series_of(result) == {
        "m1@google.com",
        "ea1@google.com",
        "b1@google.com",
    }
    state = listed.store.load("workspace", ANN)
    assert state is not None and state.extra["kept"] == kept_rule(NOT_COUNTED)
    listed.store.close()

    same = Scripted(page([], sync="s3"))
    result = source(tmp_path, {ANN: same}, ignored=Ignored(["*@notetaker.example", EA])).fetch(WINDOW)
    assert "syncToken=s2" in same.uris[0]  # the same list: incremental again
    assert len(series_of(result)) == 3

    # the list is emptied: the state kept under it is read in full, and the two are no 1:1s again
    again = Scripted(page([MASTER, BY_EA, WITH_BOT], sync="s4"))
    result = source(tmp_path, {ANN: again}).fetch(WINDOW)
    assert "syncToken" not in again.uris[0]
    assert series_of(result) == {"m1@google.com"}
