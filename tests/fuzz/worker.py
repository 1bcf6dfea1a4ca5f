"""``python -m tests.fuzz.worker SEED WORK TIMEOUT [--keep]``: run the case numbers read from stdin, one
per line, against the baselines that :func:`tests.fuzz.mutate.campaign` saved in WORK, and answer each
with its outcome as one JSON line. The harness supervises it (``mutate._Worker``)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from tests.fuzz.mutate import load_baselines, outcome_to_json, run_case

STALL_VARIABLE = "CALSYNC_FUZZ_TEST_STALL"


def main(argv: list[str]) -> int:
    seed, work, timeout = int(argv[0]), Path(argv[1]), float(argv[2])
    keep = "--keep" in argv[3:]
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else printed goes to the log, never into the answers
    base = load_baselines(work)
    stall = os.environ.get(STALL_VARIABLE)  # the harness's own test: a case that never ends
    for line in sys.stdin:
        if line.strip() == stall:
            time.sleep(3600)
        outcome = run_case(seed, int(line), base, work, timeout, keep)
        answers.write(json.dumps(outcome_to_json(outcome)) + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
