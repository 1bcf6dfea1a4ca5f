import io

from calsync.progress import NoProgress, TerminalProgress, progress_for


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
