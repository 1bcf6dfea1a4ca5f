"""calsync's state file: per calendar, the provider's sync cursor and the events read so far.

A tinydb database with one document per calendar (table = source name), so that a sync writes each
calendar once, not once per event. Every write replaces the whole file atomically (temporary file,
fsync, rename), so a crash leaves the old state or the new one, never half of each. The file is
created with mode 0600: it holds calendar data.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.middlewares import CachingMiddleware
from tinydb.storages import Storage

SCHEMA_VERSION = 1
#: The table of agenda records (a source cannot be named so: source tables are named after sources).
AGENDA_TABLE = "calsync:agendas"
#: The table of digest records: one per (leader, period), so that a digest is sent once.
DIGEST_TABLE = "calsync:digests"


class StateError(Exception):
    """The state file cannot be read; str() says what to do."""


class AtomicJSONStorage(Storage):
    """tinydb storage that writes the whole file atomically and privately."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read the state file: {exc.strerror or exc}") from exc
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StateError(
                f"{self.path}: the state file is corrupt ({exc}); move it aside and calsync will rebuild it "
                "with a full sync"
            ) from exc
        if not isinstance(data, dict):
            raise StateError(f"{self.path}: the state file is not a calsync state file")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                # dumps, not dump: dump streams through the pure-Python encoder, 5-10x slower
                handle.write(json.dumps(data, separators=(",", ":"), sort_keys=True))
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).chmod(0o600)
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def close(self) -> None:
        pass


class _WriteThrough(CachingMiddleware):
    """tinydb's cache for reads, without its write cache: the file is read once, written on every change."""

    WRITE_CACHE_SIZE = 1


@dataclass
class CalendarState:
    """What is kept of one calendar between runs."""

    calendar: str
    cursor: str | None = None  # Google's nextSyncToken, Graph's deltaLink
    time_zone: str | None = None
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # by provider event id
    extra: dict[str, Any] = field(default_factory=dict)  # what else a provider keeps (Graph: masters)


class StateStore:
    """The state of every calendar of every source, in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Reads come from memory after the first; every write still goes to disk at once (crash-safe).
        self._db = TinyDB(path, storage=_WriteThrough(AtomicJSONStorage))  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._db.close()

    def load(self, source: str, calendar: str) -> CalendarState | None:
        doc = self._db.table(source).get(Query().calendar == calendar)
        if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA_VERSION:
            return None  # unknown or older layout: a full sync rebuilds it
        return CalendarState(
            calendar=calendar,
            cursor=doc.get("cursor"),
            time_zone=doc.get("time_zone"),
            events=dict(doc.get("events") or {}),
            extra=dict(doc.get("extra") or {}),
        )

    def save(self, source: str, state: CalendarState) -> None:
        document = {
            "schema": SCHEMA_VERSION,
            "calendar": state.calendar,
            "cursor": state.cursor,
            "time_zone": state.time_zone,
            "events": state.events,
            "extra": state.extra,
        }
        self._db.table(source).upsert(document, Query().calendar == state.calendar)

    def drop(self, source: str, calendar: str) -> None:
        self._db.table(source).remove(Query().calendar == calendar)

    def calendars(self, source: str) -> list[str]:
        return sorted(str(doc["calendar"]) for doc in self._db.table(source).all())

    # -- agendas: what calsync wrote, so that a pass never writes it twice ------------------------------

    def agenda(self, key: str) -> dict[str, Any] | None:
        """The record of one agenda (or rolling document) by its key, None if none was written."""
        doc = self._db.table(AGENDA_TABLE).get(Query().key == key)
        return dict(doc) if isinstance(doc, Mapping) else None

    def save_agenda(self, record: Mapping[str, Any]) -> None:
        self._db.table(AGENDA_TABLE).upsert(dict(record), Query().key == record["key"])

    def agendas(self) -> list[dict[str, Any]]:
        return [dict(doc) for doc in self._db.table(AGENDA_TABLE).all()]

    # -- digests: what was sent to whom for which period ----------------------------------------------

    def digest(self, key: str) -> dict[str, Any] | None:
        doc = self._db.table(DIGEST_TABLE).get(Query().key == key)
        return dict(doc) if isinstance(doc, Mapping) else None

    def save_digest(self, record: Mapping[str, Any]) -> None:
        self._db.table(DIGEST_TABLE).upsert(dict(record), Query().key == record["key"])

    def digests(self, leader: str) -> list[dict[str, Any]]:
        return [dict(doc) for doc in self._db.table(DIGEST_TABLE).search(Query().leader == leader)]


def write_private(path: Path, text: str) -> None:
    """Write a file that holds a secret: created 0600, replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.chmod(0o600)
    tmp.replace(path)
