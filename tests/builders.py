"""Small builders for normalised-model values used across the tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from calsync.cadence import Clock
from calsync.model import Occurrence, Participant, Response, SeriesCopy, Status, Version

A = "ann@acme.test"
B = "bob@acme.test"
PAIR = (A, B)
AS_OF = date(2026, 11, 21)
BERLIN = ZoneInfo("Europe/Berlin")


def clock(as_of: date = AS_OF, lookback: int = 90, lookahead: int = 90, tz=UTC) -> Clock:
    return Clock(datetime.combine(as_of, time(0), tzinfo=tz), lookback, lookahead)


def at(day: date | int, hour: int = 10, tz=UTC) -> datetime:
    """A datetime on ``day`` (a date, or days relative to AS_OF) at ``hour`` in ``tz``."""
    if isinstance(day, int):
        day = AS_OF + timedelta(days=day)
    return datetime.combine(day, time(hour), tzinfo=tz)


def occ(
    start: datetime,
    *,
    people: tuple[str, ...] = PAIR,
    declined: tuple[str, ...] = (),
    status: Status = Status.CONFIRMED,
    series: str = "s1",
    rid: datetime | bool | None = True,
    calendar: str = "cal-a",
    version: Version | None = None,
    organizer: str | None = None,
    rooms: tuple[str, ...] = (),
    all_day: bool = False,
    title: str = "1:1",
) -> Occurrence:
    """An occurrence of a series (``rid=True``: recurrence id = start) or a one-off (``rid=None``)."""
    recurrence_id = start if rid is True else (None if rid is False else rid)
    participants = tuple(
        Participant(p, None, Response.DECLINED if p in declined else Response.ACCEPTED) for p in people
    ) + tuple(Participant(r, None, Response.ACCEPTED, resource=True) for r in rooms)
    return Occurrence(
        calendar=calendar,
        series_id=series,
        recurrence_id=recurrence_id,
        start=start,
        end=start + timedelta(minutes=30),
        timezone=str(start.tzinfo),
        title=title,
        organizer=organizer if organizer is not None else people[0],
        participants=participants,
        status=status,
        all_day=all_day,
        version=version or Version(),
        recurrence="FREQ=WEEKLY" if recurrence_id is not None else None,
    )


def series_copy(calendar: str, series: str = "s1", version: Version | None = None, cancelled: bool = False):
    return SeriesCopy(calendar, series, "1:1", version or Version(), "FREQ=WEEKLY", cancelled)


def v(seq: int, updated_day: int | None = None) -> Version:
    return Version(seq, at(updated_day) if updated_day is not None else None)
