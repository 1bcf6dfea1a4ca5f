"""An independent reference check ("oracle") of the domain rules, end to end.

Each seed generates a random org (roster, config) and random meetings between its people, writes them
as ICS files named after their owners (``ann@acme.test.ics``), runs ``calsync report --format json`` as a
subprocess, and compares every pair with a report computed here from the generator's own ground truth
(the occurrences and absences it generated, never by parsing the ICS). The rules followed are DESIGN.md
sections 3, 3b and 4, refined by the README sections "The report", "Statuses and how they are decided"
and "How meetings are read" (with its "Dates and windows"). The section 3b part (absence, holidays,
weekends, excused dates, new pairs' ``since``, ignored attendees, ``unknown``) is written from DESIGN.md
alone.

The generator stays away from the places where those rules are silent, so that any mismatch is a real
disagreement: times are 08:00-17:00 (never near midnight, so a local date and the as-of instant always
agree), moved occurrences never cross the as-of instant, the first valid future occurrence never lies
within a day of the end of the look-ahead, the org has one root (so "peer" is never about two people
without a manager), a pair that is not a direct pair always has a live 1:1 in the windows, every
meeting is written identically into each participant's file (stale copies are tested elsewhere), a
floating meeting never involves someone with a roster time zone (whose zone floating times would be
read in is a question of its own), an out-of-office block is always in its organizer's own file (an
invitee's copy is extra), and a manager whose calendar is unreadable has, with each of their tracked
pairs, either a clear occurrence inside the windows or none anywhere near them.

Readings of DESIGN.md section 3b chosen where it leaves room (some marked "Reading:" in the code):
- "excused dates between a and b" are the dates strictly between them (a and b excluded); the open
  gap counts the dates strictly between its start and as_of (as_of itself has not begun at 00:00).
- ``absent_days_since_last`` pairs with ``days_since_last``: the excused dates strictly between
  last_held and as_of, null when nothing was held (``since`` does not change it).
- with ``since`` after last_held, the open gap starts at ``since``: ``from`` is since and ``days`` is
  as_of - since (the fields stay consistent with each other); ``days_since_last`` keeps its meaning.
- ``since`` applies to direct pairs only, from the report's roster row: it dates that manager -> report
  line ("this manager -> report line"); a skip-level pair is not the line on the report's row, so it
  has null, as untracked pairs do. The at-risk clause "next_scheduled more than C + G after
  last_held" still measures from last_held (DESIGN names only the open gap and overdue's first clause as
  measured from max(last_held, since)).
- "more than C + G days since ``since``" (no-series) subtracts the excused dates strictly between
  since and as_of, like every other span.
- ``excused`` and ``absent_days_since_last`` are facts about a pair's dates ("a date is excused for a
  pair when it is absent for either person"), so they are given for every pair in the report,
  untracked ones included; only the rules that use them are limited to tracked pairs.
- ``excused`` lists one date per excused cancelled or declined occurrence, like ``cancelled`` and
  ``declined`` do (a date may repeat), sorted.
- a timed block's "at least 4 hours" is its overlap with the person's local day, measured in absolute
  time (a 23- or 25-hour DST day is what it is); an all-day block covers its dates as written
  (DTSTART up to the exclusive DTEND), whatever the person's time zone.
- a weekend day is absent when directly absent (a block, holiday or entry covers it) or by the
  weekend rule; the weekend rule's neighbours must be directly absent (they are not weekend days).
- holidays are the ``holidays`` package's defaults for the code (observed days included).
- "no calendar that was read shows any occurrence of the pair" (unknown) is decided only on inputs
  where it cannot matter how far outside the windows "any" reaches (see above).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holidays_package
import icalendar
import pytest

from calsync.demo import Attendee, EventSpec, ics_event

DOMAIN = "acme.test"
EXTERNALS = ("x@client.example", "y@partner.example")
LOCALS = ("ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon", "kim", "leo", "mia", "ned")
ZONES: dict[str, tzinfo] = {
    "Europe/Berlin": ZoneInfo("Europe/Berlin"),
    "America/New_York": ZoneInfo("America/New_York"),
    "UTC": UTC,
    "Asia/Tokyo": ZoneInfo("Asia/Tokyo"),
    "America/Los_Angeles": ZoneInfo("America/Los_Angeles"),
}
ORG_ZONES = (None, None, "Europe/Berlin", "Europe/Berlin", "America/New_York", "UTC")
EVENT_ZONES = ("Europe/Berlin",) * 3 + ("America/New_York",) * 3 + ("UTC",) * 2 + ("floating",)
PERSON_ZONES = ("Europe/Berlin", "America/New_York", "UTC", "Asia/Tokyo", "America/Los_Angeles")
BLOCK_ZONES = ("Europe/Berlin", "America/New_York", "UTC", "Asia/Tokyo", "America/Los_Angeles")
ORG_HOLIDAYS = (None, None, "DE", "DE-BY", "US-CA", "US", "FR")
PERSON_HOLIDAYS = ("none", "none", "US-CA", "DE-BY", "DE", "JP", "FR")
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKENDS: tuple[list[str] | None, ...] = (
    None,  # left out: Saturday and Sunday
    None,
    ["saturday", "sunday"],
    ["friday", "saturday"],
    ["sunday"],
    ["saturday", "sunday", "monday"],
    [],
)
EA = f"ea@{DOMAIN}"  # an assistant who schedules meetings for others (in the roster when present)
BOTS = ("otter@notetaker.example", "Fireflies@NoteTaker.example")
IGNORES: tuple[list[str] | None, ...] = (
    None,
    None,
    ["ea@acme.test", "*@notetaker.example"],
    ["EA@Acme.test"],
    ["*@NoteTaker.example"],
    ["*@notetaker.example", "ea@acme.test", "nobody@acme.test"],
)
SECRET = "Secret-"  # every out-of-office title and [[absence]] reason starts with it
SEEDS = range(60)
FIELDS = (
    "people",
    "manager",
    "report",
    "relationship",
    "status",
    "cadence_days",
    "held",
    "cancelled",
    "declined",
    "excused",
    "last_held",
    "next_scheduled",
    "days_since_last",
    "absent_days_since_last",
    "since",
    "gaps",
)

Pair = tuple[str, str]


# -- the generated world ------------------------------------------------------------------------------


@dataclass
class Org:
    seed: int
    as_of: date
    people: list[str]
    manager: dict[str, str | None]
    cadence: dict[str, int]  # roster cadence_days, for some people
    timezone: str | None
    default_days: int | None  # None: the key is left out of the config (default 14)
    grace_days: int | None  # None: default 3
    skip_level_days: int | None  # None: unset, skip-level pairs are untracked
    lookback_days: int | None  # None: default 90
    lookahead_days: int | None  # None: default 90
    # -- section 3b
    weekend: list[str] | None = None  # [org] weekend; None: left out (Saturday and Sunday)
    holidays: str | None = None  # [org] holidays; None: left out (no holidays)
    ignore: list[str] | None = None  # [detect] ignore_attendees as written; None: left out
    person_zone: dict[str, str] = field(default_factory=dict)  # the roster's timezone column
    person_holidays: dict[str, str] = field(default_factory=dict)  # the roster's holidays column
    since: dict[str, date] = field(default_factory=dict)  # the roster's since column (of reports)
    blocks: list[Block] = field(default_factory=list)
    absences: list[AbsenceEntry] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # people whose calendar file cannot be read

    @property
    def weekend_days(self) -> set[int]:
        names = ["saturday", "sunday"] if self.weekend is None else self.weekend
        return {WEEKDAY_NAMES.index(n) for n in names}

    def ignores(self, address: str) -> bool:
        """[detect] ignore_attendees: addresses and ``*@domain`` patterns, case-insensitive."""
        address = address.lower()
        for pattern in self.ignore or ():
            pattern = pattern.lower()
            if pattern.startswith("*@"):
                if address.rpartition("@")[2] == pattern[2:]:
                    return True
            elif address == pattern:
                return True
        return False

    def person_tz(self, person: str) -> tzinfo:
        """A person's time zone: the roster's, else org.timezone, else UTC."""
        name = self.person_zone.get(person) or self.timezone
        return ZONES[name] if name else UTC

    def holiday_code(self, person: str) -> str | None:
        code = self.person_holidays.get(person, self.holidays)
        return None if code in (None, "none") else code

    @property
    def default(self) -> int:
        return 14 if self.default_days is None else self.default_days

    @property
    def grace(self) -> int:
        return 3 if self.grace_days is None else self.grace_days

    @property
    def lookback(self) -> int:
        return 90 if self.lookback_days is None else self.lookback_days

    @property
    def lookahead(self) -> int:
        return 90 if self.lookahead_days is None else self.lookahead_days

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone) if self.timezone else UTC

    @property
    def as_of_instant(self) -> datetime:
        return datetime.combine(self.as_of, time(0), tzinfo=self.tz)

    @property
    def window_start(self) -> date:
        return self.as_of - timedelta(days=self.lookback)

    def zone(self, name: str) -> tzinfo:
        return self.tz if name == "floating" else ZONES[name]


@dataclass
class Block:
    """An out-of-office block of ``owner`` (its ORGANIZER), all-day (dates, ``end`` exclusive) or timed;
    ``busy``: a decoy with X-MICROSOFT-CDO-BUSYSTATUS:BUSY, which is no absence."""

    uid: str
    owner: str
    start: datetime | date
    end: datetime | date
    summary: str
    kind: str
    invitees: list[str] = field(default_factory=list)  # copies go into their files as well
    busy: bool = False

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)


@dataclass
class AbsenceEntry:
    """A ``[[absence]]`` of the config; ``written``: the email as written, ``as_string``: the dates as
    "YYYY-MM-DD" strings rather than TOML dates."""

    person: str
    start: date
    until: date
    reason: str | None
    written: str
    as_string: bool


@dataclass
class Occ:
    """One occurrence: ``original`` is its scheduled start (the RECURRENCE-ID), ``start`` where it is now."""

    original: datetime
    start: datetime
    state: str = "confirmed"  # confirmed | exdate | cancelled | moved | declined
    by: str | None = None  # who declined
    rdate: bool = False

    @property
    def is_cancelled(self) -> bool:
        return self.state in ("exdate", "cancelled")


@dataclass
class Meeting:
    uid: str
    what: str
    humans: list[str]  # organizer first; org members and externals
    zone: str  # an IANA name, "UTC" or "floating"
    occs: list[Occ]
    series: bool
    organizer_listed: bool = True
    partstat: dict[str, str] = field(default_factory=dict)
    rrule: dict[str, Any] | None = None
    dtstart: datetime | None = None  # a series' DTSTART
    all_day_dates: list[date] | None = None
    cancelled_whole: bool = False
    declined_by: str | None = None  # declined on the master: every occurrence
    room: tuple[str, str, str] | None = None  # (email, CUTYPE, PARTSTAT)
    shout: set[str] = field(default_factory=set)  # addresses written in mixed case ("organizer": ORGANIZER)
    status: str | None = None  # STATUS of the event when it is not cancelled
    sequence: int = 0
    extras: set[str] = field(default_factory=set)  # an assistant or a bot, maybe ignored

    def org_people(self, org: Org) -> list[str]:
        return [h for h in self.humans if h in org.manager]

    def counted(self, org: Org) -> list[str]:
        """The humans that are participants: [detect] ignore_attendees dropped."""
        return [h for h in self.humans if not org.ignores(h)]

    def decliners(self) -> list[str]:
        """Who may decline: listed attendees (the organizer only when listed), never an extra."""
        return [
            h for h in (self.humans if self.organizer_listed else self.humans[1:]) if h not in self.extras
        ]

    def is_one_on_one(self, org: Org) -> bool:
        counted = self.counted(org)
        return (
            self.all_day_dates is None
            and not self.cancelled_whole
            and len(set(counted)) == 2
            and all(h in org.manager for h in counted)
        )

    def pair(self, org: Org) -> Pair:
        a, b = sorted(self.counted(org))
        return a, b

    def describe(self, org: Org) -> str:
        flags = [self.what, f"zone={self.zone}"]
        if self.rrule:
            flags.append("rrule=" + ";".join(f"{k}={v}" for k, v in self.rrule.items()))
        if self.cancelled_whole:
            flags.append("CANCELLED AS A WHOLE")
        if self.all_day_dates is not None:
            flags.append("ALL-DAY")
        if self.declined_by:
            flags.append(f"master declined by {self.declined_by}")
        if self.room:
            flags.append(f"room {self.room[0]} ({self.room[1]}, {self.room[2]})")
        if self.status:
            flags.append(f"STATUS:{self.status}")
        if not self.organizer_listed:
            flags.append("organizer not among the attendees")
        if self.shout:
            flags.append(f"mixed-case emails: {', '.join(sorted(self.shout))}")
        if self.extras:
            flags.append(f"extras: {', '.join(sorted(self.extras))}")
        lines = [f"  {self.uid}: {', '.join(self.humans)} [{'; '.join(flags)}]"]
        lo = org.window_start - timedelta(days=10)
        hi = org.as_of + timedelta(days=org.lookahead + 10)
        if self.all_day_dates is not None:
            lines.append("    all-day dates: " + ", ".join(d.isoformat() for d in self.all_day_dates))
        shown = [o for o in self.occs if lo <= o.original.date() <= hi or lo <= o.start.date() <= hi]
        for o in shown:
            text = f"    {o.original.isoformat()} {o.state}"
            if o.start != o.original:
                text += f" -> {o.start.isoformat()}"
            if o.by:
                text += f" by {o.by}"
            if o.rdate:
                text += " (RDATE)"
            lines.append(text)
        if len(shown) < len(self.occs):
            lines.append(f"    ({len(self.occs) - len(shown)} more occurrences outside the windows)")
        return "\n".join(lines)


def email(local: str) -> str:
    return f"{local}@{DOMAIN}"


# -- generation -----------------------------------------------------------------------------------------


def make_org(seed: int, rng: random.Random) -> Org:
    n = rng.randint(6, 14)
    people = [email(x) for x in LOCALS[:n]]
    depth_limit = rng.randint(1, 3)
    depth = {people[0]: 0}
    manager: dict[str, str | None] = {people[0]: None}
    for p in people[1:]:
        candidates = [q for q in depth if depth[q] < depth_limit]
        # prefer building deeper trees when allowed
        m = rng.choice(candidates + [q for q in candidates if depth[q] > 0])
        manager[p] = m
        depth[p] = depth[m] + 1
    cadence = {p: rng.choice((7, 10, 14, 21, 28)) for p in people[1:] if rng.random() < 0.25}
    as_of = date(2026, 11, 21) if seed == 0 else date(2026, 11, 21) + timedelta(days=rng.randint(-330, 240))
    if rng.random() < 0.6:
        people.append(EA)
        manager[EA] = people[0]
    org = Org(
        seed=seed,
        as_of=as_of,
        people=people,
        manager=manager,
        cadence=cadence,
        timezone=rng.choice(ORG_ZONES),
        default_days=None if rng.random() < 0.15 else rng.randint(7, 21),
        grace_days=None if rng.random() < 0.15 else rng.randint(0, 4),
        skip_level_days=rng.choice((None, None, 21, 30, 45)),
        lookback_days=rng.choice((None, 90, 90, 60, 75)),
        lookahead_days=rng.choice((None, 90, 90, 60)),
        weekend=rng.choice(WEEKENDS),
        holidays=rng.choice(ORG_HOLIDAYS),
        ignore=rng.choice(IGNORES),
    )
    for p in people:
        if rng.random() < 0.3:
            org.person_zone[p] = rng.choice(PERSON_ZONES)
        if rng.random() < 0.2:
            org.person_holidays[p] = rng.choice(PERSON_HOLIDAYS)
    for p in people[1:]:
        if rng.random() < 0.3:
            # young and old lines, around the cadence limits
            org.since[p] = as_of - timedelta(days=rng.choice((rng.randint(1, 40), rng.randint(1, 130))))
    return org


def relationship(org: Org, a: str, b: str) -> tuple[str, str | None, str | None]:
    """(relationship, manager, report) of two distinct org members."""
    ma, mb = org.manager[a], org.manager[b]
    if ma == b:
        return "direct", b, a
    if mb == a:
        return "direct", a, b
    if ma is not None and org.manager[ma] == b:
        return "skip-level", b, a
    if mb is not None and org.manager[mb] == a:
        return "skip-level", a, b
    if ma is not None and ma == mb:
        return "peer", None, None
    return "other", None, None


class Generator:
    def __init__(self, org: Org, rng: random.Random) -> None:
        self.org = org
        self.rng = rng
        self.meetings: list[Meeting] = []
        self.count = 0

    def uid(self, humans: list[str]) -> str:
        self.count += 1
        return f"m{self.count}-{'-'.join(h.split('@')[0] for h in humans)}@{DOMAIN}"

    def zone_for(self, humans: list[str]) -> str:
        if any(h in self.org.person_zone for h in humans):
            return self.rng.choice([z for z in EVENT_ZONES if z != "floating"])
        return self.rng.choice(EVENT_ZONES)

    def at(self, day: date, hour: int, minute: int, zone: str) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=self.org.zone(zone))

    def base(self, humans: list[str], *, what: str, zone: str, series: bool) -> Meeting:
        rng = self.rng
        m = Meeting(uid=self.uid(humans), what=what, humans=humans, zone=zone, occs=[], series=series)
        m.extras = {h for h in humans if h == EA or h in BOTS}
        m.organizer_listed = rng.random() < 0.8
        for h in humans[1:]:
            m.partstat[h] = rng.choice(("ACCEPTED", "ACCEPTED", "ACCEPTED", "TENTATIVE", "NEEDS-ACTION"))
            if h in m.extras and rng.random() < 0.3:
                m.partstat[h] = "DECLINED"  # an ignored attendee's decline is nobody's
        m.partstat[humans[0]] = "ACCEPTED"
        if rng.random() < 0.2:
            m.room = (
                f"room-{rng.randint(1, 9)}@{DOMAIN}",
                rng.choice(("ROOM", "RESOURCE")),
                rng.choice(("ACCEPTED", "ACCEPTED", "DECLINED")),  # a room's decline is not a person's
            )
        if rng.random() < 0.12:
            m.shout = {x for x in ["organizer", *humans] if rng.random() < 0.5} or {"organizer"}
        m.status = rng.choice((None, None, None, "CONFIRMED", "TENTATIVE"))
        m.sequence = rng.choice((0, 0, 0, 1, 2))
        return m

    def series(
        self, humans: list[str], *, live: bool = False, until_day: date | None = None, what: str = "series"
    ) -> Meeting:
        """A weekly / biweekly / 3-weekly series; ``live``: open-ended and started inside the window."""
        rng, org = self.rng, self.org
        zone = self.zone_for(humans)
        m = self.base(humans, what=what, zone=zone, series=True)
        interval = rng.choice((1, 1, 2, 2, 2, 3))
        hour, minute = rng.randint(8, 16), rng.choice((0, 0, 30))
        if live:
            first = org.as_of - timedelta(days=rng.randint(7, org.lookback - 5))
            end = "open"
        else:
            if rng.random() < 0.3:
                # an occurrence on the first day of the window, or on the day before it
                weeks = interval * rng.randint(0, 6)
                first = org.window_start - timedelta(weeks=weeks, days=rng.choice((0, 0, 1)))
            elif rng.random() < 0.85:
                first = org.as_of - timedelta(days=rng.randint(3, 220))
            else:
                first = org.as_of + timedelta(days=rng.randint(1, 30))
            end = rng.choice(("open", "open", "count", "until"))
        if until_day is not None:
            first = min(first, until_day - timedelta(days=rng.randint(7, 150)))
            end = "until"
        rrule: dict[str, Any] = {"freq": "weekly"}
        if interval > 1:
            rrule["interval"] = interval
        weekdays: set[int] = set()
        style = rng.random()
        if style < 0.1:
            rrule = {"freq": "daily", "interval": 7 * interval}
        elif style < 0.2 and interval == 1:
            # weekly on two days: the DTSTART's weekday and another one
            weekdays = {first.weekday(), (first.weekday() + rng.randint(2, 4)) % 7}
            rrule["byday"] = [("MO", "TU", "WE", "TH", "FR", "SA", "SU")[w] for w in sorted(weekdays)]
        count: int | None = None
        until: datetime | None = None
        if end == "count":
            count = rng.randint(2, 25)
            rrule["count"] = count
        elif end == "until":
            if until_day is None:
                until_day = org.as_of + timedelta(days=rng.randint(-130, 45))
            until_day = max(first + timedelta(days=7), until_day)
            until = datetime.combine(until_day, time(23, 30), tzinfo=UTC)
            if zone == "floating":
                until = until.replace(tzinfo=None)
            rrule["until"] = until
        m.rrule = rrule
        m.dtstart = self.at(first, hour, minute, zone)
        horizon = org.as_of + timedelta(days=org.lookahead + 40)
        if weekdays:
            days = (first + timedelta(days=i) for i in itertools.count())
            dates = (d for d in days if d.weekday() in weekdays)
        else:
            dates = (first + timedelta(weeks=interval * i) for i in itertools.count())
        for k, day in enumerate(dates):
            if count is not None and k >= count:
                break
            start = self.at(day, hour, minute, zone)
            if start.date() > horizon:
                break
            if until is not None:
                if until.tzinfo is None and start.replace(tzinfo=None) > until:
                    break
                if until.tzinfo is not None and start > until:
                    break
            m.occs.append(Occ(start, start))
        if not m.occs:
            m.occs.append(Occ(self.at(first, hour, minute, zone), self.at(first, hour, minute, zone)))
            m.rrule = None  # degenerate: write it as a one-off
        if rng.random() < 0.08 and len(humans) - len(m.extras) == 2 and m.decliners():
            m.declined_by = rng.choice(m.decliners())
        if rng.random() < 0.1 and m.rrule is not None:
            # an extra occurrence (RDATE) two days after some occurrence in the window
            day = org.as_of - timedelta(days=rng.randint(3, org.lookback - 3))
            extra = self.at(day, hour, minute, zone)
            taken = {o.original.date() for o in m.occs}
            if day not in taken:
                m.occs.append(Occ(extra, extra, rdate=True))
        self.modify(m, rng.choice((0.0, 0.1, 0.2, 0.3)) if not live else rng.choice((0.0, 0.1)))
        m.occs.sort(key=lambda o: o.original)
        self.meetings.append(m)
        return m

    def modify(self, m: Meeting, p: float) -> None:
        """EXDATEs, cancelled, moved and declined overrides near the windows."""
        rng, org = self.rng, self.org
        lo = org.window_start - timedelta(days=5)
        hi = org.as_of + timedelta(days=25)
        inst = org.as_of_instant
        taken = {o.original.date() for o in m.occs}
        edge = (org.window_start - timedelta(days=1), org.window_start)
        for o in m.occs:
            p_here = max(p, 0.6) if o.original.date() in edge else p
            if o.rdate or not lo <= o.original.date() <= hi or rng.random() >= p_here:
                continue
            if m.declined_by is not None:
                action = "exdate"
            else:
                action = rng.choice(("exdate", "cancelled", "moved", "moved", "declined"))
            # a cancelled or declined override may carry a new time as well (rarely)
            if action == "moved" or (action in ("cancelled", "declined") and rng.random() < 0.25):
                for _ in range(10):
                    day = o.original.date() + timedelta(days=rng.choice((0, 1)))
                    new = self.at(day, rng.randint(8, 16), rng.choice((0, 15, 30)), m.zone)
                    same_side = (new < inst) == (o.original < inst)
                    if new != o.original and same_side and (day == o.original.date() or day not in taken):
                        o.start = new
                        break
                if action == "moved" and o.start == o.original:
                    continue
            if action == "declined" and not m.decliners():
                continue
            o.state = action
            if action == "declined":
                o.by = rng.choice(m.decliners())

    def oneoff(
        self, humans: list[str], *, when: str = "any", day: date | None = None, what: str = "one-off"
    ) -> Meeting:
        rng, org = self.rng, self.org
        zone = self.zone_for(humans)
        m = self.base(humans, what=what, zone=zone, series=False)
        if day is not None:
            when = "live"  # never declined
            offset = (day - org.as_of).days
        elif when == "any":
            when = rng.choice(("past", "past", "past", "future", "far"))
        if day is not None:
            pass
        elif when == "past":
            offset = -rng.randint(1, org.lookback + 15)
        elif when == "live":
            offset = -rng.randint(1, org.lookback - 2)
        elif when == "future":
            offset = rng.randint(1, org.lookahead - 3)
        else:  # beyond the look-ahead
            offset = rng.randint(org.lookahead + 3, org.lookahead + 40)
        start = self.at(org.as_of + timedelta(days=offset), rng.randint(8, 16), rng.choice((0, 30)), zone)
        occ = Occ(start, start)
        if when != "live" and len(humans) - len(m.extras) == 2 and m.decliners() and rng.random() < 0.15:
            occ.state = "declined"
            occ.by = rng.choice(m.decliners())
        m.occs.append(occ)
        self.meetings.append(m)
        return m

    def all_day(self, humans: list[str]) -> Meeting:
        rng, org = self.rng, self.org
        m = self.base(humans, what="all-day", zone="UTC", series=rng.random() < 0.5)
        first = org.as_of - timedelta(days=rng.randint(1, org.lookback - 1))
        if m.series:
            m.rrule = {"freq": "weekly", "count": rng.randint(2, 10)}
            m.all_day_dates = [first + timedelta(weeks=k) for k in range(m.rrule["count"])]
        else:
            m.all_day_dates = [first]
        self.meetings.append(m)
        return m

    def cancelled_whole(self, humans: list[str]) -> Meeting:
        if self.rng.random() < 0.6:
            m = self.series(humans, live=True, what="series (cancelled as a whole)")
        else:
            m = self.oneoff(humans, when="live", what="one-off (cancelled as a whole)")
        m.cancelled_whole = True
        m.declined_by = None
        for o in m.occs:  # no overrides: the whole thing is gone
            o.start, o.state, o.by = o.original, "confirmed", None
        return m

    def pair_meetings(self, a: str, b: str, *, direct: bool, cadence: int | None) -> None:
        rng, org = self.rng, self.org
        humans = [a, b]
        if not direct:
            # a pair that is not a direct pair always has something live in the window
            if rng.random() < 0.75:
                self.series(humans, live=True)
            else:
                self.oneoff(humans, when="live")
        r = rng.random()
        if r < 0.55:
            self.series(humans)
        elif r < 0.7:
            self.series(
                humans, until_day=self.org.as_of - timedelta(days=rng.randint(20, 100)), what="old series"
            )
            self.series(humans, what="new series")
        elif r < 0.82:
            for _ in range(rng.randint(2, 6)):
                self.oneoff(humans)
        elif r < 0.95 and cadence is not None:
            # one-offs exactly at (or one day off) the cadence + grace limits and the window's start
            limit = cadence + org.grace
            if rng.random() < 0.5:
                last = org.as_of - timedelta(days=limit + rng.choice((-1, 0, 1)))
            else:
                last = org.as_of - timedelta(days=rng.randint(1, 5))
                self.oneoff(humans, day=last + timedelta(days=limit + rng.choice((-1, 0, 1))), what="edge")
            self.oneoff(humans, day=last, what="edge")
            self.oneoff(humans, day=last - timedelta(days=limit + rng.choice((-1, 0, 1))), what="edge")
            if rng.random() < 0.5:
                self.oneoff(humans, day=org.window_start - timedelta(days=rng.choice((0, 1))), what="edge")
            return
        if rng.random() < 0.3:
            for _ in range(rng.randint(1, 2)):
                self.oneoff(humans)


def generate(seed: int) -> tuple[Org, list[Meeting]]:
    rng = random.Random(seed)
    org = make_org(seed, rng)
    gen = Generator(org, rng)
    people = org.people
    pairs = [(a, b) for i, a in enumerate(people) for b in people[i + 1 :]]
    by_rel: dict[str, list[Pair]] = {}
    for a, b in pairs:
        by_rel.setdefault(relationship(org, a, b)[0], []).append((a, b))
    for a, b in by_rel.get("direct", []):
        if EA not in (a, b) and rng.random() < 0.8:
            _, mgr, rep = relationship(org, a, b)
            assert mgr is not None and rep is not None
            gen.pair_meetings(mgr, rep, direct=True, cadence=org.cadence.get(rep, org.default))
    for a, b in by_rel.get("direct", []):
        # a 1:1 with an assistant (as organizer or attendee) or a note-taking bot: a 1:1 only when ignored
        if EA in (a, b) or rng.random() >= 0.3:
            continue
        _, mgr, rep = relationship(org, a, b)
        assert mgr is not None and rep is not None
        if EA in org.manager and rng.random() < 0.6:
            humans = [EA, mgr, rep] if rng.random() < 0.6 else [mgr, rep, EA]
            what = "with an assistant"
        else:
            humans = [mgr, rep, rng.choice(BOTS)]
            what = "with a bot"
        (gen.series if rng.random() < 0.6 else gen.oneoff)(humans, what=what)
    used: set[Pair] = set()
    for rel in ("skip-level", "peer", "other"):
        candidates = [(a, b) for a, b in by_rel.get(rel, []) if EA not in (a, b)]
        for a, b in rng.sample(candidates, min(len(candidates), rng.randint(0, 2))):
            _, mgr, rep = relationship(org, a, b)
            cadence = org.skip_level_days if rel == "skip-level" else None
            gen.pair_meetings(mgr or a, rep or b, direct=False, cadence=cadence)
            used.add((a, b))
    # things that are not 1:1s
    for _ in range(rng.randint(0, 2)):
        a, b = rng.choice(pairs)
        gen.all_day([a, b])
    for _ in range(rng.randint(0, 2)):
        a, b, c = rng.sample([p for p in people if p != EA], 3)
        (gen.series if rng.random() < 0.5 else gen.oneoff)([a, b, c], what="3-person")
    for _ in range(rng.randint(0, 2)):
        a, x = rng.choice(people), rng.choice(EXTERNALS)
        (gen.series if rng.random() < 0.5 else gen.oneoff)([a, x], what="with an external")
    for _ in range(rng.randint(0, 1)):
        a, b = rng.choice(pairs)
        gen.oneoff([a, b, rng.choice(EXTERNALS)], what="pair + external")
    for _ in range(rng.randint(1, 2)):
        a, b = rng.choice(pairs)
        if (a, b) in used:  # keep the "live" meeting of non-direct pairs intact
            continue
        gen.cancelled_whole([a, b] if rng.random() < 0.5 else [b, a])
    absences = Absences(org, rng)
    absences.generate(gen.meetings)
    cancel_when_away(org, gen.meetings, rng)
    if rng.random() < 0.4:
        choose_broken(org, gen.meetings, rng)
    return org, gen.meetings


class Absences:
    """Out-of-office blocks, [[absence]] entries and decoys, many of them on the dates that matter: the
    cancelled and declined occurrences, the spans between held dates, the days around as_of."""

    def __init__(self, org: Org, rng: random.Random) -> None:
        self.org = org
        self.rng = rng
        self.count = 0

    def title(self) -> str:
        self.count += 1
        what = self.rng.choice(("Dentist", "Vacation", "Parental leave", "Sick", "Offsite", "Moving house"))
        return f"{SECRET}{self.count} {what}"

    def block(self, person: str, start: datetime | date, end: datetime | date, kind: str) -> Block:
        rng = self.rng
        invitees = []
        if rng.random() < 0.25:
            invitees = [rng.choice([p for p in self.org.people if p != person])]
        b = Block(
            f"ooo-{self.org.seed}-{self.count + 1}@{DOMAIN}", person, start, end, self.title(), kind, invitees
        )
        self.org.blocks.append(b)
        return b

    def entry(self, person: str, first: date, until: date) -> None:
        rng = self.rng
        reason = None if rng.random() < 0.3 else self.title()
        written = person.upper() if rng.random() < 0.2 else person
        self.org.absences.append(AbsenceEntry(person, first, until, reason, written, rng.random() < 0.4))

    def timed(self, person: str, day: date, hours: float, hour: int, kind: str) -> None:
        zone = self.org.person_tz(person) if self.rng.random() < 0.5 else ZONES[self.rng.choice(BLOCK_ZONES)]
        start = datetime.combine(day, time(hour, self.rng.choice((0, 0, 30))), tzinfo=zone)
        self.block(person, start, start + timedelta(hours=hours), kind)

    def cover(self, person: str, day: date) -> None:
        """Make ``day`` absent for ``person``, or nearly (a block just short of 4 hours, or near midnight)."""
        rng = self.rng
        how = rng.random()
        if how < 0.3:
            first = day - timedelta(days=rng.choice((0, 0, 1)))
            self.block(person, first, first + timedelta(days=rng.randint(1, 3)), "all-day")
        elif how < 0.65:
            hours = rng.choice((3, 3.5, 4, 4, 4.5, 6, 9, 20))
            hour = rng.choice((8, 9, 13, 14)) if rng.random() < 0.6 else rng.randint(0, 23)
            self.timed(person, day, hours, hour, "timed")
        elif how < 0.85:
            self.entry(
                person, day - timedelta(days=rng.randint(0, 2)), day + timedelta(days=rng.randint(0, 2))
            )
        else:
            # the weekdays around it, so that the weekend rule decides the days between
            self.weekdays(person, day - timedelta(days=rng.randint(0, 3)), rng.randint(3, 9))

    def weekdays(self, person: str, first: date, days: int) -> None:
        """All-day blocks on the non-weekend days of ``days`` days from ``first``, one block per run."""
        weekend = self.org.weekend_days
        run: list[date] = []
        for k in range(days + 1):
            d = first + timedelta(days=k)
            if d.weekday() in weekend or k == days:
                if run:
                    self.block(person, run[0], run[-1] + timedelta(days=1), "weekdays")
                run = []
            else:
                run.append(d)

    def span(self, person: str, first: date, days: int) -> None:
        """``person`` away for about ``days`` days from ``first``."""
        rng = self.rng
        how = rng.random()
        if how < 0.25:
            self.block(person, first, first + timedelta(days=days), "all-day")
        elif how < 0.5:
            self.entry(person, first, first + timedelta(days=days - 1))
        elif how < 0.8:
            self.weekdays(person, first, days)
        else:
            zone = self.org.person_tz(person)
            start = datetime.combine(first, time(rng.randint(8, 20)), tzinfo=zone)
            end = datetime.combine(first + timedelta(days=days - 1), time(rng.randint(1, 14)), tzinfo=zone)
            self.block(person, start, max(end, start + timedelta(hours=5)), "timed, days")

    def generate(self, meetings: list[Meeting]) -> None:
        org, rng = self.org, self.rng
        lo = org.window_start - timedelta(days=10)
        hi = org.as_of + timedelta(days=org.lookahead)
        pairs: set[Pair] = set()
        for m in meetings:
            if not m.is_one_on_one(org):
                continue
            pairs.add(m.pair(org))
            for o in m.occs:
                day = o.original.date() if o.is_cancelled else o.start.date()
                missed = o.is_cancelled or o.state == "declined" or m.declined_by
                if missed and lo <= day <= hi and rng.random() < 0.45:
                    self.cover(rng.choice(m.counted(org)), day)
        for p, mgr in org.manager.items():
            if mgr is not None:
                pairs.add((min(p, mgr), max(p, mgr)))
        for pair in sorted(pairs):
            if rng.random() < 0.3:
                first = org.window_start + timedelta(days=rng.randint(-10, org.lookback + 20))
                self.span(rng.choice(pair), first, rng.randint(4, 25))
            if rng.random() < 0.15:
                first = org.as_of - timedelta(days=rng.randint(1, 20))
                self.span(rng.choice(pair), first, rng.randint(3, 30))
        for p in org.people:
            for _ in range(rng.choice((0, 0, 1, 2))):
                self.cover(p, lo + timedelta(days=rng.randint(0, (hi - lo).days)))
            if rng.random() < 0.1:
                # an all-day event shown as busy: neither an absence nor a meeting
                day = lo + timedelta(days=rng.randint(0, (hi - lo).days))
                self.block(p, day, day + timedelta(days=rng.randint(1, 3)), "busy").busy = True


def cancel_when_away(org: Org, meetings: list[Meeting], rng: random.Random) -> None:
    """People cancel 1:1s when one of them is away: EXDATEs on some excused dates."""
    away = Away(org)
    hi = org.as_of + timedelta(days=org.lookahead)
    for m in meetings:
        if not m.is_one_on_one(org) or m.rrule is None:
            continue
        pair = m.pair(org)
        for o in m.occs:
            day = o.original.date()
            if o.state != "confirmed" or o.rdate or not org.window_start <= day <= hi:
                continue
            if away.excused(pair, day) and rng.random() < 0.35:
                o.state = "exdate"


def pair_occurrences(org: Org, pair: Pair, meetings: list[Meeting]) -> list[tuple[date, bool]]:
    """(date, valid) of every occurrence of the pair's 1:1s; valid: neither cancelled nor declined."""
    out = []
    for m in meetings:
        if not m.is_one_on_one(org) or m.pair(org) != pair:
            continue
        for o in m.occs:
            if o.is_cancelled:
                out.append((o.original.date(), False))
            else:
                out.append((o.start.date(), not is_declined(org, m, o)))
    return out


def choose_broken(org: Org, meetings: list[Meeting], rng: random.Random) -> None:
    """Make one manager's calendar unreadable, one whose tracked pairs each have a clear occurrence in the
    windows or none near them (so that "shows any occurrence" cannot depend on how far "any" reaches)."""
    near = (org.window_start - timedelta(days=20), org.as_of + timedelta(days=org.lookahead + 45))
    clear = (org.window_start + timedelta(days=2), org.as_of + timedelta(days=org.lookahead - 2))
    pairs = {tuple(sorted((p, q))) for p in org.people for q in org.people if p != q}
    managers = sorted({m for m in org.manager.values() if m is not None})
    rng.shuffle(managers)
    for manager in managers:
        clean = True
        for a, b in sorted(pairs):
            _, mgr, _ = relationship(org, a, b)
            if mgr != manager or cadence_of(org, a, b) is None:
                continue
            occs = pair_occurrences(org, (a, b), meetings)
            if any(near[0] <= d <= near[1] for d, _ in occs) and not any(
                ok and clear[0] <= d <= clear[1] for d, ok in occs
            ):
                clean = False
        if clean:
            org.broken.add(manager)
            return


# -- writing the inputs -------------------------------------------------------------------------------


def written(address: str, shout: bool) -> str:
    """The address as written into the ICS; ``shout``: in mixed case (emails compare case-insensitively)."""
    if not shout:
        return address
    local, domain = address.split("@")
    return f"{local.capitalize()}@{domain.upper()}"


def specs(m: Meeting) -> list[EventSpec]:
    def attendees(decliner: str | None) -> list[Attendee]:
        out = []
        for i, h in enumerate(m.humans):
            if i == 0 and not m.organizer_listed:
                continue
            part = "DECLINED" if h in (decliner, m.declined_by) else m.partstat[h]
            out.append(Attendee(written(h, h in m.shout), None, part))
        if m.room:
            out.append(Attendee(m.room[0], "Room", m.room[2], m.room[1]))
        return out

    common: dict[str, Any] = {
        "uid": m.uid,
        "summary": rng_title(m),
        "organizer": written(m.humans[0], "organizer" in m.shout),
        "floating": m.zone == "floating",
    }
    if m.all_day_dates is not None:
        return [EventSpec(start=m.all_day_dates[0], rrule=m.rrule, attendees=attendees(None), **common)]
    status = "CANCELLED" if m.cancelled_whole else m.status
    if m.rrule is None:
        o = m.occs[0]
        return [
            EventSpec(start=o.start, attendees=attendees(o.by), status=status, sequence=m.sequence, **common)
        ]
    master = EventSpec(
        start=m.dtstart or m.occs[0].original,
        rrule=m.rrule,
        attendees=attendees(None),
        status=status,
        sequence=m.sequence,
        exdates=[o.original for o in m.occs if o.state == "exdate"],
        rdates=[o.original for o in m.occs if o.rdate],
        **common,
    )
    out = [master]
    for o in m.occs:
        if o.state in ("cancelled", "moved", "declined"):
            out.append(
                EventSpec(
                    start=o.start,
                    recurrence_id=o.original,
                    attendees=attendees(o.by),
                    status="CANCELLED" if o.state == "cancelled" else m.status,
                    sequence=m.sequence + (0 if o.state == "declined" else 1),
                    last_modified=datetime(2020, 1, 1, tzinfo=UTC) if o.state == "declined" else None,
                    **common,
                )
            )
    return out


def rng_title(m: Meeting) -> str:
    names = " / ".join(h.split("@")[0].capitalize() for h in m.humans)
    return {0: f"{names} 1:1", 1: names, 2: "sync", 3: "1on1"}[len(m.uid) % 4]


def block_event(b: Block) -> icalendar.Event:
    """An out-of-office block as Outlook exports it: X-MICROSOFT-CDO-BUSYSTATUS:OOF, an ORGANIZER."""
    attendees = [Attendee(b.owner, None, "ACCEPTED"), *(Attendee(i, None, "ACCEPTED") for i in b.invitees)]
    spec = EventSpec(
        uid=b.uid,
        summary=b.summary,
        start=b.start,
        organizer=b.owner,
        attendees=attendees if b.invitees else (),
        extra={"X-MICROSOFT-CDO-BUSYSTATUS": "BUSY" if b.busy else "OOF"},
    )
    if isinstance(b.start, datetime):
        assert isinstance(b.end, datetime)
        spec.duration = b.end - b.start
        return ics_event(spec)
    event = ics_event(spec)
    del event["DTEND"]
    event.add("dtend", b.end)  # exclusive
    return event


def calendar_bytes(events: list[icalendar.Event]) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//calsync//oracle//EN")
    calendar.add("version", "2.0")
    for event in events:
        calendar.add_component(event)
    calendar.add_missing_timezones()
    zones = sorted(calendar.walk("VTIMEZONE"), key=lambda tz: str(tz.get("TZID", "")))
    others = [c for c in calendar.subcomponents if c.name != "VTIMEZONE"]
    calendar.subcomponents[:] = [*zones, *others]
    data: bytes = calendar.to_ical()
    return data


def toml_date(day: date, as_string: bool) -> str:
    return f'"{day.isoformat()}"' if as_string else day.isoformat()


def write_inputs(root: Path, org: Org, meetings: list[Meeting]) -> Path:
    cal = root / "calendars"
    cal.mkdir(parents=True)
    rows = ["email,name,manager_email,cadence_days,timezone,holidays,since"]
    for p in org.people:
        local = p.split("@")[0]
        since = org.since[p].isoformat() if p in org.since else ""
        rows.append(
            f"{p},{local.capitalize()} Tester,{org.manager[p] or ''},{org.cadence.get(p, '')},"
            f"{org.person_zone.get(p, '')},{org.person_holidays.get(p, '')},{since}"
        )
    (root / "org.csv").write_text("\n".join(rows) + "\n")
    files: dict[str, list[icalendar.Event]] = {}
    for m in meetings:
        for owner in m.org_people(org):
            files.setdefault(owner, []).extend(ics_event(spec) for spec in specs(m))
    for b in org.blocks:
        # in the organizer's own file; copies for the invitees (not of an unreadable calendar's blocks)
        for owner in [b.owner, *([] if b.owner in org.broken else b.invitees)]:
            files.setdefault(owner, []).append(block_event(b))
    for owner, events in files.items():
        if owner not in org.broken:
            (cal / f"{owner}.ics").write_bytes(calendar_bytes(events))
    for owner in org.broken:
        (cal / f"{owner}.ics").write_text("BEGIN:VCALENDAR\nGARBAGE\n")
    lines = ["[org]", f'domains = ["{DOMAIN}"]', 'roster = "org.csv"']
    if org.timezone:
        lines.append(f'timezone = "{org.timezone}"')
    if org.holidays:
        lines.append(f'holidays = "{org.holidays}"')
    if org.weekend is not None:
        lines.append(f"weekend = {json.dumps(org.weekend)}")
    if org.ignore is not None:
        lines.append("\n[detect]")
        lines.append(f"ignore_attendees = {json.dumps(org.ignore)}")
    lines.append("\n[cadence]")
    for key, value in (
        ("default_days", org.default_days),
        ("grace_days", org.grace_days),
        ("skip_level_days", org.skip_level_days),
    ):
        if value is not None:
            lines.append(f"{key} = {value}")
    lines.append("\n[report]")
    for key, value in (("lookback_days", org.lookback_days), ("lookahead_days", org.lookahead_days)):
        if value is not None:
            lines.append(f"{key} = {value}")
    lines += ["\n[[sources]]", 'type = "ics"', 'path = "calendars"']
    for a in org.absences:
        lines += ["\n[[absence]]", f'email = "{a.written}"']
        lines += [f"from = {toml_date(a.start, a.as_string)}", f"until = {toml_date(a.until, a.as_string)}"]
        if a.reason is not None:
            lines.append(f'reason = "{a.reason}"')
    lines.append("")
    config = root / "calsync.toml"
    config.write_text("\n".join(lines))
    return config


# -- the oracle ----------------------------------------------------------------------------------------


class Ambiguous(Exception):
    """The generator produced a case the rules leave open: a bug in this test, not in calsync."""


def is_declined(org: Org, m: Meeting, o: Occ) -> bool:
    """Either of the two declined (extras never decline here; an ignored attendee's DECLINED on the
    master is nobody's)."""
    return o.state == "declined" or m.declined_by is not None


def cadence_of(org: Org, a: str, b: str) -> int | None:
    """C of a pair, None when the pair is untracked."""
    rel, _, rep = relationship(org, a, b)
    if rel == "direct":
        assert rep is not None
        return org.cadence.get(rep, org.default)
    if rel == "skip-level":
        return org.skip_level_days
    return None


class Away:
    """DESIGN.md 3b: the absent dates of each person and the excused dates of each pair."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.blocks: dict[str, list[Block]] = {}
        for b in org.blocks:
            # Only blocks P organises count (each is in P's own file), and only where P's calendar could
            # be read; a BUSY event is no out-of-office block.
            if not b.busy and b.owner not in org.broken:
                self.blocks.setdefault(b.owner, []).append(b)
        self.entries: dict[str, list[AbsenceEntry]] = {}
        for a in org.absences:
            self.entries.setdefault(a.person, []).append(a)
        self.calendars: dict[str, Any] = {}
        self.cache: dict[tuple[str, date], list[str]] = {}

    def holiday(self, code: str, day: date) -> str | None:
        if code not in self.calendars:
            country, _, subdiv = code.partition("-")
            years = range(self.org.as_of.year - 2, self.org.as_of.year + 3)
            self.calendars[code] = holidays_package.country_holidays(
                country, subdiv=subdiv or None, years=years
            )
        name: str | None = self.calendars[code].get(day)
        return name

    def why(self, person: str, day: date) -> list[str]:
        """Why ``day`` is directly absent for ``person`` (empty: it is not): a block, an entry, a holiday."""
        key = (person, day)
        if key in self.cache:
            return self.cache[key]
        out: list[str] = []
        tz = self.org.person_tz(person)  # the person's local day, as absolute instants
        lo = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
        hi = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
        for b in self.blocks.get(person, ()):
            if isinstance(b.start, datetime) and isinstance(b.end, datetime):
                overlap = min(b.end.astimezone(UTC), hi) - max(b.start.astimezone(UTC), lo)
                if overlap >= timedelta(hours=4):  # "at least 4 hours"
                    out.append(f"{b.uid} {overlap}")
            elif b.start <= day < b.end:  # an all-day block: DTEND is exclusive
                out.append(b.uid)
        for a in self.entries.get(person, ()):
            if a.start <= day <= a.until:  # inclusive
                out.append(f"[[absence]] {a.start}..{a.until}")
        code = self.org.holiday_code(person)
        if code is not None:
            name = self.holiday(code, day)
            if name is not None:
                out.append(f"holiday {code}: {name}")
        self.cache[key] = out
        return out

    def absent_why(self, person: str, day: date) -> list[str]:
        direct = self.why(person, day)
        weekend = self.org.weekend_days
        if direct or day.weekday() not in weekend:
            return direct
        before, after = day - timedelta(days=1), day + timedelta(days=1)
        while before.weekday() in weekend:
            before -= timedelta(days=1)
        while after.weekday() in weekend:
            after += timedelta(days=1)
        if self.why(person, before) and self.why(person, after):
            return [f"weekend between {before} and {after}"]
        return []

    def absent(self, person: str, day: date) -> bool:
        return bool(self.absent_why(person, day))

    def excused(self, pair: Pair, day: date) -> bool:
        """Absent for either person."""
        return self.absent(pair[0], day) or self.absent(pair[1], day)

    def between(self, pair: Pair, a: date, b: date) -> int:
        """Reading: the excused dates strictly between a and b."""
        return sum(self.excused(pair, a + timedelta(days=k)) for k in range(1, (b - a).days))


Note = Callable[[str], None]


def expected_pair(
    org: Org, pair: Pair, meetings: list[Meeting], away: Away, note: Note | None = None
) -> dict[str, Any]:
    a, b = pair
    rel, mgr, rep = relationship(org, a, b)
    see = note or (lambda _: None)
    inst = org.as_of_instant
    horizon = inst + timedelta(days=org.lookahead)
    end_of_lookahead = org.as_of + timedelta(days=org.lookahead)
    held: list[date] = []
    cancelled: list[date] = []
    declined: list[date] = []
    future: list[datetime] = []
    for m in meetings:
        for o in m.occs:
            if o.is_cancelled:
                if o.original.date() >= org.window_start and o.original < inst:
                    cancelled.append(o.original.date())
                continue
            if o.start < inst:
                if o.start.date() >= org.window_start:
                    (declined if is_declined(org, m, o) else held).append(o.start.date())
            elif not is_declined(org, m, o):
                future.append(o.start)
    held.sort()
    cancelled.sort()
    declined.sort()
    last = held[-1] if held else None
    first = min(future) if future else None
    if first is not None and abs((first.date() - end_of_lookahead).days) <= 1:
        raise Ambiguous(f"{pair}: the first occurrence ahead is at the end of the look-ahead")
    nxt = first.date() if first is not None and first < horizon else None
    cadence = cadence_of(org, a, b)
    # Reading: since is the roster's since of a direct pair's report: it dates that manager -> report
    # line, which is not the line of a skip-level pair (the report's line to their own manager).
    since = org.since.get(rep) if rel == "direct" and rep is not None else None
    excused = sorted(d for d in cancelled + declined if away.excused(pair, d))
    if len(set(excused)) < len(excused):
        see("excused date twice")
    gaps: list[dict[str, Any]] = []
    if cadence is None:
        status = "untracked"
    else:
        limit = cadence + org.grace
        for x, y in itertools.pairwise(held):
            n = away.between(pair, x, y)
            if (y - x).days - n > limit:
                gaps.append(
                    {"from": x.isoformat(), "to": y.isoformat(), "days": (y - x).days, "absent_days": n}
                )
                see("gap with absent days" if n else "gap")
            elif (y - x).days > limit:
                see("gap excused away")
        # The open gap and overdue's first clause: from max(last_held, since), minus the excused dates.
        late = False
        start = max(last, since) if last is not None and since is not None else last
        if start is not None:
            n = away.between(pair, start, org.as_of)
            late = (org.as_of - start).days - n > limit
            if late:
                gaps.append(
                    {
                        "from": start.isoformat(),
                        "to": None,
                        "days": (org.as_of - start).days,
                        "absent_days": n,
                    }
                )
                see("open gap from since" if start != last else "open gap")
            elif (org.as_of - start).days > limit:
                see("open gap excused away")
        # "all cancelled or declined": only occurrences on non-excused dates, on or after since
        misses = [
            d for d in cancelled + declined if not away.excused(pair, d) and (since is None or d >= since)
        ]
        if not held and (cancelled or declined) and not misses:
            see("all misses excused")
        young = since is not None and (org.as_of - since).days - away.between(pair, since, org.as_of) <= limit
        ahead = (
            (nxt - last).days - away.between(pair, last, nxt) if last is not None and nxt is not None else 0
        )
        if last is not None and nxt is not None and (nxt - last).days > limit >= ahead:
            see("schedule excused")
        # unknown: the manager's calendar could not be read and no calendar that was read shows any
        # occurrence of the pair (every 1:1 is in both people's files, so the report's file shows them)
        occurrences = pair_occurrences(org, pair, meetings)
        near = (org.window_start - timedelta(days=20), end_of_lookahead + timedelta(days=45))
        clear = (org.window_start + timedelta(days=2), end_of_lookahead - timedelta(days=2))
        unseen = not any(near[0] <= d <= near[1] for d, _ in occurrences)
        if (
            mgr in org.broken
            and not unseen
            and not any(ok and clear[0] <= d <= clear[1] for d, ok in occurrences)
        ):
            raise Ambiguous(f"{pair}: the unreadable manager's pair has occurrences only near the windows")
        if mgr in org.broken and unseen:
            status = "unknown"
        elif late or (not held and misses):
            status = "overdue"
        elif not held and nxt is None and not young:
            status = "no-series"
        elif last is None or nxt is None or ahead > limit:
            status = "at-risk"
            if not held and nxt is None:
                see("young pair at risk")
        else:
            status = "ok"
        if mgr in org.broken and status != "unknown":
            see("broken manager, pair seen elsewhere")
    see(f"status {status}")
    if excused:
        see("excused")
    if since is not None:
        see("since")
    return {
        "people": [a, b],
        "manager": mgr,
        "report": rep,
        "relationship": rel,
        "status": status,
        "cadence_days": cadence,
        "held": [d.isoformat() for d in held],
        "cancelled": [d.isoformat() for d in cancelled],
        "declined": [d.isoformat() for d in declined],
        "excused": [d.isoformat() for d in excused],
        "last_held": last.isoformat() if last else None,
        "next_scheduled": nxt.isoformat() if nxt else None,
        "days_since_last": (org.as_of - last).days if last else None,
        # Reading: like days_since_last, from last_held (whatever since says)
        "absent_days_since_last": away.between(pair, last, org.as_of) if last else None,
        "since": since.isoformat() if since else None,
        "gaps": gaps,
    }


def expected_report(
    org: Org, meetings: list[Meeting], note: Note | None = None
) -> dict[Pair, dict[str, Any]]:
    away = Away(org)
    by_pair: dict[Pair, list[Meeting]] = {}
    for p, m in org.manager.items():
        if m is not None:
            a, b = sorted((p, m))
            by_pair[(a, b)] = []
    for meeting in meetings:
        if meeting.is_one_on_one(org):
            by_pair.setdefault(meeting.pair(org), []).append(meeting)
    return {pair: expected_pair(org, pair, ms, away, note) for pair, ms in by_pair.items()}


def ranges(days: list[date]) -> str:
    out: list[str] = []
    for _, run in itertools.groupby(enumerate(days), lambda x: x[1].toordinal() - x[0]):
        found = [d for _, d in run]
        out.append(found[0].isoformat() + (f"..{found[-1].isoformat()}" if len(found) > 1 else ""))
    return ", ".join(out) or "-"


def describe_pair(org: Org, pair: Pair, meetings: list[Meeting]) -> str:
    mine = [m for m in meetings if set(pair) <= set(m.humans)]
    lines = [m.describe(org) for m in mine] or ["  (no meetings generated between them)"]
    away = Away(org)
    lo = org.window_start - timedelta(days=10)
    for p in pair:
        days = [lo + timedelta(days=k) for k in range(org.lookback + org.lookahead + 20)]
        absent = [d for d in days if away.absent(p, d)]
        zone = org.person_zone.get(p) or org.timezone or "UTC"
        lines.append(f"  {p} (zone {zone}, holidays {org.holiday_code(p)}) absent: {ranges(absent)}")
        for b in org.blocks:
            if b.owner == p:
                flags = " BUSY" if b.busy else ""
                flags += " (calendar unreadable)" if p in org.broken else ""
                lines.append(f"    block {b.uid} [{b.kind}{flags}] {b.start} -> {b.end}")
        for a in org.absences:
            if a.person == p:
                lines.append(f"    [[absence]] {a.start}..{a.until}")
    return "\n".join(lines)


def describe_org(org: Org) -> str:
    def person(p: str) -> str:
        text = f"{p.split('@')[0]}<-{(org.manager[p] or '-').split('@')[0]}"
        extra = [f"cadence {org.cadence[p]}"] if p in org.cadence else []
        extra += [f"tz {org.person_zone[p]}"] if p in org.person_zone else []
        extra += [f"holidays {org.person_holidays[p]}"] if p in org.person_holidays else []
        extra += [f"since {org.since[p]}"] if p in org.since else []
        extra += ["UNREADABLE"] if p in org.broken else []
        return text + (f"({', '.join(extra)})" if extra else "")

    return (
        f"seed {org.seed}: as_of {org.as_of} (instant {org.as_of_instant.isoformat()}), "
        f"org.timezone={org.timezone}, default_days={org.default_days} (-> {org.default}), "
        f"grace_days={org.grace_days} (-> {org.grace}), skip_level_days={org.skip_level_days}, "
        f"lookback={org.lookback}, lookahead={org.lookahead}, window start {org.window_start}, "
        f"holidays={org.holidays}, weekend={org.weekend}, ignore_attendees={org.ignore}\n"
        "  roster: " + ", ".join(person(p) for p in org.people)
    )


# -- the test ---------------------------------------------------------------------------------------------


def run_report(config: Path, as_of: date) -> subprocess.CompletedProcess[str]:
    args = ["report", "--config", str(config), "--as-of", as_of.isoformat(), "--format", "json"]
    return subprocess.run(
        [sys.executable, "-m", "calsync", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def reports(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[int, Future[subprocess.CompletedProcess[str]]]]:
    """The calsync runs of the selected seeds, started at once on a few workers (each run is a process
    of its own; running them side by side keeps the whole oracle well under a minute)."""
    seeds = [
        item.callspec.params["seed"]  # type: ignore[attr-defined]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_report_matches_the_oracle"
    ]
    pool = ThreadPoolExecutor(max_workers=min(4, (os.cpu_count() or 1) + 1))
    runs = {}
    for seed in seeds:
        org, meetings = generate(seed)
        config = write_inputs(tmp_path_factory.mktemp(f"oracle{seed}-"), org, meetings)
        runs[seed] = pool.submit(run_report, config, org.as_of)
    yield runs
    pool.shutdown(cancel_futures=True)


def test_generator_covers_the_rules() -> None:
    """The seeds together exercise every kind of input the oracle is meant to check."""
    seen: dict[str, int] = {}

    def see(key: str, n: int = 1) -> None:
        seen[key] = seen.get(key, 0) + n

    for seed in SEEDS:
        org, meetings = generate(seed)
        for m in meetings:
            see(m.what.split(" (")[0])
            see(f"zone {m.zone}")
            see("cancelled as a whole", m.cancelled_whole)
            see("room", m.room is not None)
            see("declined series", m.declined_by is not None)
            see("organizer not listed", not m.organizer_listed)
            see("mixed-case emails", bool(m.shout))
            see("room declined", m.room is not None and m.room[2] == "DECLINED")
            see("tentative event", m.status == "TENTATIVE")
            if m.rrule:
                see("count" if "count" in m.rrule else "until" if "until" in m.rrule else "open-ended")
            if m.is_one_on_one(org):
                see(relationship(org, *m.pair(org))[0])
                if m.extras:
                    see(f"1:1 {m.what}")
            elif m.extras and not m.cancelled_whole:
                see(f"not a 1:1: {m.what}")
            for o in m.occs:
                see(o.state)
                see("rdate", o.rdate)
                see(f"{o.state} with a new time", o.state != "moved" and o.start != o.original)
            if m.rrule:
                see("byday", "byday" in m.rrule)
                see("daily", m.rrule["freq"] == "daily")
        see(f"org timezone {org.timezone}")
        see("skip_level_days set", org.skip_level_days is not None)
        see(f"weekend {org.weekend}")
        see("org holidays", org.holidays is not None)
        see("roster holidays none", "none" in org.person_holidays.values())
        see("roster holidays code", any(v != "none" for v in org.person_holidays.values()))
        see("roster timezone", bool(org.person_zone))
        see("unreadable calendar", len(org.broken))
        see("[[absence]]", len(org.absences))
        see("[[absence]] with string dates", sum(a.as_string for a in org.absences))
        see("[[absence]] without reason", sum(a.reason is None for a in org.absences))
        see("busy decoy", sum(b.busy for b in org.blocks))
        see("block invitation", sum(bool(b.invitees) for b in org.blocks))
        away = Away(org)
        for b in org.blocks:
            see(f"block {b.kind}")
        for p in org.people:
            for k in range(-10, org.lookback + org.lookahead):
                day = org.window_start + timedelta(days=k)
                for why in away.absent_why(p, day):
                    see(why.split(" ")[0] if not why.startswith("ooo-") else "block")
        for b in org.blocks:
            if isinstance(b.start, datetime) and isinstance(b.end, datetime):
                # a timed block that covers no day for 4 hours, and one that covers one by exactly 4
                tz = org.person_tz(b.owner)
                day = b.start.astimezone(tz).date()
                covered = [away.why(b.owner, day + timedelta(days=k)) for k in range(-1, 3)]
                see("timed block short of 4 hours", not any(b.uid in " ".join(c) for c in covered))
                see("timed block of exactly 4 hours", any(f"{b.uid} 4:00:00" in " ".join(c) for c in covered))
        expected_report(org, meetings, see)
    required = [
        "series",
        "old series",
        "new series",
        "one-off",
        "edge",
        "all-day",
        "3-person",
        "with an external",
        "pair + external",
        "cancelled as a whole",
        "room",
        "declined series",
        "organizer not listed",
        "mixed-case emails",
        "room declined",
        "tentative event",
        "count",
        "until",
        "open-ended",
        "exdate",
        "cancelled",
        "moved",
        "declined",
        "rdate",
        "byday",
        "daily",
        "cancelled with a new time",
        "declined with a new time",
        "direct",
        "skip-level",
        "peer",
        "other",
        "zone floating",
        "zone UTC",
        "zone Europe/Berlin",
        "zone America/New_York",
        "org timezone None",
        "org timezone Europe/Berlin",
        "org timezone America/New_York",
        "skip_level_days set",
        # section 3b
        "1:1 with an assistant",
        "1:1 with a bot",
        "not a 1:1: with an assistant",
        "not a 1:1: with a bot",
        "weekend None",
        "weekend ['friday', 'saturday']",
        "weekend ['sunday']",
        "weekend []",
        "org holidays",
        "roster holidays none",
        "roster holidays code",
        "roster timezone",
        "unreadable calendar",
        "[[absence]]",
        "[[absence]] with string dates",
        "[[absence]] without reason",
        "busy decoy",
        "block invitation",
        "block all-day",
        "block timed",
        "block weekdays",
        "block timed, days",
        "block",
        "holiday",
        "weekend",
        "timed block short of 4 hours",
        "timed block of exactly 4 hours",
        "excused",
        "excused date twice",
        "gap with absent days",
        "gap excused away",
        "open gap",
        "open gap from since",
        "open gap excused away",
        "all misses excused",
        "schedule excused",
        "young pair at risk",
        "since",
        "status unknown",
        "broken manager, pair seen elsewhere",
        "status ok",
        "status at-risk",
        "status overdue",
        "status no-series",
        "status untracked",
    ]
    assert [k for k in required if not seen.get(k)] == [], seen


@pytest.mark.parametrize("seed", SEEDS)
def test_report_matches_the_oracle(
    seed: int, reports: dict[int, Future[subprocess.CompletedProcess[str]]]
) -> None:
    org, meetings = generate(seed)
    expected = expected_report(org, meetings)
    result = reports[seed].result()
    header = describe_org(org)
    # an unreadable calendar makes the report partial: exit code 3, and it is the only error
    code = 3 if org.broken else 0
    assert result.returncode == code, f"{header}\nexit code {result.returncode}\n{result.stderr}"
    report = json.loads(result.stdout)
    problems: list[str] = []
    errors = report.get("errors") or []
    if len(errors) != len(org.broken) or not all(any(b in json.dumps(e) for e in errors) for b in org.broken):
        problems.append(f"errors: expected one for each of {sorted(org.broken)}, got {errors}")
    if SECRET.lower() in result.stdout.lower():
        # reasons say how many days were not counted, never the title or reason of anyone's absence
        problems.append(f"an absence's title or reason is in the report: {result.stdout!r}")
    window = {"start": org.window_start.isoformat(), "end": org.as_of.isoformat()}
    if report.get("as_of") != org.as_of.isoformat():
        problems.append(f"as_of: expected {org.as_of.isoformat()}, got {report.get('as_of')}")
    if report.get("window") != window:
        problems.append(f"window: expected {window}, got {report.get('window')}")
    actual = {(p["people"][0], p["people"][1]): p for p in report["pairs"]}
    if [tuple(p["people"]) for p in report["pairs"]] != sorted(actual):
        problems.append("pairs are not sorted by people")
    for pair in sorted(set(expected) | set(actual)):
        if pair not in actual:
            problems.append(
                f"pair {pair}: missing from the report (expected {expected[pair]['relationship']}, "
                f"status {expected[pair]['status']})\n{describe_pair(org, pair, meetings)}"
            )
            continue
        if pair not in expected:
            problems.append(
                f"pair {pair}: in the report but not expected (status {actual[pair].get('status')})\n"
                f"{describe_pair(org, pair, meetings)}"
            )
            continue
        diffs = [
            f"    {name}: expected {expected[pair][name]!r}, actual {actual[pair].get(name)!r}"
            for name in FIELDS
            if expected[pair][name] != actual[pair].get(name)
        ]
        if diffs:
            problems.append(f"pair {pair}:\n" + "\n".join(diffs) + "\n" + describe_pair(org, pair, meetings))
    assert not problems, f"{header}\n" + "\n".join(problems)
