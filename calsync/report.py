"""The cadence report: built purely from the org, the merged calendars and a clock; rendered as a
terminal table, the JSON contract of DESIGN.md section 4, or CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, timedelta, tzinfo
from typing import Any, TextIO

from calsync.absence import (
    DEFAULT_WEEKEND,
    NO_HOLIDAYS,
    AbsenceEntry,
    Absences,
    PersonRules,
    Span,
    everyone_absent,
    zone,
)
from calsync.cadence import (
    SEVERITY,
    Assessment,
    Clock,
    PairStatus,
    assess,
    in_windows,
    scheduled_cadence_days,
)
from calsync.detect import NOBODY, Ignored, Pair, Resolved, one_on_ones
from calsync.model import Absence, CalendarData, Occurrence, Problem
from calsync.org import Exclusion, Org, Relationship
from calsync.text import printable, spreadsheet_cell


@dataclass(frozen=True, slots=True)
class Policy:
    """The cadence the org wants (the ``[cadence]`` section)."""

    default_days: int = 14
    grace_days: int = 3
    skip_level_days: int | None = None
    exclusions: tuple[Exclusion, ...] = ()  # the config's [[exclude]] entries (the roster's come with it)
    ignored: Ignored = NOBODY  # [detect] ignore_attendees
    absences: tuple[AbsenceEntry, ...] = ()  # the config's [[absence]] entries
    holidays: str | None = None  # [org] holidays
    weekend: tuple[int, ...] = DEFAULT_WEEKEND  # [org] weekend
    timezone: tzinfo = UTC  # [org] timezone: whose dates a person without one of their own is away on


@dataclass(frozen=True, slots=True)
class Coverage:
    """Which calendars could not be read (DESIGN.md section 3b, "Unknown")."""

    #: Owner (lower-case email) -> why their calendar could not be read, neither now nor from a stored
    #: reading.
    unread: Mapping[str, str] = field(default_factory=dict)
    #: Why calendars whose owner is not known could not be read: any pair may be missing from them.
    unowned: tuple[str, ...] = ()
    #: Owner -> when the stored reading used instead of their unreadable calendar was synced (ISO).
    stored: Mapping[str, str] = field(default_factory=dict)

    @staticmethod
    def of(calendars: Iterable[CalendarData], problems: Iterable[Problem]) -> Coverage:
        """What the calendars read and the problems met say about what could not be read."""
        # An absentee's out-of-office says nothing about whether their calendar could be read.
        calendars = [c for c in calendars if not c.absences_only]
        have = {c.owner for c in calendars if c.owner is not None and c.stored_at is None}
        stored = {
            c.owner: c.stored_at or "" for c in calendars if c.owner is not None and c.stored_at is not None
        }
        unread: dict[str, str] = {}
        unowned: list[str] = []
        for problem in problems:
            if not problem.unread:
                continue
            if problem.owner is None:
                unowned.append(str(problem))
            elif problem.owner not in have and problem.owner not in stored:
                unread.setdefault(problem.owner, str(problem))
        return Coverage(unread, tuple(unowned), stored)


@dataclass(frozen=True, slots=True)
class Fairness:
    """What makes flags fair (DESIGN.md section 3b) beyond the meetings: who was away, since when a
    pair exists, and what could not be read."""

    blocks: tuple[Absence, ...] = ()  # everyone's out-of-office, as the calendars show it
    since: Mapping[tuple[str, str], date] = field(default_factory=dict)  # (manager, report) -> first seen
    coverage: Coverage = Coverage()


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    id: str
    title: str
    recurrence: str | None
    scheduled_cadence_days: int | None


@dataclass(frozen=True, slots=True)
class PairReport:
    people: Pair
    manager: str | None
    report: str | None
    relationship: Relationship
    assessment: Assessment
    series: tuple[SeriesInfo, ...]
    excluded: Exclusion | None = None  # a tracked pair not flagged for now (leave, notice period)

    @property
    def status(self) -> PairStatus:
        return self.assessment.status

    @property
    def tracked(self) -> bool:
        return self.status is not PairStatus.UNTRACKED

    @property
    def shown_status(self) -> str:
        """The status a person reads: "excluded" for an excluded pair, else the assessed status."""
        return "excluded" if self.excluded is not None else str(self.status)


@dataclass(frozen=True, slots=True)
class Report:
    clock: Clock
    pairs: tuple[PairReport, ...]
    errors: tuple[Problem, ...]
    names: dict[str, str]
    org_people: int | None = None  # how many people the roster lists (None: not known)

    def count(self, status: PairStatus) -> int:
        """Pairs with this status, excluded pairs not counted."""
        return sum(1 for p in self.pairs if p.status is status and p.excluded is None)

    @property
    def unknown_count(self) -> int:
        """Pairs that could not be checked (excluded ones not counted)."""
        return self.count(PairStatus.UNKNOWN)

    @property
    def excluded_count(self) -> int:
        return sum(1 for p in self.pairs if p.excluded is not None)


def build_report(
    org: Org,
    resolved: Resolved,
    clock: Clock,
    policy: Policy,
    errors: Iterable[Problem] = (),
    fairness: Fairness | None = None,
) -> Report:
    """Every 1:1 pair found in the calendars plus every direct pair of the roster, assessed."""
    fairness = fairness or Fairness()
    detection = one_on_ones(resolved.occurrences, org.is_member, policy.ignored)
    # Pairs with a 1:1 in the windows (not merely in the sync margin around them), and every direct pair.
    pairs: set[Pair] = {
        pair for pair, occs in detection.pairs.items() if any(in_windows(o, clock) for o in occs)
    }
    for manager, report in org.direct_pairs():
        a, b = sorted((manager, report))
        pairs.add((a, b))

    absences = org_absences(org, policy, fairness.blocks, pairs, clock)
    reports = []
    for pair in sorted(pairs):
        occurrences = detection.pairs.get(pair, [])
        relationship = org.relationship(*pair)
        roles = org.manager_and_report(*pair)
        cadence_days = _cadence_days(org, relationship, roles, policy)
        since = pair_since(org, relationship, roles, fairness.since)
        assessment = assess(
            occurrences,
            pair,
            clock,
            cadence_days,
            policy.grace_days,
            excused=absences.excused(pair),
            since=since if cadence_days is not None else None,
        )
        if cadence_days is not None and roles is not None:
            assessment = _coverage(assessment, roles, occurrences, fairness.coverage, org)
        if cadence_days is None:
            why = (
                "skip-level 1:1s are tracked only when cadence.skip_level_days is set"
                if relationship is Relationship.SKIP_LEVEL
                else f"{relationship} 1:1s are not tracked"
            )
            assessment = replace(assessment, reasons=(why, *assessment.reasons))
        reports.append(
            PairReport(
                people=pair,
                manager=roles[0] if roles else None,
                report=roles[1] if roles else None,
                relationship=relationship,
                assessment=assessment,
                series=_series(occurrences, resolved, clock),
                excluded=pair_exclusion(org, policy, pair, clock) if cadence_days is not None else None,
            )
        )
    names = {email: org.name(email) for pair in pairs for email in pair}
    return Report(clock, tuple(reports), tuple(errors), names, org_people=len(org.people))


def org_absences(
    org: Org, policy: Policy, blocks: Iterable[Absence], pairs: Iterable[Pair], clock: Clock
) -> Absences:
    """The absent dates of everyone in ``pairs``, over the report's windows (and a week either side,
    for the weekend rule at their edges)."""
    people = {email for pair in pairs for email in pair}
    default = PersonRules(policy.timezone, policy.holidays)
    rules: dict[str, PersonRules] = {}
    for email in people:
        person = org.person(email)
        if person is None:
            continue
        holidays = person.holidays if person.holidays is not None else policy.holidays
        rules[email] = PersonRules(
            zone(person.timezone, policy.timezone), None if holidays == NO_HOLIDAYS else holidays
        )
    span = Span(clock.window_start - timedelta(days=7), clock.horizon.date() + timedelta(days=1))
    return everyone_absent(people, blocks, policy.absences, rules, default, span, policy.weekend)


def pair_since(
    org: Org,
    relationship: Relationship,
    roles: tuple[str, str] | None,
    first_seen: Mapping[tuple[str, str], date],
) -> date | None:
    """Since when a direct pair exists: the roster's ``since`` of the report, else the day calsync
    first saw the line (None for lines there at its first run, and for other pairs)."""
    if relationship is not Relationship.DIRECT or roles is None:
        return None
    person = org.person(roles[1])
    if person is not None and person.since is not None:
        return person.since
    return first_seen.get(roles)


def _coverage(
    assessment: Assessment,
    roles: tuple[str, str],
    occurrences: Sequence[Occurrence],
    coverage: Coverage,
    org: Org,
) -> Assessment:
    """``unknown`` for a pair no calendar read shows while its manager's calendar could not be read
    (or one whose owner is not known); a note when the manager's calendar was judged from a stored
    reading."""
    manager = roles[0]
    if not occurrences:
        why = coverage.unread.get(manager)
        if why is not None:
            reason = f"could not be checked: {org.name(manager)}'s calendar could not be read ({why})"
            return replace(assessment, status=PairStatus.UNKNOWN, reasons=(reason,))
        if coverage.unowned:
            more = len(coverage.unowned) - 1
            also = f" (and {more} more)" if more else ""
            reason = (
                f"could not be checked: a calendar of unknown owner could not be read{also}, and it may be "
                f"{org.name(manager)}'s ({coverage.unowned[0]}); name calendar files after their owners"
            )
            return replace(assessment, status=PairStatus.UNKNOWN, reasons=(reason,))
    stored_at = coverage.stored.get(manager)
    if stored_at is not None:
        when = f"as last synced on {stored_at}" if stored_at else "as stored earlier"
        note = f"judged from {org.name(manager)}'s calendar {when}: it could not be read now"
        return replace(assessment, reasons=(*assessment.reasons, note))
    return assessment


def pair_exclusion(org: Org, policy: Policy, pair: Pair, clock: Clock) -> Exclusion | None:
    """The exclusion that covers a pair on the as-of date: one of the two people is excluded in the
    config (checked first) or in the roster, and the exclusion has not ended."""
    day = clock.as_of_date
    for email in pair:
        person = org.person(email)
        candidates = [e for e in policy.exclusions if e.email == email]
        if person is not None and person.exclusion is not None:
            candidates.append(person.exclusion)
        found = next((e for e in candidates if e.active(day)), None)
        if found is not None:
            return found
    return None


def _cadence_days(
    org: Org, relationship: Relationship, roles: tuple[str, str] | None, policy: Policy
) -> int | None:
    if relationship is Relationship.DIRECT and roles is not None:
        return org.cadence_days_of(roles[1]) or policy.default_days
    if relationship is Relationship.SKIP_LEVEL and policy.skip_level_days is not None:
        return policy.skip_level_days
    return None


def _series(occurrences: Sequence[Occurrence], resolved: Resolved, clock: Clock) -> tuple[SeriesInfo, ...]:
    first_seen: dict[str, Occurrence] = {}
    for occ in sorted(occurrences, key=lambda o: o.original_start):
        if occ.recurrence_id is None or occ.series_id in first_seen:
            continue
        if in_windows(occ, clock):
            first_seen[occ.series_id] = occ
    infos = []
    for series_id, occ in first_seen.items():
        master = resolved.series.get(series_id)
        rrule = master.recurrence if master is not None else occ.recurrence
        infos.append(
            SeriesInfo(
                id=series_id,
                title=(master.title if master is not None and master.title else occ.title),
                recurrence=rrule,
                scheduled_cadence_days=scheduled_cadence_days(rrule),
            )
        )
    return tuple(infos)


# -- JSON (the contract of DESIGN.md section 4: change it only by adding fields) --------------------


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def pair_to_json(pair: PairReport, names: dict[str, str]) -> dict[str, Any]:
    a = pair.assessment
    return {
        "people": list(pair.people),
        "manager": pair.manager,
        "report": pair.report,
        "relationship": str(pair.relationship),
        "status": str(a.status),
        "cadence_days": a.cadence_days,
        "held": [d.isoformat() for d in a.states.held],
        "cancelled": [d.isoformat() for d in a.states.cancelled],
        "declined": [d.isoformat() for d in a.states.declined],
        "excused": [d.isoformat() for d in a.states.excused],
        "last_held": _iso(a.states.last_held),
        "next_scheduled": _iso(a.states.next_scheduled),
        "days_since_last": a.days_since_last,
        "absent_days_since_last": a.absent_days_since_last,
        "since": _iso(a.since),
        "gaps": [
            {"from": g.start.isoformat(), "to": _iso(g.end), "days": g.days, "absent_days": g.absent_days}
            for g in a.gaps
        ],
        "series": [
            {
                "id": s.id,
                "title": s.title,
                "recurrence": s.recurrence,
                "scheduled_cadence_days": s.scheduled_cadence_days,
            }
            for s in pair.series
        ],
        "reasons": list(a.reasons),
        "names": {email: names.get(email, email) for email in pair.people},
        "excluded": _exclusion_json(pair.excluded),
    }


def _exclusion_json(exclusion: Exclusion | None) -> dict[str, Any] | None:
    if exclusion is None:
        return None
    return {
        "person": exclusion.email,
        "reason": exclusion.reason,
        "until": _iso(exclusion.until),
        "source": exclusion.source,
    }


def report_to_json(report: Report) -> dict[str, Any]:
    return {
        "as_of": report.clock.as_of_date.isoformat(),
        "window": {
            "start": report.clock.window_start.isoformat(),
            "end": report.clock.as_of_date.isoformat(),
        },
        "pairs": [pair_to_json(p, report.names) for p in report.pairs],
        "errors": [{"source": e.source, "message": e.message} for e in report.errors],
    }


def render_json(report: Report) -> str:
    """The report as indented JSON. Streamed into one buffer: ``json.dumps`` with an indent would first
    hold every fragment of the text in a list, several times the text's own size (about 100 MB for
    a 10,000-person org's 12 MB report)."""
    buffer = io.StringIO()
    json.dump(report_to_json(report), buffer, indent=2, ensure_ascii=False)
    buffer.write("\n")
    return buffer.getvalue()


# -- CSV ---------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "manager",
    "report",
    "person_a",
    "person_b",
    "relationship",
    "status",
    "cadence_days",
    "last_held",
    "days_since_last",
    "next_scheduled",
    "held_count",
    "cancelled_count",
    "declined_count",
    "gap_count",
    "longest_gap_days",
    "held",
    "cancelled",
    "declined",
    "reasons",
    "excluded",
    "excused_count",
    "excused",
    "absent_days_since_last",
    "since",
)


def render_csv(report: Report) -> str:
    """The report as CSV, one row per pair. Every text cell is made printable and inert
    (:func:`calsync.text.spreadsheet_cell`): a name or reason from a roster, an org chart or a
    calendar never brings a line break or an ESC sequence into the file or onto a terminal, nor a
    formula into a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for pair in report.pairs:
        a = pair.assessment
        writer.writerow(
            spreadsheet_cell(cell) if isinstance(cell, str) else cell
            for cell in [
                pair.manager or "",
                pair.report or "",
                pair.people[0],
                pair.people[1],
                pair.relationship,
                a.status,
                a.cadence_days if a.cadence_days is not None else "",
                _iso(a.states.last_held) or "",
                a.days_since_last if a.days_since_last is not None else "",
                _iso(a.states.next_scheduled) or "",
                len(a.states.held),
                len(a.states.counted_cancelled),
                len(a.states.counted_declined),
                len(a.gaps),
                max((g.days for g in a.gaps), default=""),
                " ".join(d.isoformat() for d in a.states.held),
                " ".join(d.isoformat() for d in a.states.cancelled),
                " ".join(d.isoformat() for d in a.states.declined),
                "; ".join(a.reasons),
                pair.excluded.describe(report.names.get(pair.excluded.email, pair.excluded.email))
                if pair.excluded is not None
                else "",
                len(a.states.excused),
                " ".join(d.isoformat() for d in a.states.excused),
                a.absent_days_since_last if a.absent_days_since_last is not None else "",
                _iso(a.since) or "",
            ]
        )
    return out.getvalue()


# -- terminal table ------------------------------------------------------------------------------------

_COLORS = {
    PairStatus.UNKNOWN: "1",
    PairStatus.OVERDUE: "31",
    PairStatus.NO_SERIES: "35",
    PairStatus.AT_RISK: "33",
    PairStatus.OK: "32",
    PairStatus.UNTRACKED: "2",
}
_EXCLUDED_COLOR = "36"


def sort_worst_first(pairs: Iterable[PairReport], names: dict[str, str]) -> list[PairReport]:
    def key(p: PairReport) -> tuple[int, int, str, str]:
        first = p.manager or p.people[0]
        second = p.report or p.people[1]
        since = p.assessment.days_since_last
        return (
            len(SEVERITY) if p.excluded is not None else SEVERITY.index(p.status),
            -(since if since is not None else 10**6),
            names.get(first, first),
            names.get(second, second),
        )

    return sorted(pairs, key=key)


def _unchecked(pair: PairReport) -> bool:
    return pair.status is PairStatus.UNKNOWN and pair.excluded is None


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _nothing_shown(report: Report, untracked: int) -> str:
    """What the table says when it has no row: no tracked pair, and the untracked ones not shown."""
    pairs = f"{untracked} pair{'s' if untracked != 1 else ''}"
    found = f"1:1s between {pairs} of people were found in the calendars"
    if report.org_people == 0:
        if untracked:
            return (
                f"(nothing to check: the roster lists no one; {found}, but none can be checked without "
                "a roster)"
            )
        return "(nothing to check: the roster lists no one, and no 1:1 was found in the calendars)"
    if untracked:
        return (
            f"(nothing to check: no one in the roster has reports; {found}, none of them between a "
            "manager and their report: --all lists them)"
        )
    return "(no pairs: the roster has no manager with reports and no 1:1 was found)"


#: The narrowest WHY column the table wraps reasons into; a narrower terminal gets them on lines of
#: their own, under each pair.
MIN_WHY = 30
#: The fewest characters a name is shortened to, to fit a row into a narrow terminal.
MIN_NAME = 10


def table_width(stream: TextIO) -> int | None:
    """The width to fit the table to when ``stream`` is a terminal: ``$COLUMNS`` when set (a whole
    number), else the terminal's own; None for a pipe or a file, and the table is then not fitted at
    all (see :func:`render_table`), whatever ``$COLUMNS`` says: in a pipe it is no sign of a reader
    at a terminal that wide, as GNU readline (loaded by Python's REPL and pytest, among many) exports
    COLUMNS=80 to every process started under it."""
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):  # a closed or odd stream
        return None
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isascii() and columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns or None
    except (AttributeError, OSError, ValueError):  # no file descriptor to ask
        return None


def render_table(
    report: Report, *, show_untracked: bool = False, color: bool = False, width: int | None = None
) -> str:
    """The report for people: the pairs worst first, one row each, then the counts.

    ``width`` fits the table to that many columns (a terminal's, or ``$COLUMNS`` on a terminal:
    :func:`table_width`). Without it (None) nothing is fitted: one line per pair however long it is,
    so that the table a script or a test reads from a pipe or a file is the same whatever the
    terminal. Fitted, the WHY column wraps within itself as long as that leaves it :data:`MIN_WHY`
    columns; narrower, each
    pair's held / cancelled / declined counts and its reason go on indented lines under its row,
    whose names are shortened (to :data:`MIN_NAME` characters at the least) until it fits; the lines
    of prose wrap too.
    """
    names = report.names
    clock = report.clock
    tracked = [p for p in report.pairs if p.status is not PairStatus.UNTRACKED]
    untracked = [p for p in report.pairs if p.status is PairStatus.UNTRACKED]
    shown = sort_worst_first(tracked + (untracked if show_untracked else []), names)

    def prose(text: str) -> list[str]:
        return textwrap.wrap(text, width) if width is not None else [text]

    lines = [
        *prose(
            f"1:1 cadence as of {clock.as_of_date}  (held: {clock.window_start} to {clock.as_of_date}; "
            f"scheduled: the next {clock.lookahead_days} days)"
        ),
        "",
    ]
    header = ("STATUS", "MANAGER", "REPORT", "LAST HELD", "DAYS", "NEXT", "HELD", "CANC", "DECL", "WHY")
    rows: list[tuple[str, ...]] = []
    for p in shown:
        a = p.assessment
        first, second = (p.manager, p.report) if p.manager and p.report else p.people
        status = p.shown_status
        if p.relationship is not Relationship.DIRECT:
            status += f" ({p.relationship})"
        why = a.reasons[0] if a.reasons else ""
        if p.excluded is not None:
            why = p.excluded.describe(names.get(p.excluded.email, p.excluded.email))
        why = printable(why)  # names and reasons come from rosters, org charts, calendars: no raw ESC
        rows.append(
            (
                status,
                _clip(printable(names.get(first, first)), 24),
                _clip(printable(names.get(second, second)), 24),
                _iso(a.states.last_held) or "-",
                str(a.days_since_last) if a.days_since_last is not None else "-",
                _iso(a.states.next_scheduled) or "-",
                str(len(a.states.held)),
                str(len(a.states.counted_cancelled)),
                str(len(a.states.counted_declined)),
                why,
            )
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    numeric = {4, 6, 7, 8}
    columns = list(range(len(widths)))  # the cells shown before WHY
    why_width: int | None = None  # the WHY column's width when it wraps
    below = False  # the counts and WHY go on lines under each row
    if width is not None:
        why_width = width - sum(widths) - 2 * len(widths)
        if why_width < MIN_WHY:
            why_width, below, columns = None, True, columns[:6]
            excess = sum(widths[i] for i in columns) + 2 * (len(columns) - 1) - width
            while excess > 0 and max(widths[1], widths[2]) > MIN_NAME:
                widths[1 if widths[1] >= widths[2] else 2] -= 1
                excess -= 1

    def fmt(row: tuple[str, ...], pair: PairReport | None = None) -> list[str]:
        clipped = [(i, _clip(row[i], widths[i])) for i in columns]
        cells = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in clipped]
        if color and pair is not None:
            code = _EXCLUDED_COLOR if pair.excluded is not None else _COLORS[pair.status]
            cells[0] = f"\x1b[{code}m{cells[0]}\x1b[0m"
        if below:
            detail = f"({row[6]} held, {row[7]} cancelled, {row[8]} declined) {row[-1]}".rstrip()
            assert width is not None
            under = textwrap.wrap(
                detail, max(width, MIN_WHY + 4), initial_indent="    ", subsequent_indent="    "
            )
            return ["  ".join(cells).rstrip(), *(under if pair is not None else [])]
        if why_width is None:
            return ["  ".join([*cells, row[-1]]).rstrip()]
        first, *more = textwrap.wrap(row[-1], why_width) or [""]
        indent = " " * (sum(widths) + 2 * len(widths))
        return ["  ".join([*cells, first]).rstrip(), *(indent + line for line in more)]

    unknown = [(row, p) for row, p in zip(rows, shown, strict=True) if _unchecked(p)]
    if unknown:
        # Under a heading of their own, above the pairs that were checked: never flagged, but no
        # flag below can be trusted for a pair whose calendar could not be read.
        lines.extend(
            prose(
                f"COULD NOT BE CHECKED ({len(unknown)}): a calendar could not be read; these pairs are "
                "not flagged (the input problems below say why)"
            )
        )
        lines.extend(fmt(header))
        for row, p in unknown:
            lines.extend(fmt(row, p))
        lines.append("")
    checked = [(row, p) for row, p in zip(rows, shown, strict=True) if not _unchecked(p)]
    if checked or not rows:
        lines.extend(fmt(header))
    for row, p in checked:
        lines.extend(fmt(row, p))
    if not rows:
        lines.extend(prose(_nothing_shown(report, len(untracked))))

    summary = [f"{report.count(s)} {s}" for s in SEVERITY[1:-1]]
    if report.excluded_count:
        summary.append(f"{report.excluded_count} excluded")
    hidden = "" if show_untracked or not untracked else " (not shown; --all shows them)"
    unchecked = f" {report.unknown_count} could not be checked." if report.unknown_count else ""
    lines += [
        "",
        *prose("Pairs: " + ", ".join(summary) + f"; {len(untracked)} untracked{hidden}.{unchecked}"),
    ]
    if report.errors:
        count = len(report.errors)
        plural = "s" if count != 1 else ""
        lines += [
            "",
            *prose(
                f"{count} input problem{plural} (listed on stderr and in --format json): "
                "those inputs were skipped, the rest was used."
            ),
        ]
    return "\n".join(lines) + "\n"
