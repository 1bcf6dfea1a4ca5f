import json
import stat
from pathlib import Path

import pytest

from calsync.store import CalendarState, StateError, StateStore


def test_state_round_trips_per_calendar_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state" / "calsync.json"
    store = StateStore(path)
    store.save("google", CalendarState("ann@acme.test", "token-1", "Europe/Berlin", {"e1": {"id": "e1"}}))
    store.save("google", CalendarState("bob@acme.test", "token-2", "UTC", {}))
    store.save("google", CalendarState("ann@acme.test", "token-3", "Europe/Berlin", {"e2": {"id": "e2"}}))
    store.close()
    reopened = StateStore(path)
    ann = reopened.load("google", "ann@acme.test")
    assert ann == CalendarState("ann@acme.test", "token-3", "Europe/Berlin", {"e2": {"id": "e2"}})
    assert reopened.calendars("google") == ["ann@acme.test", "bob@acme.test"]
    assert reopened.load("microsoft", "ann@acme.test") is None
    reopened.drop("google", "ann@acme.test")
    assert reopened.load("google", "ann@acme.test") is None


def test_state_file_is_private_and_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "calsync.json"
    store = StateStore(path)
    store.save("google", CalendarState("ann@acme.test", "t", None, {}))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    json.loads(path.read_text())  # always complete JSON
    assert [p.name for p in tmp_path.iterdir()] == ["calsync.json"]  # no temporary files left behind


def test_corrupt_state_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "calsync.json"
    path.write_text('{"google": {"1": {"calendar": ')
    with pytest.raises(StateError, match=r"corrupt.*move it aside"):
        StateStore(path).load("google", "ann@acme.test")


def test_documents_of_another_schema_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "calsync.json"
    path.write_text(json.dumps({"google": {"1": {"calendar": "ann@acme.test", "cursor": "x"}}}))
    assert StateStore(path).load("google", "ann@acme.test") is None


def test_every_save_is_on_disk_at_once_without_closing(tmp_path):
    """The store reads the file once and caches it, but writes through: a crash loses nothing saved."""
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.save(
        "m365", CalendarState("ann@acme.test", "link-1", "UTC", {"e": {"id": "e"}}, {"listed": ["a", "b"]})
    )
    store.save("m365", CalendarState("bob@acme.test", "link-2"))
    other = StateStore(path)  # as a restarted process would, with the first never closed
    ann = other.load("m365", "ann@acme.test")
    assert ann is not None and ann.cursor == "link-1" and ann.extra == {"listed": ["a", "b"]}
    assert other.calendars("m365") == ["ann@acme.test", "bob@acme.test"]
    other.close()
    store.close()
