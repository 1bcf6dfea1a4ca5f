"""bench/orggen.py: the synthetic org is deterministic, shaped as the issue asks, and loads everywhere.

Proportions are checked on a 500-person org, counted again from the specs (the series expanded with
dateutil), not taken from the generator's own stats, which must agree with them.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import takewhile
from typing import Literal
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule

from bench.orggen import STAT_NAMES, SyntheticOrg, generate, main
from calsync.demo import EventSpec, ics_calendar, override
from calsync.org import parse_roster
from tests.fakes.google import FakeGoogle
from tests.fakes.google_events import load_calendar
from tests.fakes.graph import FakeGraph
from tests.fakes.graph_events import load_mailbox

AS_OF = date(2026, 11, 21)
BERLIN = ZoneInfo("Europe/Berlin")
FIRST_DAY, END_DAY = AS_OF - timedelta(days=365), AS_OF + timedelta(days=90)  # the span: [first, end)
SPAN_START = datetime.combine(FIRST_DAY, time(), tzinfo=BERLIN)
SPAN_END = datetime.combine(END_DAY, time(), tzinfo=BERLIN)
WEEKS = (END_DAY - FIRST_DAY).days / 7
FREQ: dict[str, Literal[0, 1, 2, 3, 4, 5, 6]] = {
    "daily": rrule.DAILY,
    "weekly": rrule.WEEKLY,
    "monthly": rrule.MONTHLY,
}


@pytest.fixture(scope="module")
def org() -> SyntheticOrg:
    return generate(500)


# -- reading the specs back ----------------------------------------------------------------------------


def is_1on1(spec: EventSpec) -> bool:
    return len(spec.attendees) == 2 and isinstance(spec.start, datetime)


def series_starts(master: EventSpec) -> list[datetime]:
    """A timed master's occurrences up to the end of the span, expanded by dateutil."""
    assert master.rrule is not None and isinstance(master.start, datetime)
    rule = master.rrule
    expanded = rrule.rrule(
        FREQ[rule["freq"]],
        dtstart=master.start,
        interval=rule.get("interval", 1),
        until=rule.get("until"),
        count=rule.get("count"),
    )
    return list(takewhile(lambda start: start < SPAN_END, expanded))


def by_uid(specs: Iterable[EventSpec]) -> dict[str, list[EventSpec]]:
    """Masters and one-offs first, then their overrides."""
    out: dict[str, list[EventSpec]] = defaultdict(list)
    for spec in sorted(specs, key=lambda s: s.recurrence_id is not None):
        out[spec.uid].append(spec)
    return out


def unique(org: SyntheticOrg) -> list[EventSpec]:
    """Every spec once, whichever calendars share it."""
    return list({id(s): s for specs in org.calendars.values() for s in specs}.values())


def held(group: list[EventSpec]) -> Iterator[datetime | date]:
    """The starts (original starts for overrides) of a meeting's occurrences in the span that are not
    cancelled: a moved occurrence counts once."""
    first, *overrides = group
    if first.rrule is None:
        if first.status != "CANCELLED":
            if isinstance(first.start, datetime):
                if SPAN_START <= first.start < SPAN_END:
                    yield first.start
            elif FIRST_DAY <= first.start < END_DAY:
                yield first.start
        return
    gone = {o.recurrence_id for o in overrides if o.status == "CANCELLED"} | set(first.exdates)
    if isinstance(first.start, datetime):
        yield from (s for s in series_starts(first) if s >= SPAN_START and s not in gone)
    else:  # all-day, bounded by COUNT
        days = (first.start + timedelta(days=k) for k in range(first.rrule["count"]))
        yield from (d for d in days if FIRST_DAY <= d < END_DAY)


def ordinary_per_week(specs: list[EventSpec]) -> float:
    groups = by_uid(specs)
    return sum(sum(1 for _ in held(g)) for g in groups.values() if not is_1on1(g[0])) / WEEKS


# -- determinism ---------------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_org_and_another_seed_another() -> None:
    first, again, other = generate(120, seed=3), generate(120, seed=3), generate(120, seed=4)
    assert first.roster_csv == again.roster_csv
    assert list(first.calendars) == list(again.calendars)
    assert first.calendars == again.calendars  # every spec, field by field, in the same order
    assert first.stats == again.stats
    assert other.roster_csv != first.roster_csv
    assert other.calendars != first.calendars


# -- the tree ------------------------------------------------------------------------------------------


def test_the_roster_is_one_tree_of_teams_of_about_seven(org: SyntheticOrg) -> None:
    rows = list(csv.DictReader(io.StringIO(org.roster_csv)))
    assert list(rows[0]) == ["email", "name", "manager_email"]
    assert [r["email"] for r in rows] == [f"p{i:05d}@acme.test" for i in range(500)]
    roots = [r["email"] for r in rows if not r["manager_email"]]
    assert roots == ["p00000@acme.test"]
    assert org.managers == {r["email"]: r["manager_email"] for r in rows if r["manager_email"]}
    assert set(org.managers.values()) <= set(org.managers) | set(roots)

    depth: dict[str, int] = {roots[0]: 1}
    for row in rows[1:]:  # a manager is always listed before their reports
        depth[row["email"]] = depth[row["manager_email"]] + 1
    assert max(depth.values()) == org.stats["levels"] >= 3

    team_sizes = Counter(org.managers.values())
    assert all(4 <= size <= 10 for size in team_sizes.values())
    assert 6.5 <= len(org.managers) / len(team_sizes) <= 7.5
    assert list(org.calendars) == sorted(team_sizes)  # one calendar per manager, in the roster's order

    parsed, problems = parse_roster(org.roster_csv, ["acme.test"], "org.csv")
    assert problems == []
    assert len(list(parsed.direct_pairs())) == 499


# -- 1:1s ----------------------------------------------------------------------------------------------


def test_1on1_noise_is_in_proportion(org: SyntheticOrg) -> None:
    series = [s for s in unique(org) if is_1on1(s) and s.rrule is not None]
    overrides = [s for s in unique(org) if is_1on1(s) and s.recurrence_id is not None]
    occurrences = sum(len(series_starts(s)) for s in series)
    exdates = sum(len(s.exdates) for s in series)
    cancelled = sum(o.status == "CANCELLED" for o in overrides)
    declined = sum(any(a.partstat == "DECLINED" for a in o.attendees) for o in overrides)
    moved = sum(o.start != o.recurrence_id for o in overrides)
    assert len(overrides) == cancelled + declined + moved  # one change per override

    counted = {
        "occurrences_1on1": occurrences,
        "cancelled_exdate": exdates,
        "cancelled_override": cancelled,
        "declined": declined,
        "moved": moved,
    }
    assert counted == {k: org.stats[k] for k in counted}
    assert occurrences > 10_000
    assert 0.08 <= (exdates + cancelled) / occurrences <= 0.12
    assert 0.04 <= exdates / occurrences <= 0.06 and 0.04 <= cancelled / occurrences <= 0.06  # both kinds
    assert 0.04 <= declined / occurrences <= 0.06
    assert 0.04 <= moved / occurrences <= 0.06


def test_1on1s_are_the_managers_in_working_hours(org: SyntheticOrg) -> None:
    for spec in unique(org):
        if not is_1on1(spec):
            continue
        manager, report = (a.email for a in spec.attendees)
        assert org.managers[report] == manager
        assert spec.organizer in (manager, report)
        assert spec.organizer == manager or spec.rrule is None  # a report only organizes one-offs
        assert spec.duration == timedelta(minutes=30)
        for start in [spec.start, *(series_starts(spec) if spec.rrule else [])]:
            assert isinstance(start, datetime)
            local = start.astimezone(BERLIN)
            assert local.weekday() < 5 and time(9) <= local.time() <= time(16, 30), spec


def test_some_pairs_have_no_1on1_and_some_series_ended(org: SyntheticOrg) -> None:
    specs = [s for s in unique(org) if is_1on1(s)]
    pairs = {(m, r) for r, m in org.managers.items()}
    met = {(s.attendees[0].email, s.attendees[1].email) for s in specs}
    assert met <= pairs
    without = pairs - met
    assert len(without) == org.stats["pairs_without_1on1"]
    assert 0.02 * len(pairs) <= len(without) <= 0.08 * len(pairs)

    masters = [s for s in specs if s.rrule is not None]
    ended = [s for s in masters if "until" in (s.rrule or {})]
    assert len(masters) == org.stats["series_1on1"] and len(ended) == org.stats["ended_series"]
    assert 0.03 * len(masters) <= len(ended) <= 0.08 * len(masters)
    as_of = datetime.combine(AS_OF, time(), tzinfo=UTC)
    assert all((s.rrule or {})["until"] < as_of for s in ended)

    def later(spec: EventSpec) -> bool:
        pair, until = (spec.attendees[0].email, spec.attendees[1].email), (spec.rrule or {})["until"]
        return any((m.attendees[0].email, m.attendees[1].email) == pair and m.start > until for m in masters)

    restarted = sum(later(s) for s in ended)
    assert restarted == org.stats["restarted_series"]
    assert 0 < restarted < len(ended)  # some pairs start again, others have nothing afterwards

    one_offs = [s for s in specs if s.rrule is None and s.recurrence_id is None]
    assert len(one_offs) == org.stats["one_offs"] > 0


def test_a_1on1_between_two_managers_is_the_same_event_in_both_calendars(org: SyntheticOrg) -> None:
    shared = 0
    for report, manager in org.managers.items():
        if report not in org.calendars:
            continue
        upper = by_uid(s for s in org.calendars[manager] if is_1on1(s))
        lower = by_uid(s for s in org.calendars[report] if is_1on1(s))
        theirs = [uid for uid, group in upper.items() if group[0].attendees[1].email == report]
        for uid in theirs:
            assert lower[uid] == upper[uid]  # the master and every override
            if upper[uid][0].rrule is not None:
                assert upper[uid][0].organizer == manager  # the lower manager is an attendee
                shared += 1
    assert shared == org.stats["shared_1on1_series"] > 10


def test_overrides_are_what_calsync_demo_override_makes(org: SyntheticOrg) -> None:
    for group in by_uid(unique(org)).values():
        master, *overrides = group
        if not overrides:
            continue
        starts = set(series_starts(master)) - set(master.exdates)
        for o in overrides:
            assert o.recurrence_id in starts
            expected = override(
                master,
                o.recurrence_id,
                start=o.start,
                attendees=o.attendees,
                status=o.status,
                sequence=master.sequence + 1,
                last_modified=o.last_modified,
            )
            assert o == expected
        assert len({o.recurrence_id for o in overrides}) == len(overrides)


# -- ordinary meetings ---------------------------------------------------------------------------------


def test_about_25_ordinary_occurrences_per_manager_and_week(org: SyntheticOrg) -> None:
    rates = {m: ordinary_per_week(specs) for m, specs in org.calendars.items()}
    average = sum(rates.values()) / len(rates)
    print(
        f"ordinary occurrences per manager and week: {average:.1f} (min {min(rates.values()):.1f}, ", end=""
    )
    print(f"max {max(rates.values()):.1f}) over {len(rates)} managers")
    assert 23 <= average <= 27
    assert all(15 <= rate <= 40 for rate in rates.values())
    assert round(sum(rates.values()) * WEEKS) == org.stats["ordinary_occurrences"]


def test_the_ordinary_mix(org: SyntheticOrg) -> None:
    specs = unique(org)
    by_summary: dict[str, list[EventSpec]] = defaultdict(list)
    for spec in specs:
        if spec.recurrence_id is None and not is_1on1(spec):
            by_summary[spec.summary].append(spec)
    # a standup every weekday for the teams of ICs
    standups = Counter((s.organizer, s.start.weekday()) for s in by_summary["Standup"] if s.start)
    assert standups and all(n == 1 for n in standups.values())
    assert {day for _, day in standups} == set(range(5))
    # each manager's weekly meeting with their reports is the staff meeting of those who manage
    for manager, specs_of in org.calendars.items():
        team = [
            s
            for s in specs_of
            if s.summary in ("Team meeting", "Staff meeting")
            and s.organizer == manager
            and not s.recurrence_id
        ]
        assert len(team) <= 1
        for report in (r for r, m in org.managers.items() if m == manager and r in org.calendars):
            assert team and team[0] in org.calendars[report]
    assert by_summary["Staff meeting"] and by_summary["Team meeting"]
    # all-hands in every calendar
    company = by_summary["Company all-hands"]
    assert len(company) == 1 and all(company[0] in c for c in org.calendars.values())
    assert by_summary["Department all-hands"]
    # cross-team syncs of 3-6, focus time alone, one-offs of 3-8
    syncs = [s for name, group in by_summary.items() if name.endswith(" sync") for s in group]
    assert syncs and all(3 <= len(s.attendees) <= 6 and s.rrule for s in syncs)
    assert any(sum(s in c for c in org.calendars.values()) == 2 for s in syncs)
    focus = by_summary["Focus time"]
    assert focus and all(not s.attendees and s.rrule for s in focus)
    one_offs = [s for s in specs if s.rrule is None and s.recurrence_id is None and len(s.attendees) >= 3]
    assert all(3 <= len(s.attendees) <= 8 for s in one_offs)
    per_manager_week = len(one_offs) / len(org.calendars) / WEEKS
    assert 3 <= per_manager_week <= 10  # several a week
    # all-day events: one or two a month, some cancelled, holidays shared
    for specs_of in org.calendars.values():
        all_day = [s for s in specs_of if not isinstance(s.start, datetime)]
        assert 0.8 <= len(all_day) / (WEEKS / 52 * 12) <= 2.5
    assert any(not isinstance(s.start, datetime) and s.status == "CANCELLED" for s in specs)
    # recurring meetings have exceptions too
    ordinary = [s for s in specs if not is_1on1(s)]
    assert any(s.exdates for s in ordinary)
    assert any(s.recurrence_id and s.status == "CANCELLED" for s in ordinary)
    assert any(s.recurrence_id and s.start != s.recurrence_id for s in ordinary)
    # no ordinary meeting could pass for a 1:1
    assert all(len({a.email for a in s.attendees} | {s.organizer}) != 2 for s in ordinary)


# -- loading -------------------------------------------------------------------------------------------


def test_a_small_org_loads_into_both_fakes_and_ics() -> None:
    org = generate(30)
    with FakeGoogle() as google, FakeGraph() as graph:
        for owner, specs in org.calendars.items():
            load_calendar(google, owner, specs, "Europe/Berlin")
            load_mailbox(graph, owner, specs, "Europe/Berlin")
            uids = {s.uid for s in specs}
            stored = google.events(owner)  # cancelled events are tombstones without an iCalUID
            assert len(stored) == len(specs) and {e["iCalUID"] for e in stored if "iCalUID" in e} <= uids
            assert {e["iCalUId"] for e in graph.events(owner)} == uids
    # ICS: a manager with a manager holds every kind of spec
    owner = next(m for m in org.calendars if m in org.managers)
    data = ics_calendar(org.calendars[owner])
    assert data.count(b"BEGIN:VEVENT") == len(org.calendars[owner])


def test_the_command_line_prints_the_stats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--people", "30", "--seed", "2"]) == 0
    rows = {name: value for name, value in (line.split() for line in capsys.readouterr().out.splitlines())}
    stats = generate(30, seed=2).stats
    assert all(rows[name] == str(stats[name]) for name in STAT_NAMES)
    assert float(rows["ordinary_per_week"]) > 0
