"""The bounded fuzz run of CI: a fixed seed, so that every run tries the same cases (see
docs/testing.md, "Fuzzing"). ``CALSYNC_FUZZ_SEED`` and ``CALSYNC_FUZZ_CASES`` change them; each
failure names its seed and case and the command that re-runs it alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz.mutate import KINDS, campaign

SEED = int(os.environ.get("CALSYNC_FUZZ_SEED", "20261121"))
#: About 60 s on 2 cores: a case is one to three runs of the command line (about 0.6 to 2 s each).
CASES = int(os.environ.get("CALSYNC_FUZZ_CASES", "100"))
TIMEOUT = 20.0  # seconds per command


def test_fuzzed_inputs_end_cleanly_and_leave_the_other_pairs_alone(tmp_path: Path) -> None:
    summary = campaign(SEED, range(CASES), workers=2, timeout=TIMEOUT, work=tmp_path)
    assert len(summary.outcomes) == CASES
    assert {o.kind for o in summary.outcomes} == set(KINDS)
    assert not summary.failures, summary.text()


def test_a_stalled_case_is_killed_and_reported_and_the_campaign_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fuzz.worker import STALL_VARIABLE

    monkeypatch.setenv(STALL_VARIABLE, "2")
    seen: list[int] = []
    summary = campaign(
        SEED,
        [2, 1, 4],
        workers=1,
        timeout=TIMEOUT,
        work=tmp_path,
        limit=5,
        progress=lambda o: seen.append(o.number),
    )
    assert sorted(seen) == [1, 2, 4]
    assert [o.number for o in summary.failures] == [2]
    assert "stalled past 5s" in summary.failures[0].problems[0]
    assert "re-run: python -m tests.fuzz --seed" in summary.text()
    assert all(o.commands for o in summary.outcomes)
