"""A tiny run of each benchmark, so that they cannot rot (no timing is asserted)."""

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


def test_graph_benchmark_smoke():
    values = first_row("graph_sync.py", 15)
    assert values["people"] == "15" and values["mailboxes"] == "2"
    assert int(values["problems"]) == 0
    assert float(values["again_req_per_mbx"]) == 1.0  # nothing changed: one request per mailbox
