"""A tiny run of the benchmark, so that it cannot rot (no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ics_report.py"


def test_ics_benchmark_smoke():
    result = subprocess.run(
        [sys.executable, str(BENCH), "--people", "30"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()[:2]
    values = dict(zip(header.split(), row.split(), strict=True))
    assert values["people"] == "30"
    assert int(values["pairs"]) == 29  # every direct pair of a 30-person tree is reported
    assert int(values["problems"]) == 0
    assert int(values["occurrences"]) > 100


def test_graph_benchmark_smoke():
    script = BENCH.parent / "graph_sync.py"
    result = subprocess.run(
        [sys.executable, str(script), "--people", "15"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()[:2]
    values = dict(zip(header.split(), row.split(), strict=True))
    assert values["people"] == "15" and values["mailboxes"] == "2"
    assert int(values["problems"]) == 0
    assert float(values["again_req_per_mbx"]) == 1.0  # nothing changed: one request per mailbox
