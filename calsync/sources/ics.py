"""Published ICS calendars: a directory of .ics files, one .ics file, or an http(s) URL.

Each file is one calendar (typically one person's export or published feed). Events are grouped by
UID and each group is expanded on its own with ``recurring-ical-events``, so one broken event is
reported and skipped without taking the rest of the file down.

What this module fixes at the boundary, so that the core never sees it:

- EXDATE: an occurrence removed from its series becomes an explicit *cancelled* occurrence (listed by
  its original start), found by expanding the series once with and once without its EXDATEs;
- RECURRENCE-ID overrides: a moved occurrence keeps its original start as ``recurrence_id``; a
  ``STATUS:CANCELLED`` override is a cancelled occurrence; an override without attendees (some
  clients strip them from cancellations) inherits the series' participants;
- versions: SEQUENCE and LAST-MODIFIED are read from the raw master or override (the expander
  propagates the highest SEQUENCE of a series to every occurrence, which would hide stale copies);
- time zones: TZIDs resolve through VTIMEZONE, IANA or Windows names; floating times and TZIDs that
  cannot be resolved are read in the org's time zone (reported for unknown TZIDs); X-WR-TIMEZONE
  calendars (Google exports) are normalised first;
- out-of-office: a VEVENT with ``X-MICROSOFT-CDO-BUSYSTATUS:OOF`` (Outlook's export; the other
  providers' converted events say the same) is never a meeting: each of its occurrences in the window
  is an :class:`~calsync.model.Absence` of its organizer, else of the calendar's owner. Its title and
  description are never kept, nor named in any problem;
- whose calendar a document is: the source's configured owner, else an X-WR-CALNAME that is an email
  address, else a file named after its owner (``maya@acme.test.ics``, or a stem the roster knows);
- bad input that should not cost a meeting: an unreadable CREATED, LAST-MODIFIED or DTSTAMP is
  reported and the event read without it; an event without UID gets one made from its organizer,
  start and title (reported), so that its copies in two people's files still count once.
"""

from __future__ import annotations

import hashlib
import http.client
import math
import re
import time as _time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
import x_wr_timezone

from calsync.model import (
    Absence,
    CalendarData,
    Occurrence,
    Participant,
    Problem,
    Response,
    SeriesCopy,
    Status,
    Version,
)
from calsync.progress import NoProgress, Progress
from calsync.sources.base import SourceResult, Window, display_path
from calsync.telemetry import ICS, REQUESTS

T = TypeVar("T")
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
USER_AGENT = "calsync (+https://github.com/calsync/calsync)"

_RESPONSES = {
    "ACCEPTED": Response.ACCEPTED,
    "TENTATIVE": Response.TENTATIVE,
    "DECLINED": Response.DECLINED,
    "NEEDS-ACTION": Response.NEEDS_ACTION,
}
_RESOURCE_TYPES = {"ROOM", "RESOURCE"}
#: Set (to TRUE) by providers whose copy of an event does not list every guest.
ATTENDEES_OMITTED = "X-CALSYNC-ATTENDEES-OMITTED"
#: Set on a series master by providers that list its instances (Graph's calendarView): between these
#: two instants (ISO 8601) every instance that exists is listed as an override.
LISTED_FROM = "X-CALSYNC-LISTED-FROM"
LISTED_TO = "X-CALSYNC-LISTED-TO"
#: Outlook's "show as" of an event: OOF (out of office), BUSY, FREE, TENTATIVE, WORKINGELSEWHERE.
BUSY_STATUS = "X-MICROSOFT-CDO-BUSYSTATUS"
OUT_OF_OFFICE = "OOF"
#: Properties calsync can read an event without: when one of them is broken, it is reported and ignored.
_IGNORABLE = frozenset({"CREATED", "LAST-MODIFIED", "DTSTAMP"})
#: What the UIDs made for events without one begin with: no calendar writes UIDs like these.
DERIVED_UID_PREFIX = "calsync-derived-uid:"
#: The years an event's dates (DTSTART, DTEND, RECURRENCE-ID, EXDATE, RDATE, UNTIL) may fall in: an
#: event with a date outside them is reported and skipped. No calendar holds 1:1s from before 1900
#: or after 2200, and dates near the ends of what Python can hold (year 1, year 9999) overflow as soon
#: as they are moved into another time zone.
EARLIEST_YEAR = 1900
LATEST_YEAR = 2200
#: A 1:1 (and a day away) recurs at most daily: a series' expansion gives at most one occurrence per
#: day of the window, plus this many (RDATEs, overrides moved into the window, the edges of the
#: window): a series that gives more is reported and skipped.
OCCURRENCE_MARGIN = 64
#: How long the expansion of one event (all its copies) may take, and of all the events of one
#: document, in seconds: the expansion is stopped, and the event reported and skipped, past either.
#: A well-formed series of a year's window expands in milliseconds.
EVENT_SECONDS = 2.0
DOCUMENT_SECONDS = 30.0
#: The frequencies of a series that can be a 1:1: at most daily.
_FREQUENCIES = frozenset({"DAILY", "WEEKLY", "MONTHLY", "YEARLY"})
_clock = _time.monotonic  # replaced in tests
_EMAIL = re.compile(r"[^@\s<>,;:\"()\[\]]+@[^@\s<>,;:\"()\[\].]+(?:\.[^@\s<>,;:\"()\[\].]+)+")


class _Document(NamedTuple):
    """One calendar document of a source: its label, how to read it (reporting failures), and whose
    calendar it is as far as can be told without reading it (config, file name)."""

    label: str
    load: Callable[[], bytes | None]
    owner: str | None


class IcsSource:
    """Reads every calendar of one ``[[sources]] type = "ics"`` entry.

    ``owner`` is whose calendar a single file or URL is (the entry's ``owner``); ``owner_of`` tells
    which org member a file's stem names ("maya" -> "maya@acme.test"), for files not named by email.
    """

    def __init__(
        self,
        location: str,
        *,
        name: str,
        default_tz: tzinfo,
        label_root: Path | None = None,
        timeout_seconds: float = 30.0,
        progress: Progress | None = None,
        owner: str | None = None,
        owner_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self.location = location
        self.progress: Progress = progress if progress is not None else NoProgress()
        self.name = name
        self.default_tz = default_tz
        self.label_root = label_root
        self.timeout_seconds = timeout_seconds
        self.owner = owner.strip().lower() if owner and owner.strip() else None
        self.owner_of = owner_of

    def fetch(self, window: Window) -> SourceResult:
        result = SourceResult()
        documents = self._documents(result.problems)
        self.progress.start(f"reading {self.name}", len(documents))
        try:
            for document in documents:
                data = document.load()
                if data is not None:
                    # The config's owner, else the calendar's own name if it is an address, else the file's.
                    owner = self.owner or _calendar_name(data) or document.owner
                    calendar, problems = read_ics(data, document.label, window, self.default_tz, owner=owner)
                    result.problems.extend(problems)
                    if calendar is not None:
                        result.calendars.append(calendar)
                self.progress.advance()
        finally:
            self.progress.done()
        return result

    # -- where the documents come from -------------------------------------------------------------

    def _documents(self, problems: list[Problem]) -> list[_Document]:
        """Each document's label, a function that reads it (reporting failures into ``problems``) and
        whose calendar it is as far as its name tells."""
        if self.location.startswith(("http://", "https://")):
            # Named by the source's name, never the URL itself: the URL is often the secret.
            return [_Document(self.name, lambda: self._download(problems), self.owner)]
        root = Path(self.location)
        if root.is_dir():
            files = sorted(
                p
                for p in root.rglob("*")
                if p.is_file() and p.suffix.lower() == ".ics" and not p.name.startswith(".")
            )
            if not files:
                problems.append(
                    Problem(
                        self._label(root),
                        "no .ics files in this directory: add calendar exports here or fix the source's path",
                        unread=True,
                        owner=self.owner,
                    )
                )
        elif root.is_file():
            files = [root]
        else:
            problems.append(
                Problem(self._label(root), "no such file or directory", unread=True, owner=self._owner(root))
            )
            files = []
        documents = []
        for path in files:
            owner = self._owner(path)
            documents.append(
                _Document(self._label(path), partial(self._read_file, path, problems, owner), owner)
            )
        return documents

    def _owner(self, path: Path) -> str | None:
        """Whose calendar the file is, as far as the config and its name tell: the source's owner, a
        stem that is an email address, else the org member ``owner_of`` finds for the stem."""
        if self.owner is not None:
            return self.owner
        found = _as_email(path.stem)
        if found is None and self.owner_of is not None:
            named = self.owner_of(path.stem)
            found = named.strip().lower() if named and named.strip() else None
        return found

    def _read_file(self, path: Path, problems: list[Problem], owner: str | None) -> bytes | None:
        try:
            return path.read_bytes()
        except OSError as exc:
            problems.append(
                Problem(self._label(path), f"cannot read: {exc.strerror or exc}", unread=True, owner=owner)
            )
            return None

    def _download(self, problems: list[Problem]) -> bytes | None:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s) above
            self.location, headers={"User-Agent": USER_AGENT, "Accept": "text/calendar, */*;q=0.5"}
        )

        def failed(why: str) -> None:
            REQUESTS.record(ICS, error=True)
            problems.append(Problem(self.name, f"download failed: {why}", unread=True, owner=self.owner))

        chunks: list[bytes] = []
        received = 0
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:  # noqa: S310
                promised = response.headers.get("Content-Length")
                while chunk := response.read(256 * 1024):
                    chunks.append(chunk)
                    received += len(chunk)
                    if received > MAX_DOWNLOAD_BYTES:
                        failed(f"larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB")
                        return None
        except urllib.error.HTTPError as exc:
            failed(f"HTTP {exc.code} {exc.reason}")
            return None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # OSError covers URLError, timeouts and resets; HTTPException a broken response.
            failed(
                str(getattr(exc, "reason", None) or exc.__class__.__name__ + (f": {exc}" if str(exc) else ""))
            )
            return None
        if promised is not None and promised.isdigit() and received < int(promised):
            failed(f"the connection closed after {received} of {promised} bytes")
            return None
        REQUESTS.record(ICS)
        return b"".join(chunks)

    def _label(self, path: Path) -> str:
        return display_path(path, self.label_root)


# -- parsing -----------------------------------------------------------------------------------------


def read_ics(
    data: bytes | str, label: str, window: Window, default_tz: tzinfo, *, owner: str | None = None
) -> tuple[CalendarData | None, list[Problem]]:
    """Parse one ICS document into the normalised model.

    Returns ``None`` (and a problem) when the document as a whole is unreadable; a broken event is
    reported and skipped and the rest of the document is still read. A document that looks cut off
    (it stops inside a component, without its last END:VCALENDAR) is not read at all, as a download
    cut short is not: what it held after the cut is unknown, and a missing 1:1 must not be flagged.
    The problem says so, with the line it stops at, and keeps the parser's error as detail.

    ``owner`` is whose calendar this is (lower-case email), when the caller knows; else an
    X-WR-CALNAME that is an email address says so. The problem of an unreadable document carries it.
    """
    owner = owner.strip().lower() if owner and owner.strip() else None
    whole = _ends_whole(data)
    try:
        calendars = icalendar.Calendar.from_ical(data, multiple=True)
    except Exception as exc:  # icalendar raises ValueError and friends on malformed documents
        broken = _structure_problem(data)
        detail = f"{broken}; the parser said: {_short(exc)}" if broken else _short(exc)
        return None, [Problem(label, f"not a valid iCalendar file: {detail}", unread=True, owner=owner)]
    if not calendars or not whole:
        # A file cut off after a complete VCALENDAR parses, without the rest: it is not read as whole.
        broken = _structure_problem(data)
        if broken is not None or not calendars:
            why = broken or "no complete VCALENDAR in it (empty or cut off?)"
            return None, [Problem(label, f"not a valid iCalendar file: {why}", unread=True, owner=owner)]
    problems: list[Problem] = []
    standard = []
    for cal in calendars:
        try:
            standard.append(x_wr_timezone.to_standard(cal))
        except Exception as exc:
            problems.append(Problem(label, f"X-WR-TIMEZONE ignored: {_short(exc)}"))
            standard.append(cal)
    calendar, more = read_calendars(standard, label, window, default_tz, owner=owner)
    return calendar, problems + more


def _calendar_name(data: bytes | str) -> str | None:
    """The email address the document's X-WR-CALNAME is, if it is one, read without parsing the
    document: from the first VCALENDAR's own properties, which come before its first component."""
    head = data[:65536]
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    lines: list[str] = []
    for line in text.removeprefix("\ufeff").splitlines():
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += line[1:]  # a folded line goes on
        else:
            lines.append(line)
    begun = False
    for line in lines:
        name, _, value = line.partition(":")
        key = name.partition(";")[0].strip().upper()
        if key == "BEGIN" and not begun and value.strip().upper() == "VCALENDAR":
            begun = True
        elif key in ("BEGIN", "END"):
            return None  # the calendar's own properties are over
        elif begun and key == "X-WR-CALNAME":
            return _as_email(value)
    return None


def _as_email(value: object) -> str | None:
    """``value`` as a lower-case email address ("mailto:" dropped), or None if it is not one."""
    text = str(value).strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:") :].strip()
    text = text.lower()
    return text if _EMAIL.fullmatch(text) else None


_END = b"END:VCALENDAR"


def _ends_whole(data: bytes | str) -> bool:
    """Whether the document's last line is END:VCALENDAR, as a whole iCalendar stream's is (read from
    its last few bytes: a file cut off mid-export or mid-download ends anywhere else)."""
    tail = (data[-4096:].encode("utf-8", "replace") if isinstance(data, str) else data[-4096:]).rstrip()
    if not tail.upper().endswith(_END):
        return False
    return len(tail) == len(_END) or tail[-len(_END) - 1 : -len(_END)] in (b"\n", b"\r")


def _structure_problem(data: bytes | str) -> str | None:
    """Why a document that begins as an iCalendar file is not a whole one: it stops inside a component
    (cut off), or a component is never ended; None if it does not begin with BEGIN:VCALENDAR (then it
    is no calendar at all, not a cut-off one) or its components are all ended. Only line numbers are
    named, never what the lines hold."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    # (line number, line) of the content lines: not blank, not the continuation of a folded line
    lines = [
        (number, line.strip())
        for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), 1)
        if line.strip() and line[0] not in " \t"
    ]
    if not lines or lines[0][1].upper() != "BEGIN:VCALENDAR":
        return None
    last = lines[-1][0]
    begun: list[tuple[str, int]] = []  # the components not ended yet: (name, line)
    for number, line in lines:
        key, _, name = (part.strip().upper() for part in line.partition(":"))
        if key == "BEGIN" and name:
            begun.append((name, number))
        elif key == "END" and begun and name != begun[-1][0]:
            if number == last and begun[-1][0].startswith(name):
                break  # the last line itself is cut off: "END:VCALEN"
            component, at = begun[-1]
            return (
                f"the {component} begun on line {at} has no END:{component} before line {number} "
                f"(END:{name}): the file looks cut off or badly edited; export or download it again"
            )
        elif key == "END" and begun:
            begun.pop()
    if not begun:
        return None
    component, at = begun[-1]
    return (
        f"the file looks cut off (no END:VCALENDAR at the end; it stops at line {last}, inside the "
        f"{component} begun on line {at}): export or download it again"
    )


def read_calendars(
    calendars: Iterable[icalendar.Component],
    label: str,
    window: Window,
    default_tz: tzinfo,
    *,
    owner: str | None = None,
) -> tuple[CalendarData, list[Problem]]:
    """The normalised model of parsed VCALENDARs that make up one calendar (one file, one mailbox).

    Events are grouped by UID and each group is read on its own: a broken event is reported and
    skipped, and the others are still read. Other providers build VEVENTs and come through here too,
    so that recurrence, EXDATEs, versions and out-of-office blocks are handled in one place.

    ``owner`` is whose calendar this is (else an X-WR-CALNAME that is an email address): the person
    away in the out-of-office blocks that name no organizer.
    """
    owner = owner.strip().lower() if owner and owner.strip() else None
    problems: list[Problem] = []
    timezones: list[icalendar.Component] = []
    groups: dict[str, list[icalendar.Component]] = {}
    without_uid: list[icalendar.Component] = []
    for cal in calendars:
        if owner is None:
            owner = _as_email(cal.get("X-WR-CALNAME", ""))
        timezones.extend(cal.walk("VTIMEZONE"))
        for event in cal.walk("VEVENT"):
            uid = _uid(event)
            if uid:
                groups.setdefault(uid, []).append(event)
            else:
                without_uid.append(event)
    named = _derive_uids(without_uid, default_tz)
    for event, uid in named:
        # A copy that says its UID, as the expansion links a series' overrides to it by UID.
        copied = event.copy()
        copied.errors = list(event.errors)
        copied.pop("UID", None)  # an empty one
        copied.add("UID", uid)
        groups.setdefault(uid, []).append(copied)

    occurrences: list[Occurrence] = []
    series: list[SeriesCopy] = []
    absences: list[Absence] = []
    unowned = 0
    skipped: set[str] = set()
    budget = _Budget(window)
    for uid, components in groups.items():
        private = _is_private(components)
        try:
            group = _read_group(uid, components, timezones, label, window, default_tz, owner, private, budget)
        except Exception as exc:  # one broken event must not stop the others
            skipped.add(uid)
            problems.append(
                Problem(
                    label,
                    f"{_describe(components[0], private=private)}: skipped: "
                    + _detail(exc, components if private else None),
                )
            )
            continue
        occurrences.extend(group.occurrences)
        if group.series is not None:
            series.append(group.series)
        absences.extend(group.absences)
        unowned += group.unowned
        problems.extend(group.problems)
    for event, uid in named:
        if uid in skipped:
            continue  # its problem says it was skipped, and that it has no UID
        problems.append(
            Problem(
                label,
                f"{_describe(event, private=_is_private(groups[uid]))}: has no UID; read with one made from "
                "its organizer, start and title, so that its copies in other calendars count once",
            )
        )
    if unowned:
        blocks = "1 out-of-office block" if unowned == 1 else f"{unowned} out-of-office blocks"
        problems.append(
            Problem(
                label,
                f"{blocks} skipped: {'it names' if unowned == 1 else 'they name'} no ORGANIZER and whose "
                "calendar this is is not known; name the file after its owner (<email>.ics), set owner in "
                "the source's config, or export the calendar with an ORGANIZER on its events",
            )
        )
    data = CalendarData(label, tuple(occurrences), tuple(series), absences=tuple(absences), owner=owner)
    return data, problems


def read_converted(
    items: Iterable[T],
    convert: Callable[[T], icalendar.Component | None],
    describe: Callable[[T], str],
    label: str,
    window: Window,
    default_tz: tzinfo,
    *,
    owner: str | None = None,
) -> tuple[CalendarData, list[Problem]]:
    """Another provider's resources, each converted to the VEVENT it stands for, through this reader.

    A resource that cannot be converted (KeyError, TypeError, ValueError, OverflowError: a date too
    near the ends of what Python holds to be moved to another zone) is reported and skipped;
    ``convert`` returns None for one that stands for nothing (e.g. a tombstone of an unknown event).
    An out-of-office block is converted to a VEVENT with ``X-MICROSOFT-CDO-BUSYSTATUS:OOF``. ``owner``
    is whose calendar this is (a mailbox, a calendar id that is an address), as for
    :func:`read_calendars`.
    """
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//calsync//converted//EN")
    calendar.add("version", "2.0")
    problems: list[Problem] = []
    for item in items:
        try:
            vevent = convert(item)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            problems.append(Problem(label, f"{describe(item)}: skipped: {exc}"))
            continue
        if vevent is not None:
            calendar.add_component(vevent)
    data, more = read_calendars([calendar], label, window, default_tz, owner=owner)
    return data, problems + more


def _uid(component: icalendar.Component) -> str:
    """The event's UID ("" if it has none); the first, if it says several (invalid, but seen)."""
    value = component.get("UID", "")
    if isinstance(value, list):
        value = next((v for v in value if str(v).strip()), "")
    return str(value).strip()


def _derive_uids(
    events: list[icalendar.Component], default_tz: tzinfo
) -> list[tuple[icalendar.Component, str]]:
    """A UID for each event that has none, made from its organizer, start and title: the same in every
    calendar that holds a copy of it. An override (RECURRENCE-ID) without UID joins the one series
    without UID that has its organizer and title; failing that, its original start stands for its own."""
    masters = [e for e in events if "RECURRENCE-ID" not in e]
    made = {id(m): _derived_uid(m, "DTSTART", default_tz) for m in masters}
    named: list[tuple[icalendar.Component, str]] = []
    for event in events:
        if "RECURRENCE-ID" not in event:
            named.append((event, made[id(event)]))
            continue
        organizer, title = _organizer(event), _title(event)
        series = [
            m
            for m in masters
            if _is_recurring(m) and _organizer(m) == organizer and (not title or _title(m) == title)
        ]
        uid = made[id(series[0])] if len(series) == 1 else _derived_uid(event, "RECURRENCE-ID", default_tz)
        named.append((event, uid))
    return named


def _derived_uid(component: icalendar.Component, start: str, default_tz: tzinfo) -> str:
    try:
        value = _when(component, start)
    except ValueError:
        when = ""  # no start: the event is reported and skipped when read
    else:
        try:
            when = (_instant(value, default_tz) if isinstance(value, datetime) else value).isoformat()
        except OverflowError:  # e.g. year 1: the event is reported and skipped when read
            when = value.isoformat()
    key = "\n".join((_organizer(component) or "", when, _title(component)))
    return DERIVED_UID_PREFIX + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]


class _Group(NamedTuple):
    """What the events of one UID contribute."""

    occurrences: list[Occurrence]
    series: SeriesCopy | None
    absences: list[Absence]
    problems: list[Problem]
    unowned: bool  # an out-of-office block with occurrences in the window, whose person is not known


class _Absences:
    """Collects the absences of one group's out-of-office occurrences."""

    def __init__(self, label: str, default_tz: tzinfo, owner: str | None) -> None:
        self.label = label
        self.default_tz = default_tz
        self.owner = owner
        self.found: list[Absence] = []
        self.unowned = False

    def add(
        self, component: icalendar.Component, master: icalendar.Component | None, at: _Expanded | None
    ) -> None:
        """The absence an out-of-office occurrence stands for: at its own times, or those the expansion
        found (``at``); its person is its organizer, its series' (``master``), else the owner."""
        if _is_cancelled(component):
            return
        person = _organizer(component) or (_organizer(master) if master is not None else None) or self.owner
        if person is None:
            self.unowned = True
            return
        value = at.start if at is not None else _when(component, "DTSTART")
        start, all_day = _aware(value, self.default_tz)
        if at is not None:
            end = _aware(at.end, self.default_tz)[0]
        else:
            end = _end(component, start, all_day, self.default_tz)
        if all_day:
            # Only the dates count: [first date, the day after the last) at midnight UTC.
            first = start.date()
            last = max(end.date(), first + timedelta(days=1))  # no (or no later) DTEND: one day
            start = datetime.combine(first, time(0), tzinfo=UTC)
            end = datetime.combine(last, time(0), tzinfo=UTC)
        else:
            end = max(end.astimezone(start.tzinfo), start)
        self.found.append(Absence(person, start, end, all_day=all_day, calendar=self.label))


def _read_group(
    uid: str,
    components: list[icalendar.Component],
    timezones: list[icalendar.Component],
    label: str,
    window: Window,
    default_tz: tzinfo,
    owner: str | None = None,
    private: bool = False,
    budget: _Budget | None = None,
) -> _Group:
    problems = _property_problems(components, label, private)
    # Before anything is computed from them: dates out of range, and recurrences no 1:1 has.
    for component in components:
        _check_dates(component)
    if budget is None:
        budget = _Budget(window)
    deadline = budget.for_event()
    # An unresolvable time zone is reported once per event, not once per override.
    problems += next(
        (tz for c in components if (tz := _timezone_problems(c, label, default_tz, private))), []
    )

    masters = [c for c in components if "RECURRENCE-ID" not in c]
    overrides = [c for c in components if "RECURRENCE-ID" in c]
    master = max(masters, key=lambda c: _version(c).key()) if masters else None
    blocks = _Absences(label, default_tz, owner)
    # A series that is an out-of-office block is one as a whole: none of its occurrences is a meeting
    # (an override that says it is not out of office is not an absence either).
    block_series = master is not None and _is_out_of_office(master)

    def found(occurrences: list[Occurrence], copy_: SeriesCopy | None = None) -> _Group:
        return _Group(occurrences, copy_, blocks.found, problems, blocks.unowned)

    if master is not None:
        _check_recurrence(master)

    def expand(events: list[icalendar.Component]) -> list[_Expanded]:
        return _expand(events, timezones, window, deadline, budget.limit)

    if master is None or not _is_recurring(master):
        # A one-off event, or single occurrences of a series this calendar was only invited to.
        singles = [master] if master is not None else overrides
        occurrences = []
        for c in singles:
            if not _overlaps(c, window, default_tz):
                continue
            if _is_out_of_office(c):
                blocks.add(c, None, None)
            else:
                occurrences.append(_occurrence(c, uid, label, default_tz, None, recurring=master is None))
        return found(occurrences)

    listed = _listed_span(master)
    if block_series:
        if _is_cancelled(master):
            return found([])
        for expanded in expand([master, *overrides]):
            raw = expanded.source
            if raw is master and listed is not None:
                continue  # the provider lists every instance: one it did not list is not there
            if _busy_status(raw) in (None, OUT_OF_OFFICE):  # the master's is OOF
                blocks.add(raw, master, expanded)
        return found([])

    rrule = _rrule_text(master)
    copy_ = SeriesCopy(
        calendar=label,
        series_id=uid,
        title=_title(master),
        version=_version(master),
        recurrence=rrule,
        cancelled=_is_cancelled(master),
    )
    if copy_.cancelled:  # the whole series is cancelled: it is not a meeting at all
        return found([], copy_)

    for override in overrides:
        _when(override, "RECURRENCE-ID")  # a broken one is reported for the whole event
    occs: list[Occurrence] = []
    seen: set[datetime] = set()
    shared: dict[int, _Shared] = {}
    for expanded in expand([master, *overrides]):
        rid = _instant(expanded.original, default_tz)
        seen.add(rid)
        raw = expanded.source
        if raw is not master and _is_out_of_office(raw):
            blocks.add(raw, None, expanded)  # an occurrence turned into out-of-office: no meeting
            continue
        status = None
        if listed is not None and raw is master:
            # The provider listed every instance in its span, and not this one: it was cancelled.
            # Outside the span nothing is known about it.
            if not listed[0] <= rid < listed[1]:
                continue
            status = Status.CANCELLED
        occs.append(
            _occurrence(
                raw,
                uid,
                label,
                default_tz,
                master,
                recurring=True,
                at=expanded,
                rrule=rrule,
                status=status,
                shared=shared,
            )
        )

    if "EXDATE" in master:
        # Expand the bare series without its EXDATEs: what appears only there was removed from it.
        bare = master.copy()
        bare.pop("EXDATE")
        for expanded in expand([bare]):
            rid = _instant(expanded.original, default_tz)
            if rid in seen:
                continue
            seen.add(rid)
            occs.append(
                _occurrence(
                    master,
                    uid,
                    label,
                    default_tz,
                    master,
                    recurring=True,
                    at=expanded,
                    rrule=rrule,
                    status=Status.CANCELLED,
                    shared=shared,
                )
            )
    return found(occs, copy_)


class _Unbounded(ValueError):
    """An event calsync does not read: a date out of range, a recurrence more frequent than daily, an
    expansion past its bounds. Reported (with the event named) and the event skipped."""


def _days(window: Window) -> int:
    return max(0, math.ceil((window.end - window.start) / timedelta(days=1)))


class _Deadline(NamedTuple):
    """When the expansion of an event must have ended (a monotonic clock's reading), and why."""

    at: float
    why: str

    def check(self) -> None:
        if _clock() > self.at:
            raise _Unbounded(self.why)


class _Budget:
    """The bounds of one document's expansions: its deadline, and how many occurrences a series may
    have in the window."""

    def __init__(self, window: Window) -> None:
        self.document = _clock() + DOCUMENT_SECONDS
        self.limit = _days(window) + 1 + OCCURRENCE_MARGIN

    def for_event(self) -> _Deadline:
        """The deadline of the next event's expansion: its own, or the document's if sooner."""
        own = _clock() + EVENT_SECONDS
        if own <= self.document:
            return _Deadline(own, f"reading its recurrence took longer than {EVENT_SECONDS:g} s; stopped")
        return _Deadline(
            self.document,
            f"reading this calendar's recurrences took longer than {DOCUMENT_SECONDS:g} s; stopped",
        )


def _check_dates(component: icalendar.Component) -> None:
    """Raise :class:`_Unbounded` if one of the event's dates is before EARLIEST_YEAR or after
    LATEST_YEAR: DTSTART, DTEND, its end by DURATION, RECURRENCE-ID, EXDATE, RDATE, an RRULE's UNTIL."""
    for name in ("DTSTART", "DTEND", "RECURRENCE-ID"):
        value = getattr(_prop(component, name), "dt", None)
        if isinstance(value, date):
            _check_year(name, value)
            if name == "DTSTART" and "DTEND" not in component and "DURATION" in component:
                duration = getattr(_prop(component, "DURATION"), "dt", None)
                if isinstance(duration, timedelta):
                    try:
                        end = value + duration
                    except OverflowError:
                        raise _Unbounded(f"its DURATION ends after {LATEST_YEAR}") from None
                    _check_year("its end (DTSTART + DURATION)", end)
    for name in ("EXDATE", "RDATE"):
        prop = _prop(component, name)
        for item in prop if isinstance(prop, list) else [prop] if prop is not None else []:
            for value in getattr(item, "dts", ()):
                moment = getattr(value, "dt", None)
                for part in moment if isinstance(moment, tuple) else (moment,):
                    if isinstance(part, date):
                        _check_year(name, part)
    for rule in _rules(component):
        for until in rule.get("UNTIL", ()):
            if isinstance(until, date):
                _check_year("its RRULE's UNTIL", until)


def _check_year(name: str, value: date) -> None:
    if value.year < EARLIEST_YEAR:
        raise _Unbounded(f"{name} {value.isoformat()} is before {EARLIEST_YEAR}: not read")
    if value.year > LATEST_YEAR:
        raise _Unbounded(f"{name} {value.isoformat()} is after {LATEST_YEAR}: not read")


def _rules(component: icalendar.Component) -> list[Any]:
    """The event's RRULEs, as icalendar reads them (each a mapping of a part's name to its values)."""
    rule = component.get("RRULE")
    if rule is None:
        return []
    return list(rule) if isinstance(rule, list) else [rule]


def _check_recurrence(master: icalendar.Component) -> None:
    """Raise :class:`_Unbounded` if a series recurs more often than daily (FREQ=SECONDLY, MINUTELY,
    HOURLY; BYHOUR, BYMINUTE and BYSECOND giving several times a day) or has an INTERVAL below 1: no
    1:1 (and no day away) does, and expanding one can take hours. Checked before it is expanded."""
    for rule in _rules(master):
        freq = [str(v).upper() for v in rule.get("FREQ", ())]
        if freq and freq[0] not in _FREQUENCIES:
            raise _Unbounded(f"it repeats more often than daily (FREQ={freq[0]}); a 1:1 recurs at most daily")
        for interval in rule.get("INTERVAL", ()):
            try:
                every = int(interval)
            except (TypeError, ValueError):
                raise _Unbounded("its RRULE's INTERVAL is not a whole number") from None
            if every < 1:
                raise _Unbounded(f"its RRULE's INTERVAL is {every}: it must be at least 1")
        per_day = math.prod(
            len({str(v) for v in rule.get(part, ())}) or 1 for part in ("BYHOUR", "BYMINUTE", "BYSECOND")
        )
        if "BYSETPOS" in rule:
            per_day = min(per_day, len(rule["BYSETPOS"]) or 1)
        if per_day > 1:
            parts = ";".join(
                f"{part}={','.join(str(v) for v in rule[part])}"
                for part in ("BYHOUR", "BYMINUTE", "BYSECOND")
                if part in rule
            )
            raise _Unbounded(f"it repeats several times a day ({parts}); a 1:1 recurs at most daily")


class _BrokenProperty(ValueError):
    """A property (or a line) of an event that could not be parsed, and that the event needs."""

    def __init__(self, name: str | None, message: str) -> None:
        self.name = name
        self.message = message
        what = f"bad {name}" if name else "a line that could not be parsed"
        super().__init__(f"{what}: {message}")


def _property_problems(components: list[icalendar.Component], label: str, private: bool) -> list[Problem]:
    """What the parser could not read of these events. A broken property the events can be read
    without (CREATED, LAST-MODIFIED, DTSTAMP) is reported and ignored; anything else broken (a line
    that could not be parsed, a broken DTSTART, RRULE, ...) raises :class:`_BrokenProperty`."""
    for component in components:
        for name, message in component.errors:
            if name is None or str(name).upper() not in _IGNORABLE:
                raise _BrokenProperty(name, message)
    problems = []
    for component in components:
        if component.errors:
            broken = sorted({str(name).upper() for name, _ in component.errors})
            why = "; ".join(dict.fromkeys(str(message) for _, message in component.errors))
            problems.append(
                Problem(
                    label,
                    f"{_describe(component, private=private)}: its {' and '.join(broken)} could not be "
                    f"read ({why}); read without {'it' if len(broken) == 1 else 'them'}",
                )
            )
    return problems


class _Expanded:
    """One occurrence as the expansion found it: the component it comes from (the series' master, or
    the override of this occurrence) and its times. Built instead of the copy of the component that
    ``recurring-ical-events`` makes for each occurrence, which cost most of a calendar's reading."""

    __slots__ = ("end", "original", "source", "start")

    def __init__(self, source: icalendar.Component, start: date | datetime, end: date | datetime) -> None:
        self.source = source
        self.start = start
        self.end = end
        rid = getattr(source.get("RECURRENCE-ID"), "dt", None)
        self.original: date | datetime = rid if isinstance(rid, date) else start

    def __setitem__(self, name: str, value: object) -> None:
        """The expander sets SEQUENCE on some occurrences; versions are read from the raw components."""


class _ExpandedEvent(recurring_ical_events.EventAdapter):  # type: ignore[misc]
    """A VEVENT whose occurrences come out as :class:`_Expanded`, not as copies of the VEVENT."""

    def __init__(self, component: icalendar.Component) -> None:
        super().__init__(component)
        self.source = component

    def as_component(
        self,
        start: date | datetime | None = None,
        stop: date | datetime | None = None,
        keep_recurrence_attributes: bool = True,
    ) -> _Expanded:
        return _Expanded(
            self.source, self.start if start is None else start, self.end if stop is None else stop
        )


_EVENTS = (recurring_ical_events.ComponentsWithName("VEVENT", _ExpandedEvent),)


def _expand(
    components: Iterable[icalendar.Component],
    timezones: list[icalendar.Component],
    window: Window,
    deadline: _Deadline | None = None,
    limit: int | None = None,
) -> list[_Expanded]:
    """The occurrences of these components (one UID) in the window. Stopped with :class:`_Unbounded`
    past ``deadline``, or when there are more than ``limit``: the expander yields them one by one."""
    calendar = icalendar.Calendar()
    calendar.add("PRODID", "-//calsync//expansion//EN")
    calendar.add("VERSION", "2.0")
    for tz in timezones:
        calendar.add_component(tz)
    for component in components:
        calendar.add_component(component)
    if deadline is not None:
        deadline.check()
    query = recurring_ical_events.of(calendar, components=_EVENTS)
    start, end = query.to_datetime(window.start), query.to_datetime(window.end)
    found: list[_Expanded] = []
    for series in query.series:
        for occurrence in series.between(start, end):
            if deadline is not None:
                deadline.check()
            found.append(occurrence.as_component(query.keep_recurrence_attributes))
            if limit is not None and len(found) > limit:
                raise _Unbounded(
                    f"its recurrence gives more than {limit} occurrences in the {_days(window)} days read; "
                    "a 1:1 recurs at most daily"
                )
    if deadline is not None:
        deadline.check()
    return found


class _Shared(NamedTuple):
    """What every occurrence read from one component has in common, read once per component (a
    series' master stands for most of its occurrences): kept once in memory, not per occurrence."""

    title: str
    organizer: str | None
    participants: tuple[Participant, ...]
    version: Version
    complete: bool  # the guest list was not cut (Google's attendeesOmitted)


def _shared(
    component: icalendar.Component, master: icalendar.Component | None, memo: dict[int, _Shared] | None
) -> _Shared:
    """``component``'s title and people, or its master's where it has none (e.g. a stripped
    cancellation, or a Graph instance), its version and whether its guest list is complete; kept in
    ``memo`` (by component) when given."""
    found = memo.get(id(component)) if memo is not None else None
    if found is not None:
        return found
    organizer, participants = _people(component)
    title = str(component.get("SUMMARY", ""))
    if master is not None and master is not component and (not participants or not organizer or not title):
        base = _shared(master, None, memo)
        if not participants:
            organizer, participants = base.organizer, base.participants
        organizer = organizer or base.organizer
        title = title or base.title
    found = _Shared(
        title=title,
        organizer=organizer,
        participants=participants,
        version=_version(component),
        complete=str(component.get(ATTENDEES_OMITTED, "")).upper() != "TRUE",
    )
    if memo is not None:
        memo[id(component)] = found
    return found


def _occurrence(
    component: icalendar.Component,
    uid: str,
    label: str,
    default_tz: tzinfo,
    master: icalendar.Component | None,
    *,
    recurring: bool,
    at: _Expanded | None = None,
    rrule: str | None = None,
    status: Status | None = None,
    shared: dict[int, _Shared] | None = None,
) -> Occurrence:
    """The occurrence ``component`` stands for: at its own times, or at those the expansion found
    (``at``). ``shared`` keeps what the occurrences of components already read share."""
    start, all_day = _aware(at.start if at is not None else _when(component, "DTSTART"), default_tz)
    if at is not None:
        end = _aware(at.end, default_tz)[0].astimezone(start.tzinfo)
    else:
        end = _end(component, start, all_day, default_tz)
    rid: datetime | None = None
    if recurring:
        original = at.original if at is not None else _original(component)
        rid = _aware(original, default_tz)[0].astimezone(start.tzinfo)
        if rid == start and rid.fold == start.fold:
            rid = start  # not moved (the usual case): one object for both
    if status is None:
        status = Status.CANCELLED if _is_cancelled(component) else Status.CONFIRMED
    common = _shared(component, master, shared)
    return Occurrence(
        calendar=label,
        series_id=uid,
        recurrence_id=rid,
        start=start,
        end=end,
        timezone=_tz_name(_prop(component, "DTSTART"), start, default_tz),
        title=common.title,
        organizer=common.organizer,
        participants=common.participants,
        status=status,
        all_day=all_day,
        version=common.version,
        recurrence=rrule,
        participants_complete=common.complete,
    )


# -- small readers -----------------------------------------------------------------------------------


def _listed_span(master: icalendar.Component) -> tuple[datetime, datetime] | None:
    """The span in which the provider listed every instance of this series (LISTED_FROM/LISTED_TO)."""
    if LISTED_FROM not in master or LISTED_TO not in master:
        return None
    return (
        datetime.fromisoformat(str(master[LISTED_FROM])).astimezone(UTC),
        datetime.fromisoformat(str(master[LISTED_TO])).astimezone(UTC),
    )


def _prop(component: icalendar.Component, name: str) -> Any:
    """A property as the untyped value icalendar holds (validated by the callers below)."""
    return component.get(name)


def _when(component: icalendar.Component, name: str) -> date | datetime:
    """A DATE or DATE-TIME property's value; a clear error for anything else."""
    prop = _prop(component, name)
    value = getattr(prop, "dt", None)
    if not isinstance(value, date):
        raise ValueError(f"{name} is missing or not a date or date-time")
    return value


def _original(component: icalendar.Component) -> date | datetime:
    """The occurrence's original start: its RECURRENCE-ID, else its DTSTART."""
    return _when(component, "RECURRENCE-ID" if "RECURRENCE-ID" in component else "DTSTART")


def _is_recurring(component: icalendar.Component) -> bool:
    return "RRULE" in component or "RDATE" in component


def _is_cancelled(component: icalendar.Component) -> bool:
    return str(component.get("STATUS", "")).upper() == "CANCELLED"


def _rrule_text(component: icalendar.Component) -> str | None:
    rule = component.get("RRULE")
    if rule is None:
        return None
    if isinstance(rule, list):  # several RRULEs (deprecated but seen): keep the first
        rule = rule[0]
    text: str = rule.to_ical().decode()
    return text


def _version(component: icalendar.Component) -> Version:
    try:
        sequence = int(str(component.get("SEQUENCE", 0)))
    except ValueError:
        sequence = 0
    updated = _last_modified(component)
    return Version(sequence, updated) if sequence or updated else _UNVERSIONED


def _last_modified(component: icalendar.Component) -> datetime | None:
    """LAST-MODIFIED as a timezone-aware datetime; None when missing, not a date-time, or broken (the
    parser keeps a value it could not read as a placeholder that raises when its ``dt`` is read); the
    latest, if it is given more than once."""
    prop = component.get("LAST-MODIFIED")
    found = []
    for item in prop if isinstance(prop, list) else [prop]:
        try:
            value = getattr(item, "dt", None)
        except ValueError:  # icalendar's BrokenCalendarProperty
            continue
        if isinstance(value, datetime):
            found.append(value if value.tzinfo else value.replace(tzinfo=UTC))
    return max(found, key=lambda value: value.astimezone(UTC)) if found else None


_UNVERSIONED = Version()  # frozen: one for every component without SEQUENCE or LAST-MODIFIED


def _busy_status(component: icalendar.Component) -> str | None:
    """Outlook's "show as" of the event (upper case), None if it does not say; OOF if any of several is."""
    value = component.get(BUSY_STATUS)
    if value is None:
        return None
    values = [str(v).strip().upper() for v in (value if isinstance(value, list) else [value])]
    return OUT_OF_OFFICE if OUT_OF_OFFICE in values else next((v for v in values if v), None)


def _is_out_of_office(component: icalendar.Component) -> bool:
    return _busy_status(component) == OUT_OF_OFFICE


def _is_private(components: Iterable[icalendar.Component]) -> bool:
    """Whether these events (of one UID) hold an out-of-office block, whose title, description and
    the like must not be named anywhere."""
    return any(_is_out_of_office(c) for c in components)


def _organizer(component: icalendar.Component) -> str | None:
    prop = component.get("ORGANIZER")
    return _email(prop) if prop is not None else None


def _title(component: icalendar.Component) -> str:
    return str(component.get("SUMMARY", "")).strip()


def _email(value: object) -> str | None:
    text = str(value).strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:") :]
    text = text.strip().lower()
    return text or None


def _people(component: icalendar.Component) -> tuple[str | None, tuple[Participant, ...]]:
    organizer_prop = component.get("ORGANIZER")
    organizer = _email(organizer_prop) if organizer_prop is not None else None
    attendees = component.get("ATTENDEE", [])
    if not isinstance(attendees, list):
        attendees = [attendees]
    participants: list[Participant] = []
    for attendee in attendees:
        email = _email(attendee)
        if email is None:
            continue
        params = getattr(attendee, "params", {})
        cutype = str(params.get("CUTYPE", "INDIVIDUAL")).upper()
        name = params.get("CN")
        participants.append(
            Participant(
                email=email,
                name=str(name) if name else None,
                response=_RESPONSES.get(str(params.get("PARTSTAT", "")).upper(), Response.UNKNOWN),
                resource=cutype in _RESOURCE_TYPES,
            )
        )
    return organizer, tuple(participants)


def _aware(value: date | datetime, default_tz: tzinfo) -> tuple[datetime, bool]:
    """A timezone-aware datetime, and whether the value was a whole day."""
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=default_tz)), False
    return datetime.combine(value, time(0), tzinfo=default_tz), True


def _instant(value: date | datetime, default_tz: tzinfo) -> datetime:
    return _aware(value, default_tz)[0].astimezone(UTC)


def _end(component: icalendar.Component, start: datetime, all_day: bool, default_tz: tzinfo) -> datetime:
    if "DTEND" in component:
        end = _aware(_when(component, "DTEND"), default_tz)[0]
        return end.astimezone(start.tzinfo)
    if "DURATION" in component:
        duration = getattr(_prop(component, "DURATION"), "dt", None)
        if isinstance(duration, timedelta):
            return start + duration
    return start + (timedelta(days=1) if all_day else timedelta(0))


def _overlaps(component: icalendar.Component, window: Window, default_tz: tzinfo) -> bool:
    start, all_day = _aware(_when(component, "DTSTART"), default_tz)
    end = _end(component, start, all_day, default_tz)
    return start < window.end and max(end, start) >= window.start


def _tz_name(prop: Any, start: datetime, default_tz: tzinfo) -> str:
    tz = start.tzinfo
    if isinstance(tz, ZoneInfo):
        return tz.key
    tzid = getattr(prop, "params", {}).get("TZID")
    if tzid:
        return str(tzid)
    if tz is not None and start.utcoffset() == timedelta(0) and tz is not default_tz:
        return "UTC"
    return default_tz.key if isinstance(default_tz, ZoneInfo) else str(start.tzname() or "UTC")


def _timezone_problems(
    component: icalendar.Component, label: str, default_tz: tzinfo, private: bool = False
) -> list[Problem]:
    value = _when(component, "DTSTART")
    tzid = getattr(_prop(component, "DTSTART"), "params", {}).get("TZID")
    if tzid and isinstance(value, datetime) and value.tzinfo is None:
        zone = default_tz.key if isinstance(default_tz, ZoneInfo) else "UTC"
        return [
            Problem(
                label,
                f"{_describe(component, private=private)}: unknown time zone {tzid!r} and no VTIMEZONE "
                f"for it; its times were read as {zone}",
            )
        ]
    return []


def _describe(component: icalendar.Component, *, private: bool = False) -> str:
    """The event for a problem: its title (unless ``private``: an out-of-office block's is never
    named), UID, original start if it is an occurrence, and start."""
    summary = "" if private else _title(component)
    uid = _uid(component)
    parts = ["out-of-office block" if private else f"event {summary!r}" if summary else "event"]
    parts.append(f"(UID {uid})" if uid and not uid.startswith(DERIVED_UID_PREFIX) else "without UID")
    if "RECURRENCE-ID" in component:
        try:
            parts.append(f"occurrence {_when(component, 'RECURRENCE-ID').isoformat()}")
        except Exception:  # a broken RECURRENCE-ID is what is being reported
            parts.append("occurrence with a broken RECURRENCE-ID")
    start = _start_text(component)
    if start is not None:  # else: no (readable) DTSTART, named without it
        parts.append(f"starting {start}")
    return " ".join(parts)


def _start_text(component: icalendar.Component) -> str | None:
    try:
        return _when(component, "DTSTART").isoformat()
    except ValueError:  # missing, or broken (icalendar's BrokenCalendarProperty is a ValueError)
        return None


def _detail(exc: BaseException, private: list[icalendar.Component] | None = None) -> str:
    """What went wrong reading an event, for its problem. For an out-of-office block (``private``: its
    events), nothing that may quote its text: a line that could not be parsed or a broken text
    property is named, not quoted, and an error that holds any of its text is named by its kind."""
    detail = _short(exc)
    if private is None:
        return detail
    if isinstance(exc, _BrokenProperty):
        name = str(exc.name or "").upper()
        if not name or name.startswith("X-") or name in _TEXT:
            return f"bad {name}" if name else "a line that could not be parsed"
    texts = [text for c in private for name in _TEXT if (text := str(c.get(name, "")).strip().lower())]
    if any(text in detail.lower() for text in texts):
        return type(exc).__name__
    return detail


#: Text properties an out-of-office block's problems must never quote.
_TEXT = frozenset({"SUMMARY", "DESCRIPTION", "LOCATION", "COMMENT", "CATEGORIES", "CONTACT", "RESOURCES"})


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
