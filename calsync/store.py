"""calsync's state file: per calendar, the provider's sync cursor and the events read so far; what
agendas and digests calsync wrote.

A tinydb database with one document per calendar (table = source name). What makes it safe to run
for months:

- **Atomic writes.** Every write replaces the whole file (temporary file, fsync, rename, fsync of the
  directory), so a crash or a power loss leaves the old state or the new one, never half of each. The
  file is created with mode 0600: it holds calendar data.
- **One write per calendar per cycle at most.** While syncing, calendar documents are kept in memory
  (:meth:`StateStore.batch`) and written together when the sync ends; agenda and digest records are
  written at once, because each stands for something done outside (a document, a link, a mail).
- **No write when nothing changed.** A calendar whose events did not change (same ``revision``) but
  whose sync cursor moved is kept in memory and written with the next real change, at the latest
  :data:`CHECKPOINT_SECONDS` later, or when the store is closed. A crash before that loses only the
  newer cursor: the older one on disk is still good, and the next sync replays the same (empty)
  changes from it. A quiet org's cycles therefore write nothing; ``synced_at`` on disk may lag by as
  much.
- **One owner.** A lock file beside the state (``<state>.lock``, ``flock``) keeps a second calsync off
  the same state: it refuses to start and names the process that holds it. The kernel releases the
  lock when its process dies, however it dies.
- **Recovery.** Each write keeps the state it replaces as ``<state>.previous`` (a hard link: no
  copy). A state file that is not valid JSON (a disk error, a hand edit) is moved aside to
  ``<state>.corrupt-<time>`` with a logged warning, and the previous state restored; when that is
  unusable too, calsync starts afresh and a full sync rebuilds it.
- **A schema version** in the file (table ``calsync:meta``), with migrations from older ones; a file
  written by a newer calsync is refused rather than misread.
- **Packed calendars.** A calendar's events and what else its source keeps are one compressed string
  in its document (zlib, base64: :func:`pack`), so that the state in memory is about as large as the
  file, not four times as large as parsed JSON, and a calendar's events are parsed only while it is
  synced. A document of the older, unpacked layout is still read, and packed when next written.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.middlewares import CachingMiddleware
from tinydb.storages import Storage

log = logging.getLogger("calsync.store")

#: The layout of the whole file, kept in the ``calsync:meta`` table. 1: no meta table (calsync 0.1,
#: issues 1-6); 2: the meta table, and calendar documents carry ``synced_at``.
SCHEMA_VERSION = 2
#: The layout of one calendar document: 1 held ``events`` and ``extra`` as JSON, 2 packs them into
#: ``packed``. Both are read, 2 is written; a document of another layout is re-read in full.
CALENDAR_LAYOUT = 2
READ_LAYOUTS = (1, 2)
#: zlib's level for packed calendars: 1 compresses twice as fast as the default (6), and only about 20%
#: larger (calendar data is mostly ids, which do not compress).
PACK_LEVEL = 1
META_TABLE = "calsync:meta"
#: The table of agenda records (a source cannot be named so: source tables are named after sources).
AGENDA_TABLE = "calsync:agendas"
#: The table of digest records: one per (leader, period), so that a digest is sent once.
DIGEST_TABLE = "calsync:digests"
#: The manager -> report lines of the roster, each with the day calsync first saw it (a new pair's
#: ``since``; none for the lines there at the first run).
LINES_TABLE = "calsync:lines"
#: Tables that are not sources' calendars.
RECORD_TABLES = (META_TABLE, AGENDA_TABLE, DIGEST_TABLE, LINES_TABLE)
#: The longest a calendar whose only change is its sync cursor waits to be written (see the module).
CHECKPOINT_SECONDS = 3600.0


class StateError(Exception):
    """The state file cannot be used; str() says what to do."""


class StateLocked(StateError):
    """Another calsync process holds the state file; ``holder`` is its pid (None if unknown)."""

    def __init__(self, message: str, holder: int | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class StateCorrupt(StateError):
    """The state file is not readable as calsync's state."""


def _json_chunks(data: Mapping[str, Mapping[str, Any]]) -> Iterator[str]:
    """The state as compact JSON with sorted keys, one document at a time: each document goes through
    the C encoder (``json.dump`` would stream through the pure-Python one, 5-10x slower), and the
    whole file is never one string in memory (tens of megabytes for a large org)."""

    def dumps(value: object) -> str:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)

    yield "{"
    for t, table in enumerate(sorted(data)):
        yield ("," if t else "") + dumps(table) + ":{"
        documents = data[table]
        for d, key in enumerate(sorted(documents)):
            yield ("," if d else "") + dumps(key) + ":" + dumps(documents[key])
        yield "}"
    yield "}"


class AtomicJSONStorage(Storage):
    """tinydb storage that writes the whole file atomically and privately."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError as exc:
            raise StateCorrupt(f"{self.path}: the state file is corrupt (not UTF-8: {exc.reason})") from exc
        except OSError as exc:
            raise StateError(
                f"{self.path}: cannot read the state file: {exc.strerror or exc}; check that the user "
                "calsync runs as owns it"
            ) from exc
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StateCorrupt(f"{self.path}: the state file is corrupt ({exc})") from exc
        if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
            raise StateCorrupt(f"{self.path}: the state file is not a calsync state file")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        make_directory(self.path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.writelines(_json_chunks(data))
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).chmod(0o600)
            self._keep_previous()
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_directory(self.path.parent)

    def _keep_previous(self) -> None:
        """The file being replaced stays as ``<state>.previous`` (a second name for it: no copy), to
        recover from if the new one is ever found corrupt."""
        previous = previous_path(self.path)
        staging = previous.with_name(previous.name + ".tmp")
        try:
            staging.unlink(missing_ok=True)
            os.link(self.path, staging)
        except FileNotFoundError:
            return  # the first write
        staging.replace(previous)

    def close(self) -> None:
        pass


def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class _ReadOnlyStorage(AtomicJSONStorage):
    """The state file as it is on disk, never written: what a store opened ``read_only`` changes stays
    in its memory (tinydb's cache). A corrupt file reads as none: recovering it is its writer's job."""

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            return super().read()
        except StateCorrupt as exc:
            log.warning("%s; this run reads every calendar in full and leaves the file to its writer", exc)
            return None

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        pass


class _Cache(CachingMiddleware):
    """tinydb's cache: reads from memory after the first; writes go to disk at once, or at the end of
    a :meth:`StateStore.batch`."""

    WRITE_CACHE_SIZE = 1

    def flush(self) -> None:
        super().flush()  # type: ignore[no-untyped-call]


def previous_path(path: Path) -> Path:
    return path.with_name(path.name + ".previous")


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _lock(path: Path) -> int:
    """Take the state's lock file (exclusive, not waiting); raise :class:`StateLocked` if it is held."""
    target = lock_path(path)
    make_directory(target.parent)
    try:
        fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateError(f"{target}: cannot open the state's lock file: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise StateError(f"{target}: cannot lock the state file: {exc.strerror or exc}") from exc
        raise StateLocked(
            f"{path} is in use by another calsync process (pid {holder}): only one calsync may write a "
            "state file at a time. If it is the service (calsync run), it writes the agendas and sends "
            "the digests itself every cycle, and the read-only commands (report, digest without --send, "
            "agendas --dry-run, doctor) work beside it. Otherwise stop the other one (systemctl stop "
            "calsync) or give this one another [state] path.",
            int(holder) if holder.isdigit() else None,
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


def lock_holder(path: Path) -> int | None:
    """The pid of the process holding the state's lock, None if nobody does (a check; takes nothing)."""
    target = lock_path(path)
    try:
        fd = os.open(target, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.read(fd, 64).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def move_aside(path: Path, now: datetime | None = None) -> Path:
    """Rename a corrupt state file out of the way; return where it went."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    path.replace(target)
    return target


@dataclass
class CalendarState:
    """What is kept of one calendar between runs."""

    calendar: str
    cursor: str | None = None  # Google's nextSyncToken, Graph's deltaLink
    time_zone: str | None = None
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # by provider event id
    extra: dict[str, Any] = field(default_factory=dict)  # what else a provider keeps (Graph: masters)
    #: Changes whenever ``events`` or ``extra`` change: a reading of the calendar made at the same
    #: revision is still good (see :class:`calsync.sources.base.ReadCache`), and a save at the same
    #: revision and time zone keeps the stored events and extra (only the cursor is new). The one
    #: exception is forgetting events that no reading can reach any more (wholly before the window):
    #: that may wait for the next change.
    revision: str | None = None
    #: When this state was last saved (ISO 8601, UTC; None for a new state or one saved before calsync
    #: recorded it): the age of a stored reading used when the calendar cannot be read now.
    synced_at: str | None = field(default=None, compare=False)


def pack(events: Mapping[str, Any], extra: Mapping[str, Any]) -> str:
    """A calendar's events and extra as one string for its document: compact JSON, compressed
    (:data:`PACK_LEVEL`), base64 (ASCII, so one byte a character in memory and in the file)."""
    text = json.dumps({"events": events, "extra": extra}, separators=(",", ":"))
    return base64.b64encode(zlib.compress(text.encode("utf-8"), PACK_LEVEL)).decode("ascii")


def unpack(packed: object) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The events and extra :func:`pack` made; ValueError if ``packed`` is not such a string."""
    if not isinstance(packed, str):
        raise ValueError("its packed events are missing")
    try:
        data = json.loads(zlib.decompress(base64.b64decode(packed, validate=True)))
    except (binascii.Error, zlib.error, UnicodeDecodeError) as exc:
        raise ValueError(f"its packed events are damaged ({exc})") from exc
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("events"), dict)
        or not isinstance(data.get("extra"), dict)
    ):
        raise ValueError("its packed events are not a calendar's")
    return data["events"], data["extra"]


def _only_cursor_moved(stored: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether a calendar's new document differs from the stored one in nothing a reading depends on
    (same layout, revision and time zone): only in its cursor and ``synced_at``, which may wait."""
    return (
        stored is not None
        and new.get("revision") is not None
        and stored.get("schema") == new.get("schema")
        and stored.get("revision") == new.get("revision")
        and stored.get("time_zone") == new.get("time_zone")
    )


class StateStore:
    """The state of every calendar of every source, and calsync's records, in one file.

    Opening it takes the lock (``lock=False`` only to look at a state another process holds, as a
    test or ``calsync doctor`` does: such a store must not be written). ``read_only``: no lock, and
    nothing is ever written to disk; what is saved stays in memory (a read-only command beside the
    service: :meth:`for_command`). A corrupt file is moved aside and the previous write restored, or
    the store starts empty (``recover=False`` raises :class:`StateCorrupt` instead; a read-only store
    starts empty and leaves the file to its writer). Every method may be called from several threads.
    """

    def __init__(
        self,
        path: Path,
        *,
        lock: bool = True,
        recover: bool = True,
        read_only: bool = False,
        checkpoint: float = CHECKPOINT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.checkpoint = checkpoint
        self.read_only = read_only
        #: The pid of the process that holds the state, when this store reads it beside that one.
        self.held_by: int | None = None
        lock = lock and not read_only
        self._clock = clock
        #: Calendar documents whose only change is their cursor, by source and calendar (see the module).
        self._deferred: dict[str, dict[str, dict[str, Any]]] = {}
        self._deferred_since: float | None = None
        #: Where a corrupt state file was moved, if it was.
        self.recovered: Path | None = None
        self._mutex = threading.RLock()
        #: Per source: each calendar's document id.
        self._index: dict[str, dict[str, int]] = {}
        #: Inside :meth:`batch`: the calendar documents saved, by source and calendar, written at its end.
        self._pending: dict[str, dict[str, dict[str, Any]]] | None = None
        self._lock_fd = _lock(path) if lock else None
        try:
            if lock:
                self._remove_temporaries()
            self._db = self._open(recover)
            self._migrate(write=lock)
        except BaseException:
            self._unlock()
            raise

    @classmethod
    def for_command(cls, path: Path, *, writes: bool) -> StateStore:
        """The state for one command. A command that ``writes`` (agendas, digests sent) takes the lock,
        and :class:`StateLocked` names the process that holds it. A read-only one (a report, a
        listing, a preview, a dry run) takes it too when it is free, so that its sync is saved for the
        next run; while another calsync holds it, it reads the state as that one last wrote it, without
        the lock, and writes nothing (:attr:`held_by` says whose it is)."""
        try:
            return cls(path)
        except StateLocked as exc:
            if writes:
                raise
            store = cls(path, read_only=True)
            store.held_by = exc.holder
            return store

    def _open(self, recover: bool) -> TinyDB:
        storage = _ReadOnlyStorage if self.read_only else AtomicJSONStorage
        db = TinyDB(self.path, storage=_Cache(storage))  # type: ignore[no-untyped-call]
        try:
            db.storage.read()
        except StateCorrupt as exc:
            db.close()
            if not recover:
                raise StateCorrupt(
                    f"{exc}; move it aside and calsync will rebuild it with a full sync"
                ) from exc
            self.recovered = move_aside(self.path)
            db = TinyDB(self.path, storage=_Cache(AtomicJSONStorage))  # type: ignore[no-untyped-call]
            backup = AtomicJSONStorage(previous_path(self.path))
            try:
                data = backup.read()
            except StateError:
                data = None
            if data:
                cache = db.storage
                assert isinstance(cache, _Cache)
                cache.write(data)
                cache.flush()
                log.warning(
                    "%s; moved it aside to %s and restored the state of the write before it (%s): the "
                    "next sync catches up from there",
                    exc,
                    self.recovered.name,
                    previous_path(self.path).name,
                )
            else:
                log.warning(
                    "%s; moved it aside to %s and starting afresh: the next sync reads every calendar in "
                    "full (agendas are found again where they were written; digests of the current "
                    "period may be sent again)",
                    exc,
                    self.recovered.name,
                )
        return db

    def _cache(self) -> _Cache:
        storage = self._db.storage
        assert isinstance(storage, _Cache)
        return storage

    def _remove_temporaries(self) -> None:
        """Temporary files a killed writer left behind (the state itself is whole: see the module)."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        previous_path(self.path).with_name(previous_path(self.path).name + ".tmp").unlink(missing_ok=True)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def close(self) -> None:
        with self._mutex:
            try:
                if self._lock_fd is not None:
                    self._write_deferred(force=True)
                self._db.close()
            finally:
                self._unlock()

    # -- schema ------------------------------------------------------------------------------------------

    def schema(self) -> int:
        with self._mutex:
            doc = self._db.table(META_TABLE).get(Query().key == "schema")
            if isinstance(doc, Mapping):
                return int(doc.get("version", 0))
            return 1 if self._db.tables() else SCHEMA_VERSION

    def _migrate(self, *, write: bool) -> None:
        """Bring an older schema up to date (only the owner writes: a look without the lock changes
        nothing)."""
        version = self.schema()
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path} was written by a newer calsync (state schema {version}; this calsync knows "
                f"up to {SCHEMA_VERSION}): upgrade calsync, or move the file aside to rebuild it with a "
                "full sync"
            )
        if version < 1:
            raise StateCorrupt(f"{self.path}: the state file's schema version is not understood")
        if not write:
            return
        for step in range(version, SCHEMA_VERSION):
            _MIGRATIONS[step](self._db)
            log.info("state file %s migrated from schema %d to %d", self.path.name, step, step + 1)
        if version != SCHEMA_VERSION or not self._db.table(META_TABLE).get(Query().key == "schema"):
            self._db.table(META_TABLE).upsert(
                {"key": "schema", "version": SCHEMA_VERSION}, Query().key == "schema"
            )

    # -- writes --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Keep the calendar documents saved inside in memory and write them once, at the end (also
        when the block is left by an exception). Agenda and digest records are written at once anyway.
        A crash inside loses only that sync's progress: the next one starts from the last cursors."""
        storage = self._cache()
        with self._mutex:
            nested = self._pending is not None
            if not nested:
                self._pending = {}
                storage.WRITE_CACHE_SIZE = 1 << 62
        if nested:  # the outer batch writes
            yield
            return
        try:
            yield
        finally:
            with self._mutex:
                pending, self._pending = self._pending or {}, None
                try:
                    for source, documents in pending.items():
                        if documents:
                            self._write_calendars(source, documents)
                    self._write_deferred(force=any(pending.values()))
                finally:
                    storage.WRITE_CACHE_SIZE = 1
                    storage.flush()

    def _write_deferred(self, *, force: bool) -> None:
        """Write the calendars whose only change was their cursor: with another write anyway
        (``force``: it costs nothing more), or once they have waited :attr:`checkpoint` seconds."""
        if not self._deferred or self._deferred_since is None:
            return
        if not force and self._clock() - self._deferred_since < self.checkpoint:
            return
        deferred, self._deferred, self._deferred_since = self._deferred, {}, None
        for source, documents in deferred.items():
            if documents:
                self._write_calendars(source, documents)
        if self._pending is None:
            self._cache().flush()

    def flush(self) -> None:
        with self._mutex:
            self._cache().flush()

    # -- calendars ---------------------------------------------------------------------------------------

    def _ids(self, source: str) -> dict[str, int]:
        """The document id of each calendar of a source (read once: loads and saves never scan)."""
        ids = self._index.get(source)
        if ids is None:
            ids = {str(doc.get("calendar")): doc.doc_id for doc in self._db.table(source).all()}
            self._index[source] = ids
        return ids

    def load(self, source: str, calendar: str) -> CalendarState | None:
        """A calendar's state; None if it has none (or one that cannot be used: a full sync rebuilds
        it)."""
        with self._mutex:
            doc = self._document(source, calendar)
        if not isinstance(doc, Mapping) or doc.get("schema") not in READ_LAYOUTS:
            return None  # unknown layout
        if doc.get("schema") == 1:
            events, extra = dict(doc.get("events") or {}), dict(doc.get("extra") or {})
        else:
            try:
                events, extra = unpack(doc.get("packed"))
            except ValueError as exc:
                log.warning(
                    "%s: the stored state of %s in %s cannot be read: %s; reading the calendar in full",
                    self.path,
                    calendar,
                    source,
                    exc,
                )
                return None
        return CalendarState(
            calendar=calendar,
            cursor=doc.get("cursor"),
            time_zone=doc.get("time_zone"),
            events=events,
            extra=extra,
            revision=doc.get("revision"),
            synced_at=str(doc["synced_at"]) if doc.get("synced_at") else None,
        )

    def save(self, source: str, state: CalendarState) -> None:
        document: dict[str, Any] = {
            "schema": CALENDAR_LAYOUT,
            "calendar": state.calendar,
            "cursor": state.cursor,
            "time_zone": state.time_zone,
            "revision": state.revision,
            "synced_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with self._mutex:
            stored = self._document(source, state.calendar)
            if _only_cursor_moved(stored, document):
                assert stored is not None
                document["packed"] = stored.get("packed")  # same revision: same events (see CalendarState)
                self._deferred.setdefault(source, {})[state.calendar] = document
                if self._deferred_since is None:
                    self._deferred_since = self._clock()
                if self._pending is None:
                    self._write_deferred(force=False)
                return
        document["packed"] = pack(state.events, state.extra)  # outside the lock: other workers go on
        with self._mutex:
            (self._deferred.get(source) or {}).pop(state.calendar, None)
            if self._pending is not None:
                self._pending.setdefault(source, {})[state.calendar] = document
            else:
                self._write_calendars(source, {state.calendar: document})
                self._write_deferred(force=True)

    def _document(self, source: str, calendar: str) -> Mapping[str, Any] | None:
        """A calendar's newest document: saved in this batch, deferred, or on disk."""
        for newer in (self._pending or {}, self._deferred):
            doc = (newer.get(source) or {}).get(calendar)
            if doc is not None:
                return doc
        doc_id = self._ids(source).get(calendar)
        found = self._db.table(source).get(doc_id=doc_id) if doc_id is not None else None
        return found if isinstance(found, Mapping) else None

    def _write_calendars(self, source: str, documents: Mapping[str, dict[str, Any]]) -> None:
        """Replace or add the documents of many calendars of one source at once: one pass over the
        table to replace, one to add (tinydb rebuilds a table on every change)."""
        table = self._db.table(source)
        ids = self._ids(source)
        replaced = {ids[calendar]: doc for calendar, doc in documents.items() if calendar in ids}
        if replaced:

            def replace(doc: MutableMapping[str, Any]) -> None:
                new = documents[str(doc.get("calendar"))]
                doc.clear()
                doc.update(new)

            table.update(replace, doc_ids=list(replaced))
        added = [(calendar, doc) for calendar, doc in documents.items() if calendar not in ids]
        if added:
            for (calendar, _), doc_id in zip(added, table.insert_multiple(d for _, d in added), strict=True):
                ids[calendar] = doc_id

    def drop(self, source: str, calendar: str) -> None:
        with self._mutex:
            if self._pending is not None:
                (self._pending.get(source) or {}).pop(calendar, None)
            (self._deferred.get(source) or {}).pop(calendar, None)
            doc_id = self._ids(source).pop(calendar, None)
            if doc_id is not None:
                self._db.table(source).remove(doc_ids=[doc_id])

    def calendars(self, source: str) -> list[str]:
        with self._mutex:
            pending = (self._pending or {}).get(source) or {}
            return sorted({*self._ids(source), *pending, *(self._deferred.get(source) or {})})

    def last_synced(self) -> dict[str, str]:
        """Per source: when its most recently synced calendar was saved (ISO, UTC)."""
        with self._mutex:
            found: dict[str, str] = {}
            for name in self._db.tables():
                if name in RECORD_TABLES:
                    continue
                docs = [*self._db.table(name).all(), *(self._deferred.get(name) or {}).values()]
                times = [str(d.get("synced_at")) for d in docs if d.get("synced_at")]
                if times:
                    found[name] = max(times)
            return found

    # -- agendas: what calsync wrote, so that a pass never writes it twice ------------------------------

    def agenda(self, key: str) -> dict[str, Any] | None:
        """The record of one agenda (or rolling document) by its key, None if none was written."""
        with self._mutex:
            doc = self._db.table(AGENDA_TABLE).get(Query().key == key)
        return dict(doc) if isinstance(doc, Mapping) else None

    def save_agenda(self, record: Mapping[str, Any]) -> None:
        with self._mutex:
            self._db.table(AGENDA_TABLE).upsert(dict(record), Query().key == record["key"])
            self._cache().flush()  # it stands for a document or a link: on disk before going on

    def agendas(self) -> list[dict[str, Any]]:
        with self._mutex:
            return [dict(doc) for doc in self._db.table(AGENDA_TABLE).all()]

    # -- digests: what was sent to whom for which period ----------------------------------------------

    def digest(self, key: str) -> dict[str, Any] | None:
        with self._mutex:
            doc = self._db.table(DIGEST_TABLE).get(Query().key == key)
        return dict(doc) if isinstance(doc, Mapping) else None

    def save_digest(self, record: Mapping[str, Any]) -> None:
        with self._mutex:
            self._db.table(DIGEST_TABLE).upsert(dict(record), Query().key == record["key"])
            self._cache().flush()  # it stands for a mail: on disk before going on

    def digests(self, leader: str) -> list[dict[str, Any]]:
        with self._mutex:
            return [dict(doc) for doc in self._db.table(DIGEST_TABLE).search(Query().leader == leader)]

    # -- the roster's lines: since when each manager -> report pair exists -------------------------------

    def first_seen(self, lines: Iterable[tuple[str, str]], today: date) -> dict[tuple[str, str], date]:
        """Remember the roster's ``(manager, report)`` lines and return the day each was first seen,
        for those that have one. At the very first call (no line remembered yet, ever) the lines
        get none: calsync cannot tell how old they are. A line no longer in the roster is forgotten,
        so that it is new again if it comes back. Writes only when the lines changed."""
        wanted = {(m.lower(), r.lower()) for m, r in lines}
        with self._mutex:
            table = self._db.table(LINES_TABLE)
            started = self._db.table(META_TABLE).get(Query().key == "lines")
            known: dict[tuple[str, str], str | None] = {}
            for doc in table.all():
                known[(str(doc.get("manager")), str(doc.get("report")))] = doc.get("since")
            day = None if started is None else today.isoformat()
            added = sorted(wanted - known.keys())
            gone = known.keys() - wanted
            if added or gone or started is None:
                if gone:
                    table.remove(lambda doc: (str(doc.get("manager")), str(doc.get("report"))) in gone)
                if added:
                    table.insert_multiple({"manager": m, "report": r, "since": day} for m, r in added)
                if started is None:
                    self._db.table(META_TABLE).upsert(
                        {"key": "lines", "started": today.isoformat()}, Query().key == "lines"
                    )
                self._cache().flush()
                known.update((line, day) for line in added)
        found: dict[tuple[str, str], date] = {}
        for line in wanted:
            value = known.get(line)
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    found[line] = date.fromisoformat(value)
        return found


def _v1_to_v2(db: TinyDB) -> None:
    """Schema 1 -> 2: the meta table (written by the caller); calendar documents gain ``synced_at``
    (unknown for those synced before)."""
    for name in db.tables():
        if name in RECORD_TABLES:
            continue
        table = db.table(name)
        for doc in table.all():
            if "synced_at" not in doc:
                table.update({"synced_at": None}, doc_ids=[doc.doc_id])


_MIGRATIONS = {1: _v1_to_v2}


#: calsync's files that hold calendar data, people's data or secrets (the state, tokens, reports,
#: previews, outbox mails, the agenda secret): readable and writable by calsync's user only, whatever
#: the umask.
PRIVATE_FILE_MODE = 0o600
#: Directories calsync creates for them (and their missing parents).
PRIVATE_DIR_MODE = 0o700


def make_directory(path: Path, mode: int = PRIVATE_DIR_MODE) -> None:
    """Create ``path`` and its missing parents, each with exactly ``mode`` (not what the umask leaves
    of 0777: under ``umask 000`` that is world-writable). A directory that exists already is left as it
    is: it is someone's choice (a home directory, a served directory set up by hand)."""
    missing: list[Path] = []
    current = path
    while not current.is_dir() and current.parent != current:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode)  # never more than ``mode`` (the umask only takes bits away)...
        except FileExistsError:
            if directory.is_dir():
                continue  # made by someone else meanwhile: theirs
            raise
        directory.chmod(mode)  # ... and then exactly ``mode``


def write_private(path: Path, text: str) -> None:
    """Write a file that holds a secret or people's data: created 0600 (whatever the umask), in a
    directory created 0700 if missing, replaced atomically (a unique temporary file beside it, fsync,
    rename)."""
    make_directory(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), PRIVATE_FILE_MODE)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_output(path: Path, text: str) -> None:
    """Write what a command was asked to write to ``path`` (``-o FILE``: a report, a digest preview),
    which carries people's data: a new file is created 0600 whatever the umask, and an existing regular
    file is truncated and made 0600 (when calsync's user owns it). Not atomic and not replaced, so that
    ``-o /dev/stdout`` or a named pipe still work: anything but a regular file is just written to."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            with contextlib.suppress(PermissionError):
                os.fchmod(fd, PRIVATE_FILE_MODE)
        handle.write(text)
