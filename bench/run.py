#!/usr/bin/env python3
"""Benchmark: what a cycle of calsync costs for a whole org, next to the bound it cannot beat.

For each provider (Google Calendar, Microsoft Graph) and org size, the synthetic org of
:mod:`bench.orggen` (about 7 reports per manager, weekly and biweekly 1:1s with cancellations, declines,
moves and ended series, about 25 ordinary meetings a week, a year back and 90 days ahead) is loaded into
the tests' stateful fake of that API, which runs in a process of its own on 127.0.0.1 and answers every
request after an injected latency (default 50 ms, a round trip to a cloud API). calsync's real code then
syncs every manager's calendar twice from a fresh state file, as the daemon would: a first full sync, and
a cycle in which nothing changed. Printed per run:

- requests per calendar of both, with the API calls inside them (a Graph ``$batch`` is one request that
  holds several calls) and the sign-in requests (Google's domain-wide delegation signs in once per user,
  and its token lasts an hour);
- ``per_2500``: the first sync's requests per calendar per 2,500 events served (a calendar of fewer
  events counts as one page's worth);
- wall time of both, next to the bound: requests x latency / concurrency (the source's ``concurrency``,
  calendars synced at once), and their ratio to it;
- the first sync's answers: their size per calendar, and the CPU spent decoding their JSON, next to the
  bound (decoding holds the interpreter lock, so however fast the rest were, a sync in one process
  cannot take less wall time than that);
- CPU time of detection + cadence + report (resolving the copies, the pairs' statuses, the JSON);
- the state file's size, the time spent writing it in each cycle and its share of the cycle, and the
  peak memory (RSS) of the process that ran calsync (the fake's is not counted).

    python bench/run.py                          # 500 and 2,000 people, both providers
    python bench/run.py --people 10000 --providers microsoft
    python bench/run.py --people 500 --latency 0.02 --concurrency 16

Each (provider, size) runs in a fresh process, so that peak memory is its own. Not a test: it prints
figures, it asserts nothing (``tests/bench`` runs a tiny org through it so that it cannot rot).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' fakes live in the repository

from calsync.demo import EventSpec  # noqa: E402 - after the path is set

AS_OF = date(2026, 11, 21)
ORG_TZ = "Europe/Berlin"
CLIENT_ID = "calsync-bench"
SECRET = "bench-secret"  # noqa: S105 - the fake's
PAGE_EVENTS = 2500

COLUMNS = (
    "provider",
    "people",
    "calendars",
    "events_per_cal",
    "first_req_per_cal",
    "first_calls_per_cal",
    "first_signin_per_cal",
    "per_2500",
    "first_s",
    "first_bound_s",
    "first_ratio",
    "first_cpu_s",
    "first_server_cpu_s",
    "first_kb_per_cal",
    "first_decode_s",
    "decode_ratio",
    "again_req_per_cal",
    "again_s",
    "again_bound_s",
    "again_ratio",
    "again_cpu_s",
    "again_server_cpu_s",
    "core_cpu_s",
    "state_mb",
    "write_first_s",
    "write_again_s",
    "write_share",
    "peak_rss_mb",
    "absentees",
    "first_absence_calls_per_person",
    "again_absence_calls_per_person",
    "again_absence_http_per_person",
    "problems",
)


# -- the fake, in a process of its own ------------------------------------------------------------------


def serve(provider: str, people: int, seed: int, latency: float, conn: Connection) -> None:
    """Load the org into the provider's fake and answer the benchmark's questions until told to stop."""
    from bench.orggen import generate
    from tests.fakes.google import FakeGoogle
    from tests.fakes.google_events import load_calendar
    from tests.fakes.graph import FakeGraph
    from tests.fakes.graph_events import load_mailbox

    org = generate(people, seed, AS_OF, ORG_TZ)
    fake: Any
    # Everyone else has a calendar too (calsync asks for their out-of-office); one in 7 is away a week.
    everyone = [line.split(",")[0] for line in org.roster_csv.splitlines()[1:] if line]
    absentees = [email for email in everyone if email not in org.calendars]
    others = {email: _away(email, n) for n, email in enumerate(absentees)}
    info: dict[str, Any] = {
        "roster": org.roster_csv,
        "calendars": sorted(org.calendars),
        "absentees": len(absentees),
    }
    absence_batches: set[int] = set()  # the Graph $batch requests that carry getSchedule calls
    if provider == "google":
        fake = FakeGoogle().start()
        for owner, specs in [*org.calendars.items(), *others.items()]:
            load_calendar(fake, owner, specs, ORG_TZ)
        info.update(key=fake.service_account_info(), endpoint=fake.calendar_endpoint, ca=str(fake.ca_path))
    else:
        fake = FakeGraph().start()
        fake.add_app(CLIENT_ID, secret=SECRET)
        for owner, specs in [*org.calendars.items(), *others.items()]:
            fake.add_user(owner, owner, time_zone=ORG_TZ)  # a mailbox even without events
            load_mailbox(fake, owner, specs, ORG_TZ)
        batch = fake._batch

        def tagged(handler: Any, body: bytes, record: Any) -> Any:
            if b"getSchedule" in body:
                absence_batches.add(id(record))
            return batch(handler, body, record)

        fake._batch = tagged
        info.update(
            tenant=fake.tenant,
            authority=fake.authority_host,
            endpoint=fake.graph_endpoint,
            ca=str(fake.ca_path),
        )
    del org
    fake.latency = latency
    conn.send(info)
    while True:
        command = conn.recv()
        if command == "stats":
            conn.send({**_stats(fake.requests, absence_batches), "cpu": time.process_time()})
        elif command == "reset":
            fake.reset_log()
            conn.send(True)
        else:
            fake.stop()
            conn.send(True)
            return


def _away(email: str, n: int) -> list[EventSpec]:
    """The calendar of someone whose calendar is not read for meetings: one in 7 is away a week, as an
    Outlook out-of-office block (served as Google's out-of-office event, Graph's showAs oof)."""
    if n % 7:
        return []
    first = AS_OF - timedelta(days=10 + n % 30)
    return [
        EventSpec(
            uid=f"away-{n}@bench.test",
            summary="away",
            start=first,
            duration=timedelta(days=5),
            organizer=email,
            extra={"X-MICROSOFT-CDO-BUSYSTATUS": "OOF"},
        )
    ]


def _absence(record: Any, batches: set[int]) -> bool:
    """A request for the out-of-office of someone whose calendar is not read: Google's listing with
    ``eventTypes=outOfOffice``, Graph's getSchedule (and the $batch requests carrying those)."""
    return (
        record.query.get("eventTypes") == "outOfOffice"
        or record.path.endswith("/calendar/getSchedule")
        or id(record) in batches
    )


def _stats(records: Sequence[Any], absence_batches: set[int] | None = None) -> dict[str, int]:
    """HTTP requests, API calls (a batch's inner requests, not the batch itself) and sign-ins: those
    for the calendars read, and apart those for other people's out-of-office (``absence_*``)."""
    tagged = absence_batches or set()
    absence = [r for r in records if _absence(r, tagged)]
    records = [r for r in records if not _absence(r, tagged)]
    http = [r for r in records if not getattr(r, "batch", False)]
    signins = [r for r in http if r.path.endswith("/token")]
    batches = [r for r in http if r.path.endswith("/$batch")]
    calls = len(records) - len(batches) - len(signins)
    absence_http = [r for r in absence if not getattr(r, "batch", False)]
    absence_calls = len(absence) - sum(1 for r in absence_http if r.path.endswith("/$batch"))
    return {
        "http": len(http),
        "calls": calls,
        "signins": len(signins),
        "batches": len(batches),
        "absence_http": len(absence_http),
        "absence_calls": absence_calls,
    }


# -- calsync, measured -----------------------------------------------------------------------------------


class WriteTimer:
    """Times every write of the state file (each replaces the whole file)."""

    def __init__(self) -> None:
        from calsync.store import AtomicJSONStorage

        self.seconds = 0.0
        self.count = 0
        real = AtomicJSONStorage.write

        def timed(storage: AtomicJSONStorage, data: dict[str, dict[str, Any]]) -> None:
            start = time.perf_counter()
            real(storage, data)
            self.seconds += time.perf_counter() - start
            self.count += 1

        AtomicJSONStorage.write = timed  # type: ignore[method-assign,assignment]

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


class EventCounter:
    """Counts the events a full read served per calendar (Google's resources, Graph's instances)."""

    def __init__(self, provider: str) -> None:
        self.per_calendar: dict[str, int] = {}
        if provider == "google":
            from calsync.sources.google import CalendarClient

            real_list = CalendarClient.list_events

            def list_events(client: CalendarClient, calendar: str, token: str | None) -> Any:
                answer = real_list(client, calendar, token)
                if token is None:
                    self.per_calendar[calendar] = len(answer[0])
                return answer

            CalendarClient.list_events = list_events  # type: ignore[method-assign,assignment]
        else:
            from calsync.sources.microsoft import MicrosoftSource

            real_read = MicrosoftSource._full_read

            def full_read(source: MicrosoftSource, mailbox: str, listed: Any) -> Any:
                rounds, masters = real_read(source, mailbox, listed)
                # an instance that spans two parts of the span is listed by both: counted once
                self.per_calendar[mailbox] = len({str(i.get("id")) for items, _ in rounds for i in items})
                return rounds, masters

            MicrosoftSource._full_read = full_read  # type: ignore[method-assign,assignment]


class DecodeTimer:
    """Counts the bytes of the API's answers and the CPU spent decoding their JSON (Google's client
    library decodes them in ``JsonModel.deserialize``; the Graph source in ``_json``). Decoding holds
    the interpreter lock, so one process decodes one answer at a time: however the rest of a sync were
    done, its wall time cannot fall below the decoding's CPU time."""

    def __init__(self, provider: str) -> None:
        self.seconds = 0.0
        self.bytes = 0
        self._lock = threading.Lock()
        if provider == "google":
            from googleapiclient.model import JsonModel

            real_deserialize = JsonModel.deserialize

            def deserialize(model: JsonModel, content: Any) -> Any:
                with self._timed(len(content)):
                    return real_deserialize(model, content)

            JsonModel.deserialize = deserialize
        else:
            from calsync.sources import microsoft

            real_json = microsoft._json

            def decode(response: Any) -> dict[str, Any]:
                with self._timed(len(response.content)):  # read before the clock starts
                    return real_json(response)

            microsoft._json = decode

    @contextlib.contextmanager
    def _timed(self, size: int) -> Iterator[None]:
        start = time.thread_time()
        try:
            yield
        finally:
            spent = time.thread_time() - start
            with self._lock:
                self.seconds += spent
                self.bytes += size

    def take(self) -> tuple[float, int]:
        with self._lock:
            taken = self.seconds, self.bytes
            self.seconds, self.bytes = 0.0, 0
        return taken


def write_config(root: Path, provider: str, info: dict[str, Any], concurrency: int) -> Path:
    (root / "org.csv").write_text(info["roster"], encoding="utf-8")
    if provider == "google":
        key = root / "service-account.json"
        key.write_text(json.dumps(info["key"]), encoding="utf-8")
        key.chmod(0o600)
        source = f"""type = "google"
name = "workspace"
service_account_key = "{key}"
endpoint = "{info["endpoint"]}"
"""
    else:
        secret = root / "secret"
        secret.write_text(SECRET, encoding="utf-8")
        secret.chmod(0o600)
        source = f"""type = "microsoft"
name = "m365"
tenant = "{info["tenant"]}"
client_id = "{CLIENT_ID}"
client_secret_file = "{secret}"
authority_host = "{info["authority"]}"
graph_endpoint = "{info["endpoint"]}"
"""
    config = root / "calsync.toml"
    config.write_text(
        f"""[org]
domains = ["acme.test"]
roster = "org.csv"
timezone = "{ORG_TZ}"
[[sources]]
{source}ca_bundle = "{info["ca"]}"
concurrency = {concurrency}
timeout_seconds = 60
[state]
path = "state/calsync-state.json"
""",
        encoding="utf-8",
    )
    return config


def measure(provider: str, people: int, seed: int, latency: float, concurrency: int) -> dict[str, Any]:
    """One (provider, size): the fake in its own process, calsync in this one."""
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    fake = context.Process(target=serve, args=(provider, people, seed, latency, theirs), daemon=True)
    fake.start()
    try:
        info = mine.recv()
        return _measure(provider, people, latency, concurrency, info, lambda c: _ask(mine, c))
    finally:
        mine.send("stop")
        fake.join(timeout=30)


def _ask(conn: Connection, command: str) -> Any:
    conn.send(command)
    return conn.recv()


def _measure(
    provider: str,
    people: int,
    latency: float,
    concurrency: int,
    info: dict[str, Any],
    ask: Callable[[str], Any],
) -> dict[str, Any]:
    from calsync.config import load_config
    from calsync.pipeline import Synced, SyncOptions, load_org, make_clock, report_of, sync_all, sync_window
    from calsync.report import render_json
    from calsync.sources.base import ReadCache
    from calsync.store import StateStore

    writes = WriteTimer()
    events = EventCounter(provider)
    decoding = DecodeTimer(provider)
    with tempfile.TemporaryDirectory(prefix="calsync-bench-") as tmp:
        config = load_config(write_config(Path(tmp), provider, info, concurrency))
        assert config.state is not None
        org, org_problems = load_org(config)
        clock = make_clock(config, AS_OF)
        window = sync_window(clock)
        options = SyncOptions(clients={}, reads=ReadCache())  # kept between cycles, as the daemon does
        store = StateStore(config.state.path)

        def cycle() -> tuple[Synced, dict[str, float]]:
            """One sync of every calendar: its result, and what it cost (the fake's requests too)."""
            ask("reset")
            server_cpu = ask("stats")["cpu"]
            start, cpu = time.perf_counter(), time.process_time()
            synced = sync_all(config, org, org_problems, store, window, options)
            cost = {"s": time.perf_counter() - start, "cpu": time.process_time() - cpu}
            stats = ask("stats")
            decode, received = decoding.take()
            return synced, {
                **stats,
                **cost,
                "server_cpu": stats["cpu"] - server_cpu,
                "write": writes.take(),
                "decode": decode,
                "received": received,
            }

        try:
            synced, first = cycle()
            cpu = time.process_time()
            render_json(report_of(config, synced, clock))
            core_cpu = time.process_time() - cpu
            _, again = cycle()
        finally:
            store.close()
        state_bytes = config.state.path.stat().st_size
    calendars = len(info["calendars"])
    read = set(info["calendars"])
    served = {c: n for c, n in events.per_calendar.items() if c in read}  # not absentees' listings
    pages = sum(max(1, -(-n // PAGE_EVENTS)) for n in served.values()) or calendars

    def bound(stats: dict[str, float]) -> float:
        return (stats["http"] + stats["absence_http"]) * latency / concurrency

    return {
        "provider": provider,
        "people": people,
        "calendars": calendars,
        "events_per_cal": sum(served.values()) / max(1, len(served)),
        # the calendars' own requests, and one sign-in per person (as every person signs in once)
        "first_req_per_cal": (first["http"] - first["signins"]) / calendars
        + first["signins"] / (calendars + info["absentees"]),
        "first_calls_per_cal": first["calls"] / calendars,
        # everyone calsync acts as: a calendar's owner, or an absentee (Google: one sign-in each)
        "first_signin_per_cal": first["signins"] / (calendars + info["absentees"]),
        "per_2500": (first["http"] - first["signins"]) / pages,
        "first_s": first["s"],
        "first_bound_s": bound(first),
        "first_ratio": first["s"] / bound(first) if latency else 0.0,
        "first_cpu_s": first["cpu"],
        "first_server_cpu_s": first["server_cpu"],
        "first_kb_per_cal": first["received"] / 1000 / calendars,
        "first_decode_s": first["decode"],
        "decode_ratio": first["decode"] / bound(first) if latency else 0.0,
        "again_req_per_cal": (again["http"] - again["signins"]) / calendars
        + again["signins"] / (calendars + info["absentees"]),
        "again_s": again["s"],
        "again_bound_s": bound(again),
        "again_ratio": again["s"] / bound(again) if latency else 0.0,
        "again_cpu_s": again["cpu"],
        "again_server_cpu_s": again["server_cpu"],
        "core_cpu_s": core_cpu,
        "state_mb": state_bytes / 1e6,
        "write_first_s": first["write"],
        "write_again_s": again["write"],
        "write_share": again["write"] / again["s"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "absentees": info["absentees"],
        "first_absence_calls_per_person": first["absence_calls"] / max(1, info["absentees"]),
        "again_absence_calls_per_person": again["absence_calls"] / max(1, info["absentees"]),
        "again_absence_http_per_person": again["absence_http"] / max(1, info["absentees"]),
        "problems": len(synced.problems),
        "unread": [p.message for p in synced.problems][:3],
    }


# -- the table ---------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    widths = {c: max(len(c), *(len(_cell(r.get(c, ""))) for r in rows)) for c in COLUMNS}
    print("  ".join(c.rjust(widths[c]) for c in COLUMNS))
    for row in rows:
        print("  ".join(_cell(row.get(c, "")).rjust(widths[c]) for c in COLUMNS))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="What a calsync cycle costs for a synthetic org served by the Google and Graph fakes "
        "with an injected latency, next to the bound requests x latency / concurrency.",
        epilog="Each run prints one row; --json prints the rows as JSON lines instead.",
    )
    p.add_argument("--people", type=int, nargs="+", default=[500, 2000], help="org sizes (default: 500 2000)")
    p.add_argument(
        "--providers",
        nargs="+",
        choices=("google", "microsoft"),
        default=["google", "microsoft"],
        help="which fakes (default: both)",
    )
    p.add_argument("--latency", type=float, default=0.05, help="seconds per request (default: 0.05)")
    p.add_argument(
        "--concurrency", type=int, default=8, help="calendars synced at once (the sources' default: 8)"
    )
    p.add_argument("--seed", type=int, default=1, help="the synthetic org's seed (default: 1)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.add_argument("--one", nargs=2, metavar=("PROVIDER", "PEOPLE"), help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.one:  # a child: one run, one JSON line
        provider, people = args.one[0], int(args.one[1])
        row = measure(provider, people, args.seed, args.latency, args.concurrency)
        print(json.dumps(row))
        return 0
    rows: list[dict[str, Any]] = []
    for people in args.people:
        for provider in args.providers:
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--one",
                provider,
                str(people),
                "--seed",
                str(args.seed),
                "--latency",
                str(args.latency),
                "--concurrency",
                str(args.concurrency),
            ]
            result = subprocess.run(  # noqa: S603 - this script, with the arguments it was given
                command, capture_output=True, text=True, check=False, env=os.environ
            )
            if result.returncode != 0:
                sys.stderr.write(result.stderr)
                print(f"{provider} {people}: failed (exit {result.returncode})", file=sys.stderr)
                return 1
            row = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if not args.json:
        print_table(rows)
        print(
            "\nreq: HTTP requests to the API (a $batch counts once; calls: the API calls inside them); "
            "signin: token requests per person signed in as (calendars and absentees);\n"
            "absentees: the people in a pair whose calendars are not read (reports), asked only for their "
            "out-of-office; absence_calls / _http: those requests per absentee (not in the req columns);\n"
            "per_2500: first sync's API requests per calendar per 2,500 events "
            "served; bound: requests x latency / concurrency;\ncpu: calsync's CPU time in that sync; "
            "server_cpu: the fake's; kb: the API's answers received;\ndecode: CPU decoding their JSON "
            "(one at a time: the least wall time any sync in one process could take), decode_ratio: its "
            "ratio to the bound;\ncore_cpu: detection + cadence + report (CPU);\nwrite: time writing the "
            "state file in that cycle; write_share: of the no-change cycle. bound counts the absentees' "
            "requests too."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
