"""Who was away when: absent and excused dates (DESIGN.md section 3b). Pure functions.

A person's dates are absent when their own out-of-office covers them (an all-day block, or a timed
block overlapping the date for at least :data:`MIN_TIMED_HOURS` hours, in the person's time zone), an
``[[absence]]`` entry of the config covers them, or they are a public holiday where the person works
(``[org] holidays``, the roster's ``holidays`` column). A weekend day is absent when the nearest
working day before it and the nearest after it both are. A date is excused for a pair when it is
absent for either of the two.

Only dates are kept: never a block's title or an entry's reason (those stay where they were written).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holidays_package

from calsync.model import Absence

#: A timed out-of-office block makes a date absent when it covers at least this much of it.
MIN_TIMED_HOURS = 4
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_WEEKEND = (5, 6)  # Saturday, Sunday
#: The roster's ``holidays`` value for a person who has no public holidays (overriding the org's).
NO_HOLIDAYS = "none"
#: How far beyond the span asked for the weekend rule looks for the nearest working days.
_WEEKEND_REACH = 7


@dataclass(frozen=True, slots=True)
class AbsenceEntry:
    """One ``[[absence]]`` of the config: ``email`` is away from ``start`` to ``until`` (inclusive)."""

    email: str
    start: date
    until: date
    reason: str | None = None  # kept for the people who wrote it; never shown in reports or digests


@dataclass(frozen=True, slots=True)
class Span:
    """The dates absences are worked out for: ``first`` to ``last`` inclusive."""

    first: date
    last: date

    def dates(self) -> Iterable[date]:
        day = self.first
        while day <= self.last:
            yield day
            day += timedelta(days=1)


def holiday_problem(code: str) -> str | None:
    """Why ``code`` ("DE", "DE-BY", "US-CA") is no holiday calendar of the ``holidays`` package, with
    what would be; None when it is one."""
    country, _, subdivision = code.strip().partition("-")
    supported = holidays_package.list_supported_countries()
    if country.upper() not in supported:
        return f'{code!r} is not a country code the holidays package knows (ISO 3166, e.g. "DE" or "US")'
    if subdivision:
        known = supported[country.upper()]
        if subdivision.upper() not in {s.upper() for s in known}:
            shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            return f"{subdivision!r} is not a subdivision of {country.upper()} (known: {shown or 'none'})"
    return None


@lru_cache(maxsize=256)
def holiday_dates(code: str, years: tuple[int, ...]) -> frozenset[date]:
    """The public holidays of ``code`` ("DE-BY") in those years. ``code`` must be valid
    (:func:`holiday_problem`)."""
    country, _, subdivision = code.strip().partition("-")
    supported = holidays_package.list_supported_countries()
    subdiv = next((s for s in supported.get(country.upper(), []) if s.upper() == subdivision.upper()), None)
    calendar = holidays_package.country_holidays(country.upper(), subdiv=subdiv, years=years)
    return frozenset(calendar.keys())


@dataclass(frozen=True, slots=True)
class PersonRules:
    """What decides one person's absent dates besides their own blocks."""

    timezone: tzinfo
    holidays: str | None = None  # a code for :func:`holiday_dates`, or None


@dataclass(frozen=True, slots=True)
class Absences:
    """Everyone's absent dates within a span; people not in it were never away."""

    by_person: Mapping[str, frozenset[date]] = field(default_factory=dict)

    def of(self, email: str) -> frozenset[date]:
        return self.by_person.get(email, frozenset())

    def excused(self, pair: tuple[str, str]) -> frozenset[date]:
        """The dates either of the two was away."""
        return self.of(pair[0]) | self.of(pair[1])


def absent_dates(
    blocks: Iterable[Absence],
    entries: Iterable[AbsenceEntry],
    rules: PersonRules,
    span: Span,
    weekend: Iterable[int] = DEFAULT_WEEKEND,
) -> frozenset[date]:
    """One person's absent dates within ``span``, from their out-of-office blocks, their config
    entries and their public holidays, the weekend rule applied."""
    weekend_days = frozenset(weekend)
    # Look further than the span, so that a weekend at its edge finds its working days.
    reach = Span(span.first - timedelta(days=_WEEKEND_REACH), span.last + timedelta(days=_WEEKEND_REACH))
    away: set[date] = set()
    for block in blocks:
        away.update(_block_dates(block, rules.timezone, reach))
    for entry in entries:
        first, last = max(entry.start, reach.first), min(entry.until, reach.last)
        away.update(Span(first, last).dates() if first <= last else ())
    if rules.holidays:
        years = tuple(range(reach.first.year, reach.last.year + 1))
        away.update(d for d in holiday_dates(rules.holidays, years) if reach.first <= d <= reach.last)
    if len(weekend_days) < 7:
        away.update(_weekend_dates(away, weekend_days, span))
    return frozenset(d for d in away if span.first <= d <= span.last)


def _block_dates(block: Absence, tz: tzinfo, reach: Span) -> Iterable[date]:
    if block.all_day:
        first, end = block.start.date(), block.end.date()
        if end <= first:
            end = first + timedelta(days=1)
        first, last = max(first, reach.first), min(end - timedelta(days=1), reach.last)
        return Span(first, last).dates() if first <= last else ()
    if block.end <= block.start:
        return ()
    start, end = block.start.astimezone(UTC), block.end.astimezone(UTC)
    first = max(block.start.astimezone(tz).date(), reach.first)
    last = min(block.end.astimezone(tz).date(), reach.last)
    found = []
    minimum = timedelta(hours=MIN_TIMED_HOURS)
    for day in Span(first, last).dates() if first <= last else ():
        # In UTC: between two times of one zone Python subtracts wall clocks, and a day with a
        # daylight-saving change is not 24 hours long.
        day_start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
        day_end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
        overlap = min(end, day_end) - max(start, day_start)
        if overlap >= minimum:
            found.append(day)
    return found


def _weekend_dates(away: set[date], weekend: frozenset[int], span: Span) -> list[date]:
    """The weekend days in ``span`` whose nearest working days before and after are both away."""
    found = []
    for day in span.dates():
        if day.weekday() not in weekend or day in away:
            continue
        before = day - timedelta(days=1)
        while before.weekday() in weekend:
            before -= timedelta(days=1)
        after = day + timedelta(days=1)
        while after.weekday() in weekend:
            after += timedelta(days=1)
        if before in away and after in away:
            found.append(day)
    return found


def everyone_absent(
    people: Iterable[str],
    blocks: Iterable[Absence],
    entries: Iterable[AbsenceEntry],
    rules_of: Mapping[str, PersonRules],
    default_rules: PersonRules,
    span: Span,
    weekend: Iterable[int] = DEFAULT_WEEKEND,
) -> Absences:
    """The absent dates of each of ``people`` (lower-case emails) within ``span``."""
    wanted = set(people)
    blocks_of: dict[str, list[Absence]] = {}
    for block in blocks:
        if block.person in wanted:
            blocks_of.setdefault(block.person, []).append(block)
    entries_of: dict[str, list[AbsenceEntry]] = {}
    for entry in entries:
        if entry.email in wanted:
            entries_of.setdefault(entry.email, []).append(entry)
    weekend = tuple(weekend)
    found: dict[str, frozenset[date]] = {}
    for person in sorted(wanted):
        rules = rules_of.get(person, default_rules)
        if person not in blocks_of and person not in entries_of and not rules.holidays:
            continue
        dates = absent_dates(blocks_of.get(person, ()), entries_of.get(person, ()), rules, span, weekend)
        if dates:
            found[person] = dates
    return Absences(found)


def zone(name: str | None, fallback: tzinfo) -> tzinfo:
    """The time zone named ``name`` (IANA), else ``fallback``."""
    return ZoneInfo(name) if name else fallback
