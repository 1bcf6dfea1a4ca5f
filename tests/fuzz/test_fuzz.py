"""The bounded fuzz run of CI: a fixed seed, so that every run tries the same cases (see
docs/testing.md, "Fuzzing"). ``CALSYNC_FUZZ_SEED`` and ``CALSYNC_FUZZ_CASES`` change them; each
failure names its seed and case and the command that re-runs it alone."""

from __future__ import annotations

import os
from pathlib import Path

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
