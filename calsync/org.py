"""The roster and the org chart: who reports to whom, and how two people relate.

The roster is a CSV file with a header row naming the columns ``email``, ``name``, ``manager_email``
(required) and ``cadence_days``, ``timezone``, ``exclude``, ``exclude_until``, ``holidays``, ``since``
(optional); names are
case-insensitive, order is free and other columns are ignored. A bad row or cell is reported as a
:class:`~calsync.model.Problem` (with its line number) and skipped; everything else is kept. Only a
roster that cannot be used at all (unreadable, or a header without the required columns) raises
:class:`RosterError`.

No row is lost silently:

- Each line is one row: a quoted cell may hold commas but not line breaks. A quote left open at the end
  of its line (``omar@acme.test,"Omar Haddad,...``) would otherwise swallow every line after it into one
  cell; such a row is reported and ignored, and the next line is read as a row of its own. (A name with
  a line break in it has no place in a roster, nor in a mail header or a terminal.)
- A row with non-empty cells beyond the header's columns (an unquoted comma: ``Haddad, Omar``) is
  reported and ignored rather than read with its cells shifted. A row may stop before the header's
  last columns: the cells it leaves out are empty (``ceo@acme.test,Chief`` has no manager), as a
  spreadsheet writes them, so that is not a problem.
- Control characters (C0 and C1, DEL, tabs inside a row, bidi overrides and isolates, line and paragraph
  separators) never reach a name or an email: they are replaced by spaces where the roster is read,
  with a problem naming the line.
"""

from __future__ import annotations

import csv
import difflib
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from calsync.absence import NO_HOLIDAYS, holiday_problem
from calsync.model import Problem

REQUIRED_COLUMNS = ("email", "name", "manager_email")
OPTIONAL_COLUMNS = ("cadence_days", "timezone", "exclude", "exclude_until", "holidays", "since")

_Report = Callable[[int, str], None]  # (line, message)
_Cell = Callable[[str], str]  # column name -> the stripped cell of the current row

#: The longest ``cadence_days`` of a roster row: ten years, as :data:`calsync.config.MAX_SPAN_DAYS`.
MAX_CADENCE_DAYS = 3660
#: Line breaks as the csv module sees them (a roster row is one line).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: Characters that change how text is shown or where it ends, beyond the C0/C1 controls: bidi
#: embeddings, overrides, isolates and marks, and the line and paragraph separators.
_FORMATTING = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
)
_CONTROL_NAMES = {"\x00": "NUL", "\x07": "BEL", "\x08": "BS", "\t": "TAB", "\x1b": "ESC", "\x7f": "DEL"}

_EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\".][^@\s<>,;\"]*")


class Relationship(StrEnum):
    """How two distinct people relate in the org chart."""

    DIRECT = "direct"
    SKIP_LEVEL = "skip-level"
    PEER = "peer"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Person:
    """One row of the roster. Emails are lower case."""

    email: str
    name: str  # the email itself when the roster gives no name
    manager: str | None  # None at the top of the tree, or when the link was dropped because of a problem
    cadence_days: int | None = None  # overrides [cadence] default_days for 1:1s with this person's manager
    timezone: str | None = None  # IANA name
    exclusion: Exclusion | None = None  # the roster's ``exclude`` / ``exclude_until``
    #: Public holidays where this person works ("US-CA"), overriding ``[org] holidays``; "none" for
    #: none; None: the org's.
    holidays: str | None = None
    since: date | None = None  # when this person began reporting to their manager (a new pair)


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A person whose 1:1s are not flagged for a while (leave, a notice period): every tracked pair they
    belong to, with their manager and with their reports, is shown as excluded instead of assessed."""

    email: str
    reason: str
    until: date | None = None  # the last day of the exclusion (inclusive); None: until removed
    source: str = "roster"  # where it was set: "roster" or "config"

    def active(self, day: date) -> bool:
        return self.until is None or day <= self.until

    def describe(self, name: str) -> str:
        until = f" until {self.until.isoformat()}" if self.until is not None else ""
        return f"{name}: {self.reason}{until} (excluded in the {self.source})"


class RosterError(Exception):
    """The roster cannot be used at all: it is unreadable, or its header lacks required columns."""


class Org:
    """The people of the org, their managers, and the org's email domains."""

    def __init__(self, people: Iterable[Person], domains: Iterable[str]) -> None:
        by_email: dict[str, Person] = {}
        for person in people:
            by_email[person.email.lower()] = person
        self.people: Mapping[str, Person] = MappingProxyType(by_email)
        self.domains: tuple[str, ...] = tuple(dict.fromkeys(d.strip().lower() for d in domains))
        reports: dict[str, list[str]] = {}
        for email, person in by_email.items():
            if person.manager is not None:
                reports.setdefault(person.manager.lower(), []).append(email)
        self._reports = {manager: sorted(emails) for manager, emails in reports.items()}

    def __repr__(self) -> str:
        return f"Org({len(self.people)} people, domains={self.domains!r})"

    def is_member(self, email: str) -> bool:
        """Whether ``email`` belongs to one of the org's domains (exactly; subdomains do not count)."""
        local, at, domain = email.strip().rpartition("@")
        return bool(at and local) and domain.lower() in self.domains

    def person(self, email: str) -> Person | None:
        return self.people.get(email.strip().lower())

    def name(self, email: str) -> str:
        """The roster name of ``email``, else the email itself."""
        person = self.person(email)
        return person.name if person is not None else email

    def manager_of(self, email: str) -> str | None:
        person = self.person(email)
        return person.manager.lower() if person is not None and person.manager is not None else None

    def reports_of(self, email: str) -> list[str]:
        """The direct reports of ``email``, sorted."""
        return list(self._reports.get(email.strip().lower(), []))

    def cadence_days_of(self, email: str) -> int | None:
        """The roster's ``cadence_days`` of ``email`` (the cadence of their 1:1s with their manager)."""
        person = self.person(email)
        return person.cadence_days if person is not None else None

    def relationship(self, a: str, b: str) -> Relationship:
        """How ``a`` and ``b`` relate; the order does not matter and neither does case."""
        return self._relate(a, b)[0]

    def manager_and_report(self, a: str, b: str) -> tuple[str, str] | None:
        """``(manager, report)`` of a direct or skip-level pair (upper person first), else None."""
        return self._relate(a, b)[1]

    def direct_pairs(self) -> list[tuple[str, str]]:
        """Every ``(manager, report)`` link of the roster, sorted."""
        return sorted((manager, report) for manager, reports in self._reports.items() for report in reports)

    def _relate(self, a: str, b: str) -> tuple[Relationship, tuple[str, str] | None]:
        a, b = a.strip().lower(), b.strip().lower()
        if a == b:
            return Relationship.OTHER, None
        manager_a, manager_b = self.manager_of(a), self.manager_of(b)
        if manager_a == b:
            return Relationship.DIRECT, (b, a)
        if manager_b == a:
            return Relationship.DIRECT, (a, b)
        if manager_a is not None and self.manager_of(manager_a) == b:
            return Relationship.SKIP_LEVEL, (b, a)
        if manager_b is not None and self.manager_of(manager_b) == a:
            return Relationship.SKIP_LEVEL, (a, b)
        if manager_a is not None and manager_a == manager_b:
            return Relationship.PEER, None
        return Relationship.OTHER, None


def nothing_to_check(org: Org, label: str, *, skipped: bool = False, chart: bool = False) -> Problem | None:
    """The problem of an org with no manager/report pair at all, or None when it has one.

    Such an org is read without error (a roster with only its header row, or whose rows give no one a
    manager), but no 1:1 can be checked against it: that is a problem of the roster, named by
    ``label``, never a clean report. ``skipped``: the roster has other problems (skipped rows or cells);
    ``chart``: the people come from a directory's org chart, not a CSV file.
    """
    if org.direct_pairs():
        return None
    what = "the org chart" if chart else "the roster"
    why = f" (see the other problems of {what})" if skipped else ""
    if not org.people:
        fix = (
            "check that the directory lists the users of [org] domains"
            if chart
            else f"add one row per person under the header ({','.join(REQUIRED_COLUMNS)})"
        )
        return Problem(label, f"{what} lists no one{why}: no 1:1 can be checked; {fix}")
    count = len(org.people)
    who = (
        f"the one person in {what} has no manager"
        if count == 1
        else f"none of the {count} people in {what} has a manager"
    )
    fix = "set the users' managers in the directory" if chart else "fill in manager_email"
    return Problem(label, f"{who}{why}: there is no manager/report pair to check; {fix}")


def timezone_problem(name: str) -> str | None:
    """None if ``name`` is a valid IANA time zone, else a message saying what is wrong."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    else:
        if name == name.strip():
            return None
    message = f'unknown IANA time zone "{name}" (expected a name like "Europe/Berlin" or "UTC")'
    close = _close_timezone(name)
    return f'{message}; did you mean "{close}"?' if close else message


def _close_timezone(name: str) -> str | None:
    zones = _timezones()
    wanted = name.strip().lower()
    for zone in zones:
        if zone.lower() == wanted:
            return zone
    close = difflib.get_close_matches(wanted, [zone.lower() for zone in zones], n=1, cutoff=0.8)
    if not close:
        return None
    return next(zone for zone in zones if zone.lower() == close[0])


@lru_cache(maxsize=1)
def _timezones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def load_roster(path: Path, domains: Iterable[str], label: str | None = None) -> tuple[Org, list[Problem]]:
    """Read the roster CSV at ``path``; see :func:`parse_roster`. ``label`` defaults to the file name."""
    label = label if label is not None else path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RosterError(
            f"{label}: cannot read the roster ({exc.strerror or exc}); check [org] roster in the config"
        ) from None
    problems: list[Problem] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problems.append(
            Problem(
                label,
                f"line {line}: not valid UTF-8; unreadable characters were replaced by \ufffd "
                "(save the roster as UTF-8)",
            )
        )
        text = data.decode("utf-8-sig", errors="replace")
    org, parse_problems = parse_roster(text, domains, label)
    return org, problems + parse_problems


@dataclass(slots=True)
class _Row:
    line: int
    email: str
    name: str
    manager: str | None
    cadence_days: int | None
    timezone: str | None
    exclusion: Exclusion | None = None
    holidays: str | None = None
    since: date | None = None


def parse_roster(text: str, domains: Iterable[str], label: str) -> tuple[Org, list[Problem]]:
    """Build the org from roster CSV text; report bad rows and cells as problems (and skip them).

    Raises :class:`RosterError` only if there is no header row with the required columns.
    """
    domains = tuple(dict.fromkeys(d.strip().lower() for d in domains))
    found: list[tuple[int, str]] = []  # (line, message): sorted by line at the end

    def report(line: int, message: str) -> None:
        found.append((line, f"line {line}: {message}"))

    records = _records(text.removeprefix("\ufeff"), report)
    expected = f"{','.join(REQUIRED_COLUMNS)} (optional: {','.join(OPTIONAL_COLUMNS)})"
    first = next(records, None)
    if first is None:
        raise RosterError(f"{label}: the roster is empty; its first row must name the columns {expected}")
    header_line, header_cells = first
    columns: dict[str, int] = {}
    for index, cell_name in enumerate(header_cells):
        name = cell_name.strip().lower()
        if name in columns and name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
            report(header_line, f"column {name!r} appears more than once; the first one is used")
        columns.setdefault(name, index)
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    separator = _other_separator(header_cells)
    if missing and separator is not None:
        raise RosterError(
            f"{label}: line {header_line}: the header has no commas but {separator}: calsync reads "
            "comma-separated CSV; save the roster with commas as separators (in a spreadsheet: "
            '"CSV UTF-8 (comma delimited)")'
        )
    if missing:
        raise RosterError(
            f"{label}: line {header_line}: the header lacks the required column(s) {', '.join(missing)}; "
            f"the first row must name the columns {expected}"
        )

    rows: dict[str, _Row] = {}
    for line, cells in records:
        if any("\t" in c for c in cells):
            report(line, f"{_controls(''.join(cells))} replaced by spaces (a roster holds plain text)")
            cells = [_clean(c) for c in cells]
        if any(c.strip() for c in cells[len(header_cells) :]):
            report(
                line,
                f"{len(cells)} cells but the header names {len(header_cells)} columns: a comma in a cell "
                'that is not quoted? (write "Haddad, Omar" in quotes); this row is ignored',
            )
            continue

        def cell(column: str, cells: list[str] = cells) -> str:
            index = columns.get(column)
            return cells[index].strip() if index is not None and index < len(cells) else ""

        row = _row(line, cell, domains, report)
        if row is None:
            continue
        earlier = rows.get(row.email)
        if earlier is not None:
            report(line, f"duplicate of line {earlier.line} ({row.email}); this row is ignored")
            continue
        rows[row.email] = row

    for row in rows.values():
        if row.manager is not None and row.manager not in rows:
            report(
                row.line,
                f"unknown manager {row.manager} (manager_email of {row.email}) is not in the roster; "
                f"{row.email} is read as having no manager: add {row.manager} to the roster or fix the typo",
            )
            row.manager = None

    problems = [Problem(label, message) for _, message in sorted(found, key=lambda item: item[0])]
    problems += [Problem(label, message) for message in _break_cycles(rows)]
    people = [
        Person(
            email=row.email,
            name=row.name,
            manager=row.manager,
            cadence_days=row.cadence_days,
            timezone=row.timezone,
            exclusion=row.exclusion,
            holidays=row.holidays,
            since=row.since,
        )
        for row in rows.values()
    ]
    return Org(people, domains), problems


def _other_separator(header: list[str]) -> str | None:
    """How a header without commas is separated, if by semicolons or tabs ("3 semicolons"), else None.

    A spreadsheet saves "CSV" with semicolons where the comma is the decimal separator (Excel in
    German or French, for one); a copy from a spreadsheet is tab-separated.
    """
    if len(header) != 1:
        return None  # it has commas
    counts = {name: header[0].count(char) for char, name in ((";", "semicolon"), ("\t", "tab"))}
    name, count = max(counts.items(), key=lambda item: item[1])
    return f"{count} {name}{'s' if count != 1 else ''}" if count else None


def _records(text: str, report: _Report) -> Iterator[tuple[int, list[str]]]:
    """The CSV records of ``text`` with their line numbers, without blank and ``#`` lines: one per line
    (see the module's docstring), control characters replaced (and reported) except tabs, which are
    the header's to show a tab-separated file; :func:`_clean_cells` replaces those of the other rows."""
    for line, physical in enumerate(_LINE_BREAK.split(text), start=1):
        if not physical.strip():
            continue
        clean = _clean(physical, keep="\t")
        if clean != physical:
            report(line, f"{_controls(physical, keep=chr(9))} replaced by spaces (a roster holds plain text)")
        if _open_quote(clean):
            report(
                line,
                'a quote (") opens a cell that does not end on this line; this row is ignored (close the '
                'quote, or write a quote inside a quoted cell as ""); the next line is read on its own',
            )
            continue
        try:
            cells = next(csv.reader((clean,)), [])
        except csv.Error as exc:
            report(line, f"cannot read this row as CSV ({exc}); this row is ignored")
            continue
        if not any(c.strip() for c in cells) or cells[0].strip().removeprefix("\ufeff").startswith("#"):
            continue
        yield line, cells


def _open_quote(line: str) -> bool:
    """Whether a quoted cell of the CSV ``line`` is still open at its end (as the csv module reads it:
    a quote opens a cell only as its first character; ``""`` inside is a quote)."""
    if '"' not in line:
        return False
    quoted, start, index = False, True, 0
    while index < len(line):
        char = line[index]
        if quoted:
            if char == '"':
                if line.startswith('""', index):
                    index += 2
                    continue
                quoted = False
        elif char == ",":
            start = True
            index += 1
            continue
        elif char == '"' and start:
            quoted = True
        start = False
        index += 1
    return quoted


def _is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc" or char in _FORMATTING


def _clean(text: str, keep: str = "") -> str:
    """``text`` with its control and bidi formatting characters (but those in ``keep``) as spaces."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(" " if char not in keep and _is_control(char) else char for char in text)


def _controls(text: str, keep: str = "") -> str:
    """Names the control characters of ``text`` for a problem: 'control characters (ESC, U+202E)'."""
    found = dict.fromkeys(c for c in text if c not in keep and _is_control(c))
    names = [_CONTROL_NAMES.get(c, f"U+{ord(c):04X}") for c in found]
    return f"control character{'s' if len(names) != 1 else ''} ({', '.join(names)})"


def _row(line: int, cell: _Cell, domains: tuple[str, ...], report: _Report) -> _Row | None:
    """One roster row, its bad cells reported and dropped; None if the row itself is unusable."""
    raw_email = cell("email")
    email = raw_email.lower()
    if not email:
        report(line, "no email; this row is ignored")
        return None
    if not _EMAIL.fullmatch(email):
        report(
            line, f'email "{raw_email}" is not an email address (expected local@domain); this row is ignored'
        )
        return None
    if email.rpartition("@")[2] not in domains:
        report(
            line,
            f"{email} is outside the org's domains ({', '.join(domains) or 'none configured'}); "
            "kept in the roster, but treated as external in meetings",
        )

    manager: str | None = cell("manager_email").lower() or None
    if manager is not None and not _EMAIL.fullmatch(manager):
        report(
            line,
            f'manager_email "{cell("manager_email")}" is not an email address; '
            f"{email} is read as having no manager",
        )
        manager = None
    if manager == email:
        report(line, f"{email} is listed as their own manager; the manager link is dropped")
        manager = None

    cadence_days: int | None = None
    raw_cadence = cell("cadence_days")
    if raw_cadence:
        if (
            raw_cadence.isascii()
            and raw_cadence.isdigit()
            and len(raw_cadence) <= 5
            and 1 <= int(raw_cadence) <= MAX_CADENCE_DAYS
        ):
            cadence_days = int(raw_cadence)
        else:
            shown = raw_cadence if len(raw_cadence) <= 20 else raw_cadence[:17] + "..."
            report(
                line,
                f'cadence_days "{shown}" is not a whole number from 1 to {MAX_CADENCE_DAYS}; '
                f"the default cadence is used for {email}",
            )

    timezone: str | None = cell("timezone") or None
    if timezone is not None:
        problem = timezone_problem(timezone)
        if problem is not None:
            report(line, f"timezone: {problem}; ignored for {email}")
            timezone = None

    holidays: str | None = cell("holidays") or None
    if holidays is not None and holidays.lower() == NO_HOLIDAYS:
        holidays = NO_HOLIDAYS
    elif holidays is not None:
        problem = holiday_problem(holidays)
        if problem is not None:
            report(line, f"holidays: {problem}; the org's holidays are used for {email}")
            holidays = None
        else:
            holidays = holidays.upper()

    since: date | None = None
    raw_since = cell("since")
    if raw_since:
        try:
            since = date.fromisoformat(raw_since)
        except ValueError:
            report(
                line,
                f'since "{raw_since}" is not a date like 2026-11-02; ignored for {email} (the day calsync '
                "first saw this manager line is used)",
            )
        else:
            if manager is None:
                report(line, f"since is set but {email} has no manager; ignored")
                since = None

    return _Row(
        line=line,
        email=email,
        name=cell("name") or email,
        manager=manager,
        cadence_days=cadence_days,
        timezone=timezone,
        exclusion=_exclusion(line, email, cell, report),
        holidays=holidays,
        since=since,
    )


#: ``exclude`` values that say "yes" without giving a reason.
_YES = frozenset({"yes", "y", "true", "1", "x"})


def _exclusion(line: int, email: str, cell: _Cell, report: _Report) -> Exclusion | None:
    """The row's ``exclude`` (a reason, or yes) and ``exclude_until`` (YYYY-MM-DD), if any."""
    reason, raw_until = cell("exclude"), cell("exclude_until")
    if not reason and not raw_until:
        return None
    until: date | None = None
    if raw_until:
        try:
            until = date.fromisoformat(raw_until)
        except ValueError:
            report(
                line,
                f'exclude_until "{raw_until}" is not a date like 2027-01-31; {email} is excluded '
                "with no end date until it is fixed",
            )
    if not reason or reason.lower() in _YES:
        reason = "excluded"
    return Exclusion(email=email, reason=reason, until=until)


def _break_cycles(rows: dict[str, _Row]) -> list[str]:
    """Drop one manager link per management cycle (that of the member listed last); describe each."""
    messages: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in rows:
        path: list[str] = []
        email: str | None = start
        while email is not None and email not in state:
            state[email] = 1
            path.append(email)
            email = rows[email].manager
        if email is not None and state[email] == 1:
            cycle = path[path.index(email) :]
            last = max(cycle, key=lambda member: rows[member].line)
            # Name the cycle from the manager of the member whose link is dropped, so its link comes last.
            head = rows[last].manager
            assert head is not None
            at = cycle.index(head)
            ordered = cycle[at:] + cycle[:at]
            chain = " -> ".join([*ordered, ordered[0]])
            line = rows[last].line
            messages.append(
                f"line {line}: management cycle: {chain}; dropped the manager link of {last} (line {line}) "
                "to break it: fix manager_email in the roster"
            )
            rows[last].manager = None
        for member in path:
            state[member] = 2
    return messages
