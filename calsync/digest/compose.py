"""Leaders' digests: who leads what, what each digest says, and the mail it becomes. Pure functions over
the report and the org; sending lives in :mod:`calsync.digest.send`.

A leader's digest covers their whole subtree (everyone who reports to them, directly or through
others) and nothing outside it: the pairs whose manager is the leader or someone below them. It names
people and carries dates and counts only: never a meeting's title, description or agenda.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, time, timedelta, tzinfo
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import jinja2

from calsync.cadence import PairStatus
from calsync.digest.headers import MAIL_POLICY
from calsync.org import Org
from calsync.report import PairReport, Report, sort_worst_first
from calsync.text import printable

#: Weeks the heatmap shows (fewer when the report looks back less far).
HEATMAP_WEEKS = 12
TEMPLATES = ("digest.html.j2", "digest.txt.j2")


# -- schedule ---------------------------------------------------------------------------------------------


def due_period(now: datetime, weekday: int, hour: int, tz: tzinfo) -> date:
    """The digest period ``now`` falls in: the date of the latest due time (``weekday`` at ``hour`` in
    ``tz``) at or before ``now``. A digest is sent once per (leader, period)."""
    local = now.astimezone(tz)
    day = local.date() - timedelta(days=(local.weekday() - weekday) % 7)
    if datetime.combine(day, time(hour), tzinfo=tz) > local:
        day -= timedelta(days=7)
    return day


def next_due(now: datetime, weekday: int, hour: int, tz: tzinfo) -> datetime:
    """When the period after the one ``now`` falls in begins."""
    current = due_period(now, weekday, hour, tz)
    return datetime.combine(current + timedelta(days=7), time(hour), tzinfo=tz)


# -- who leads what ---------------------------------------------------------------------------------------


def subtree(org: Org, leader: str) -> list[str]:
    """Everyone below ``leader``, level by level (the leader's direct reports first), each level in
    roster name order. Cycles are already broken by the roster; a guard keeps this finite anyway."""
    return list(_walk(org, leader).levels)[1:]


@dataclass(frozen=True, slots=True)
class _Tree:
    """A leader's subtree, walked once: each person's level (the leader's 0, in :func:`subtree`'s order,
    the leader first) and branch (the leader's direct report whose part of the org they are in)."""

    levels: dict[str, int]
    branch: dict[str, str]


def _walk(org: Org, leader: str) -> _Tree:
    """One breadth-first walk down from ``leader``: linear in the size of the subtree, whatever its
    depth (a person's level and branch come from their manager's, found just before)."""
    levels = {leader: 0}
    branch = {leader: leader}
    level = [leader]
    while level:
        following: list[str] = []
        for manager in level:
            for person in sorted(org.reports_of(manager), key=lambda e: (org.name(e).lower(), e)):
                if person not in levels:
                    levels[person] = levels[manager] + 1
                    branch[person] = person if manager == leader else branch[manager]
                    following.append(person)
        level = following
    return _Tree(levels, branch)


def pairs_by_manager(report: Report) -> dict[str, list[PairReport]]:
    """The report's tracked pairs by manager, in the report's order: made once for all the digests of a
    report (:func:`compose`'s ``index``), so that each digest reads its own subtree's pairs only."""
    index: dict[str, list[PairReport]] = {}
    for pair in report.pairs:
        if pair.tracked and pair.manager is not None:
            index.setdefault(pair.manager, []).append(pair)
    return index


def leaders(org: Org, chosen: Sequence[str] | None = None) -> list[str]:
    """Who gets a digest: ``chosen`` (the config's list) or everyone in the roster with reports."""
    if chosen is not None:
        return list(chosen)
    return sorted({manager for manager, _ in org.direct_pairs()})


# -- the digest's content ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    """The headline of a digest. ``tracked`` counts the pairs that are assessed (not excluded, and
    not ``unknown``: those could not be checked, and are counted apart)."""

    tracked: int = 0
    ok: int = 0
    overdue: int = 0
    no_series: int = 0
    at_risk: int = 0
    excluded: int = 0
    unknown: int = 0  # could not be checked: a calendar could not be read

    @property
    def share_ok(self) -> int | None:
        """Percentage of tracked pairs that are ok, rounded; None without tracked pairs."""
        return round(100 * self.ok / self.tracked) if self.tracked else None

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Figures | None:
        """Figures kept in the state file; None if they are not there or not readable."""
        if not isinstance(data, Mapping):
            return None
        values = {f.name: data.get(f.name, f.default) for f in fields(cls)}  # older records lack new ones
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values.values()):
            return None
        return cls(**values)

    def change(self, previous: Figures | None) -> dict[str, str]:
        """Each figure's change since ``previous`` as "+2", "-1" or "±0"; empty without a previous one."""
        if previous is None:
            return {}
        changes = {}
        for f in fields(self):
            delta = getattr(self, f.name) - getattr(previous, f.name)
            changes[f.name] = f"+{delta}" if delta > 0 else (f"{delta}" if delta < 0 else "±0")
        now_share, then_share = self.share_ok, previous.share_ok
        if now_share is not None and then_share is not None:
            delta = now_share - then_share
            changes["share_ok"] = f"+{delta} pts" if delta > 0 else (f"{delta} pts" if delta < 0 else "±0")
        return changes


def figures_of(pairs: Iterable[PairReport]) -> Figures:
    counts = {f.name: 0 for f in fields(Figures)}
    for pair in pairs:
        if not pair.tracked:
            continue
        if pair.excluded is not None:
            counts["excluded"] += 1
            continue
        if pair.status is PairStatus.UNKNOWN:
            counts["unknown"] += 1
            continue
        counts["tracked"] += 1
        counts[str(pair.status).replace("-", "_")] += 1
    return Figures(**counts)


@dataclass(frozen=True, slots=True)
class PairLine:
    """One pair in a team's section: names, dates and counts only."""

    report: str  # email
    report_name: str
    relationship: str  # "direct" or "skip-level"
    status: str  # unknown / overdue / no-series / at-risk / ok / excluded
    days_since_last: int | None
    last_held: date | None
    cancelled: int  # not counting those while either was away (excused)
    declined: int
    next_scheduled: date | None
    reason: str  # in words, without any title


@dataclass(frozen=True, slots=True)
class TeamSection:
    """A manager in the leader's subtree and their pairs that are not ok."""

    manager: str
    manager_name: str
    reports_to: str | None  # the name of the manager's own manager (for deeper levels), else None
    level: int  # 0: the leader; 1: a direct report of the leader; ...
    tracked: int  # pairs with this manager that are assessed
    ok: int
    attention: tuple[PairLine, ...]  # not ok, worst first
    excluded: tuple[PairLine, ...]


@dataclass(frozen=True, slots=True)
class HeatRow:
    label: str  # a manager's name, "X's org", or "All 1:1s"
    counts: tuple[int, ...]  # 1:1s held per week, oldest week first
    shades: tuple[str, ...]  # the cells' background colours (HTML)
    org: bool = False  # the row counts a whole part of the org: its manager's and the managers' below


@dataclass(frozen=True, slots=True)
class Heatmap:
    """1:1s held per week across the subtree: the weeks end the day before the as-of date."""

    weeks: tuple[date, ...]  # the first day of each week
    total: HeatRow
    #: One per branch, in the order of the sections: the leader's own 1:1s, then each direct report who
    #: manages. Empty when the leader's own row would be the only one: it would repeat the total.
    rows: tuple[HeatRow, ...]

    @property
    def months(self) -> tuple[tuple[date, int], ...]:
        """The month headings over the week columns: (first week, how many weeks), a week belonging to
        the month of its first day."""
        months: list[tuple[date, int]] = []
        for week in self.weeks:
            if months and (months[-1][0].year, months[-1][0].month) == (week.year, week.month):
                months[-1] = (months[-1][0], months[-1][1] + 1)
            else:
                months.append((week, 1))
        return tuple(months)


@dataclass(frozen=True, slots=True)
class Digest:
    leader: str
    leader_name: str
    period: date  # the date the digest is due: one digest per (leader, period)
    as_of: date
    window_start: date
    figures: Figures
    previous: Figures | None  # the figures of the last digest sent to this leader
    previous_period: date | None
    sections: tuple[TeamSection, ...]
    heatmap: Heatmap
    managers: int  # managers in the subtree, the leader included
    people: int  # people in the subtree, the leader not included
    cadence_days: int
    grace_days: int
    skip_level_days: int | None
    unread: int  # calendars or sources that could not be read for this report

    @property
    def changes(self) -> dict[str, str]:
        return self.figures.change(self.previous)


#: Heatmap colours from no 1:1 to the week's busiest row: mail clients render bgcolor and inline styles.
_SHADES = ("#f1f1f1", "#d6ecd2", "#a8d5a0", "#6fb766", "#3c8d35")


def _shade(count: int, peak: int) -> str:
    if count <= 0 or peak <= 0:
        return _SHADES[0]
    return _SHADES[min(len(_SHADES) - 1, 1 + (count - 1) * (len(_SHADES) - 1) // max(1, peak))]


def _heat_row(label: str, counts: Sequence[int], peak: int, org: bool = False) -> HeatRow:
    return HeatRow(label, tuple(counts), tuple(_shade(c, peak) for c in counts), org)


def heatmap(
    report: Report,
    org: Org,
    leader: str,
    below: Sequence[str],
    pairs: Sequence[PairReport],
    branch_of: Mapping[str, str] | None = None,
) -> Heatmap:
    """1:1s held per week (``below``: the leader's :func:`subtree`): a total row, then the leader's own
    1:1s and one row per direct report who manages (their whole part of the org, when it has managers
    below them), so that a leader of hundreds of managers still reads a handful of rows. A leader
    without managers below gets the total row alone: their own row would be the same. ``branch_of``:
    each person's branch (from :func:`_walk`; walked here when not given)."""
    clock = report.clock
    count = max(1, min(HEATMAP_WEEKS, clock.lookback_days // 7))
    weeks = tuple(clock.as_of_date - timedelta(days=7 * (count - i)) for i in range(count))
    if branch_of is None:
        branch_of = _walk(org, leader).branch
    branches = [
        leader,
        *(r for r in below if org.manager_of(r) == leader and org.reports_of(r)),
    ]
    per_branch: dict[str, list[int]] = {b: [0] * count for b in branches}
    for pair in pairs:
        row = per_branch.get(branch_of.get(pair.manager or "", ""))
        if row is None:
            continue
        for held in pair.assessment.states.held:
            index = (held - weeks[0]).days // 7
            if 0 <= index < count:
                row[index] += 1
    total = [sum(row[i] for row in per_branch.values()) for i in range(count)]
    peak_row = max((max(row) for row in per_branch.values()), default=0)

    def row_of(branch: str) -> HeatRow:
        whole = branch != leader and any(org.reports_of(r) for r in org.reports_of(branch))
        label = f"{_name(org, branch)}'s org" if whole else _name(org, branch)
        return _heat_row(label, per_branch[branch], peak_row, org=whole)

    return Heatmap(
        weeks=weeks,
        total=_heat_row("All 1:1s", total, max(total, default=0)),
        rows=tuple(row_of(b) for b in branches) if len(branches) > 1 else (),
    )


def _name(org: Org, email: str) -> str:
    """A person's name as a digest shows it: from the roster or an org chart, with any control
    character escaped (:func:`calsync.text.printable`), so that a line break or an ESC in a name never
    reaches a header, a mail client or a terminal raw."""
    return printable(org.name(email))


def _line(pair: PairReport, org: Org, leader: str) -> PairLine:
    """A pair as ``leader``'s digest shows it. An exclusion's reason is personal (DESIGN.md section
    3b): only the digest of the excluded person's own manager gives it; leaders above read
    "excluded"."""
    a = pair.assessment
    report = pair.report or pair.people[1]
    if pair.excluded is not None:
        person = pair.excluded.email
        if org.manager_of(person) == leader:
            reason = pair.excluded.describe(org.name(person))
        else:
            reason = f"{org.name(person)}: excluded"
    else:
        reason = a.reasons[0] if a.reasons else ""
    reason = printable(reason)
    return PairLine(
        report=report,
        report_name=_name(org, report),
        relationship=str(pair.relationship),
        status=pair.shown_status,
        days_since_last=a.days_since_last,
        last_held=a.states.last_held,
        cancelled=len(a.states.counted_cancelled),
        declined=len(a.states.counted_declined),
        next_scheduled=a.states.next_scheduled,
        reason=reason,
    )


def compose(
    report: Report,
    org: Org,
    leader: str,
    period: date,
    *,
    previous: Figures | None = None,
    previous_period: date | None = None,
    cadence_days: int,
    grace_days: int,
    skip_level_days: int | None = None,
    index: Mapping[str, Sequence[PairReport]] | None = None,
) -> Digest:
    """The digest of ``leader``: the tracked pairs whose manager is the leader or below them. Linear in
    the size of the leader's subtree and its pairs, whatever its depth, given ``index``
    (:func:`pairs_by_manager` of ``report``, made once for all the leaders; made here when not given).
    Every name and reason is made printable (:func:`_name`)."""
    tree = _walk(org, leader)
    levels = tree.levels
    below = list(levels)[1:]
    if index is None:
        index = pairs_by_manager(report)
    by_manager = {m: index[m] for m in levels if m in index}
    scoped = [p for pairs in by_manager.values() for p in pairs]
    managers = [m for m in levels if m in by_manager or org.reports_of(m)]
    sections = []
    for manager in managers:
        pairs = by_manager.get(manager, [])
        assessed = [p for p in pairs if p.excluded is None]
        boss = org.manager_of(manager)
        sections.append(
            TeamSection(
                manager=manager,
                manager_name=_name(org, manager),
                reports_to=_name(org, boss) if boss is not None and levels[manager] > 1 else None,
                level=levels[manager],
                tracked=len(assessed),
                ok=sum(1 for p in assessed if p.status is PairStatus.OK),
                attention=tuple(
                    _line(p, org, leader)
                    for p in sort_worst_first(assessed, report.names)
                    if p.status is not PairStatus.OK
                ),
                excluded=tuple(
                    _line(p, org, leader) for p in sort_worst_first(pairs, report.names) if p.excluded
                ),
            )
        )
    return Digest(
        leader=leader,
        leader_name=_name(org, leader),
        period=period,
        as_of=report.clock.as_of_date,
        window_start=report.clock.window_start,
        figures=figures_of(scoped),
        previous=previous,
        previous_period=previous_period,
        sections=tuple(sections),
        heatmap=heatmap(report, org, leader, below, scoped, tree.branch),
        managers=len(managers),
        people=len(below),
        cadence_days=cadence_days,
        grace_days=grace_days,
        skip_level_days=skip_level_days,
        unread=sum(1 for e in report.errors if e.unread),
    )


# -- rendering --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str


STATUS_LABELS = {
    "unknown": "Could not be checked",
    "overdue": "Overdue",
    "no-series": "No 1:1s",
    "at-risk": "At risk",
    "ok": "OK",
    "excluded": "Excluded",
}
STATUS_COLORS = {
    "unknown": "#344054",
    "overdue": "#b42318",
    "no-series": "#7a2e98",
    "at-risk": "#b54708",
    "ok": "#2b7a22",
    "excluded": "#475467",
}


def subject(digest: Digest) -> str:
    f = digest.figures
    parts = [f"{n} {what}" for n, what in ((f.overdue, "overdue"), (f.at_risk, "at risk")) if n]
    if f.no_series:
        parts.append(f"{f.no_series} without 1:1s")
    summary = ", ".join(parts) if parts else f"all {f.tracked} pairs ok"
    if f.unknown:
        summary += f"; {f.unknown} could not be checked"
    return f"1:1s in {digest.leader_name}'s org, week of {digest.period:%d %b %Y}: {summary}"


def render(digest: Digest, env: jinja2.Environment) -> Rendered:
    """The digest as HTML (autoescaped) and plain text, from the (possibly overridden) templates of
    :func:`calsync.agenda.environment`."""
    values = {
        "d": digest,
        "changes": digest.changes,
        "subject": subject(digest),
        "labels": STATUS_LABELS,
        "colors": STATUS_COLORS,
    }
    return Rendered(
        subject=subject(digest),
        html=env.get_template(TEMPLATES[0]).render(values),
        text=env.get_template(TEMPLATES[1]).render(values),
    )


def message_id(leader: str, period: date, sender: Address) -> str:
    """The same Message-ID for every attempt at one (leader, period): a retry after a crash that hit
    between the server's acceptance and the state write is recognisable as a duplicate by mail systems."""
    digest_of = hashlib.sha256(f"{leader}|{period.isoformat()}".encode()).hexdigest()[:20]
    return f"<calsync-digest.{period.isoformat()}.{digest_of}@{sender.domain or 'calsync.invalid'}>"


def build_message(
    digest: Digest,
    rendered: Rendered,
    *,
    sender: Address,
    reply_to: Address | None,
    when: datetime,
) -> EmailMessage:
    """The multipart/alternative message: plain text first, then HTML (clients show the last they can).
    Every address header is an :class:`Address`, and the policy never folds a header right after its
    name (:mod:`calsync.digest.headers`), so that any name and subject round-trip. The subject and the
    leader's name are made printable (:func:`calsync.text.printable`) here too, whatever made the
    digest: a line break in a header would be refused (ValueError), or worse, start a header of its own.
    """
    message = EmailMessage(policy=MAIL_POLICY)
    message["Subject"] = printable(rendered.subject)
    message["From"] = sender
    name = printable(digest.leader_name) if digest.leader_name != digest.leader else ""
    if printable(digest.leader) != digest.leader:  # an address cannot be cleaned: it would be another's
        raise ValueError(f"the address {printable(digest.leader)} holds control characters")
    local, _, domain = digest.leader.rpartition("@")
    message["To"] = Address(display_name=name, username=local, domain=domain)
    if reply_to is not None:
        message["Reply-To"] = reply_to
    message["Date"] = format_datetime(when)
    message["Message-ID"] = message_id(digest.leader, digest.period, sender)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message["X-Calsync-Digest"] = f"{digest.period.isoformat()}"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    # A boundary of the content's own hash (never found in it): the same digest gives the same bytes,
    # so a preview is byte for byte what is sent.
    content = hashlib.sha256((rendered.text + rendered.html).encode()).hexdigest()
    message.set_boundary(f"calsync-{content[:32]}")
    return message
