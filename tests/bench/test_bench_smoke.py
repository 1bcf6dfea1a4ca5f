"""A tiny run of each benchmark, so that they cannot rot (no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def first_row(script: str, people: int) -> dict[str, str]:
    """Run ``bench/SCRIPT --people N`` and return its first row of figures by column name."""
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--people", str(people)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()[:2]
    return dict(zip(header.split(), row.split(), strict=True))


def test_ics_benchmark_smoke():
    values = first_row("ics_report.py", 30)
    assert values["people"] == "30"
    assert int(values["pairs"]) == 29  # every direct pair of a 30-person tree is reported
    assert int(values["problems"]) == 0
    assert int(values["occurrences"]) > 100
    assert int(values["digests"]) > 1  # one per manager


def test_cycle_benchmark_smoke():
    """bench/run.py on a 40-person org, both providers, without the injected latency."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--people", "40", "--latency", "0", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = {row["provider"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == {"google", "microsoft"}
    for row in rows.values():
        assert row["people"] == 40 and row["calendars"] >= 4  # about 7 reports per manager
        assert row["problems"] == 0, row["unread"]
        assert row["again_req_per_cal"] == 1.0  # nothing changed: one request per calendar
        assert row["events_per_cal"] > 100  # a full calendar was served and counted
        assert row["state_mb"] > 0 and row["peak_rss_mb"] > 0 and row["core_cpu_s"] > 0
        # the answers' bytes and their decoding were seen, and decoding is part of calsync's CPU
        assert row["first_kb_per_cal"] > 100
        assert 0 < row["first_decode_s"] < row["first_cpu_s"]
    # Google: one sign-in (domain-wide delegation) and one listing per calendar
    assert rows["google"]["first_req_per_cal"] == 2.0 and rows["google"]["first_signin_per_cal"] == 1.0
    # Graph: the view's first page and the series masters' listing in one $batch per mailbox
    assert rows["microsoft"]["first_calls_per_cal"] >= 2.0
    assert rows["microsoft"]["first_req_per_cal"] < rows["microsoft"]["first_calls_per_cal"]
    # the reports' out-of-office: Google one incremental listing each, Graph's getSchedule 20 at a time
    # over the window's spans, several in one $batch
    for row in rows.values():
        assert row["absentees"] > 0
    assert rows["google"]["again_absence_calls_per_person"] == 1.0
    assert 0 < rows["microsoft"]["again_absence_calls_per_person"] <= 0.25
    assert (
        rows["microsoft"]["again_absence_http_per_person"]
        < rows["microsoft"]["again_absence_calls_per_person"]
    )
