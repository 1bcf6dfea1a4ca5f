"""Which meetings are 1:1s: merging calendars' copies, then the participant rule. Pure functions.

1. :func:`resolve` merges what several calendars say about the same meetings into one occurrence per
   (series, original start): the newest copy wins (SEQUENCE, then last-modified); where versions tie,
   a cancellation wins, then "this occurrence no longer exists", then a decline. A stale copy can
   therefore never bring back a cancelled or removed occurrence.
2. :func:`one_on_ones` keeps the timed, not wholly cancelled occurrences whose human participants are
   exactly two distinct org members, grouped by pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from calsync.model import CalendarData, Occurrence, Response, SeriesCopy

Pair = tuple[str, str]  # two lower-case emails, sorted

# How strongly a copy's state claims an occurrence when versions tie: higher wins.
_CONFIRMED, _DECLINED, _ABSENT, _CANCELLED = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Resolved:
    """The merged view of all calendars: one occurrence per meeting, and each series' newest master."""

    occurrences: tuple[Occurrence, ...]
    series: dict[str, SeriesCopy] = field(default_factory=dict)


def _occurrence_key(occurrence: Occurrence) -> tuple[str, datetime | None] | None:
    """The meeting an occurrence is a copy of: its series and original start (in UTC); None if its
    times cannot be moved to UTC (a date near year 1 or 9999, which the readers do not let through)."""
    rid = occurrence.recurrence_id
    try:
        occurrence.start.astimezone(UTC)
        occurrence.end.astimezone(UTC)
        return occurrence.series_id, (rid.astimezone(UTC) if rid is not None else None)
    except (OverflowError, ValueError):
        return None


def _rank(occurrence: Occurrence) -> int:
    if occurrence.cancelled:
        return _CANCELLED
    if any(p.response is Response.DECLINED for p in occurrence.participants):
        return _DECLINED
    return _CONFIRMED


def resolve(calendars: Iterable[CalendarData]) -> Resolved:
    """Merge the copies of the same meetings seen in several calendars."""
    copies: dict[str, list[SeriesCopy]] = {}
    by_key: dict[tuple[str, datetime | None], list[Occurrence]] = {}
    for calendar in calendars:
        for series_copy in calendar.series:
            copies.setdefault(series_copy.series_id, []).append(series_copy)
        for occurrence in calendar.occurrences:
            key = _occurrence_key(occurrence)
            if key is not None:  # else dropped: it cannot be compared with anything
                by_key.setdefault(key, []).append(occurrence)

    newest = {
        series_id: max(candidates, key=lambda c: (c.version.key(), c.cancelled))
        for series_id, candidates in copies.items()
    }
    merged: list[Occurrence] = []
    for (series_id, rid), candidates in by_key.items():
        master = newest.get(series_id)
        if master is not None and master.cancelled:
            continue  # the newest word on the series is that all of it is cancelled
        # (version, state, complete guest list): the newest wins, then the strongest state, then the
        # copy that shows every participant.
        claims: list[tuple[tuple[int, datetime], int, bool, Occurrence | None]] = [
            (occ.version.key(), _rank(occ), occ.participants_complete, occ) for occ in candidates
        ]
        if rid is not None:
            # A calendar that holds the series but not this occurrence says it does not exist.
            present = {occ.calendar for occ in candidates}
            claims.extend(
                (c.version.key(), _ABSENT, True, None)
                for c in copies.get(series_id, ())
                if c.calendar not in present
            )
        winner = max(claims, key=lambda claim: claim[:3])[3]
        if winner is not None:
            merged.append(winner)
    merged.sort(key=lambda o: (o.start.astimezone(UTC), o.series_id))
    return Resolved(tuple(merged), newest)


class Ignored:
    """``[detect] ignore_attendees``: addresses and ``*@domain`` patterns (case-insensitive) of people
    who never count as participants: assistants who schedule for their principal, note-taking bots."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.addresses: frozenset[str] = frozenset()
        self.domains: frozenset[str] = frozenset()
        addresses, domains = set(), set()
        for pattern in patterns:
            text = pattern.strip().lower()
            if text.startswith("*@"):
                domains.add(text[2:])
            elif text:
                addresses.add(text)
        self.addresses, self.domains = frozenset(addresses), frozenset(domains)

    def __bool__(self) -> bool:
        return bool(self.addresses or self.domains)

    def __call__(self, email: str) -> bool:
        address = email.strip().lower()
        return address in self.addresses or address.rpartition("@")[2] in self.domains


NOBODY = Ignored()


def human_participants(occurrence: Occurrence, ignored: Callable[[str], bool] = NOBODY) -> tuple[str, ...]:
    """The distinct people on an occurrence, organizer included, rooms and resources and ``ignored``
    people excluded."""
    people = {p.email for p in occurrence.participants if not p.resource}
    resources = {p.email for p in occurrence.participants if p.resource}
    if occurrence.organizer and occurrence.organizer not in resources:
        people.add(occurrence.organizer)
    return tuple(sorted(p for p in people if not ignored(p)))


@dataclass(slots=True)
class Detection:
    """The 1:1 occurrences grouped by pair, and how many candidates were ignored and why."""

    pairs: dict[Pair, list[Occurrence]] = field(default_factory=dict)
    external: int = 0  # two people, at least one outside the org's domains


def one_on_ones(
    occurrences: Iterable[Occurrence],
    is_member: Callable[[str], bool],
    ignored: Callable[[str], bool] = NOBODY,
) -> Detection:
    """Group the 1:1 occurrences by pair (DESIGN.md section 3, "A 1:1 meeting"); ``ignored`` people
    are dropped first (section 3b)."""
    detection = Detection()
    for occurrence in occurrences:
        if occurrence.all_day:
            continue
        if occurrence.cancelled and occurrence.recurrence_id is None:
            continue  # a one-off event cancelled as a whole is not a meeting
        if not occurrence.participants_complete:
            continue  # some guests are hidden from this copy: whether it is a 1:1 is unknown
        people = human_participants(occurrence, ignored)
        if len(people) != 2:
            continue
        if not all(is_member(p) for p in people):
            detection.external += 1
            continue
        pair: Pair = (people[0], people[1])
        detection.pairs.setdefault(pair, []).append(occurrence)
    return detection


def declined_by(occurrence: Occurrence, pair: Pair) -> list[str]:
    """Which of the two people declined this occurrence."""
    return sorted(
        {p.email for p in occurrence.participants if p.email in pair and p.response is Response.DECLINED}
    )
