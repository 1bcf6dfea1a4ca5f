"""An independent reference check ("oracle") of the domain rules, end to end.

Each seed generates a random org (roster, config) and random meetings between its people, writes them
as per-person ICS files, runs ``calsync report --format json`` as a subprocess, and compares every pair
with a report computed here from the generator's own ground truth (the occurrences it generated, never
by parsing the ICS). The rules followed are DESIGN.md sections 3 and 4, refined by the README sections
"The report", "Statuses and how they are decided" and "How meetings are read" (with its "Dates and
windows").

The generator stays away from the places where those rules are silent, so that any mismatch is a real
disagreement: times are 08:00-17:00 (never near midnight, so a local date and the as-of instant always
agree), moved occurrences never cross the as-of instant, the first valid future occurrence never lies
within a day of the end of the look-ahead, the org has one root (so "peer" is never about two people
without a manager), a pair that is not a direct pair always has a live 1:1 in the windows, and every
meeting is written identically into each participant's file (stale copies are tested elsewhere).
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calsync.demo import Attendee, EventSpec, ics_calendar

DOMAIN = "acme.test"
EXTERNALS = ("x@client.example", "y@partner.example")
LOCALS = ("ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon", "kim", "leo", "mia", "ned")
ZONES: dict[str, tzinfo] = {
    "Europe/Berlin": ZoneInfo("Europe/Berlin"),
    "America/New_York": ZoneInfo("America/New_York"),
    "UTC": UTC,
}
ORG_ZONES = (None, None, "Europe/Berlin", "Europe/Berlin", "America/New_York", "UTC")
EVENT_ZONES = ("Europe/Berlin",) * 3 + ("America/New_York",) * 3 + ("UTC",) * 2 + ("floating",)
SEEDS = range(40)
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
    "last_held",
    "next_scheduled",
    "days_since_last",
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

    def org_people(self, org: Org) -> list[str]:
        return [h for h in self.humans if h in org.manager]

    def is_one_on_one(self, org: Org) -> bool:
        return (
            self.all_day_dates is None
            and not self.cancelled_whole
            and len(set(self.humans)) == 2
            and all(h in org.manager for h in self.humans)
        )

    def pair(self) -> Pair:
        a, b = sorted(self.humans)
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
    return Org(
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
    )


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

    def at(self, day: date, hour: int, minute: int, zone: str) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=self.org.zone(zone))

    def base(self, humans: list[str], *, what: str, zone: str, series: bool) -> Meeting:
        rng = self.rng
        m = Meeting(uid=self.uid(humans), what=what, humans=humans, zone=zone, occs=[], series=series)
        m.organizer_listed = rng.random() < 0.8
        for h in humans[1:]:
            m.partstat[h] = rng.choice(("ACCEPTED", "ACCEPTED", "ACCEPTED", "TENTATIVE", "NEEDS-ACTION"))
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
        zone = rng.choice(EVENT_ZONES)
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
        if rng.random() < 0.08 and len(humans) == 2:
            m.declined_by = rng.choice(humans if m.organizer_listed else humans[1:])
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
            o.state = action
            if action == "declined":
                o.by = rng.choice(m.humans if m.organizer_listed else m.humans[1:])

    def oneoff(
        self, humans: list[str], *, when: str = "any", day: date | None = None, what: str = "one-off"
    ) -> Meeting:
        rng, org = self.rng, self.org
        zone = rng.choice(EVENT_ZONES)
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
        if when != "live" and len(humans) == 2 and rng.random() < 0.15:
            occ.state = "declined"
            occ.by = rng.choice(humans if m.organizer_listed else humans[1:])
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
        if rng.random() < 0.8:
            _, mgr, rep = relationship(org, a, b)
            assert mgr is not None and rep is not None
            gen.pair_meetings(mgr, rep, direct=True, cadence=org.cadence.get(rep, org.default))
    used: set[Pair] = set()
    for rel in ("skip-level", "peer", "other"):
        candidates = by_rel.get(rel, [])
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
        a, b, c = rng.sample(people, 3)
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
    return org, gen.meetings


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


def write_inputs(root: Path, org: Org, meetings: list[Meeting]) -> Path:
    cal = root / "calendars"
    cal.mkdir(parents=True)
    rows = ["email,name,manager_email,cadence_days"]
    for p in org.people:
        local = p.split("@")[0]
        rows.append(f"{p},{local.capitalize()} Tester,{org.manager[p] or ''},{org.cadence.get(p, '')}")
    (root / "org.csv").write_text("\n".join(rows) + "\n")
    files: dict[str, list[EventSpec]] = {}
    for m in meetings:
        for owner in m.org_people(org):
            files.setdefault(owner.split("@")[0], []).extend(specs(m))
    for owner, events in files.items():
        (cal / f"{owner}.ics").write_bytes(ics_calendar(events))
    lines = ["[org]", f'domains = ["{DOMAIN}"]', 'roster = "org.csv"']
    if org.timezone:
        lines.append(f'timezone = "{org.timezone}"')
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
    lines += ["\n[[sources]]", 'type = "ics"', 'path = "calendars"', ""]
    config = root / "calsync.toml"
    config.write_text("\n".join(lines))
    return config


# -- the oracle ----------------------------------------------------------------------------------------


class Ambiguous(Exception):
    """The generator produced a case the rules leave open: a bug in this test, not in calsync."""


def expected_pair(org: Org, pair: Pair, meetings: list[Meeting]) -> dict[str, Any]:
    a, b = pair
    rel, mgr, rep = relationship(org, a, b)
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
            is_declined = o.state == "declined" or m.declined_by is not None
            if o.start < inst:
                if o.start.date() >= org.window_start:
                    (declined if is_declined else held).append(o.start.date())
            elif not is_declined:
                future.append(o.start)
    held.sort()
    cancelled.sort()
    declined.sort()
    last = held[-1] if held else None
    first = min(future) if future else None
    if first is not None and abs((first.date() - end_of_lookahead).days) <= 1:
        raise Ambiguous(f"{pair}: the first occurrence ahead is at the end of the look-ahead")
    nxt = first.date() if first is not None and first < horizon else None
    if rel == "direct":
        assert rep is not None
        cadence: int | None = org.cadence.get(rep, org.default)
    elif rel == "skip-level":
        cadence = org.skip_level_days
    else:
        cadence = None
    gaps: list[dict[str, Any]] = []
    if cadence is None:
        status = "untracked"
    else:
        limit = cadence + org.grace
        for x, y in itertools.pairwise(held):
            if (y - x).days > limit:
                gaps.append({"from": x.isoformat(), "to": y.isoformat(), "days": (y - x).days})
        if last is not None and (org.as_of - last).days > limit:
            gaps.append({"from": last.isoformat(), "to": None, "days": (org.as_of - last).days})
        if (last is not None and (org.as_of - last).days > limit) or (not held and (cancelled or declined)):
            status = "overdue"
        elif not held and nxt is None:
            status = "no-series"
        elif last is None or nxt is None or (nxt - last).days > limit:
            status = "at-risk"
        else:
            status = "ok"
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
        "last_held": last.isoformat() if last else None,
        "next_scheduled": nxt.isoformat() if nxt else None,
        "days_since_last": (org.as_of - last).days if last else None,
        "gaps": gaps,
    }


def expected_report(org: Org, meetings: list[Meeting]) -> dict[Pair, dict[str, Any]]:
    by_pair: dict[Pair, list[Meeting]] = {}
    for p, m in org.manager.items():
        if m is not None:
            a, b = sorted((p, m))
            by_pair[(a, b)] = []
    for meeting in meetings:
        if meeting.is_one_on_one(org):
            by_pair.setdefault(meeting.pair(), []).append(meeting)
    return {pair: expected_pair(org, pair, ms) for pair, ms in by_pair.items()}


def describe_pair(org: Org, pair: Pair, meetings: list[Meeting]) -> str:
    mine = [m for m in meetings if set(pair) <= set(m.humans)]
    if not mine:
        return "  (no meetings generated between them)"
    return "\n".join(m.describe(org) for m in mine)


def describe_org(org: Org) -> str:
    return (
        f"seed {org.seed}: as_of {org.as_of} (instant {org.as_of_instant.isoformat()}), "
        f"org.timezone={org.timezone}, default_days={org.default_days} (-> {org.default}), "
        f"grace_days={org.grace_days} (-> {org.grace}), skip_level_days={org.skip_level_days}, "
        f"lookback={org.lookback}, lookahead={org.lookahead}, window start {org.window_start}\n"
        f"  roster: "
        + ", ".join(
            f"{p.split('@')[0]}<-{(org.manager[p] or '-').split('@')[0]}"
            + (f"(cadence {org.cadence[p]})" if p in org.cadence else "")
            for p in org.people
        )
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
                see(relationship(org, *m.pair())[0])
            for o in m.occs:
                see(o.state)
                see("rdate", o.rdate)
                see(f"{o.state} with a new time", o.state != "moved" and o.start != o.original)
            if m.rrule:
                see("byday", "byday" in m.rrule)
                see("daily", m.rrule["freq"] == "daily")
        see(f"org timezone {org.timezone}")
        see("skip_level_days set", org.skip_level_days is not None)
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
    ]
    assert [k for k in required if not seen.get(k)] == [], seen


@pytest.mark.parametrize("seed", SEEDS)
def test_report_matches_the_oracle(seed: int, tmp_path: Path) -> None:
    org, meetings = generate(seed)
    expected = expected_report(org, meetings)
    config = write_inputs(tmp_path, org, meetings)
    result = run_report(config, org.as_of)
    header = describe_org(org)
    assert result.returncode == 0, f"{header}\nexit code {result.returncode}\n{result.stderr}"
    report = json.loads(result.stdout)
    problems: list[str] = []
    if report.get("errors"):
        problems.append(f"errors: {report['errors']}")
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
