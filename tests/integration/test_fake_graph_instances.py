"""The Graph fake lists a series' instances the same way however often it is asked (over https with
``requests``): the expansion it remembers for a span is not changed by what a listing adds to it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.fakes.graph import FakeGraph
from tests.integration.test_graph_fake import (
    ANN,
    APP,
    BERLIN,
    SECRET,
    WINDOW,
    app_token,
    delta_round,
    delta_url,
    get,
    weekly,
)

pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        server.add_user(ANN, "Ann Arbor", time_zone="Europe/Berlin")
        server.add_app(APP, secret=SECRET, roles=("Calendars.Read", "User.Read.All"))
        yield server
        assert server.internal_errors == []


def test_instances_listed_again_are_the_same(fake: FakeGraph) -> None:
    token = app_token(fake)
    master = fake.put_event(ANN, weekly("One on one", "2026-11-02T09:00:00"))
    moved = fake.put_exception(
        ANN,
        master["id"],
        datetime(2026, 11, 9, 9, tzinfo=BERLIN),
        {
            "start": {"dateTime": "2026-11-10T10:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-11-10T10:30:00", "timeZone": "Europe/Berlin"},
        },
    )
    url = f"/users/{ANN}/events/{master['id']}/instances"
    first = get(fake, url, token, {**WINDOW, "$top": "50"}).json()["value"]
    assert [i["type"] for i in first].count("exception") == 1
    assert get(fake, url, token, {**WINDOW, "$top": "50"}).json()["value"] == first

    # nor does it change what calendarView and its delta list for the same span
    view = get(fake, f"/users/{ANN}/calendarView", token, {**WINDOW, "$top": "50"}).json()["value"]
    assert [i["id"] for i in view] == [i["id"] for i in first]
    items, _, _ = delta_round(fake, delta_url(), token, WINDOW)
    assert sorted(i["id"] for i in items) == sorted(i["id"] for i in first)
    assert [i["id"] for i in items].count(moved["id"]) == 1
