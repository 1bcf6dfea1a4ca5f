"""Progress bars for long work, on a terminal only: silent in pipes, CI, cron and systemd logs."""

from __future__ import annotations

import os
import threading
import time
from typing import Protocol, TextIO

_BAR_WIDTH = 24


def _bar_text(label: str, count: int, total: int) -> str:
    """``label [#####.....] 12/40``, or ``label 12`` when the total is not known (0)."""
    if not total:
        return f"{label} {count}"
    filled = _BAR_WIDTH * count // total
    return f"{label} [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {count}/{total}"


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

    WIDTH = _BAR_WIDTH

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
        self.stream.write("\r\x1b[2K" + _bar_text(self.label, self.count, self.total))
        self.stream.flush()
        self._drawn = True


class _BoardBar:
    """One bar of a :class:`ProgressBoard`; its state is guarded by the board's lock."""

    def __init__(self, board: ProgressBoard) -> None:
        self._board = board
        self.label = ""
        self.total = 0
        self.count = 0
        self.finished = False

    def start(self, label: str, total: int) -> None:
        self._board._start(self, label, total)

    def advance(self, steps: int = 1) -> None:
        self._board._advance(self, steps)

    def done(self) -> None:
        self._board._done(self)

    def text(self) -> str:
        return _bar_text(self.label, self.count, self.total) + (" done" if self.finished else "")


class ProgressBoard:
    """A block of bars, one line per bar in the order they were started, for work done concurrently.

    Each thread gets its own bar from :meth:`bar`. The whole block is redrawn in place at most every
    ``min_interval`` seconds, and at once when a bar starts, reaches its total or is done. The cursor
    rests on the line below the block; :meth:`close` leaves the final lines on screen.
    """

    def __init__(self, stream: TextIO, *, min_interval: float = 0.1) -> None:
        self.stream = stream
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._bars: list[_BoardBar] = []  # the started ones, in the order they started
        self._drawn_lines = 0
        self._last_draw = 0.0
        self._closed = False

    def bar(self) -> Progress:
        """A new bar on this board; it takes a line when it is started."""
        return _BoardBar(self)

    def close(self) -> None:
        """Draw the final state once more and stop drawing: the lines stay, the cursor below them."""
        with self._lock:
            self._draw(force=True)
            self._closed = True

    def _start(self, bar: _BoardBar, label: str, total: int) -> None:
        with self._lock:
            bar.label, bar.total, bar.count, bar.finished = label, total, 0, False
            if bar not in self._bars:
                self._bars.append(bar)
            self._draw(force=True)

    def _advance(self, bar: _BoardBar, steps: int) -> None:
        with self._lock:
            bar.count = min(bar.total, bar.count + steps) if bar.total else bar.count + steps
            self._draw(force=bar.count == bar.total)

    def _done(self, bar: _BoardBar) -> None:
        with self._lock:
            bar.finished = True
            self._draw(force=True)

    def _draw(self, *, force: bool) -> None:
        """Redraw the block; the caller holds the lock."""
        if self._closed or not self._bars:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        # Back to the start of the block's first line ("\x1b[0F" would still move up one line).
        up = f"\x1b[{self._drawn_lines}F" if self._drawn_lines else ""
        self.stream.write(up + "".join(f"\x1b[2K{bar.text()}\n" for bar in self._bars))
        self.stream.flush()
        self._drawn_lines = len(self._bars)


def _interactive(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal someone watches: not a pipe or file, not a dumb terminal, not CI."""
    return stream.isatty() and os.environ.get("TERM") != "dumb" and not os.environ.get("CI")


def progress_for(stream: TextIO) -> Progress:
    """A terminal progress bar when ``stream`` is an interactive terminal, else nothing."""
    return TerminalProgress(stream) if _interactive(stream) else NoProgress()


def progress_board_for(stream: TextIO) -> ProgressBoard | None:
    """A board of bars when ``stream`` is an interactive terminal outside systemd, else ``None``.

    systemd sets ``INVOCATION_ID`` (and ``JOURNAL_STREAM`` when output goes to the journal) for the
    processes it starts; cursor movements have no place there, even on a terminal.
    """
    under_systemd = "INVOCATION_ID" in os.environ or "JOURNAL_STREAM" in os.environ
    return ProgressBoard(stream) if _interactive(stream) and not under_systemd else None
