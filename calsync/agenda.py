"""Agenda documents for 1:1s: which occurrences are due one, what it says, and how its link sits in
an event (pure: publishing and linking live in :mod:`calsync.publish`).

Good 1:1 practice, which the default templates follow: the meeting belongs first to the report (their
topics come first), it opens with a real check-in rather than a status update, the manager comes with
feedback and asks for some, and the pair tracks a growth theme. The first 1:1 of a pair is about
getting to know each other and agreeing how to work; about every two months the meeting is a "big
picture" session about career goals instead of the usual one. Open action items of the pair's
previous agenda carry over until they are ticked.

Templates are Jinja2 files rendered with autoescaping, in HTML and in Markdown; an org may override any
of them from a directory of its own. Everything taken from a calendar is escaped, in Markdown too
(``<`` becomes ``&lt;``), since Markdown viewers render raw HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import jinja2

from calsync.cadence import scheduled_cadence_days
from calsync.detect import Pair, declined_by
from calsync.model import Occurrence

#: About every two months, in weeks: every 8th weekly or 4th biweekly 1:1 is a career session.
CAREER_EVERY_WEEKS = 8
TEMPLATES = ("agenda.html.j2", "agenda.md.j2")


class Kind(StrEnum):
    """What an occurrence's meeting is for."""

    FIRST = "first"  # the pair's first 1:1: getting to know each other, how to work together
    CAREER = "career"  # the big picture: career goals and long-term development
    REGULAR = "regular"


@dataclass(frozen=True)
class Person:
    email: str
    name: str


@dataclass(frozen=True)
class AgendaInput:
    """Everything one agenda is made of: plain data, no I/O."""

    manager: Person
    report: Person
    start: datetime  # the occurrence's start, in the zone it is shown in
    title: str  # the meeting's title, as the calendar has it
    number: int  # 1 for the pair's first 1:1, then 2, 3, ...
    cadence_days: int  # how often the pair meets (the series' schedule)
    growth_theme: str | None = None
    carried_items: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class Agenda:
    kind: Kind
    html: str
    markdown: str


def kind_of(number: int, cadence_days: int, career_every_weeks: int = CAREER_EVERY_WEEKS) -> Kind:
    """First, career or regular: the career session comes about every ``career_every_weeks`` weeks,
    i.e. every 8th weekly, 4th biweekly or 2nd monthly 1:1 (never the first)."""
    if number <= 1:
        return Kind.FIRST
    every = max(1, round(career_every_weeks * 7 / max(1, cadence_days)))
    return Kind.CAREER if every > 1 and number % every == 0 else Kind.REGULAR


def environment(override_dir: Path | None = None) -> jinja2.Environment:
    """Templates from ``override_dir`` first (an org's own), then calsync's defaults; all autoescaped
    except ``*.txt.j2`` (plain-text mail parts, which no client renders as HTML)."""
    loaders: list[jinja2.BaseLoader] = []
    if override_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(override_dir)))
    loaders.append(jinja2.PackageLoader("calsync", "templates"))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=(), disabled_extensions=("txt.j2",), default=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def compose(
    data: AgendaInput,
    env: jinja2.Environment | None = None,
    career_every_weeks: int = CAREER_EVERY_WEEKS,
) -> Agenda:
    """The agenda of one occurrence, in HTML and Markdown."""
    env = env or environment()
    kind = kind_of(data.number, data.cadence_days, career_every_weeks)
    values = {
        "manager": data.manager,
        "report": data.report,
        "title": data.title,
        "date": data.start.strftime("%A %d %B %Y, %H:%M"),
        "number": data.number,
        "kind": str(kind),
        "growth_theme": data.growth_theme,
        "carried_items": list(data.carried_items),
    }
    as_html, as_markdown = (env.get_template(name).render(values) for name in TEMPLATES)
    return Agenda(kind, as_html, as_markdown)


_ITEM = re.compile(r"^\s*[-*]\s+\[(?P<mark>[ xX])\]\s+(?P<text>.+?)\s*$")


def open_items(markdown: str) -> list[str]:
    """The unticked action items (``- [ ] ...``) of an agenda, in order, without duplicates: what
    carries over to the pair's next agenda. Ticked items (``- [x] ...``) stay behind. The text comes
    back unescaped, so that carrying an item over does not escape it once more each time."""
    items: list[str] = []
    for line in markdown.splitlines():
        match = _ITEM.match(line)
        if match and match["mark"] == " ":
            text = html.unescape(match["text"])
            if text not in items:
                items.append(text)
    return items


_THEME = re.compile(r"^[\s#*-]*Growth theme:\s*(?P<theme>[^(\s].*?)\s*$", re.IGNORECASE)
#: The line every agenda (and every section of a rolling one) carries: where a section starts.
_NUMBER_LINE = re.compile(r"1:1 number \d+\s*$")


def growth_theme(text: str) -> str | None:
    """The growth theme the pair wrote into an agenda ("Growth theme: ..."), if they chose one; the
    template's placeholder in parentheses does not count."""
    for line in text.splitlines():
        match = _THEME.match(line)
        if match:
            return html.unescape(match["theme"])
    return None


def latest_section(text: str) -> str:
    """The newest section of a rolling agenda (the one on top): the text up to the title line of the
    second section. A per-meeting agenda is one section, returned whole."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _NUMBER_LINE.search(line)]
    if len(starts) < 2:
        return text
    # the section's title is the last non-empty line before its "1:1 number" line
    cut = starts[1]
    while cut > 0 and not lines[cut - 1].strip():
        cut -= 1
    return "\n".join(lines[: max(cut - 1, starts[0] + 1)])


# -- a rolling document: sections added on top ----------------------------------------------------------

_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)


def inner_body(document: str) -> str:
    """What is between ``<body>`` and ``</body>`` of an HTML document (the whole text if it has none)."""
    opened = _BODY_OPEN.search(document)
    start = opened.end() if opened else 0
    closed = _BODY_CLOSE.search(document, start)
    return document[start : closed.start() if closed else len(document)]


def section_marker(section_id: str) -> str:
    """The comment that marks a rolling document's section (Markdown and HTML files)."""
    return f"<!-- calsync:section {section_id} -->"


def prepend_html(document: str, section: str, section_id: str | None = None) -> str:
    """``document`` with the body of ``section`` (a whole rendered agenda) added on top of its body;
    everything already in the document is kept as it is."""
    marker = f"{section_marker(section_id)}\n" if section_id else ""
    addition = f"\n{marker}{inner_body(section).strip()}\n<hr>\n"
    opened = _BODY_OPEN.search(document)
    at = opened.end() if opened else 0
    return document[:at] + addition + document[at:]


def mark_html(document: str, section_id: str) -> str:
    """A rendered agenda marked as the (first) section ``section_id`` of a rolling document."""
    opened = _BODY_OPEN.search(document)
    at = opened.end() if opened else 0
    return f"{document[:at]}\n{section_marker(section_id)}{document[at:]}"


def mark_markdown(document: str, section_id: str) -> str:
    return f"{section_marker(section_id)}\n{document}"


def prepend_markdown(document: str, section: str, section_id: str | None = None) -> str:
    marker = f"{section_marker(section_id)}\n" if section_id else ""
    return f"{marker}{section.rstrip()}\n\n---\n\n{document}"


# -- the link in an event's body or description -----------------------------------------------------------

LINK_START = "<!-- calsync:agenda -->"
LINK_END = "<!-- /calsync:agenda -->"
_LINK_SECTION = re.compile(re.escape(LINK_START) + r".*?" + re.escape(LINK_END), re.DOTALL)
#: In a plain-text description (Google), calsync's section is one line.
TEXT_LINK_PREFIX = "1:1 agenda (calsync): "
_TEXT_LINK_LINE = re.compile(r"^" + re.escape(TEXT_LINK_PREFIX) + r"\S*[ \t]*$", re.MULTILINE)


def html_link_section(url: str) -> str:
    """calsync's marked section of an HTML event body: the agenda's link and nothing else."""
    safe = html.escape(url, quote=True)
    return (
        f'{LINK_START}<div><p>1:1 agenda: <a href="{safe}">{safe}</a> '
        f"(written by calsync; edit the document, not this line)</p></div>{LINK_END}"
    )


def with_html_link(body: str, url: str) -> str:
    """``body`` with calsync's section holding ``url``: replaced where it is, else put at the start of
    the body. Every other byte is kept (a Teams meeting block, the organizer's words)."""
    section = html_link_section(url)
    if _LINK_SECTION.search(body):
        return _LINK_SECTION.sub(lambda _: section, body, count=1)
    opened = _BODY_OPEN.search(body)
    at = opened.end() if opened else 0
    return body[:at] + section + body[at:]


def with_text_link(description: str, url: str) -> str:
    """A plain-text description with calsync's one line holding ``url``: replaced where it is, else
    added at the end. The rest of the description is kept as it is."""
    line = TEXT_LINK_PREFIX + url
    if _TEXT_LINK_LINE.search(description):
        return _TEXT_LINK_LINE.sub(lambda _: line, description, count=1)
    return f"{description.rstrip()}\n\n{line}" if description.strip() else line


def has_link(body: str, url: str) -> bool:
    """Whether calsync's section in ``body`` already links ``url``."""
    match = _LINK_SECTION.search(body)
    if match and html.escape(url, quote=True) in match.group(0):
        return True
    return any(line.strip() == TEXT_LINK_PREFIX + url for line in body.splitlines())


# -- which occurrences get an agenda --------------------------------------------------------------------


@dataclass(frozen=True)
class AgendaPlan:
    """One upcoming 1:1 that is due an agenda: the pair, the occurrence, and which meeting it is."""

    manager: str
    report: str
    occurrence: Occurrence
    number: int
    kind: Kind
    cadence_days: int

    @property
    def key(self) -> str:
        return agenda_key(self.occurrence)


def agenda_key(occurrence: Occurrence) -> str:
    """What identifies an occurrence's agenda across runs, moves and providers: series and original
    start."""
    return f"{occurrence.series_id}|{occurrence.original_start.astimezone(UTC).isoformat()}"


def plan(
    pairs: Mapping[Pair, Sequence[Occurrence]],
    direct_pairs: Iterable[tuple[str, str]],
    now: datetime,
    *,
    lead_days: int = 2,
    default_days: int = 14,
    career_every_weeks: int = CAREER_EVERY_WEEKS,
) -> list[AgendaPlan]:
    """The direct pairs' occurrences starting within ``lead_days`` of ``now`` that are due an agenda.

    A meeting's number counts the pair's 1:1s before it that were not cancelled nor declined, as far
    back as the occurrences given reach (the sync window), so the first 1:1 of a pair is number 1.
    Cancelled occurrences get no agenda; a moved one is placed at its new time.
    """
    horizon = now + timedelta(days=lead_days)
    plans: list[AgendaPlan] = []
    for manager, report in sorted(direct_pairs):
        pair: Pair = (min(manager, report), max(manager, report))
        live = sorted((o for o in pairs.get(pair, ()) if not o.cancelled), key=lambda o: o.start)
        count = 0
        for occurrence in live:
            if occurrence.start >= horizon:
                break
            upcoming = occurrence.start >= now
            if upcoming or not declined_by(occurrence, pair):
                count += 1
            if upcoming:
                cadence = scheduled_cadence_days(occurrence.recurrence) or default_days
                kind = kind_of(count, cadence, career_every_weeks)
                plans.append(AgendaPlan(manager, report, occurrence, count, kind, cadence))
    return plans
