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
    UNKNOWN = "unknown"  # could not be checked: the manager's calendar could not be read (section 3b)
    OVERDUE = "overdue"
    NO_SERIES = "no-series"
    AT_RISK = "at-risk"
    OK = "ok"
    UNTRACKED = "untracked"


#: The order of the table and of digests: pairs that could not be checked first (never flagged, but
#: to be looked at before any flag is believed), then the worst first.
SEVERITY = (
    PairStatus.UNKNOWN,
    PairStatus.OVERDUE,
    PairStatus.NO_SERIES,
    PairStatus.AT_RISK,
    PairStatus.OK,
    PairStatus.UNTRACKED,
)
#: The statuses that flag a pair: what digests name a manager for.
FLAGGED = (PairStatus.OVERDUE, PairStatus.NO_SERIES, PairStatus.AT_RISK)


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
    days: int  # calendar days from start to end (or as_of)
    absent_days: int = 0  # the excused dates strictly between start and end (or as_of): not counted


@dataclass(frozen=True, slots=True)
class States:
    """Occurrences of one pair sorted into held / cancelled / declined, and the next one ahead."""

    held: tuple[date, ...] = ()
    cancelled: tuple[date, ...] = ()
    declined: tuple[date, ...] = ()
    next_scheduled: date | None = None
    #: The cancelled and declined dates that are excused (either person away): still listed above, as
    #: what happened, but no rule counts them.
    excused: tuple[date, ...] = ()

    @property
    def last_held(self) -> date | None:
        return self.held[-1] if self.held else None

    @property
    def counted_cancelled(self) -> tuple[date, ...]:
        """The cancelled dates that count: those not excused."""
        return tuple(d for d in self.cancelled if d not in self.excused)

    @property
    def counted_declined(self) -> tuple[date, ...]:
        return tuple(d for d in self.declined if d not in self.excused)


@dataclass(frozen=True, slots=True)
class Assessment:
    status: PairStatus
    cadence_days: int | None
    states: States
    days_since_last: int | None
    gaps: tuple[Gap, ...] = ()
    reasons: tuple[str, ...] = field(default_factory=tuple)
    #: The excused dates strictly between the last 1:1 held and as_of (None: nothing held).
    absent_days_since_last: int | None = None
    since: date | None = None  # a new pair: since when (the roster's ``since``, or first seen)


def in_windows(occurrence: Occurrence, clock: Clock) -> bool:
    """Whether an occurrence lies in the look-back or look-ahead window (a cancelled one by its original
    start, any other by its actual start): only such occurrences count for their pair."""
    when = occurrence.original_start if occurrence.cancelled else occurrence.start
    return when.date() >= clock.window_start and when < clock.horizon


def occurrence_states(
    occurrences: Iterable[Occurrence],
    pair: tuple[str, str],
    clock: Clock,
    excused: frozenset[date] = frozenset(),
) -> States:
    """Sort a pair's 1:1 occurrences into the states of DESIGN.md section 3; the cancelled and declined
    ones on ``excused`` dates are also listed as excused (section 3b)."""
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
        excused=tuple(sorted(d for d in (*cancelled, *declined) if d in excused)),  # one per occurrence
    )


def between(excused: frozenset[date], start: date, end: date) -> int:
    """How many excused dates lie strictly between ``start`` and ``end``."""
    if (end - start).days <= 1 or not excused:
        return 0
    return sum(1 for d in excused if start < d < end)


def find_gaps(
    held: Iterable[date],
    as_of: date,
    limit: int,
    excused: frozenset[date] = frozenset(),
    since: date | None = None,
) -> tuple[Gap, ...]:
    """Stretches between consecutive held dates longer than ``limit`` days once the excused dates
    between them are taken off, then an open one: from the last held date (or ``since``, when later)
    to ``as_of``."""
    dates = sorted(held)
    gaps = []
    for a, b in itertools.pairwise(dates):
        away = between(excused, a, b)
        if (b - a).days - away > limit:
            gaps.append(Gap(a, b, (b - a).days, away))
    if dates:
        start = max(dates[-1], since) if since is not None else dates[-1]
        away = between(excused, start, as_of)
        if (as_of - start).days - away > limit:
            gaps.append(Gap(start, None, (as_of - start).days, away))
    return tuple(gaps)


def assess(
    occurrences: Iterable[Occurrence],
    pair: tuple[str, str],
    clock: Clock,
    cadence_days: int | None,
    grace_days: int,
    *,
    excused: frozenset[date] = frozenset(),
    since: date | None = None,
) -> Assessment:
    """Status of one pair. ``cadence_days=None`` means the pair is not tracked. ``excused`` are the
    dates either person was away, ``since`` when a new pair began (DESIGN.md section 3b)."""
    states = occurrence_states(occurrences, pair, clock, excused)
    last = states.last_held
    days_since = (clock.as_of_date - last).days if last is not None else None
    away_since = between(excused, last, clock.as_of_date) if last is not None else None
    notes = _notes(states, clock)
    if cadence_days is None:
        return Assessment(PairStatus.UNTRACKED, None, states, days_since, (), tuple(notes), away_since, since)

    limit = cadence_days + grace_days
    allowance = f"cadence {cadence_days} + {grace_days} grace"
    gaps = find_gaps(states.held, clock.as_of_date, limit, excused, since)
    status, reason = _status(states, limit, allowance, clock, excused, since)
    closed = [g for g in gaps if g.end is not None]
    if closed:
        longest = max(g.days for g in closed)
        notes.append(
            f"{len(closed)} gap{'s' if len(closed) != 1 else ''} between 1:1s longer than {limit} days "
            f"(longest {longest} days)"
        )
    return Assessment(status, cadence_days, states, days_since, gaps, (reason, *notes), away_since, since)


def _away(count: int) -> str:
    """ ", 12 of them away": how many of the days just named were not counted."""
    return f", {count} of them away" if count else ""


def _status(
    states: States,
    limit: int,
    allowance: str,
    clock: Clock,
    excused: frozenset[date],
    since: date | None,
) -> tuple[PairStatus, str]:
    nxt = states.next_scheduled
    last = states.last_held
    as_of = clock.as_of_date
    if last is not None:
        start = max(last, since) if since is not None else last
        away = between(excused, start, as_of)
        days = (as_of - start).days
        if days - away > limit:
            what = (
                f"no 1:1 held for {days} days"
                if start == last
                else f"no 1:1 held in the {days} days since {start} (new pair)"
            )
            return PairStatus.OVERDUE, f"{what}{_away(away)} ({allowance})"
    if last is None:
        missed = [
            d for d in (*states.counted_cancelled, *states.counted_declined) if since is None or d >= since
        ]
        if missed:
            span = (
                f"since {since}"
                if since is not None and since > clock.window_start
                else (f"in the last {clock.lookback_days} days")
            )
            return (
                PairStatus.OVERDUE,
                f"no 1:1 held {span}: all {len(missed)} that fell in it were cancelled or declined",
            )
    if last is None and nxt is None:
        if since is not None:
            away = between(excused, since, as_of)
            if (as_of - since).days - away <= limit:
                return PairStatus.AT_RISK, f"new since {since}: no 1:1 scheduled yet"
        return (
            PairStatus.NO_SERIES,
            f"no 1:1 held in the last {clock.lookback_days} days and none scheduled "
            f"in the next {clock.lookahead_days} days",
        )
    if last is None:
        if since is not None and since > clock.window_start:
            return PairStatus.AT_RISK, f"new since {since}: no 1:1 held yet; next scheduled {nxt}"
        return PairStatus.AT_RISK, f"no 1:1 held in the last {clock.lookback_days} days; next scheduled {nxt}"
    days_since = (as_of - last).days
    if nxt is None:
        return (
            PairStatus.AT_RISK,
            f"nothing scheduled in the next {clock.lookahead_days} days (last 1:1 {days_since} days "
            f"ago{_away(between(excused, last, as_of))})",
        )
    ahead = (nxt - last).days
    away = between(excused, last, nxt)
    if ahead - away > limit:
        return (
            PairStatus.AT_RISK,
            f"the next 1:1 ({nxt}) is {ahead} days after the last one held{_away(away)}; the schedule is "
            f"slower than the cadence ({allowance})",
        )
    since_away = _away(between(excused, last, as_of))
    return PairStatus.OK, f"last 1:1 {days_since} days ago{since_away}; next scheduled {nxt}"


def _notes(states: States, clock: Clock) -> list[str]:
    notes = []
    for count, what in (
        (len(states.counted_cancelled), "cancelled"),
        (len(states.counted_declined), "declined"),
    ):
        if count:
            notes.append(f"{count} {what} in the last {clock.lookback_days} days")
    if states.excused:
        count = len(states.excused)
        notes.append(
            f"{count} cancelled or declined while away, not counted"
            if count != 1
            else "1 cancelled or declined while away, not counted"
        )
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
