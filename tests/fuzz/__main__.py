"""``python -m tests.fuzz --cases 10000 --seed N``: a long fuzz campaign (see docs/testing.md, "Fuzzing")."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tests.fuzz.mutate import CASE_TIMEOUT, Outcome, campaign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--seed", type=int, default=int(time.time()), help="default: the current time")
    parser.add_argument("--cases", type=int, default=300, help="cases 0 .. N-1 (default 300)")
    parser.add_argument("--first", type=int, default=0, help="start at this case number")
    parser.add_argument("--case", type=int, action="append", help="run just this case (repeatable)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=CASE_TIMEOUT, help="seconds per command")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep every case's files")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every outcome to FILE")
    parser.add_argument("--deadline", type=float, metavar="SECONDS", help="start no case after SECONDS")
    parser.add_argument("--quiet", action="store_true", help="no line per case")
    args = parser.parse_args(argv)
    numbers = args.case or range(args.first, args.first + args.cases)
    done = 0

    def progress(outcome: Outcome) -> None:
        nonlocal done
        done += 1
        if outcome.problems:
            print(outcome.describe(), flush=True)
        elif not args.quiet:
            exits = " ".join(f"{c.name}={c.exit}" for c in outcome.commands)
            print(
                f"[{done}] case {outcome.number} {outcome.kind}: {exits} {outcome.seconds:.1f}s "
                f"{outcome.rss_mb:.0f}MB {outcome.what[:90]!r}",
                flush=True,
            )

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
    print(summary.text())
    if args.json is not None:
        rows = [
            {
                "case": o.number,
                "kind": o.kind,
                "what": o.what,
                "problems": o.problems,
                "skipped": o.skipped,
                "commands": [
                    {
                        "name": c.name,
                        "exit": c.exit,
                        "seconds": round(c.seconds, 2),
                        "rss_mb": round(c.rss_mb, 1),
                    }
                    for c in o.commands
                ],
            }
            for o in summary.outcomes
        ]
        args.json.write_text(json.dumps({"seed": args.seed, "outcomes": rows}, indent=1))
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
