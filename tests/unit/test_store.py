import base64
import json
import logging
import os
import stat
import zlib
from pathlib import Path

import pytest

from calsync.store import (
    SCHEMA_VERSION,
    AtomicJSONStorage,
    CalendarState,
    StateError,
    StateLocked,
    StateStore,
    lock_holder,
    pack,
)


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
    # no temporary files left behind; the lock file stays (removing it would race another process)
    # and the state it replaced is kept, for recovery
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "calsync.json",
        "calsync.json.lock",
        "calsync.json.previous",
    ]


def test_corrupt_state_is_a_clear_error_when_not_recovering(tmp_path: Path) -> None:
    path = tmp_path / "calsync.json"
    path.write_text('{"google": {"1": {"calendar": ')
    with pytest.raises(StateError, match=r"corrupt.*move it aside"):
        StateStore(path, recover=False)
    StateStore(path).close()  # the failed open released the lock


@pytest.mark.parametrize("text", ['{"google": {"1": {"calendar": ', "[1, 2]", '{"google": 3}', "\udcff"])
def test_corrupt_state_is_moved_aside_and_rebuilt(tmp_path: Path, text: str, caplog) -> None:
    path = tmp_path / "calsync.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    store = StateStore(path)
    assert store.recovered is not None and store.recovered.name.startswith("calsync.json.corrupt-")
    assert store.recovered.read_bytes() == text.encode("utf-8", "surrogateescape")  # kept, for a look
    assert "moved it aside" in caplog.text and store.recovered.name in caplog.text
    assert store.load("google", "ann@acme.test") is None
    store.save("google", CalendarState("ann@acme.test", "t"))
    store.close()
    assert json.loads(path.read_text())["calsync:meta"]


def test_a_corrupt_state_is_restored_from_the_write_before_it(tmp_path: Path, caplog) -> None:
    path = tmp_path / "calsync.json"
    store = StateStore(path)
    store.save_digest({"key": "maya|2026-11-16", "leader": "maya@acme.test", "status": "sent"})
    store.save("google", CalendarState("ann@acme.test", "t1"))
    store.close()
    path.write_text('{"google": {"1": ')  # the last write is damaged on disk
    store = StateStore(path)
    assert "restored the state of the write before it" in caplog.text
    assert store.digest("maya|2026-11-16") == {  # the digest is not sent again
        "key": "maya|2026-11-16",
        "leader": "maya@acme.test",
        "status": "sent",
    }
    assert store.load("google", "ann@acme.test") is None  # one write behind: read again by the sync
    store.close()
    assert json.loads(path.read_text())["calsync:digests"]


def test_a_second_store_on_the_same_file_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "calsync.json"
    first = StateStore(path)
    with pytest.raises(StateLocked, match=rf"in use by another calsync process \(pid {os.getpid()}\)"):
        StateStore(path)
    assert lock_holder(path) == os.getpid()
    first.close()
    assert lock_holder(path) is None
    StateStore(path).close()


def test_a_killed_writers_temporary_files_are_removed_on_open(tmp_path: Path) -> None:
    path = tmp_path / "calsync.json"
    StateStore(path).close()
    (tmp_path / ".calsync.json.abc123.tmp").write_text('{"half": ')
    StateStore(path).close()
    assert not list(tmp_path.glob(".*.tmp"))


def test_schema_1_files_are_migrated_and_keep_their_calendars(tmp_path: Path, caplog) -> None:
    path = tmp_path / "calsync.json"
    v1 = {
        "google": {"1": {"schema": 1, "calendar": "ann@acme.test", "cursor": "c", "events": {}, "extra": {}}},
        "calsync:digests": {"1": {"key": "k", "leader": "maya@acme.test", "status": "sent"}},
    }
    path.write_text(json.dumps(v1))
    caplog.set_level(logging.INFO, "calsync.store")
    store = StateStore(path)
    assert store.schema() == SCHEMA_VERSION == 2
    state = store.load("google", "ann@acme.test")
    assert state is not None and state.cursor == "c"  # not re-read in full
    assert store.digest("k") == {"key": "k", "leader": "maya@acme.test", "status": "sent"}
    store.close()
    data = json.loads(path.read_text())
    assert data["google"]["1"]["synced_at"] is None
    assert "from schema 1 to 2" in caplog.text


def test_a_look_without_the_lock_migrates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "calsync.json"
    text = json.dumps({"google": {"1": {"schema": 1, "calendar": "ann@acme.test", "cursor": "c"}}})
    path.write_text(text)
    store = StateStore(path, lock=False, recover=False)
    assert store.schema() == 1 and store.load("google", "ann@acme.test") is not None
    store.close()
    assert path.read_text() == text


def test_a_file_from_a_newer_calsync_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "calsync.json"
    text = json.dumps({"calsync:meta": {"1": {"key": "schema", "version": 3}}, "google": {}})
    path.write_text(text)
    with pytest.raises(StateError, match="newer calsync"):
        StateStore(path)
    assert path.read_text() == text
    assert lock_holder(path) is None


def test_a_batch_writes_calendars_once_at_its_end_but_records_at_once(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "calsync.json"
    store = StateStore(path)
    writes: list[object] = []
    real = AtomicJSONStorage.write

    def counted(self, data):
        writes.append(data)
        real(self, data)

    monkeypatch.setattr(AtomicJSONStorage, "write", counted)
    with store.batch():
        for n in range(5):
            store.save("google", CalendarState(f"u{n}@acme.test", f"t{n}"))
        assert writes == []  # not yet on disk
        store.save_agenda({"key": "a1", "doc": {"id": "d"}})
        assert len(writes) == 1  # an agenda record goes to disk at once (with the calendars so far)
        store.save("google", CalendarState("u9@acme.test", "t9"))
    assert len(writes) == 2
    reopened = StateStore(path, lock=False)
    assert len(reopened.calendars("google")) == 6
    assert set(reopened.last_synced()) == {"google"}


def test_a_batch_left_by_an_exception_still_writes(tmp_path: Path) -> None:
    path = tmp_path / "calsync.json"
    store = StateStore(path)
    with pytest.raises(RuntimeError), store.batch():
        store.save("google", CalendarState("ann@acme.test", "t"))
        raise RuntimeError("stopping")
    assert StateStore(path, lock=False).calendars("google") == ["ann@acme.test"]


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
    other = StateStore(path, lock=False)  # as a restarted process would, with the first never closed
    ann = other.load("m365", "ann@acme.test")
    assert ann is not None and ann.cursor == "link-1" and ann.extra == {"listed": ["a", "b"]}
    assert other.calendars("m365") == ["ann@acme.test", "bob@acme.test"]
    other.close()
    store.close()


ANN = "ann@acme.test"
PAIR = [{"email": ANN}, {"email": "bob@acme.test"}]


def test_calendars_are_packed_and_a_save_at_the_same_revision_keeps_the_stored_events(tmp_path: Path) -> None:
    path = tmp_path / "calsync.json"
    store = StateStore(path)
    events = {f"e{i}": {"id": f"e{i}", "summary": "Ann / Bob", "attendees": PAIR} for i in range(200)}
    store.save("google", CalendarState(ANN, "t1", "UTC", events, {"ignored": ["s1"]}, revision="r1"))
    text = path.read_text()
    (document,) = json.loads(text)["google"].values()
    assert document["schema"] == 2 and "events" not in document and "extra" not in document
    assert len(text) < len(json.dumps(events)) / 4  # compressed
    # Same revision: only the cursor is new (see CalendarState.revision); the events are not packed again.
    store.save("google", CalendarState(ANN, "t2", "UTC", {}, {}, revision="r1"))
    store.close()
    reopened = StateStore(path)
    assert reopened.load("google", ANN) == CalendarState(ANN, "t2", "UTC", events, {"ignored": ["s1"]}, "r1")


def test_a_calendar_of_the_older_layout_is_read_and_packed_when_next_written(tmp_path: Path) -> None:
    path = tmp_path / "calsync.json"
    older = {"schema": 1, "calendar": ANN, "cursor": "c", "events": {"e": {"id": "e"}}, "extra": {"x": 1}}
    path.write_text(
        json.dumps({"calsync:meta": {"1": {"key": "schema", "version": 2}}, "google": {"1": older}})
    )
    store = StateStore(path)
    state = store.load("google", ANN)
    assert state == CalendarState(ANN, "c", None, {"e": {"id": "e"}}, {"x": 1})
    state.cursor = "c2"
    store.save("google", state)
    store.close()
    (document,) = json.loads(path.read_text())["google"].values()
    assert document["schema"] == 2 and "events" not in document
    assert StateStore(path).load("google", ANN) == CalendarState(
        ANN, "c2", None, {"e": {"id": "e"}}, {"x": 1}
    )


@pytest.mark.parametrize(
    "packed",
    [None, "not base64!", "bm90IHpsaWI=", base64.b64encode(zlib.compress(b'{"events": []}')).decode()],
    ids=["missing", "not-base64", "not-zlib", "not-a-calendar"],
)
def test_a_damaged_packed_calendar_is_reported_and_read_again_in_full(
    tmp_path: Path, packed: object, caplog
) -> None:
    path = tmp_path / "calsync.json"
    damaged = {"schema": 2, "calendar": ANN, "cursor": "c", "packed": packed}
    fine = {"schema": 2, "calendar": "bob@acme.test", "cursor": "d", "packed": pack({"e": {}}, {})}
    path.write_text(json.dumps({"google": {"1": damaged, "2": fine}}))
    store = StateStore(path)
    assert store.load("google", ANN) is None  # a full sync rebuilds it
    assert f"the stored state of {ANN} in google cannot be read" in caplog.text
    bob = store.load("google", "bob@acme.test")
    assert bob is not None and bob.events == {"e": {}}


def test_a_read_only_command_beside_the_writer_reads_its_state_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    writer = StateStore(path)
    writer.save("m365", CalendarState(ANN, "link-1", "UTC", {"e": {"id": "e"}}))
    on_disk = path.read_bytes()
    with pytest.raises(StateLocked) as refused:  # a command that writes is refused, naming the writer
        StateStore.for_command(path, writes=True)
    assert refused.value.holder == os.getpid()
    reader = StateStore.for_command(path, writes=False)
    assert reader.read_only and reader.held_by == os.getpid()
    state = reader.load("m365", ANN)
    assert state is not None and state.cursor == "link-1"
    with reader.batch():  # what it syncs stays in its memory
        reader.save("m365", CalendarState(ANN, "link-2", "UTC", {"e": {"id": "e"}, "f": {"id": "f"}}))
    reader.save_digest({"key": "k", "leader": ANN, "status": "sent"})
    assert reader.load("m365", ANN).cursor == "link-2"  # type: ignore[union-attr]
    reader.close()
    assert path.read_bytes() == on_disk
    assert writer.load("m365", ANN).cursor == "link-1"  # type: ignore[union-attr]
    writer.close()
    # with nobody holding it, a read-only command takes the lock and its sync is saved
    alone = StateStore.for_command(path, writes=False)
    assert not alone.read_only
    alone.save("m365", CalendarState(ANN, "link-3", "UTC", {}))
    alone.close()
    assert StateStore(path, lock=False).load("m365", ANN).cursor == "link-3"  # type: ignore[union-attr]


def test_a_read_only_store_leaves_a_corrupt_file_to_its_writer(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    reader = StateStore(path, read_only=True)
    assert reader.calendars("m365") == [] and reader.recovered is None
    reader.close()
    assert path.read_text() == "{not json" and sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
