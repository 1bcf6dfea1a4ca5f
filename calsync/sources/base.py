"""The one interface every calendar provider implements."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from calsync.model import CalendarData, Problem
from calsync.progress import Progress


@dataclass(frozen=True, slots=True)
class Window:
    """The span of time a sync must cover: [start, end), both timezone-aware."""

    start: datetime
    end: datetime


@dataclass(slots=True)
class SourceResult:
    """What a source read: the calendars it could read and the problems it met.

    A calendar that could not be read is a problem, never an empty calendar: consumers must be able to
    tell "nothing scheduled" from "could not look".
    """

    calendars: list[CalendarData] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class Source(Protocol):
    """A provider of calendars (ICS files, Google, Microsoft)."""

    name: str

    def fetch(self, window: Window) -> SourceResult:
        """Read every calendar of this source, covering at least ``window``."""
        ...


def new_revision() -> str:
    """A fresh :attr:`calsync.store.CalendarState.revision`, for a calendar whose events changed."""
    return secrets.token_hex(8)


class ReadCache:
    """Each calendar's normalised reading, kept between cycles by the daemon.

    Reading a calendar (converting its stored events and expanding its series) costs far more CPU than
    asking the provider whether it changed, and in most cycles nothing did: a calendar whose state has
    the same revision, read for the same window, is not read again. Thread-safe.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[Hashable, CalendarData, list[Problem]]] = {}
        self._lock = threading.Lock()

    def get(self, source: str, calendar: str, key: Hashable) -> tuple[CalendarData, list[Problem]] | None:
        with self._lock:
            entry = self._entries.get((source, calendar))
        if entry is None or entry[0] != key:
            return None
        return entry[1], list(entry[2])

    def put(
        self, source: str, calendar: str, key: Hashable, data: CalendarData, problems: list[Problem]
    ) -> None:
        with self._lock:
            self._entries[(source, calendar)] = (key, data, list(problems))

    def keep_only(self, source: str, calendars: Iterable[str]) -> None:
        """Forget the readings of a source's calendars that it no longer syncs."""
        kept = set(calendars)
        with self._lock:
            for entry in [k for k in self._entries if k[0] == source and k[1] not in kept]:
                del self._entries[entry]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


#: One calendar's reading: its data (None when it could not be read) and the problems met.
Reading = tuple[CalendarData | None, list[Problem]]


def cached_reading(
    reads: ReadCache | None,
    source: str,
    calendar: str,
    key: Hashable,
    read: Callable[[], tuple[CalendarData, list[Problem]]],
) -> tuple[CalendarData, list[Problem]]:
    """``read()``, unless ``reads`` holds the calendar's reading at ``key``; kept there for next time."""
    if reads is None:
        return read()
    cached = reads.get(source, calendar, key)
    if cached is not None:
        return cached
    data, problems = read()
    reads.put(source, calendar, key, data, problems)
    return data, problems


def read_concurrently(
    label: str,
    calendars: list[str],
    read_one: Callable[[str], Reading],
    *,
    workers: int,
    progress: Progress,
    reads: ReadCache | None = None,
) -> SourceResult:
    """``read_one`` for every calendar, ``workers`` at a time; the readings in the order given, whatever
    order they finished in. An exception (a Stopped, a bug) stops the rest at once. Afterwards
    ``reads`` forgets the source's (``label``'s) calendars that are no longer read."""
    result = SourceResult()
    progress.start(f"syncing {label}", len(calendars))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"sync-{label}")
    try:
        futures = [pool.submit(read_one, calendar) for calendar in calendars]
        for future in as_completed(futures):
            future.result()
            progress.advance()
        for future in futures:
            data, problems = future.result()
            if data is not None:
                result.calendars.append(data)
            result.problems.extend(problems)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        progress.done()
    if reads is not None:
        reads.keep_only(label, calendars)
    return result


def display_path(path: Path, root: Path | None) -> str:
    """How a file is named in messages: relative to ``root`` (the config's directory) when inside it."""
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return str(path)
