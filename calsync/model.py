"""The normalised model every source produces and the pure core consumes.

Sources (ICS files, Google, Microsoft) translate what they read into these plain, immutable values.
Detection and cadence never learn where a meeting came from: all provider quirks are fixed at the
boundary, in the source.

A calendar contributes :class:`CalendarData`: the occurrences it shows within the sync window and, for
every recurring series it holds, a :class:`SeriesCopy` that says which version of the series that
calendar has. The same meeting usually appears in several calendars (the manager's and the report's);
:func:`calsync.detect.resolve` merges those copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class Response(StrEnum):
    """A participant's answer to an invitation."""

    ACCEPTED = "accepted"
    TENTATIVE = "tentative"
    DECLINED = "declined"
    NEEDS_ACTION = "needs-action"
    UNKNOWN = "unknown"


class Status(StrEnum):
    """Whether an occurrence takes place."""

    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Participant:
    """One person (or room) on an event. ``email`` is always lower case."""

    email: str
    name: str | None = None
    response: Response = Response.UNKNOWN
    resource: bool = False  # a room or other resource: never counts as a human participant


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, order=False)
class Version:
    """How new one copy of an event is: ``SEQUENCE`` first, then the last-modified time.

    A copy without a last-modified time is older than any copy with one at the same sequence.
    """

    sequence: int = 0
    updated: datetime | None = None  # timezone-aware

    def key(self) -> tuple[int, datetime]:
        return (self.sequence, self.updated.astimezone(UTC) if self.updated else _EPOCH)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of a meeting as one calendar shows it.

    ``start``/``end`` are timezone-aware and expressed in the event's own time zone, so that
    ``start.date()`` is the meeting's local date. ``recurrence_id`` is the original start of an
    occurrence of a recurring series (also in the event's time zone) and ``None`` for a one-off event;
    together with ``series_id`` it identifies the occurrence across calendars. A moved occurrence keeps
    its ``recurrence_id`` and has a different ``start``.
    """

    calendar: str  # where this copy was read: a file, a mailbox, a calendar id
    series_id: str  # the event's UID / iCalUID: shared by every copy and every occurrence of a series
    recurrence_id: datetime | None
    start: datetime
    end: datetime
    timezone: str  # name of the event's own time zone, e.g. "Europe/Berlin" or "UTC"
    title: str
    organizer: str | None  # lower-case email
    participants: tuple[Participant, ...]
    status: Status = Status.CONFIRMED
    all_day: bool = False
    version: Version = field(default_factory=Version)
    recurrence: str | None = None  # the series' RRULE (without "RRULE:"), None for one-offs
    # False when the provider says the guest list was cut (Google's attendeesOmitted): this copy alone
    # cannot tell whether the meeting is a 1:1.
    participants_complete: bool = True

    @property
    def original_start(self) -> datetime:
        """When the occurrence was originally scheduled: its recurrence id, or its start."""
        return self.recurrence_id if self.recurrence_id is not None else self.start

    @property
    def cancelled(self) -> bool:
        return self.status is Status.CANCELLED


@dataclass(frozen=True, slots=True)
class SeriesCopy:
    """What one calendar holds of one recurring series (its master event).

    ``cancelled`` means the whole series is cancelled in this copy. A calendar that holds a series but
    shows no occurrence at some original start says that occurrence does not exist, at this version:
    that is how a newer copy that ended or shortened a series outvotes a stale one.
    """

    calendar: str
    series_id: str
    title: str
    version: Version = field(default_factory=Version)
    recurrence: str | None = None
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class Absence:
    """A block of time one person is away: their own out-of-office (DESIGN.md section 3b).

    Never a meeting: it neither makes nor breaks a 1:1. Only when and whose are kept, never its title
    or reason. A timed block covers ``[start, end)`` (timezone-aware instants); an all-day block covers
    the dates ``start.date()`` up to, not including, ``end.date()`` (its instants mean nothing else).
    """

    person: str  # lower-case email of the person away (the block's organizer / the calendar's owner)
    start: datetime
    end: datetime
    all_day: bool = False
    calendar: str = ""  # where it was read


@dataclass(frozen=True, slots=True)
class CalendarData:
    """Everything one calendar contributed within the sync window."""

    calendar: str
    occurrences: tuple[Occurrence, ...] = ()
    series: tuple[SeriesCopy, ...] = ()
    absences: tuple[Absence, ...] = ()
    #: Whose calendar this is (lower-case email), when the source knows: a mailbox, a calendar id, an
    #: ICS file named after its owner. None: not known.
    owner: str | None = None
    #: Only the out-of-office of ``owner``, whose calendar is not read for meetings (an "absentee"):
    #: it says nothing about whether their calendar could be read.
    absences_only: bool = False
    #: Set when this calendar could not be read now and this is calsync's stored reading of it instead:
    #: when that reading was last synced (ISO 8601, UTC), or "" when that is not known.
    stored_at: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """A bad input that was reported and skipped: where it came from and what is wrong.

    ``source`` names the file, URL, mailbox or config key; ``message`` says what was wrong and, where
    possible, what to do about it. Problems end up in the report's ``errors`` and on stderr.
    """

    source: str
    message: str
    # A whole calendar, file, feed or source could not be read: the report lacks its meetings, so pairs
    # may be flagged that are fine. (Otherwise one bad item was skipped and the rest was read.)
    unread: bool = False
    #: Whose calendar could not be read (lower-case email), when the source knows: see
    #: :attr:`CalendarData.owner`. With ``unread`` and no owner, it could be anyone's.
    owner: str | None = None

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"
