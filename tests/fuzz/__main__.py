"""``python -m tests.fuzz --cases 10000 --seed N``: a long fuzz campaign (see docs/testing.md, "Fuzzing")."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from tests.fuzz.mutate import (
    CASE_TIMEOUT,
    Interrupted,
    Outcome,
    Summary,
    campaign,
    outcome_from_json,
    outcome_to_json,
)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def summarize(files: list[Path]) -> Summary:
    """One summary of the outcomes in JSON Lines files written by ``--json`` (runs of the same seed)."""
    seeds, outcomes, seconds = set(), {}, 0.0
    for path in files:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "campaign" in row:
                seeds.add(row["campaign"]["seed"])
                seconds += row["campaign"].get("seconds", 0.0)
            else:
                outcome = outcome_from_json(row)
                outcomes[outcome.number] = outcome
    if len(seeds) != 1:
        raise SystemExit(f"--summarize: the files hold {len(seeds)} seeds ({sorted(seeds)}), not one")
    return Summary(seeds.pop(), sorted(outcomes.values(), key=lambda o: o.number), seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--seed", type=int, default=int(time.time()), help="default: the current time")
    parser.add_argument("--cases", type=int, default=300, help="cases 0 .. N-1 (default 300)")
    parser.add_argument("--first", type=int, default=0, help="start at this case number")
    parser.add_argument("--case", type=int, action="append", help="run just this case (repeatable)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=CASE_TIMEOUT, help="seconds per command")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep every case's files")
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="append every outcome to FILE as it ends (JSON Lines), then a line with the campaign's figures",
    )
    parser.add_argument("--deadline", type=float, metavar="SECONDS", help="start no case after SECONDS")
    parser.add_argument("--quiet", action="store_true", help="no line per passing case")
    parser.add_argument(
        "--summarize", type=Path, nargs="+", metavar="FILE", help="only summarise earlier --json files"
    )
    args = parser.parse_args(argv)
    if args.summarize:
        summary = summarize(args.summarize)
        print(summary.text())
        return 1 if summary.failures else 0
    numbers = args.case or range(args.first, args.first + args.cases)
    done = 0
    log = args.json.open("a") if args.json is not None else None

    def progress(outcome: Outcome) -> None:
        nonlocal done
        done += 1
        if log is not None:
            log.write(json.dumps(outcome_to_json(outcome)) + "\n")
            log.flush()
        if outcome.problems:
            print(outcome.describe(), flush=True)
        elif not args.quiet:
            exits = " ".join(f"{c.name}={c.exit}" for c in outcome.commands)
            print(
                f"[{done}] case {outcome.number} {outcome.kind}: {exits} {outcome.seconds:.1f}s "
                f"{outcome.rss_mb:.0f}MB {outcome.what[:90]!r}",
                flush=True,
            )

    signal.signal(signal.SIGTERM, _interrupt)  # `timeout`, systemd, kill: summarise what was run
    print(f"calsync fuzz: seed {args.seed}", flush=True)
    summary = campaign(
        args.seed,
        numbers,
        workers=args.workers,
        timeout=args.timeout,
        work=args.keep,
        keep=args.keep is not None,
        progress=progress,
        deadline=args.deadline,
    )
    if log is not None:
        figures = {"seed": summary.seed, "cases": len(summary.outcomes), "seconds": round(summary.seconds, 1)}
        log.write(json.dumps({"campaign": {**figures, "interrupted": summary.interrupted}}) + "\n")
        log.close()
    print(summary.text(), flush=True)
    if summary.interrupted:
        return 130
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
