"""JSON batching (``POST /v1.0/$batch``) in the Graph fake, over https on 127.0.0.1 with ``requests``:
each request in a batch is answered as if it were sent alone."""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.fakes.graph import FakeGraph
from tests.integration.test_graph_fake import (
    ANN,
    APP,
    BOB,
    SECRET,
    UTC_PREFER,
    WINDOW,
    app_token,
    delta_round,
    delta_url,
    error_of,
    get,
    session_for,
    weekly,
)

GHOST = "ghost@acme.test"
PAGED = f"{UTC_PREFER}, odata.maxpagesize=2"
MASTERS = "/users/{}/events?$filter=type eq 'seriesMaster'&$select=subject,recurrence&$top=50"

pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        server.add_user(ANN, "Ann Arbor", time_zone="Europe/Berlin")
        server.add_user(BOB, "Bob Builder", manager=ANN)
        server.add_app(APP, secret=SECRET, roles=("Calendars.ReadWrite", "User.Read.All"))
        server.put_event(ANN, weekly("One on one", "2026-11-02T09:00:00"))
        server.put_event(ANN, weekly("Team sync", "2026-11-04T15:00:00", zone="Europe/Berlin"))
        server.put_event(
            ANN,
            {
                "subject": "Dentist",
                "start": {"dateTime": "2026-11-20T08:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2026-11-20T09:00:00", "timeZone": "UTC"},
            },
        )
        yield server
        assert server.internal_errors == []


def post_batch(
    fake: FakeGraph, token: str | None, calls: list[dict[str, Any]], **headers: str
) -> requests.Response:
    sent = dict(headers)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    with session_for(fake) as session:
        return session.post(
            f"{fake.graph_endpoint}/$batch", json={"requests": calls}, headers=sent, timeout=30
        )


def call(ident: str, url: str, method: str = "GET", **headers: str) -> dict[str, Any]:
    request: dict[str, Any] = {"id": ident, "method": method, "url": url}
    if headers:
        request["headers"] = {k.replace("_", "-"): v for k, v in headers.items()}
    return request


def answers(response: requests.Response) -> dict[str, dict[str, Any]]:
    """The batch's responses by id (after checking it is a 200 with one response per id)."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    listed = response.json()["responses"]
    by_id = {r["id"]: r for r in listed}
    assert len(by_id) == len(listed)
    return by_id


def inner_error(answer: dict[str, Any]) -> tuple[int, str]:
    assert answer["headers"]["Content-Type"].startswith("application/json")
    error = answer["body"]["error"]
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    return answer["status"], error["code"]


def delta_call(ident: str, mailbox: str = ANN, prefer: str = PAGED) -> dict[str, Any]:
    return call(ident, f"{delta_url(mailbox)}?{urllib.parse.urlencode(WINDOW)}", Prefer=prefer)


def relative(fake: FakeGraph, link: str) -> str:
    """A link Graph answered (absolute) as a batch takes it."""
    assert link.startswith(fake.graph_endpoint + "/")
    return link.removeprefix(fake.graph_endpoint)


# ---------------------------------------------------------------------------------------------- answers


def test_a_batch_answers_each_request_as_it_is_answered_alone(fake: FakeGraph) -> None:
    token = app_token(fake)
    master_id = next(e["id"] for e in fake.events(ANN) if e["subject"] == "One on one")
    event_url = f"/users/{ANN}/events/{master_id}"
    zone = 'outlook.timezone="Pacific Standard Time"'

    response = post_batch(
        fake,
        token,
        [
            delta_call("delta"),
            call("masters", MASTERS.format(ANN), Prefer=UTC_PREFER),
            call("one", event_url, Prefer=zone),
        ],
    )
    assert [r["id"] for r in response.json()["responses"]] == ["delta", "masters", "one"]
    got = answers(response)
    assert {r["status"] for r in got.values()} == {200}

    alone_masters = get(fake, MASTERS.format(ANN), token)
    assert got["masters"]["body"] == alone_masters.json()
    assert [m["subject"] for m in got["masters"]["body"]["value"]] == ["One on one", "Team sync"]
    alone_one = get(fake, event_url, token, prefer=zone)
    assert got["one"]["body"] == alone_one.json()
    assert got["one"]["body"]["start"]["timeZone"] == "Pacific Standard Time"
    for name in ("ETag", "Preference-Applied"):
        assert got["one"]["headers"][name] == alone_one.headers[name]
    assert "Content-Length" not in got["one"]["headers"]

    # the delta round started in the batch: its first page as alone (bar the round's own skiptoken) ...
    alone_first = get(fake, delta_url(), token, WINDOW, PAGED).json()
    first = got["delta"]["body"]
    assert first["value"] == alone_first["value"] and len(first["value"]) == 2
    assert got["delta"]["headers"]["Preference-Applied"] == 'outlook.timezone="UTC", odata.maxpagesize=2'
    # ... and its nextLink followed outside the batch completes it like a round alone
    rest, delta_link, pages = delta_round(fake, first["@odata.nextLink"], token)
    alone_items, _, alone_pages = delta_round(fake, delta_url(), token, WINDOW, PAGED)
    assert first["value"] + rest == alone_items and pages + 1 == alone_pages == 5

    # nextLink and deltaLink pages inside a batch (the link with graph_endpoint cut off)
    got = answers(
        post_batch(
            fake,
            token,
            [
                call("next", relative(fake, first["@odata.nextLink"]), Prefer=UTC_PREFER),
                call("delta", relative(fake, delta_link), Prefer=UTC_PREFER),
            ],
        )
    )
    assert got["next"]["status"] == 200 and got["next"]["body"]["value"] == alone_items[2:4]
    assert got["delta"]["status"] == 200 and got["delta"]["body"]["value"] == []
    fake.put_event(
        ANN,
        {
            "subject": "Dentist again",
            "start": {"dateTime": "2026-11-27T08:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-27T09:00:00", "timeZone": "UTC"},
        },
    )
    again = answers(post_batch(fake, token, [call("delta", relative(fake, delta_link), Prefer=UTC_PREFER)]))
    assert [i["subject"] for i in again["delta"]["body"]["value"]] == ["Dentist again"]
    assert "@odata.deltaLink" in again["delta"]["body"]


def test_errors_inside_a_batch_leave_the_other_requests_alone(fake: FakeGraph) -> None:
    token = app_token(fake)
    got = answers(post_batch(fake, token, [call("ghost", delta_url(GHOST)), delta_call("ann")]))
    assert inner_error(got["ghost"]) == (404, "ErrorInvalidUser")
    alone = get(fake, delta_url(GHOST), token)
    assert got["ghost"]["body"]["error"]["message"] == error_of(alone)[2]
    assert got["ann"]["status"] == 200
    ghost = next(r for r in fake.requests if r.batch and GHOST in r.path)
    assert (ghost.mailbox, ghost.status) == (GHOST, 404)

    # the checks of a request alone: a token without a calendar role is refused mailbox by mailbox
    # (the batch's token: never one in a request's own headers)
    fake.add_app("directory-only", secret=SECRET, roles=("User.Read.All",))
    bare = app_token(fake, "directory-only")
    ann = call("ann", f"{delta_url()}?{urllib.parse.urlencode(WINDOW)}", Authorization=f"Bearer {token}")
    got = answers(post_batch(fake, bare, [ann, call("bob", f"/users/{BOB}")]))
    assert inner_error(got["ann"]) == (403, "ErrorAccessDenied")
    assert got["bob"]["status"] == 200 and got["bob"]["body"]["displayName"] == "Bob Builder"

    # a PATCH with its JSON body, and a DELETE without a body (204: no body in the answer)
    dentist = next(e for e in fake.events(ANN) if e["subject"] == "Dentist")
    url = f"/users/{ANN}/events/{dentist['id']}"
    patch = {**call("patch", url, "PATCH", Content_Type="application/json"), "body": {"subject": "Renamed"}}
    got = answers(post_batch(fake, token, [patch, call("delete", url, "DELETE")]))
    assert got["patch"]["status"] == 200 and got["patch"]["body"]["subject"] == "Renamed"
    assert got["delete"]["status"] == 204 and "body" not in got["delete"]
    assert [r.body for r in fake.requests if r.method == "PATCH"] == [{"subject": "Renamed"}]
    assert all(e["id"] != dentist["id"] for e in fake.events(ANN))


def test_a_request_in_a_batch_counts_in_flight_for_its_mailbox(fake: FakeGraph) -> None:
    token = app_token(fake)
    answers(post_batch(fake, token, [delta_call(str(n)) for n in range(6)]))
    assert fake.max_in_flight == {ANN: 1}  # one after the other: a batch never crowds itself

    fake.reset_log()
    fake.slow_next(4, 3.0, path_contains="/calendarView/delta")
    threads = [threading.Thread(target=get, args=(fake, delta_url(), token, WINDOW)) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while sum(1 for r in fake.requests if r.status == 0) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)  # logged means in flight (the batch's requests take no delta fault)
    got = answers(
        post_batch(fake, token, [call("ann", MASTERS.format(ANN)), call("bob", MASTERS.format(BOB))])
    )
    for thread in threads:
        thread.join()
    assert (
        inner_error(got["ann"]) == (429, "ApplicationThrottled")
        and got["ann"]["headers"]["Retry-After"] == "1"
    )
    assert got["bob"]["status"] == 200
    assert fake.max_in_flight == {ANN: 5, BOB: 1}


# ---------------------------------------------------------------------------------------------- faults


def test_a_fault_reaches_the_request_it_is_aimed_at(fake: FakeGraph) -> None:
    token = app_token(fake)
    fake.fail_next(429, retry_after=7, path_contains="/calendarView/delta")
    got = answers(post_batch(fake, token, [call("masters", MASTERS.format(ANN)), delta_call("delta")]))
    assert (
        inner_error(got["delta"]) == (429, "TooManyRequests")
        and got["delta"]["headers"]["Retry-After"] == "7"
    )
    assert got["masters"]["status"] == 200 and "Retry-After" not in got["masters"]["headers"]
    assert answers(post_batch(fake, token, [delta_call("delta")]))["delta"]["status"] == 200  # taken once

    # a fault without a filter: the batch's first request (an API call), not the batch itself
    fake.fail_next(503)
    got = answers(post_batch(fake, token, [delta_call("first"), delta_call("second")]))
    assert inner_error(got["first"]) == (503, "ServiceUnavailable") and got["second"]["status"] == 200

    # aimed at the batch itself: the whole batch, none of its requests runs
    fake.reset_log()
    fake.fail_next(503, retry_after=3, path_contains="$batch")
    whole = post_batch(fake, token, [delta_call("delta")])
    assert error_of(whole)[:2] == (503, "ServiceUnavailable") and whole.headers["Retry-After"] == "3"
    assert [(r.path, r.status, r.batch) for r in fake.requests] == [("/v1.0/$batch", 503, False)]

    # a dropped request drops the batch's connection; the requests before it ran
    fake.reset_log()
    fake.drop_next(1, path_contains="/events")
    with pytest.raises(requests.ConnectionError):
        post_batch(
            fake, token, [delta_call("delta"), call("masters", MASTERS.format(ANN)), delta_call("late")]
        )
    assert [(r.path.rsplit("/", 1)[-1], r.status) for r in fake.requests] == [
        ("$batch", 0),
        ("delta", 200),
        ("events", 0),
    ]


# ---------------------------------------------------------------------------------------------- refused


def test_a_malformed_batch_is_refused_whole(fake: FakeGraph) -> None:
    token = app_token(fake)
    fake.reset_log()

    def refused(calls: Any, contains: str) -> None:
        with session_for(fake) as session:
            response = session.post(
                f"{fake.graph_endpoint}/$batch",
                json={"requests": calls},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
        status, code, message = error_of(response)
        assert (status, code) == (400, "BadRequest") and contains in message, message

    refused([delta_call(str(n)) for n in range(21)], "more than 20 requests")
    refused([delta_call("1"), delta_call("1")], "'1' more than once")
    refused([{"method": "GET", "url": delta_url()}], "'id'")
    refused([{"id": "1", "url": delta_url()}], "'method'")
    refused([{"id": "1", "method": "GET"}], "'url'")
    refused([call("1", fake.graph_endpoint + delta_url())], "relative")
    refused([{**delta_call("1"), "dependsOn": []}], "dependsOn is not supported by the fake")
    refused([{**call("1", f"/users/{ANN}/events/x", "PATCH"), "body": {"subject": "x"}}], "Content-Type")
    refused([], "non-empty")
    assert [r.batch for r in fake.requests] == [False] * 9  # none of their requests ran

    assert len(answers(post_batch(fake, token, [call(str(n), f"/users/{BOB}") for n in range(20)]))) == 20


def test_a_batch_without_a_token_is_401_whole(fake: FakeGraph) -> None:
    token = app_token(fake)
    fake.reset_log()
    # the batch's Authorization counts, never one of a request's own headers
    missing = post_batch(fake, None, [call("1", delta_url(), Authorization=f"Bearer {token}")])
    assert error_of(missing) == (401, "InvalidAuthenticationToken", "Access token is empty.")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer ")
    assert error_of(post_batch(fake, "made-up", [delta_call("1")]))[:2] == (401, "InvalidAuthenticationToken")
    assert [(r.path, r.status, r.batch) for r in fake.requests] == [("/v1.0/$batch", 401, False)] * 2


# ---------------------------------------------------------------------------------------------- the log


def test_the_log_has_the_batch_and_each_request_in_it(fake: FakeGraph) -> None:
    token = app_token(fake)
    get(fake, delta_url(), token, WINDOW)  # one request alone
    fake.reset_log()
    get(fake, delta_url(), token, WINDOW)
    answers(
        post_batch(
            fake, token, [delta_call("a"), call("b", MASTERS.format(ANN)), call("c", delta_url(GHOST))]
        )
    )

    alone, outer, *inner = fake.requests
    assert (alone.method, alone.path, alone.batch, alone.status) == ("GET", f"/v1.0{delta_url()}", False, 200)
    assert (outer.method, outer.path, outer.mailbox, outer.status, outer.batch) == (
        "POST",
        "/v1.0/$batch",
        None,
        200,
        False,
    )
    assert "Authorization" not in outer.headers
    assert [(r.method, r.path, r.mailbox, r.status, r.batch) for r in inner] == [
        ("GET", f"/v1.0/users/{ANN}/calendarView/delta", ANN, 200, True),
        ("GET", f"/v1.0/users/{ANN}/events", ANN, 200, True),
        ("GET", f"/v1.0/users/{GHOST}/calendarView/delta", GHOST, 404, True),
    ]
    assert inner[0].query == WINDOW and inner[0].headers == {"Prefer": PAGED}
    assert inner[1].query == {
        "$filter": "type eq 'seriesMaster'",
        "$select": "subject,recurrence",
        "$top": "50",
    }

    http_requests = [r for r in fake.requests if not r.batch]
    api_calls = [r for r in fake.requests if r.path != "/v1.0/$batch"]
    assert (len(http_requests), len(api_calls)) == (2, 4)
    assert fake.count("GET", "/calendarView/delta") == 3
    assert fake.count("GET", "/calendarView/delta", batch=False) == 1
    assert fake.count("GET", "/calendarView/delta", batch=True) == 2
    assert fake.count("POST", "/$batch") == 1


def test_free_busy_requests_go_in_a_batch_as_they_go_alone(fake: FakeGraph) -> None:
    """getSchedule is a POST: JSON batching takes it with its body (and the Content-Type a body needs),
    answers it as alone, and lets a fault aimed at it throttle it alone."""
    token = app_token(fake)
    fake.put_event(
        BOB,
        {
            "subject": "Away",
            "showAs": "oof",
            "start": {"dateTime": "2026-11-10T08:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-10T18:00:00", "timeZone": "UTC"},
        },
    )

    def free_busy(ident: str, start: str, end: str, asker: str = ANN) -> dict[str, Any]:
        request = call(ident, f"/users/{asker}/calendar/getSchedule", "POST", Content_Type="application/json")
        request["body"] = {
            "schedules": [BOB, GHOST],
            "startTime": {"dateTime": start, "timeZone": "UTC"},
            "endTime": {"dateTime": end, "timeZone": "UTC"},
            "availabilityViewInterval": 1440,
        }
        return request

    calls = [
        free_busy("nov", "2026-11-01T00:00:00", "2026-12-01T00:00:00"),
        free_busy("dec", "2026-12-01T00:00:00", "2027-01-01T00:00:00", asker=BOB),
    ]
    got = answers(post_batch(fake, token, calls))
    with session_for(fake) as session:
        alone = session.post(
            f"{fake.graph_endpoint}/users/{ANN}/calendar/getSchedule",
            json=calls[0]["body"],
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    assert got["nov"]["status"] == 200 and got["nov"]["body"] == alone.json()
    bob, ghost = got["nov"]["body"]["value"]
    assert [i["status"] for i in bob["scheduleItems"]] == ["oof"] and "error" in ghost
    assert got["dec"]["body"]["value"][0]["scheduleItems"] == []
    inner = [r for r in fake.requests if r.batch]
    assert [(r.method, r.mailbox, r.body["schedules"]) for r in inner[:2]] == [
        ("POST", ANN, [BOB, GHOST]),
        ("POST", BOB, [BOB, GHOST]),
    ]

    without_type = dict(calls[0], headers={})
    assert error_of(post_batch(fake, token, [without_type]))[:2] == (400, "BadRequest")
    fake.fail_next(429, retry_after=2, path_contains="getSchedule")
    got = answers(post_batch(fake, token, calls))
    assert inner_error(got["nov"]) == (429, "TooManyRequests") and got["nov"]["headers"]["Retry-After"] == "2"
    assert got["dec"]["status"] == 200
