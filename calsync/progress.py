"""Progress bars for long work, on a terminal only: silent in pipes, CI, cron and systemd logs."""

from __future__ import annotations

import os
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    def start(self, label: str, total: int) -> None: ...

    def advance(self, steps: int = 1) -> None: ...

    def done(self) -> None: ...


class NoProgress:
    """Shows nothing."""

    def start(self, label: str, total: int) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass

    def done(self) -> None:
        pass


class TerminalProgress:
    """One self-overwriting line: ``label [#####.....] 12/40``, redrawn at most 10 times a second."""

    WIDTH = 24

    def __init__(self, stream: TextIO, *, min_interval: float = 0.1) -> None:
        self.stream = stream
        self.min_interval = min_interval
        self.label = ""
        self.total = 0
        self.count = 0
        self._last_draw = 0.0
        self._drawn = False

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.count = label, total, 0
        self._draw(force=True)

    def advance(self, steps: int = 1) -> None:
        self.count = min(self.total, self.count + steps) if self.total else self.count + steps
        self._draw(force=self.count == self.total)

    def done(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        if self.total:
            filled = self.WIDTH * self.count // self.total
            bar = "#" * filled + "." * (self.WIDTH - filled)
            text = f"{self.label} [{bar}] {self.count}/{self.total}"
        else:
            text = f"{self.label} {self.count}"
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
        self._drawn = True


def progress_for(stream: TextIO) -> Progress:
    """A terminal progress bar when ``stream`` is an interactive terminal, else nothing."""
    interactive = stream.isatty() and os.environ.get("TERM") != "dumb" and not os.environ.get("CI")
    return TerminalProgress(stream) if interactive else NoProgress()
