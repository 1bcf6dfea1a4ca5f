#!/usr/bin/env python3
"""Benchmark: `calsync report` over ICS exports of a synthetic org.

Generates N people (about 7 reports per manager, several levels), one .ics file per manager holding
weekly or biweekly 1:1s with each report (about 10% cancelled, 5% declined, 5% moved, some ended
series, some pairs without any 1:1) plus a weekly team meeting, a year back and 90 days ahead. Then
reads it with calsync's real code and prints where the time goes.

    python bench/ics_report.py --people 500 2000

Deterministic for a seed. Not a test: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar

from calsync.agenda import environment
from calsync.cadence import Clock
from calsync.demo import Attendee, EventSpec, ics_event, override
from calsync.detect import resolve
from calsync.digest.compose import build_message, compose, leaders, render
from calsync.digest.headers import mailbox
from calsync.org import load_roster
from calsync.report import Policy, build_report, render_json
from calsync.sources.base import Window
from calsync.sources.ics import IcsSource

BERLIN = ZoneInfo("Europe/Berlin")
# What real exporters write: a compact VTIMEZONE with yearly rules.
VTIMEZONE = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
"""


def org_specs(people: int, as_of: date, seed: int) -> tuple[str, dict[str, list[EventSpec]]]:
    """The synthetic org: its roster CSV, and each manager's calendar as event specs."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    emails = [f"p{i:05d}@acme.test" for i in range(people)]
    managers: dict[str, str] = {}
    for i, email in enumerate(emails[1:], start=1):
        managers[email] = emails[(i - 1) // 7]
    roster = "email,name,manager_email\n" + "".join(
        f"{e},Person {e[1:6]},{managers.get(e, '')}\n" for e in emails
    )
    reports: dict[str, list[str]] = {}
    for report, manager in managers.items():
        reports.setdefault(manager, []).append(report)
    calendars: dict[str, list[EventSpec]] = {}
    for manager, team in reports.items():
        specs: list[EventSpec] = []
        for report in team:
            if rng.random() < 0.05:
                continue  # no 1:1 at all
            interval = rng.choice((1, 2))
            first = as_of - timedelta(days=365 - rng.randrange(14))
            start = datetime.combine(first, datetime.min.time(), tzinfo=BERLIN).replace(
                hour=rng.randrange(8, 17)
            )
            rrule: dict[str, object] = {"freq": "weekly", "interval": interval}
            if rng.random() < 0.05:
                rrule["until"] = (start + timedelta(days=rng.randrange(200, 330))).astimezone(UTC)
            count = 52 // interval + 13
            until = rrule.get("until")
            occurrences = [
                o
                for o in (start + timedelta(weeks=interval * k) for k in range(count))
                if not isinstance(until, datetime) or o <= until
            ]
            exdates = [o for o in occurrences if rng.random() < 0.10]
            uid = f"{manager}-{report}"
            pair = [Attendee(manager), Attendee(report)]
            series = EventSpec(
                uid=uid,
                summary="1:1",
                start=start,
                organizer=manager,
                attendees=pair,
                rrule=rrule,
                exdates=exdates,
            )
            specs.append(series)
            for o in occurrences:
                if o in exdates:
                    continue
                roll = rng.random()
                if roll < 0.05:
                    declined = [Attendee(manager), Attendee(report, partstat="DECLINED")]
                    specs.append(override(series, o, attendees=declined, sequence=1))
                elif roll < 0.10:
                    specs.append(override(series, o, start=o + timedelta(days=1), sequence=1))
        team_start = datetime.combine(as_of - timedelta(days=365), datetime.min.time(), tzinfo=BERLIN)
        specs.append(
            EventSpec(
                uid=f"team-{manager}",
                summary="Team",
                start=team_start.replace(hour=9),
                organizer=manager,
                attendees=[Attendee(r) for r in [manager, *team]],
                rrule={"freq": "weekly"},
            )
        )
        calendars[manager] = specs
    return roster, calendars


def build_org(people: int, as_of: date, root: Path, seed: int) -> tuple[int, int]:
    """Write roster + calendars; returns (files, events)."""
    roster, calendars = org_specs(people, as_of, seed)
    (root / "org.csv").write_text(roster)
    cal_dir = root / "calendars"
    cal_dir.mkdir()
    events = 0
    for manager, specs in calendars.items():
        calendar = icalendar.Calendar()
        calendar.add("prodid", "-//calsync//bench//EN")
        calendar.add("version", "2.0")
        calendar.add_component(
            icalendar.Calendar.from_ical(f"BEGIN:VCALENDAR\n{VTIMEZONE}END:VCALENDAR\n").subcomponents[0]
        )
        for spec in specs:
            calendar.add_component(ics_event(spec))
        events += len(specs)
        (cal_dir / f"{manager.split('@')[0]}.ics").write_bytes(calendar.to_ical())
    return len(calendars), events


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(people: int, seed: int) -> dict[str, float]:
    as_of = date(2026, 11, 21)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files, events = build_org(people, as_of, root, seed)
        clock = Clock(datetime.combine(as_of, datetime.min.time(), tzinfo=UTC), 90, 90)
        window = Window(clock.as_of - timedelta(days=97), clock.horizon + timedelta(days=7))
        source = IcsSource(str(root / "calendars"), name="bench", default_tz=UTC, label_root=root)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = source.fetch(window)
        read_wall = time.perf_counter() - wall0
        org, _ = load_roster(root / "org.csv", ["acme.test"])
        cpu1 = time.process_time()
        report = build_report(org, resolve(result.calendars), clock, Policy())
        text = render_json(report)
        core_cpu = time.process_time() - cpu1
        total_wall = time.perf_counter() - wall0
        del cpu0
        # Every leader's digest, composed, rendered and made a MIME message (what --send delivers).
        cpu2 = time.process_time()
        env = environment()
        sizes = []
        for leader in leaders(org):
            digest = compose(report, org, leader, as_of, cadence_days=14, grace_days=3)
            message = build_message(
                digest, render(digest, env), sender=mailbox("c@acme.test"), reply_to=None, when=clock.as_of
            )
            sizes.append(len(bytes(message)))
        digest_cpu = time.process_time() - cpu2
    occurrences = sum(len(c.occurrences) for c in result.calendars)
    return {
        "people": people,
        "files": files,
        "events": events,
        "occurrences": occurrences,
        "pairs": len(report.pairs),
        "problems": len(result.problems),
        "read_s": read_wall,
        "ms_per_file": 1000 * read_wall / max(files, 1),
        "core_cpu_s": core_cpu,
        "total_s": total_wall,
        "json_kb": len(text) / 1024,
        "digests": len(sizes),
        "digest_cpu_s": digest_cpu,
        "max_digest_kb": max(sizes, default=0) / 1024,
        "peak_rss_mb": peak_rss_mb(),
    }


def sizes_parser(description: str | None, default: int) -> argparse.ArgumentParser:
    """The command line both benchmarks take: org sizes and a seed."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--people", type=int, nargs="+", default=[default], help=f"org sizes (default: {default})"
    )
    parser.add_argument("--seed", type=int, default=1)
    return parser


def print_table(columns: Sequence[str], rows: Iterable[dict[str, Any]], width: int = 11) -> None:
    """A header, then each row as it is measured (floats with two decimals)."""
    print("  ".join(f"{c:>{width}}" for c in columns))
    for row in rows:
        cells = (
            f"{row[c]:>{width}.2f}" if isinstance(row[c], float) else f"{row[c]:>{width}}" for c in columns
        )
        print("  ".join(cells))
        sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = sizes_parser(__doc__, 500).parse_args(argv)
    columns = (
        "people",
        "files",
        "events",
        "occurrences",
        "pairs",
        "problems",
        "read_s",
        "ms_per_file",
        "core_cpu_s",
        "total_s",
        "json_kb",
        "digests",
        "digest_cpu_s",
        "max_digest_kb",
        "peak_rss_mb",
    )
    print_table(columns, (run(people, args.seed) for people in args.people))
    print("read_s: parse + expand all files (wall);")
    print("core_cpu_s: resolve + detect + cadence + report + JSON (CPU);")
    print("digest_cpu_s: every leader's digest composed, rendered and made a message (CPU);")
    print("peak_rss_mb: of this process so far (grows across sizes).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
