"""Cadence of a pair: occurrence states, gaps and status (DESIGN.md section 3). Pure functions.

Dates are the local dates of occurrences in their own time zones. An occurrence lies in the look-back
window when its local date is on or after ``window_start`` and it started (cancelled ones: was due to
start) before the ``as_of`` instant; it is ahead when it starts at or after ``as_of`` and before
``as_of + lookahead_days``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from calsync.model import Occurrence, Response


class PairStatus(StrEnum):
    OVERDUE = "overdue"
    NO_SERIES = "no-series"
    AT_RISK = "at-risk"
    OK = "ok"
    UNTRACKED = "untracked"


#: Worst first: the order of the table and of digests.
SEVERITY = (PairStatus.OVERDUE, PairStatus.NO_SERIES, PairStatus.AT_RISK, PairStatus.OK, PairStatus.UNTRACKED)


@dataclass(frozen=True, slots=True)
class Clock:
    """The moment a report is made for, and the windows around it."""

    as_of: datetime  # timezone-aware instant: 00:00 of as_of_date in the org's time zone (or UTC)
    lookback_days: int = 90
    lookahead_days: int = 90

    @property
    def as_of_date(self) -> date:
        return self.as_of.date()

    @property
    def window_start(self) -> date:
        return self.as_of_date - timedelta(days=self.lookback_days)

    @property
    def horizon(self) -> datetime:
        return self.as_of + timedelta(days=self.lookahead_days)


@dataclass(frozen=True, slots=True)
class Gap:
    start: date
    end: date | None  # None: the gap is still open at as_of
    days: int


@dataclass(frozen=True, slots=True)
class States:
    """Occurrences of one pair sorted into held / cancelled / declined, and the next one ahead."""

    held: tuple[date, ...] = ()
    cancelled: tuple[date, ...] = ()
    declined: tuple[date, ...] = ()
    next_scheduled: date | None = None

    @property
    def last_held(self) -> date | None:
        return self.held[-1] if self.held else None


@dataclass(frozen=True, slots=True)
class Assessment:
    status: PairStatus
    cadence_days: int | None
    states: States
    days_since_last: int | None
    gaps: tuple[Gap, ...] = ()
    reasons: tuple[str, ...] = field(default_factory=tuple)


def in_windows(occurrence: Occurrence, clock: Clock) -> bool:
    """Whether an occurrence lies in the look-back or look-ahead window (a cancelled one by its original
    start, any other by its actual start): only such occurrences count for their pair."""
    when = occurrence.original_start if occurrence.cancelled else occurrence.start
    return when.date() >= clock.window_start and when < clock.horizon


def occurrence_states(occurrences: Iterable[Occurrence], pair: tuple[str, str], clock: Clock) -> States:
    """Sort a pair's 1:1 occurrences into the states of DESIGN.md section 3."""
    held: list[date] = []
    cancelled: list[date] = []
    declined: list[date] = []
    ahead: list[datetime] = []
    for occ in occurrences:
        if occ.cancelled:
            original = occ.original_start
            if original < clock.as_of and original.date() >= clock.window_start:
                cancelled.append(original.date())
            continue
        is_declined = any(p.email in pair and p.response is Response.DECLINED for p in occ.participants)
        if occ.start < clock.as_of:
            if occ.start.date() >= clock.window_start:
                (declined if is_declined else held).append(occ.start.date())
        elif occ.start < clock.horizon and not is_declined:
            ahead.append(occ.start)
    next_start = min(ahead, default=None)
    return States(
        held=tuple(sorted(held)),
        cancelled=tuple(sorted(cancelled)),
        declined=tuple(sorted(declined)),
        next_scheduled=next_start.date() if next_start is not None else None,
    )


def find_gaps(held: Iterable[date], as_of: date, limit: int) -> tuple[Gap, ...]:
    """Stretches between consecutive held dates longer than ``limit`` days, then an open one."""
    dates = sorted(held)
    gaps = [Gap(a, b, (b - a).days) for a, b in itertools.pairwise(dates) if (b - a).days > limit]
    if dates and (as_of - dates[-1]).days > limit:
        gaps.append(Gap(dates[-1], None, (as_of - dates[-1]).days))
    return tuple(gaps)


def assess(
    occurrences: Iterable[Occurrence],
    pair: tuple[str, str],
    clock: Clock,
    cadence_days: int | None,
    grace_days: int,
) -> Assessment:
    """Status of one pair. ``cadence_days=None`` means the pair is not tracked."""
    states = occurrence_states(occurrences, pair, clock)
    last = states.last_held
    days_since = (clock.as_of_date - last).days if last is not None else None
    notes = _notes(states, clock)
    if cadence_days is None:
        return Assessment(PairStatus.UNTRACKED, None, states, days_since, (), tuple(notes))

    limit = cadence_days + grace_days
    allowance = f"cadence {cadence_days} + {grace_days} grace"
    gaps = find_gaps(states.held, clock.as_of_date, limit)
    status, reason = _status(states, days_since, limit, allowance, clock)
    closed = [g for g in gaps if g.end is not None]
    if closed:
        longest = max(g.days for g in closed)
        notes.append(
            f"{len(closed)} gap{'s' if len(closed) != 1 else ''} between 1:1s longer than {limit} days "
            f"(longest {longest} days)"
        )
    return Assessment(status, cadence_days, states, days_since, gaps, (reason, *notes))


def _status(
    states: States, days_since: int | None, limit: int, allowance: str, clock: Clock
) -> tuple[PairStatus, str]:
    nxt = states.next_scheduled
    if days_since is not None and days_since > limit:
        return PairStatus.OVERDUE, f"no 1:1 held for {days_since} days ({allowance})"
    if days_since is None and (states.cancelled or states.declined):
        missed = len(states.cancelled) + len(states.declined)
        return (
            PairStatus.OVERDUE,
            f"no 1:1 held in the last {clock.lookback_days} days: all {missed} that fell in it were "
            "cancelled or declined",
        )
    if days_since is None and nxt is None:
        return (
            PairStatus.NO_SERIES,
            f"no 1:1 held in the last {clock.lookback_days} days and none scheduled "
            f"in the next {clock.lookahead_days} days",
        )
    if days_since is None:
        return PairStatus.AT_RISK, f"no 1:1 held in the last {clock.lookback_days} days; next scheduled {nxt}"
    if nxt is None:
        return (
            PairStatus.AT_RISK,
            f"nothing scheduled in the next {clock.lookahead_days} days (last 1:1 {days_since} days ago)",
        )
    assert states.last_held is not None
    ahead = (nxt - states.last_held).days
    if ahead > limit:
        return (
            PairStatus.AT_RISK,
            f"the next 1:1 ({nxt}) is {ahead} days after the last one held; the schedule is slower "
            f"than the cadence ({allowance})",
        )
    return PairStatus.OK, f"last 1:1 {days_since} days ago; next scheduled {nxt}"


def _notes(states: States, clock: Clock) -> list[str]:
    notes = []
    for count, what in ((len(states.cancelled), "cancelled"), (len(states.declined), "declined")):
        if count:
            notes.append(f"{count} {what} in the last {clock.lookback_days} days")
    return notes


_FREQ_DAYS = {"DAILY": 1.0, "WEEKLY": 7.0, "MONTHLY": 365.25 / 12, "YEARLY": 365.25}


def scheduled_cadence_days(rrule: str | None) -> int | None:
    """Days between occurrences that a recurrence rule schedules, roughly (FREQ x INTERVAL / BYDAY)."""
    if not rrule:
        return None
    parts = dict(
        part.split("=", 1) for part in rrule.upper().removeprefix("RRULE:").split(";") if "=" in part
    )
    base = _FREQ_DAYS.get(parts.get("FREQ", ""))
    if base is None:
        return None
    try:
        interval = max(1, int(parts.get("INTERVAL", "1")))
    except ValueError:
        interval = 1
    per_period = 1
    if parts.get("FREQ") == "WEEKLY" and parts.get("BYDAY"):
        per_period = max(1, len([d for d in parts["BYDAY"].split(",") if re.fullmatch(r"[A-Z]{2}", d)]))
    return max(1, round(base * interval / per_period))
