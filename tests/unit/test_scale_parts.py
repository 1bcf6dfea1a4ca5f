"""The pieces that keep a cycle cheap at org scale: bulk state writes, the reading cache, lean and
pruned events, and what a source keeps of a calendar."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from calsync.model import CalendarData
from calsync.sources.base import ReadCache, Window, new_revision
from calsync.sources.google import lean, matters, merge_changes, prune
from calsync.sources.microsoft import _keep_possible, possible
from calsync.store import AtomicJSONStorage, CalendarState, StateStore


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per write of a state file."""
    written: list[int] = []
    real = AtomicJSONStorage.write

    def counted(self: AtomicJSONStorage, data: dict[str, dict[str, Any]]) -> None:
        written.append(1)
        real(self, data)

    monkeypatch.setattr(AtomicJSONStorage, "write", counted)
    return written


def test_a_batch_writes_every_calendar_once_and_loads_see_the_pending_ones(
    tmp_path: Path, writes: list[int]
) -> None:
    store = StateStore(tmp_path / "state.json")
    try:
        store.save("g", CalendarState("old@x.test", "c0", revision="r0"))
        writes.clear()
        with store.batch():
            for n in range(300):
                store.save(
                    "g", CalendarState(f"p{n}@x.test", f"c{n}", events={"e": {"id": "e"}}, revision="r")
                )
            store.save("g", CalendarState("old@x.test", "c1", revision="r1"))
            loaded = store.load("g", "p7@x.test")
            assert loaded is not None and loaded.cursor == "c7"  # not on disk yet, but seen
            assert writes == []
        assert len(writes) == 1
        assert len(store.calendars("g")) == 301
    finally:
        store.close()
    again = StateStore(tmp_path / "state.json")
    try:
        old = again.load("g", "old@x.test")
        assert old is not None and (old.cursor, old.revision) == ("c1", "r1")  # replaced, not added
        assert len(again.calendars("g")) == 301
        again.drop("g", "p0@x.test")
        assert again.load("g", "p0@x.test") is None and len(again.calendars("g")) == 300
    finally:
        again.close()


def test_the_reading_cache_serves_only_the_same_revision_and_window() -> None:
    cache = ReadCache()
    data = CalendarData("a@x.test", (), ())
    window = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
    cache.put("g", "a@x.test", ("r1", window), data, [])
    assert cache.get("g", "a@x.test", ("r1", window)) == (data, [])
    assert cache.get("g", "a@x.test", ("r2", window)) is None
    later = Window(datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC))
    assert cache.get("g", "a@x.test", ("r1", later)) is None
    cache.keep_only("g", ["b@x.test"])
    assert len(cache) == 0
    assert new_revision() != new_revision()


def _google(
    ident: str, people: list[str], start: str = "2026-11-02T10:00:00+01:00", **extra: Any
) -> dict[str, Any]:
    return {
        "id": ident,
        "status": "confirmed",
        "start": {"dateTime": start},
        "end": {"dateTime": start},
        "organizer": {"email": people[0], "displayName": "Ann"},
        "attendees": [
            {"email": p, "responseStatus": "accepted", "displayName": "X", "self": True} for p in people
        ],
        "htmlLink": "https://calendar.google.com/event?eid=x",
        "etag": '"1"',
        **extra,
    }


def test_google_keeps_only_what_could_be_a_1on1_and_only_what_its_reading_needs() -> None:
    assert matters(_google("pair", ["a@x.test", "b@x.test"]))
    assert not matters(_google("team", ["a@x.test", "b@x.test", "c@x.test"]))
    assert not matters(_google("focus", ["a@x.test"]))  # one person alone is never a 1:1
    assert matters({"id": "t", "status": "cancelled", "recurringEventId": "s"})
    kept = lean(_google("pair", ["a@x.test", "b@x.test"]))
    assert "htmlLink" not in kept and "etag" not in kept
    assert kept["attendees"][0] == {"email": "a@x.test", "responseStatus": "accepted"}
    assert kept["organizer"] == {"email": "a@x.test"}
    events: dict[str, dict[str, Any]] = {}
    assert merge_changes(events, [_google("pair", ["a@x.test", "b@x.test"])])
    assert not merge_changes(events, [_google("pair", ["a@x.test", "b@x.test"])])  # the same again
    assert merge_changes(events, [_google("pair", ["a@x.test", "b@x.test", "c@x.test"])])  # a third
    assert events == {}


def test_google_forgets_one_offs_and_exceptions_wholly_before_the_window_but_keeps_series() -> None:
    cutoff = datetime(2026, 8, 1, tzinfo=UTC)
    events = {
        "old": _google("old", ["a@x.test", "b@x.test"], "2026-03-01T10:00:00+01:00"),
        "new": _google("new", ["a@x.test", "b@x.test"], "2026-09-01T10:00:00+02:00"),
        "series": _google(
            "series", ["a@x.test", "b@x.test"], "2025-01-01T10:00:00+01:00", recurrence=["RRULE:FREQ=WEEKLY"]
        ),
        "moved-in": _google(
            "moved-in",
            ["a@x.test", "b@x.test"],
            "2026-08-20T10:00:00+02:00",
            originalStartTime={"dateTime": "2026-07-01T10:00:00+02:00"},
        ),
        "tombstone": {"id": "tombstone", "status": "cancelled"},
    }
    assert prune(events, cutoff) == 1
    assert set(events) == {"new", "series", "moved-in", "tombstone"}


def _graph(ident: str, people: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "isAllDay": False,
        "organizer": {"emailAddress": {"address": people[0]}},
        "attendees": [
            {"emailAddress": {"address": p}, "status": {"response": "accepted"}, "type": "required"}
            for p in people
        ],
        **extra,
    }


def test_graph_keeps_the_instances_of_series_that_could_be_1on1s_and_remembers_the_others() -> None:
    pair, team = ["a@x.test", "b@x.test"], ["a@x.test", "b@x.test", "c@x.test"]
    assert possible(_graph("m", pair)) and not possible(_graph("t", team))
    assert not possible(_graph("d", pair, isAllDay=True))
    room = [*pair, "room@x.test"]
    with_room = _graph("r", room)
    with_room["attendees"][2]["type"] = "resource"
    assert possible(with_room)
    state = CalendarState(
        "a@x.test",
        extra={"masters": {"m": _graph("m", pair), "t": _graph("t", team)}, "ignored": []},
        events={
            "m1": _graph("m1", pair, seriesMasterId="m"),
            "t1": _graph("t1", team, seriesMasterId="t"),
            "single": _graph("single", pair),
            "big": _graph("big", team),
        },
    )
    _keep_possible(state)
    assert set(state.events) == {"m1", "single"}
    assert set(state.extra["masters"]) == {"m"}
    assert state.extra["ignored"] == ["t"]


def test_a_moved_cursor_alone_waits_for_a_real_change_a_checkpoint_or_the_close(
    tmp_path: Path, writes: list[int]
) -> None:
    def on_disk(calendar: str) -> str | None:
        peek = StateStore(tmp_path / "state.json", lock=False)
        try:
            state = peek.load("g", calendar)
            return state.cursor if state is not None else None
        finally:
            peek.close()

    now = [0.0]
    store = StateStore(tmp_path / "state.json", checkpoint=600, clock=lambda: now[0])
    events = {"e": {"id": "e"}}
    with store.batch():
        store.save("g", CalendarState("a@x.test", "a1", events=events, revision="r1"))
        store.save("g", CalendarState("b@x.test", "b1", events=events, revision="r1"))
    writes.clear()

    with store.batch():  # a cycle in which nothing changed: the cursors moved, nothing is written
        store.save("g", CalendarState("a@x.test", "a2", events=events, revision="r1"))
        store.save("g", CalendarState("b@x.test", "b2", events=events, revision="r1"))
    assert writes == [] and on_disk("a@x.test") == "a1"
    loaded = store.load("g", "a@x.test")
    assert loaded is not None and loaded.cursor == "a2"  # the next sync goes on from the newest

    now[0] = 599.0
    with store.batch():
        store.save("g", CalendarState("a@x.test", "a3", events=events, revision="r1"))
    assert writes == []
    now[0] = 600.0  # the checkpoint is due: every waiting calendar is written
    with store.batch():
        store.save("g", CalendarState("a@x.test", "a4", events=events, revision="r1"))
    assert len(writes) == 1 and (on_disk("a@x.test"), on_disk("b@x.test")) == ("a4", "b2")

    with store.batch():
        store.save("g", CalendarState("a@x.test", "a5", events=events, revision="r1"))
        store.save("g", CalendarState("b@x.test", "b3", events={}, revision="r2"))  # a real change
    assert len(writes) == 2 and (on_disk("a@x.test"), on_disk("b@x.test")) == ("a5", "b3")

    store.save("g", CalendarState("a@x.test", "a6", events=events, revision="r1"))  # outside a batch
    assert len(writes) == 2 and on_disk("a@x.test") == "a5"
    store.close()  # a clean stop writes what waited
    assert len(writes) == 3 and on_disk("a@x.test") == "a6"
