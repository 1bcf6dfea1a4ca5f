#!/usr/bin/env python3
"""Benchmark: the Microsoft 365 source syncing a synthetic org from the Graph fake.

The org of ``bench/ics_report.py`` (about 7 reports per manager, weekly or biweekly 1:1s with
cancellations, declines and moves, a weekly team meeting) is loaded into the stateful Graph fake of the
tests (https on 127.0.0.1, one mailbox per manager), then read with calsync's real client twice: a first
full sync, and a second run in which nothing changed. Prints requests per mailbox, wall time, the size
of the state file and peak memory. The fake runs in this process, so wall times include serving.

    python bench/graph_sync.py --people 100 500

Not a test: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' fakes live in the repository

from bench.ics_report import org_specs, peak_rss_mb, print_table, sizes_parser
from calsync.cadence import Clock
from calsync.config import MicrosoftSourceConfig
from calsync.pipeline import sync_window
from calsync.sources.microsoft import MicrosoftSource, graph_client
from calsync.store import AtomicJSONStorage, StateStore
from tests.fakes.graph import FakeGraph
from tests.fakes.graph_events import load_mailbox

CLIENT_ID = "calsync-bench"
SECRET = "bench-secret"  # noqa: S105 - the fake's


class _Writes:
    """Counts the state file's writes (each one replaces the whole file)."""

    def __init__(self) -> None:
        self.count = 0
        real = AtomicJSONStorage.write

        def counted(storage: AtomicJSONStorage, data: dict[str, dict[str, Any]]) -> None:
            self.count += 1
            real(storage, data)

        AtomicJSONStorage.write = counted  # type: ignore[method-assign,assignment]


WRITES = _Writes()


def run(people: int, seed: int) -> dict[str, float]:
    as_of = date(2026, 11, 21)
    _, calendars = org_specs(people, as_of, seed)
    with tempfile.TemporaryDirectory() as tmp, FakeGraph() as fake:
        root = Path(tmp)
        fake.add_app(CLIENT_ID, secret=SECRET)
        for manager, specs in calendars.items():
            load_mailbox(fake, manager, specs, "Europe/Berlin")
        (root / "secret").write_text(SECRET)
        config = MicrosoftSourceConfig(
            name="bench",
            tenant=fake.tenant,
            client_id=CLIENT_ID,
            client_secret_file=root / "secret",
            authority_host=fake.authority_host,
            graph_endpoint=fake.graph_endpoint,
            ca_bundle=fake.ca_path,
        )
        clock = Clock(datetime.combine(as_of, clock_time(0), tzinfo=UTC), 90, 90)
        window = sync_window(clock)
        mailboxes = sorted(calendars)
        row: dict[str, float] = {"people": people, "mailboxes": len(mailboxes)}
        for run_name in ("first", "again"):
            store = StateStore(root / "state.json")
            fake.reset_log()
            writes = WRITES.count
            start = time.perf_counter()
            try:
                source = MicrosoftSource(
                    "bench", mailboxes, graph_client(config), store, default_tz=ZoneInfo("Europe/Berlin")
                )
                with store.batch():  # as every sync does (calsync.pipeline.sync_all)
                    result = source.fetch(window)
            finally:
                store.close()
            row[f"{run_name}_writes"] = WRITES.count - writes
            row[f"{run_name}_s"] = time.perf_counter() - start
            graph = [r for r in fake.requests if r.path.startswith("/v1.0/")]
            row[f"{run_name}_req_per_mbx"] = len(graph) / len(mailboxes)
            if run_name == "first":
                row["masters"] = sum(1 for r in graph if "/events/" in r.path)
                row["occurrences"] = sum(len(c.occurrences) for c in result.calendars)
                row["problems"] = len(result.problems)
        row["state_kb"] = (root / "state.json").stat().st_size / 1024
        row["peak_rss_mb"] = peak_rss_mb()
    return row


def main(argv: Sequence[str] | None = None) -> int:
    args = sizes_parser(__doc__, 100).parse_args(argv)
    columns = (
        "people",
        "mailboxes",
        "occurrences",
        "problems",
        "masters",
        "first_req_per_mbx",
        "first_s",
        "first_writes",
        "again_req_per_mbx",
        "again_s",
        "again_writes",
        "state_kb",
        "peak_rss_mb",
    )
    print_table(columns, (run(people, args.seed) for people in args.people), width=17)
    print(
        "first/again: a full sync, then a run with no changes (requests to Graph per mailbox, wall);\n"
        "masters: series masters fetched in the first run; writes: of the whole state file (one per sync);\n"
        "peak_rss_mb: of this process, fake included."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
