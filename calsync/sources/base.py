"""The one interface every calendar provider implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from calsync.model import CalendarData, Problem


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


def display_path(path: Path, root: Path | None) -> str:
    """How a file is named in messages: relative to ``root`` (the config's directory) when inside it."""
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return str(path)
