#!/usr/bin/env python3
"""A deterministic synthetic org for benchmarks: a roster and every manager's calendar as event specs.

``generate(people, seed)`` builds an org of ``people`` people (``p00000@acme.test`` ...) and one calendar
per manager (a person with reports), as :class:`calsync.demo.EventSpec` lists that load into the Google
fake (``tests.fakes.google_events.load_calendar``), the Graph fake (``tests.fakes.graph_events.
load_mailbox``) and ICS (``calsync.demo.ics_event``). The same (people, seed, as_of, timezone) always gives
exactly the same org; another seed gives another one. It supersedes ``org_specs`` of
``bench/ics_report.py`` (one level of noise on 1:1s and a team meeting only).

The data spans one year back and 90 days ahead of ``as_of``; series without an end keep going past it.
All times are in ``timezone`` (Europe/Berlin by default), meetings in working hours on weekdays.

The tree
    One root; people are handed out breadth first, about 7 reports per manager (4..10, a normal
    distribution around 7 clamped to that range, no team smaller than 4 except in a tiny org); about 10%
    of the people who could become managers stay individual contributors (ICs). 500 and 2,000 people
    make 5 levels, 10,000 make 6. Everyone except the root has exactly one manager. Only managers have a
    calendar (every 1:1 is on its manager's calendar).

1:1s (each manager / direct report pair)
    - 5% of pairs have no 1:1 at all; 3% meet in one-off 1:1s only (every 1-3 weeks, 10% of them
      cancelled as a whole); the others have a recurring 1:1, weekly (60%) or biweekly (40%), 30 min, on
      a weekday between 9:00 and 17:00, organized by the manager, attendees manager and report, starting
      between a year and three weeks back. 10% of those pairs also have an ad-hoc one-off 1:1.
    - 5% of series ended (an UNTIL in the past, after at least 8 occurrences); half of those pairs
      started a new series 2-10 weeks later, the other half have nothing afterwards.
    - Per occurrence up to 90 days ahead: 5% removed by EXDATE and 5% by a CANCELLED override (10%
      cancelled), 5% declined by the report (an override with PARTSTAT=DECLINED), 5% moved (an override
      starting at another time the same day or on the next day).
    - When the report is a manager too, the same specs (same UID, same EXDATEs and overrides) are in both
      calendars: the upper manager's (organizer) and the lower manager's (attendee).

Ordinary meetings (everything else), aiming at about 25 occurrences per manager and week
    - a daily standup (15 min, as five weekly series Monday to Friday: the Graph loader of the tests
      only translates FREQ, INTERVAL, UNTIL and COUNT, not BYDAY) with the ICs of the team, for managers
      with at least 3 IC reports (3% of its occurrences cancelled);
    - a weekly team meeting with all reports (45-60 min; 3% cancelled, 4% moved); in the calendar of a
      report who manages too it is their weekly staff meeting with their peers (the same UID in each of
      those calendars; called "Staff meeting" when most of the reports are managers);
    - the all-hands: the root's monthly company all-hands (occurrences falling on a weekend moved to the
      Friday before) in every calendar, and each department head's biweekly department all-hands in every
      calendar of the department; invited through a group address (CUTYPE=GROUP);
    - 5-7 recurring cross-team syncs organized by each manager (7-9 without a standup), weekly or
      biweekly, starting in the first five months, 25% ended after 3-8 months; 3-6 attendees: the
      organizer, usually another manager (a neighbour in the tree or anyone), ICs from anywhere; in the
      calendars of both managers; 3% EXDATE, 3% cancelled, 3% moved;
    - a 2-hour focus-time block every weekday (five weekly series) without attendees, 5% EXDATE, 3% moved;
    - one-off meetings with 3-8 attendees (0-2 other managers, who have them in their calendars too), as
      many as each manager needs to reach their own weekly target (22-28, from the seed): about 4 a week
      organized and 7-8 in each calendar; plus 5% cancelled ones, which do not count;
    - all-day events, about 1.5 a month: public holidays (the same UID in every calendar), 1-3 vacations
      (5 days) and 0-2 conferences (2-3 days) as daily series with COUNT, 1-3 other all-day one-offs of
      which a quarter are cancelled.
    Recurring meetings skip public holidays (EXDATE) and have their own noise: a few occurrences
    cancelled (EXDATE or CANCELLED override) or moved.

``stats`` counts it all (see :data:`STAT_NAMES`); 1:1 occurrences are counted from the series' starts up
to 90 days ahead. ``ordinary_occurrences`` sums, over calendars, the ordinary occurrences (timed and
all-day, focus time included) in the year back and 90 days ahead that are not cancelled (a moved one
counts once; a meeting in two calendars twice); ``events`` counts distinct specs, ``calendar_entries``
specs per calendar summed. A calendar holds about 680 specs (about 380 distinct ones per manager);
10,000 people make about a million calendar entries.

Specs are shared, not copied: a meeting in two calendars is the same EventSpec object in both lists (and
Attendee objects are shared too); treat them as read-only.

    python bench/orggen.py --people 2000 [--seed 1]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from dateutil.easter import easter

from calsync.demo import Attendee, EventSpec

T = TypeVar("T")
DOMAIN = "acme.test"
AS_OF = date(2026, 11, 21)
LOOKBACK_DAYS = 365
LOOKAHEAD_DAYS = 90

# The tree
TEAM_MEAN, TEAM_SD, TEAM_MIN, TEAM_MAX = 7.0, 1.5, 4, 10
STAYS_IC = 0.10  # of the people who could become managers
# 1:1s: pairs
NO_1ON1 = 0.05
ONE_OFF_ONLY = 0.03
EXTRA_ONE_OFF = 0.10
WEEKLY_1ON1 = 0.60
ENDED = 0.05
RESTARTED = 0.50
# 1:1s: per occurrence
EXDATE = 0.05
CANCELLED = 0.05
DECLINED = 0.05
MOVED = 0.05
# Ordinary meetings
TARGET_PER_WEEK = (22, 28)
STANDUP_MIN_ICS = 3

#: The keys of :attr:`SyntheticOrg.stats`, in the order the command line prints them.
STAT_NAMES = (
    "people",
    "managers",
    "levels",
    "max_reports",
    "pairs",
    "pairs_without_1on1",
    "pairs_one_off_only",
    "series_1on1",
    "ended_series",
    "restarted_series",
    "shared_1on1_series",
    "one_offs",
    "occurrences_1on1",
    "cancelled",
    "cancelled_exdate",
    "cancelled_override",
    "declined",
    "moved",
    "ordinary_series",
    "ordinary_one_offs",
    "all_day",
    "events",
    "calendar_entries",
    "ordinary_occurrences",
    "span_days",
)

_FIRST = (
    "Ada", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kim", "Lena",
    "Maya", "Noah", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Vera", "Wei", "Yuki", "Zoe",
)  # fmt: skip
_LAST = (
    "Alvarez", "Berg", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Lambert", "Martin", "Novak", "Okafor", "Petrov", "Rossi", "Schmidt", "Tanaka", "Weber",
)  # fmt: skip
_TOPICS = (
    "Platform", "Billing", "Search", "Mobile", "Data", "Security", "Onboarding", "Pricing", "Infra",
    "Analytics", "Payments", "Growth", "Support", "Release", "Hiring", "Roadmap", "Design", "API",
)  # fmt: skip
_ONE_OFF = (
    "Review", "Planning", "Kick-off", "Retro", "Interview", "Budget", "Incident follow-up", "Demo",
    "Architecture", "Customer call", "Brainstorm", "Alignment", "Workshop", "Debrief",
)  # fmt: skip
_AHEAD = tuple(timedelta(hours=h) for h in range(20, 170, 7))  # how long before an occurrence it changed
_ALL_DAY = ("Team offsite", "Training", "Hackathon", "Customer visit", "Moving day", "Workshop day")


@dataclass(frozen=True)
class SyntheticOrg:
    """What :func:`generate` makes."""

    people: int
    roster_csv: str  # "email,name,manager_email\n..." (the header calsync reads)
    managers: dict[str, str]  # report email -> manager email
    calendars: dict[str, list[EventSpec]]  # one calendar per manager, in the roster's order
    stats: dict[str, int]  # see STAT_NAMES


class _Random(random.Random):
    """random.Random with quicker integer draws from ``random()`` (randint and choice cost several times
    more, and the generator makes millions of draws)."""

    def below(self, n: int) -> int:
        """0 <= k < n."""
        return int(self.random() * n)

    def between(self, low: int, high: int) -> int:
        """low <= k <= high."""
        return low + int(self.random() * (high - low + 1))

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self.random() * len(items))]


def email_of(index: int) -> str:
    return f"p{index:05d}@{DOMAIN}"


def _tree(people: int, rng: _Random) -> list[int]:
    """Each person's manager (an index; -1 for the root), handed out breadth first."""
    manager = [-1] * people
    queue: deque[int] = deque([0])
    taken = 1
    while taken < people:
        person = queue.popleft()
        if person != 0 and queue and rng.random() < STAYS_IC:
            continue
        size = min(TEAM_MAX, max(TEAM_MIN, round(rng.gauss(TEAM_MEAN, TEAM_SD))))
        remaining = people - taken
        if remaining - size < TEAM_MIN:  # no team left smaller than TEAM_MIN
            size = remaining if remaining <= TEAM_MAX else remaining - TEAM_MIN
        for report in range(taken, taken + size):
            manager[report] = person
            queue.append(report)
        taken += size
    return manager


def _holidays(first: date, last: date) -> dict[date, str]:
    """Public holidays (German-style) from ``first`` to ``last``."""
    out: dict[date, str] = {}
    for year in range(first.year, last.year + 1):
        sunday = easter(year)
        days = {
            date(year, 1, 1): "New Year's Day",
            sunday - timedelta(days=2): "Good Friday",
            sunday + timedelta(days=1): "Easter Monday",
            date(year, 5, 1): "Labour Day",
            sunday + timedelta(days=39): "Ascension Day",
            sunday + timedelta(days=50): "Whit Monday",
            date(year, 10, 3): "German Unity Day",
            date(year, 12, 24): "Christmas Eve",
            date(year, 12, 25): "Christmas Day",
            date(year, 12, 26): "Boxing Day",
            date(year, 12, 31): "New Year's Eve",
        }
        out.update({d: name for d, name in sorted(days.items()) if first <= d <= last})
    return out


def _on_or_after(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday()) % 7)


class _Builder:
    def __init__(self, people: int, seed: int, as_of: date, timezone: str) -> None:
        self.rng = _Random(seed)  # synthetic data, not security
        self.tz = ZoneInfo(timezone)
        self.as_of = as_of
        self.first_day = as_of - timedelta(days=LOOKBACK_DAYS)
        self.end_day = as_of + timedelta(days=LOOKAHEAD_DAYS)  # exclusive
        self.span_start = self.at(self.first_day, 0)
        self.span_end = self.at(self.end_day, 0)
        self.weeks = (self.end_day - self.first_day).days / 7
        self.as_of_utc = datetime.combine(as_of, time(), tzinfo=UTC)
        self.people = people
        self.emails = [email_of(i) for i in range(people)]
        self.boss = _tree(people, self.rng)
        self.reports: dict[int, list[int]] = {}
        for person, boss in enumerate(self.boss):
            if boss >= 0:
                self.reports.setdefault(boss, []).append(person)
        self.managers = sorted(self.reports)
        self.ics = [p for p in range(people) if p not in self.reports]
        self.names = [f"{self.rng.pick(_FIRST)} {self.rng.pick(_LAST)}" for _ in range(people)]
        self.depth = [0] * people
        for person in range(1, people):  # a manager always has a lower index than their reports
            self.depth[person] = self.depth[self.boss[person]] + 1
        self.attendee = [Attendee(e) for e in self.emails]
        self.calendars: dict[int, list[EventSpec]] = {m: [] for m in self.managers}
        self.ordinary: dict[int, int] = dict.fromkeys(self.managers, 0)
        self.holidays = _holidays(self.first_day, self.end_day)
        days = (self.first_day + timedelta(days=k) for k in range((self.end_day - self.first_day).days))
        self.workdays = [d for d in days if d.weekday() < 5]
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self.serial = 0
        self.near: dict[int, list[int]] = {}

    # -- small helpers -------------------------------------------------------------------------------

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=self.tz)

    def uid(self, kind: str, owner: int) -> str:
        self.serial += 1
        return f"{kind}-{owner:05d}-{self.serial}@{DOMAIN}"

    def put(self, spec: EventSpec, owners: Sequence[int]) -> None:
        for owner in owners:
            self.calendars[owner].append(spec)

    def calendar_owners(self, people: Sequence[int]) -> list[int]:
        return [p for p in people if p in self.reports]

    def modified(self, when: datetime) -> datetime:
        """When an occurrence was changed (UTC): 1-7 days before it, and before the as-of date."""
        return min(when.astimezone(UTC), self.as_of_utc) - _AHEAD[int(self.rng.random() * len(_AHEAD))]

    def weekday_in_span(self, first: date | None = None, last: date | None = None) -> date:
        """A random weekday from ``first`` to ``last`` (inclusive; the span by default)."""
        if first is None and last is None:
            return self.workdays[self.rng.below(len(self.workdays))]
        first = first or self.first_day
        last = last or self.end_day - timedelta(days=1)
        day = first + timedelta(days=self.rng.between(0, (last - first).days))
        if day.weekday() >= 5:
            monday = day + timedelta(days=7 - day.weekday())
            day = monday if monday <= last else day - timedelta(days=day.weekday() - 4)
        return day

    def slot(self, duration_minutes: int = 30) -> tuple[int, int]:
        """A start (hour, minute) from 9:00 such that the meeting ends by 17:00."""
        latest = 17 * 60 - duration_minutes
        start = 9 * 60 + 30 * self.rng.between(0, (latest - 9 * 60) // 30)
        return divmod(start, 60)

    def weekly(self, first: datetime, interval: int, until: datetime | None = None) -> list[datetime]:
        """The starts of a weekly series up to the end of the span (wall clock, as RRULE expands)."""
        out = []
        step = timedelta(weeks=interval)
        when = first
        while when < self.span_end and (until is None or when <= until):
            out.append(when)
            when += step
        return out

    def moved_start(self, when: datetime, minutes: int) -> datetime:
        """Another start the same day, or the next day when that is a weekday."""
        if when.weekday() < 4 and self.rng.random() < 0.5:
            return when + timedelta(days=1)
        while True:
            hour, minute = self.slot(minutes)
            moved = self.at(when.date(), hour, minute)
            if moved != when:
                return moved

    # -- recurring meetings ------------------------------------------------------------------------

    def recurring(
        self,
        master: EventSpec,
        occurrences: Sequence[datetime],
        owners: Sequence[int],
        *,
        exdate: float = 0.0,
        cancel: float = 0.0,
        move: float = 0.0,
        skip_holidays: bool = True,
    ) -> None:
        """An ordinary series with its noise, filed in ``owners``' calendars."""
        exdates: list[datetime] = []
        changes: list[tuple[datetime, dict[str, Any]]] = []
        minutes = int(master.duration.total_seconds() // 60)
        kept = 0
        for when in occurrences:
            roll = self.rng.random()
            if (skip_holidays and when.date() in self.holidays) or roll < exdate:
                exdates.append(when)
            elif roll < exdate + cancel:
                changes.append((when, {"status": "CANCELLED"}))
            elif roll < exdate + cancel + move:
                changes.append((when, {"start": self.moved_start(when, minutes)}))
                kept += when >= self.span_start
            else:
                kept += when >= self.span_start
        self.file_series(master, exdates, changes, owners)
        self.stats["ordinary_series"] += 1
        for owner in owners:
            self.ordinary[owner] += kept

    def file_series(
        self,
        master: EventSpec,
        exdates: list[datetime],
        changes: list[tuple[datetime, dict[str, Any]]],
        owners: Sequence[int],
    ) -> EventSpec:
        """``master`` (not filed yet) with its EXDATEs, and its overrides, in ``owners``' calendars."""
        master.exdates = exdates
        master.sequence = sequence = 1 if exdates else 0
        specs = [master]
        for when, change in changes:
            # what calsync.demo.override makes, built directly (dataclasses.replace is several times slower)
            specs.append(
                EventSpec(
                    uid=master.uid,
                    summary=master.summary,
                    start=change.get("start", when),
                    duration=master.duration,
                    organizer=master.organizer,
                    attendees=change.get("attendees", master.attendees),
                    recurrence_id=when,
                    status=change.get("status"),
                    sequence=sequence + 1,
                    last_modified=self.modified(when),
                )
            )
        for owner in owners:
            self.calendars[owner].extend(specs)
        return master

    # -- 1:1s --------------------------------------------------------------------------------------

    def one_on_ones(self) -> None:
        rng = self.rng
        for manager in self.managers:
            for report in self.reports[manager]:
                self.stats["pairs"] += 1
                owners = self.calendar_owners([manager, report])
                roll = rng.random()
                if roll < NO_1ON1:
                    self.stats["pairs_without_1on1"] += 1
                elif roll < NO_1ON1 + ONE_OFF_ONLY:
                    self.stats["pairs_one_off_only"] += 1
                    self.one_off_1on1s(manager, report, owners)
                else:
                    self.series_1on1(manager, report, owners)
                    if rng.random() < EXTRA_ONE_OFF:
                        self.one_off_1on1(manager, report, owners, self.weekday_in_span())

    def pair_title(self, manager: int, report: int) -> str:
        return f"{self.names[manager].split()[0]} / {self.names[report].split()[0]} 1:1"

    def one_off_1on1(self, manager: int, report: int, owners: Sequence[int], day: date) -> None:
        hour, minute = self.slot(30)
        organizer = manager if self.rng.random() < 0.8 else report
        spec = EventSpec(
            uid=self.uid("1on1-once", manager),
            summary=self.pair_title(manager, report),
            start=self.at(day, hour, minute),
            organizer=self.emails[organizer],
            attendees=[self.attendee[manager], self.attendee[report]],
            status="CANCELLED" if self.rng.random() < 0.10 else None,
        )
        self.put(spec, owners)
        self.stats["one_offs"] += 1

    def one_off_1on1s(self, manager: int, report: int, owners: Sequence[int]) -> None:
        day = self.first_day + timedelta(days=self.rng.between(0, 60))
        last = self.as_of + timedelta(days=self.rng.between(0, LOOKAHEAD_DAYS - 1))
        while day <= last:
            self.one_off_1on1(manager, report, owners, self.weekday_in_span(day, day + timedelta(days=4)))
            day += timedelta(weeks=self.rng.between(1, 3))

    def series_1on1(self, manager: int, report: int, owners: Sequence[int]) -> None:
        rng = self.rng
        if rng.random() < ENDED:
            back = rng.between(150, LOOKBACK_DAYS)
            first = self.first_1on1(self.as_of - timedelta(days=back))
            interval = self.interval()
            weeks_available = (back - 21) // (7 * interval)
            count = rng.between(8, max(8, weeks_available))
            last = first + timedelta(weeks=interval * (count - 1))
            until = self.at(last.date(), 23).astimezone(UTC)
            self.file_1on1(manager, report, owners, first, interval, until)
            self.stats["ended_series"] += 1
            if rng.random() < RESTARTED:
                again = last.date() + timedelta(days=rng.between(14, 70))
                again = min(again, self.as_of + timedelta(days=rng.between(1, 28)))
                self.file_1on1(manager, report, owners, self.first_1on1(again), self.interval(), None)
                self.stats["restarted_series"] += 1
        else:
            first = self.first_1on1(self.as_of - timedelta(days=rng.between(21, LOOKBACK_DAYS)))
            self.file_1on1(manager, report, owners, first, self.interval(), None)

    def interval(self) -> int:
        return 1 if self.rng.random() < WEEKLY_1ON1 else 2

    def first_1on1(self, around: date) -> datetime:
        day = _on_or_after(max(around, self.first_day), self.rng.between(0, 4))
        hour, minute = self.slot(30)
        return self.at(day, hour, minute)

    def file_1on1(
        self,
        manager: int,
        report: int,
        owners: Sequence[int],
        first: datetime,
        interval: int,
        until: datetime | None,
    ) -> None:
        rule: dict[str, Any] = {"freq": "weekly"}
        if interval > 1:
            rule["interval"] = interval
        if until is not None:
            rule["until"] = until
        master = EventSpec(
            uid=self.uid("1on1", manager),
            summary=self.pair_title(manager, report),
            start=first,
            organizer=self.emails[manager],
            attendees=[self.attendee[manager], self.attendee[report]],
            rrule=rule,
        )
        declined = [self.attendee[manager], Attendee(self.emails[report], partstat="DECLINED")]
        exdates: list[datetime] = []
        changes: list[tuple[datetime, dict[str, Any]]] = []
        stats = self.stats
        for when in self.weekly(first, interval, until):
            stats["occurrences_1on1"] += 1
            roll = self.rng.random()
            if roll < EXDATE:
                exdates.append(when)
                stats["cancelled_exdate"] += 1
            elif roll < EXDATE + CANCELLED:
                changes.append((when, {"status": "CANCELLED"}))
                stats["cancelled_override"] += 1
            elif roll < EXDATE + CANCELLED + DECLINED:
                changes.append((when, {"attendees": declined}))
                stats["declined"] += 1
            elif roll < EXDATE + CANCELLED + DECLINED + MOVED:
                changes.append((when, {"start": self.moved_start(when, 30)}))
                stats["moved"] += 1
        self.file_series(master, exdates, changes, owners)
        stats["series_1on1"] += 1
        stats["shared_1on1_series"] += len(owners) > 1

    # -- ordinary meetings -------------------------------------------------------------------------

    def team_meetings(self) -> None:
        rng = self.rng
        for manager in self.managers:
            team = self.reports[manager]
            ics = [r for r in team if r not in self.reports]
            organizer = self.emails[manager]
            if len(ics) >= STANDUP_MIN_ICS:
                hour, minute = rng.pick(((9, 15), (9, 30), (9, 45), (10, 0)))
                attendees = [self.attendee[p] for p in [manager, *ics]]
                for weekday in range(5):
                    first = self.at(_on_or_after(self.first_day, weekday), hour, minute)
                    master = EventSpec(
                        uid=self.uid("standup", manager),
                        summary="Standup",
                        start=first,
                        duration=timedelta(minutes=15),
                        organizer=organizer,
                        attendees=attendees,
                        rrule={"freq": "weekly"},
                    )
                    self.recurring(master, self.weekly(first, 1), [manager], cancel=0.03)
            if len(team) >= 2:  # at least three people: never a 1:1
                minutes = rng.pick((45, 60))
                hour, minute = self.slot(minutes)
                first = self.at(_on_or_after(self.first_day, rng.between(1, 3)), hour, minute)
                managers = [r for r in team if r in self.reports]
                master = EventSpec(
                    uid=self.uid("team", manager),
                    summary="Staff meeting" if 2 * len(managers) > len(team) else "Team meeting",
                    start=first,
                    duration=timedelta(minutes=minutes),
                    organizer=organizer,
                    attendees=[self.attendee[p] for p in [manager, *team]],
                    rrule={"freq": "weekly"},
                )
                owners = [manager, *managers]
                self.recurring(master, self.weekly(first, 1), owners, cancel=0.03, move=0.04)

    def all_hands(self) -> None:
        if not self.managers:
            return
        rng = self.rng
        root = 0
        everyone = Attendee(f"all@{DOMAIN}", name="Everyone", cutype="GROUP")
        hosts = [self.attendee[p] for p in self.reports[root][:2]]
        day_of_month = rng.between(1, 28)
        occurrences = []
        year, month = self.first_day.year, self.first_day.month
        while True:
            when = self.at(date(year, month, day_of_month), 16)
            if when >= self.span_end:
                break
            if when >= self.span_start:
                occurrences.append(when)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        master = EventSpec(
            uid=f"all-hands@{DOMAIN}",
            summary="Company all-hands",
            start=occurrences[0],
            duration=timedelta(minutes=60),
            organizer=self.emails[root],
            attendees=[self.attendee[root], everyone, *hosts],
            rrule={"freq": "monthly"},
        )
        changes: list[tuple[datetime, dict[str, Any]]] = []
        exdates = []
        for when in occurrences:
            weekday = when.weekday()
            if when.date() in self.holidays:
                exdates.append(when)
            elif weekday >= 5:  # moved to the Friday before
                changes.append((when, {"start": when - timedelta(days=weekday - 4)}))
        self.file_series(master, exdates, changes, self.managers)
        self.stats["ordinary_series"] += 1
        kept = len(occurrences) - len(exdates)
        for manager in self.managers:
            self.ordinary[manager] += kept
        for head in self.reports[root]:
            department = [m for m in self.managers if self.in_subtree(m, head)]
            if not department:
                continue
            group = Attendee(f"dept-{self.emails[head]}", name="Department", cutype="GROUP")
            first = self.at(_on_or_after(self.first_day, rng.between(0, 4)), rng.pick((11, 15, 16)))
            master = EventSpec(
                uid=self.uid("dept-all-hands", head),
                summary="Department all-hands",
                start=first,
                duration=timedelta(minutes=45),
                organizer=self.emails[head],
                attendees=[self.attendee[head], group, self.attendee[self.reports[head][0]]],
                rrule={"freq": "weekly", "interval": 2},
            )
            self.recurring(master, self.weekly(first, 2), department, cancel=0.05, move=0.05)

    def in_subtree(self, person: int, head: int) -> bool:
        while person > head:
            person = self.boss[person]
        return person == head

    def neighbours(self, manager: int) -> list[int]:
        """Managers someone works with most: the boss, peers and reports who manage (no duplicates)."""
        boss = self.boss[manager]
        near = [boss] if boss >= 0 else []
        if boss >= 0:
            near += [p for p in self.reports[boss] if p != manager and p in self.reports]
        near += [p for p in self.reports[manager] if p in self.reports]
        return near

    def other_manager(self, manager: int, wanted: dict[int, int] | None = None) -> int | None:
        """Another manager to meet: a neighbour or anyone (with meetings still ``wanted``, if given)."""
        near = self.near.get(manager)
        if near is None:
            near = self.near[manager] = self.neighbours(manager)
        for _ in range(4):
            pick = (
                self.rng.pick(near)
                if near and self.rng.random() < 0.6
                else self.managers[self.rng.below(len(self.managers))]
            )
            if pick != manager and (wanted is None or wanted[pick] > 0):
                return pick
        return None

    def some_ics(self, count: int, exclude: Sequence[int] = ()) -> list[int]:
        out: list[int] = []
        for _ in range(4 * count if self.ics else 0):  # a tiny org may not have enough
            pick = self.ics[self.rng.below(len(self.ics))]
            if pick not in out and pick not in exclude:
                out.append(pick)
                if len(out) == count:
                    break
        return out

    def syncs_and_focus(self) -> None:
        rng = self.rng
        for manager in self.managers:
            standup = sum(r not in self.reports for r in self.reports[manager]) >= STANDUP_MIN_ICS
            for _ in range(rng.between(5, 7) if standup else rng.between(7, 9)):
                other = self.other_manager(manager)
                people = [manager] + ([other] if other is not None else [])
                people += self.some_ics(rng.between(3, 6) - len(people), people)
                if len(people) < 3:  # two people would make a 1:1
                    continue
                minutes = rng.pick((30, 45, 60))
                hour, minute = self.slot(minutes)
                first_day = _on_or_after(
                    self.first_day + timedelta(days=rng.between(0, 150)), rng.between(0, 4)
                )
                first = self.at(first_day, hour, minute)
                interval = 1 if rng.random() < 0.5 else 2
                rule: dict[str, Any] = {"freq": "weekly"}
                if interval > 1:
                    rule["interval"] = interval
                until = None
                if rng.random() < 0.25:
                    until = self.at(first_day + timedelta(days=rng.between(90, 250)), 23).astimezone(UTC)
                    rule["until"] = until
                master = EventSpec(
                    uid=self.uid("sync", manager),
                    summary=f"{rng.pick(_TOPICS)} sync",
                    start=first,
                    duration=timedelta(minutes=minutes),
                    organizer=self.emails[manager],
                    attendees=[self.attendee[p] for p in people],
                    rrule=rule,
                )
                occurrences = self.weekly(first, interval, until)
                owners = self.calendar_owners(people)
                self.recurring(master, occurrences, owners, exdate=0.03, cancel=0.03, move=0.03)
            hour = rng.pick((8, 13, 14, 15))
            for weekday in range(5):
                first = self.at(
                    _on_or_after(self.first_day + timedelta(days=rng.between(0, 90)), weekday), hour
                )
                master = EventSpec(
                    uid=self.uid("focus", manager),
                    summary="Focus time",
                    start=first,
                    duration=timedelta(hours=2),
                    organizer=self.emails[manager],
                    rrule={"freq": "weekly"},
                )
                self.recurring(master, self.weekly(first, 1), [manager], exdate=0.05, move=0.03)

    def all_day(self) -> None:
        rng = self.rng
        holidays = [
            EventSpec(uid=f"holiday-{day:%Y%m%d}@{DOMAIN}", summary=name, start=day)
            for day, name in self.holidays.items()
        ]
        in_span = sum(self.first_day <= h <= self.end_day - timedelta(days=1) for h in self.holidays)
        self.stats["all_day"] += len(holidays)
        last_monday = self.end_day - timedelta(days=7)
        for manager in self.managers:
            self.calendars[manager].extend(holidays)
            self.ordinary[manager] += in_span
            organizer = self.emails[manager]
            trips = [("Vacation", 5)] * rng.between(1, 3) + [("Conference", rng.between(2, 3))] * rng.between(
                0, 2
            )
            for summary, days in trips:
                start = _on_or_after(
                    self.weekday_in_span(self.first_day, last_monday), rng.between(0, 5 - days)
                )
                spec = EventSpec(
                    uid=self.uid("away", manager),
                    summary=summary if summary == "Vacation" else f"Conference: {rng.pick(_TOPICS)}Con",
                    start=start,
                    organizer=organizer,
                    rrule={"freq": "daily", "count": days},
                )
                self.calendars[manager].append(spec)
                self.stats["all_day"] += 1
                self.ordinary[manager] += sum(start + timedelta(days=k) < self.end_day for k in range(days))
            for _ in range(rng.between(1, 3)):
                cancelled = rng.random() < 0.25
                spec = EventSpec(
                    uid=self.uid("day", manager),
                    summary=rng.pick(_ALL_DAY),
                    start=self.weekday_in_span(),
                    organizer=organizer,
                    status="CANCELLED" if cancelled else None,
                )
                self.calendars[manager].append(spec)
                self.stats["all_day"] += 1
                self.ordinary[manager] += not cancelled

    def one_offs(self) -> None:
        """One-off meetings until each manager reaches their weekly target (the hot loop of a big org)."""
        rng = self.rng
        random_ = rng.random
        wanted = {
            m: max(0, round(rng.between(*TARGET_PER_WEEK) * self.weeks) - self.ordinary[m])
            for m in self.managers
        }
        durations = {m: timedelta(minutes=m) for m in (30, 45, 60)}
        # (hour, minute) slots ending by 17:00, and each day's start at each slot
        slots = {m: [divmod(t, 60) for t in range(9 * 60, 17 * 60 - m + 1, 30)] for m in durations}
        clock = {(h, mi): time(h, mi) for starts in slots.values() for h, mi in starts}
        workdays, tz, combine = self.workdays, self.tz, datetime.combine
        reports, attendee, emails, calendars = self.reports, self.attendee, self.emails, self.calendars
        ordinary, stats = self.ordinary, self.stats
        for manager in self.managers:
            organizer = emails[manager]
            while wanted[manager] > 0:
                people = [manager]
                for _ in range((0, 1, 1, 2)[int(random_() * 4)]):
                    other = self.other_manager(manager, wanted)
                    if other is not None and other not in people:
                        people.append(other)
                size = len(people)
                size = max(3, size) + int(random_() * (9 - max(3, size)))
                people += self.some_ics(size - len(people), people)
                if len(people) < 3:  # two people would make a 1:1 (only in a tiny org)
                    wanted[manager] -= 1
                    continue
                minutes = (30, 30, 45, 60)[int(random_() * 4)]
                starts = slots[minutes]
                day = workdays[int(random_() * len(workdays))]
                cancelled = random_() < 0.05
                self.serial += 1
                spec = EventSpec(
                    uid=f"meeting-{manager:05d}-{self.serial}@{DOMAIN}",
                    summary=_ONE_OFF[int(random_() * len(_ONE_OFF))],
                    start=combine(day, clock[starts[int(random_() * len(starts))]], tzinfo=tz),
                    duration=durations[minutes],
                    organizer=organizer,
                    attendees=[attendee[p] for p in people],
                    status="CANCELLED" if cancelled else None,
                )
                stats["ordinary_one_offs"] += 1
                for owner in people:
                    if owner in reports:
                        calendars[owner].append(spec)
                        if not cancelled:
                            wanted[owner] -= 1
                            ordinary[owner] += 1

    # -- the result --------------------------------------------------------------------------------

    def build(self) -> SyntheticOrg:
        self.one_on_ones()
        self.team_meetings()
        self.all_hands()
        self.syncs_and_focus()
        self.all_day()
        self.one_offs()
        emails = self.emails
        managers = {emails[p]: emails[b] for p, b in enumerate(self.boss) if b >= 0}
        roster = "email,name,manager_email\n" + "".join(
            f"{e},{self.names[i]},{managers.get(e, '')}\n" for i, e in enumerate(emails)
        )
        calendars = {emails[m]: self.calendars[m] for m in self.managers}
        stats = self.stats
        stats["people"] = self.people
        stats["managers"] = len(self.managers)
        stats["levels"] = max(self.depth) + 1
        stats["max_reports"] = max((len(r) for r in self.reports.values()), default=0)
        stats["cancelled"] = stats["cancelled_exdate"] + stats["cancelled_override"]
        stats["calendar_entries"] = sum(len(c) for c in calendars.values())
        stats["events"] = len({id(s) for c in calendars.values() for s in c})
        stats["ordinary_occurrences"] = sum(self.ordinary.values())
        stats["span_days"] = (self.end_day - self.first_day).days
        return SyntheticOrg(self.people, roster, managers, calendars, dict(stats))


def generate(
    people: int, seed: int = 1, as_of: date = AS_OF, timezone: str = "Europe/Berlin"
) -> SyntheticOrg:
    """The synthetic org of ``people`` people (see the module doc); the same arguments give the same org."""
    if people < 1:
        raise ValueError("an org needs at least one person")
    # Nothing here makes reference cycles: the cyclic collector would only rescan the millions of objects
    # of a big org again and again (a third of the time at 10,000 people).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _Builder(people, seed, as_of, timezone).build()
    finally:
        if collecting:
            gc.enable()


def per_week(org: SyntheticOrg) -> float:
    """Ordinary occurrences per manager and week."""
    stats = org.stats
    return stats["ordinary_occurrences"] / max(1, stats["managers"]) / (stats["span_days"] / 7)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, nargs="+", default=[2000], help="org sizes (default: 2000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--as-of", type=date.fromisoformat, default=AS_OF, help="YYYY-MM-DD")
    parser.add_argument("--timezone", default="Europe/Berlin")
    args = parser.parse_args(argv)
    orgs = [generate(n, args.seed, args.as_of, args.timezone) for n in args.people]
    rows: list[tuple[str, list[str]]] = [(name, [str(o.stats[name]) for o in orgs]) for name in STAT_NAMES]
    rows += [
        (
            "events_per_calendar",
            [f"{o.stats['calendar_entries'] / max(1, o.stats['managers']):.1f}" for o in orgs],
        ),
        ("ordinary_per_week", [f"{per_week(o):.1f}" for o in orgs]),
    ]
    width = max(len(name) for name, _ in rows)
    cells = max(10, *(len(v) for _, values in rows for v in values))
    for name, values in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{v:>{cells}}" for v in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
