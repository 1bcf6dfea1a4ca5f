import io
import re
import threading
import time

import pytest

from calsync.progress import (
    NoProgress,
    ProgressBoard,
    TerminalProgress,
    progress_board_for,
    progress_for,
)


def test_terminal_progress_draws_and_clears_its_line():
    out = io.StringIO()
    bar = TerminalProgress(out, min_interval=0)
    bar.start("reading team", 4)
    for _ in range(4):
        bar.advance()
    drawn = out.getvalue()
    assert "reading team [" + "." * 24 + "] 0/4" in drawn
    assert "reading team [" + "#" * 12 + "." * 12 + "] 2/4" in drawn
    assert "reading team [" + "#" * 24 + "] 4/4" in drawn
    bar.done()
    assert out.getvalue().endswith("\r\x1b[2K")  # the line is wiped, nothing is left behind


def test_no_progress_off_a_terminal():
    assert isinstance(progress_for(io.StringIO()), NoProgress)


# --- ProgressBoard ---------------------------------------------------------------------------------


def _screen(output: str) -> tuple[list[str], int]:
    """What a terminal shows after ``output``: its lines and the cursor's row.

    Knows text, "\\n" (to the next line's start, as a tty's onlcr does), "\\r", ESC[2K (clear the line),
    ESC[nF (n lines up, to the start) and ESC[nA (n lines up); anything else fails the test.
    """
    lines, row, col = [""], 0, 0
    for match in re.finditer(r"\x1b\[(\d*)([A-Za-z])|\n|\r|[^\x1b\r\n]+|\x1b", output):
        token = match.group()
        if token == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif token == "\r":
            col = 0
        elif token.startswith("\x1b"):
            number, command = match.group(1), match.group(2)
            if command == "K" and number == "2":
                lines[row] = ""
            elif command in ("F", "A"):
                row -= int(number or "1")
                assert row >= 0, f"cursor moved above the top of the output: {output!r}"
                col = 0 if command == "F" else col
            else:
                raise AssertionError(f"unexpected escape sequence {token!r}")
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + token + line[col + len(token) :]
            col += len(token)
    return lines, row


def _bar(label: str, count: int, total: int) -> str:
    filled = 24 * count // total
    return f"{label} [{'#' * filled}{'.' * (24 - filled)}] {count}/{total}"


class _Writes(io.StringIO):
    """Keeps each write apart, and counts writes begun while another was still under way."""

    def __init__(self, *, slow: bool = False) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.flushes = 0
        self.overlaps = 0
        self._slow = slow
        self._writing = False

    def write(self, s: str) -> int:
        if self._writing:
            self.overlaps += 1
        self._writing = True
        try:
            if self._slow:
                time.sleep(0.0005)  # leaves time for another thread to come in, if nothing stops it
            self.writes.append(s)
            return super().write(s)
        finally:
            self._writing = False

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_board_bars_from_two_threads_end_with_both_final_lines():
    out = _Writes(slow=True)
    board = ProgressBoard(out, min_interval=0)
    both_started = threading.Barrier(2)

    def sync(label: str, total: int) -> None:
        bar = board.bar()
        bar.start(label, total)
        both_started.wait(timeout=10)
        for _ in range(total):
            bar.advance()
        bar.done()

    threads = [
        threading.Thread(target=sync, args=args) for args in [("syncing team", 40), ("reading ics", 25)]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    board.close()

    assert out.overlaps == 0  # one drawing at a time
    lines, row = _screen(out.getvalue())
    assert sorted(lines[:2]) == [
        _bar("reading ics", 25, 25) + " done",
        _bar("syncing team", 40, 40) + " done",
    ]
    assert lines[2:] == [""]
    assert row == 2  # the cursor is below the bars, the lines stay


def test_board_redraws_the_block_in_place():
    out = _Writes()
    board = ProgressBoard(out, min_interval=0)
    first, second = board.bar(), board.bar()

    first.start("syncing team", 4)
    assert out.writes == ["\x1b[2K" + _bar("syncing team", 0, 4) + "\n"]
    second.start("reading ics", 0)  # started second: the second line
    assert out.writes[1] == (
        "\x1b[1F" + "\x1b[2K" + _bar("syncing team", 0, 4) + "\n" + "\x1b[2K" + "reading ics 0\n"
    )
    first.advance(2)
    second.advance(12)
    first.advance(2)
    assert out.writes[4] == (
        "\x1b[2F" + "\x1b[2K" + _bar("syncing team", 4, 4) + "\n" + "\x1b[2K" + "reading ics 12\n"
    )
    board.close()
    assert out.flushes == len(out.writes)  # each redraw shows at once

    # every redraw goes back up over exactly the lines drawn before, and rewrites them all
    drawn = 0
    for write in out.writes:
        up = re.match(r"\x1b\[(\d+)F", write)
        assert (int(up.group(1)) if up else 0) == drawn
        drawn = write.count("\x1b[2K")
        assert write.count("\n") == drawn
    assert drawn == 2
    assert _screen(out.getvalue()) == ([_bar("syncing team", 4, 4), "reading ics 12", ""], 2)


def test_board_done_shows_done():
    out = io.StringIO()
    board = ProgressBoard(out, min_interval=0)
    known, unknown, running = board.bar(), board.bar(), board.bar()
    known.start("syncing team", 3)
    unknown.start("reading ics", 0)
    running.start("syncing mail", 5)
    known.advance(2)
    known.advance(2)  # past the total: stops at it
    unknown.advance(12)
    running.advance()
    known.done()
    unknown.done()
    assert _screen(out.getvalue())[0] == [
        _bar("syncing team", 3, 3) + " done",
        "reading ics 12 done",
        _bar("syncing mail", 1, 5),  # not done: no "done"
        "",
    ]


def test_board_draws_nothing_before_the_first_start():
    out = _Writes()
    board = ProgressBoard(out, min_interval=0)
    bar = board.bar()
    bar.advance()
    board.close()
    assert out.writes == []


def test_board_throttles_advances_but_not_start_total_or_done():
    out = _Writes()
    board = ProgressBoard(out, min_interval=3600)
    first, second = board.bar(), board.bar()
    first.start("syncing team", 3)
    assert len(out.writes) == 1
    first.advance()
    first.advance()
    assert len(out.writes) == 1  # too soon
    second.start("reading ics", 4)
    assert len(out.writes) == 2
    first.advance()  # reaches its total
    assert len(out.writes) == 3
    second.advance()
    assert len(out.writes) == 3
    first.done()
    assert len(out.writes) == 4

    board.close()  # a final redraw, with what was not drawn yet
    assert len(out.writes) == 5
    assert _screen(out.getvalue()) == (
        [_bar("syncing team", 3, 3) + " done", _bar("reading ics", 1, 4), ""],
        2,
    )
    second.advance()  # nothing is drawn after close
    second.done()
    assert len(out.writes) == 5


def test_board_bar_started_again_keeps_its_line():
    out = io.StringIO()
    board = ProgressBoard(out, min_interval=0)
    bar = board.bar()
    bar.start("syncing team", 2)
    bar.advance(2)
    bar.done()
    bar.start("syncing team again", 5)
    assert _screen(out.getvalue()) == ([_bar("syncing team again", 0, 5), ""], 1)


# --- choosing: progress_for, progress_board_for -------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CI", "INVOCATION_ID", "JOURNAL_STREAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm")


@pytest.mark.usefixtures("terminal_env")
def test_on_a_terminal_a_bar_and_a_board():
    assert isinstance(progress_for(_Tty()), TerminalProgress)
    assert isinstance(progress_board_for(_Tty()), ProgressBoard)


@pytest.mark.usefixtures("terminal_env")
def test_no_board_off_a_terminal():
    assert progress_board_for(io.StringIO()) is None


@pytest.mark.usefixtures("terminal_env")
@pytest.mark.parametrize("name", ["INVOCATION_ID", "JOURNAL_STREAM"])
def test_no_board_under_systemd_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch, name: str):
    monkeypatch.setenv(name, "8:123" if name == "JOURNAL_STREAM" else "0123456789abcdef")
    assert progress_board_for(_Tty()) is None


@pytest.mark.usefixtures("terminal_env")
@pytest.mark.parametrize(("name", "value"), [("CI", "true"), ("TERM", "dumb")])
def test_neither_in_ci_nor_on_a_dumb_terminal(monkeypatch: pytest.MonkeyPatch, name: str, value: str):
    monkeypatch.setenv(name, value)
    assert isinstance(progress_for(_Tty()), NoProgress)
    assert progress_board_for(_Tty()) is None
