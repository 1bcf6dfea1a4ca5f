"""Hostile text at the output (control characters from a roster, an org chart or a calendar never
reach a header, a terminal or a log raw), and digests that stay linear in a deep org (pure)."""

from __future__ import annotations

import csv
import io
import logging
import re
from datetime import date
from types import SimpleNamespace

import pytest

from calsync.cli import render_digest_run
from calsync.daemon import Daemon
from calsync.detect import resolve
from calsync.digest.compose import compose, leaders, pairs_by_manager, subtree
from calsync.digest.send import DigestOutcome
from calsync.model import CalendarData, Problem
from calsync.org import Exclusion, Org, Person
from calsync.pipeline import DigestRun
from calsync.report import Policy, Report, build_report, render_csv, render_table
from calsync.text import printable, spreadsheet_cell
from tests.builders import AS_OF, at, clock, occ

D = "acme.test"
RAW = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
EVIL = "Eve\x1b[31m\r\nBcc: x@evil.test\x07\u202egnp.exe"


def e(local: str) -> str:
    return f"{local}@{D}"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Diego\r\nBcc: evil@example.com", "Diego\\r\\nBcc: evil@example.com"),
        ("\x1b[2Jred\x07", "\\x1b[2Jred\\x07"),
        ("tab\there\x00\x7f\x9b", "tab\\there\\x00\\x7f\\x9b"),
        ("a\u2028b\u202ec\u2066", "a\\u2028b\\u202ec\\u2066"),
        ("Zoë Ångström 👩\u200d💻", "Zoë Ångström 👩\u200d💻"),  # non-ASCII and a ZWJ emoji stay
        ("", ""),
    ],
)
def test_printable_escapes_control_characters_only(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert not RAW.search(printable(raw))


def hostile_report() -> tuple[Org, Report]:
    people = [
        Person(e("boss"), EVIL, None),
        Person(e("r1"), "Rae\x1b]0;title\x07", e("boss")),
        Person(e("r2"), "Ray", e("boss"), exclusion=Exclusion(e("r2"), "leave\x1b[8m", None)),
    ]
    org = Org(people, [D])
    occurrences = [occ(at(d), people=(e("boss"), e("r1")), series="s") for d in range(-60, 0, 7)]
    return org, build_report(org, resolve([CalendarData("cal", tuple(occurrences))]), clock(), Policy(14, 3))


def test_the_table_and_the_csv_show_no_raw_control_character() -> None:
    _, report = hostile_report()
    for width in (None, 60, 200):
        table = render_table(report, show_untracked=True, width=width)
        assert not RAW.search(table.replace("\n", "")), table
        assert "Eve\\x1b[31m" in table
    csv_text = render_csv(report)
    assert not RAW.search(csv_text.replace("\n", "")), csv_text
    assert len(csv_text.splitlines()) == 1 + len(report.pairs)  # no name spans lines
    assert "leave\\x1b[8m" in csv_text


def test_no_csv_cell_is_a_spreadsheet_formula() -> None:
    people = [
        Person(e("boss"), '=HYPERLINK("http://evil.test","open")', None),
        Person(e("r1"), "@SUM(1+1)", e("boss"), exclusion=Exclusion(e("r1"), "-2+3 cmd|' /C calc'!A0", None)),
        Person(e("r2"), "+Ray", e("boss")),
    ]
    org = Org(people, [D])
    occurrences = [occ(at(d), people=(e("boss"), e("r2")), series="s") for d in range(-60, 0, 7)]
    report = build_report(org, resolve([CalendarData("cal", tuple(occurrences))]), clock(), Policy(14, 3))
    rows = list(csv.reader(io.StringIO(render_csv(report))))
    cells = [cell for row in rows[1:] for cell in row]
    assert cells and not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    excluded = rows[0].index("excluded")
    assert any(row[excluded].startswith("'@SUM(1+1)") for row in rows[1:]), rows
    assert spreadsheet_cell("\t=1") == "'\\t=1" and spreadsheet_cell("Ray") == "Ray"


def test_command_output_and_the_log_show_no_raw_control_character(caplog) -> None:
    run = DigestRun(
        date(2026, 11, 23),
        {},
        [DigestOutcome(e("boss"), EVIL, "failed", "server said \x1b[2J")],
        [],
        {},
    )
    listing = render_digest_run(run)
    assert not RAW.search(listing.replace("\n", "")) and len(listing.splitlines()) == 4
    fake = SimpleNamespace(_known_problems=set())
    with caplog.at_level(logging.INFO, logger="calsync"):
        Daemon._log_problems(fake, [Problem("x.ics", "event 'a' (UID u\x1b[2J\r\nfake line): skipped")])  # type: ignore[arg-type]
    (record,) = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert not RAW.search(record.getMessage()) and "\\r\\nfake line" in record.getMessage()


def test_a_digest_shows_names_and_reasons_escaped() -> None:
    org, report = hostile_report()
    d = compose(report, org, e("boss"), AS_OF, cadence_days=14, grace_days=3)
    texts = [d.leader_name, d.heatmap.total.label, *(r.label for r in d.heatmap.rows)]
    for section in d.sections:
        texts += [section.manager_name, section.reports_to or ""]
        texts += [t for p in (*section.attention, *section.excluded) for t in (p.report_name, p.reason)]
    assert all(not RAW.search(t) for t in texts), texts
    assert d.leader_name == printable(EVIL)


class CountingOrg(Org):
    """An org that counts how often a digest asks it anything: the work of composing, bounded."""

    calls = 0

    def person(self, email: str) -> Person | None:
        CountingOrg.calls += 1
        return super().person(email)

    def reports_of(self, email: str) -> list[str]:
        CountingOrg.calls += 1
        return super().reports_of(email)


def chain(n: int) -> tuple[CountingOrg, Report]:
    people = [Person(f"p{i}@{D}", f"Person {i}", f"p{i - 1}@{D}" if i else None) for i in range(n)]
    org = CountingOrg(people, [D])
    occurrences = [
        occ(at(d), people=(f"p{i - 1}@{D}", f"p{i}@{D}"), series=f"s{i}")
        for i in range(1, n)
        for d in range(-84, 0, 28)
    ]
    report = build_report(org, resolve([CalendarData("cal", tuple(occurrences))]), clock(), Policy(14, 3))
    return org, report


def test_a_digest_of_a_deep_chain_is_linear_in_its_subtree() -> None:
    # A 1,000-level chain: the heatmap used to walk up the chain from every pair's manager to find its
    # branch (half a million questions to the org for the top leader's digest alone).
    org, report = chain(1000)
    top = "p0@acme.test"
    CountingOrg.calls = 0
    d = compose(report, org, top, AS_OF, cadence_days=14, grace_days=3, index=pairs_by_manager(report))
    assert len(d.sections) == 999 and d.people == 999
    assert [s.level for s in d.sections] == list(range(999))
    assert CountingOrg.calls <= 20 * 1000, CountingOrg.calls
    assert subtree(org, top) == [f"p{i}@{D}" for i in range(1, 1000)]


def test_every_digest_of_a_chain_together_is_bounded_by_their_subtrees() -> None:
    org, report = chain(300)
    index = pairs_by_manager(report)
    chosen = leaders(org)
    sizes = sum(len(subtree(org, leader)) + 1 for leader in chosen)
    CountingOrg.calls = 0
    for leader in chosen:
        compose(report, org, leader, AS_OF, cadence_days=14, grace_days=3, index=index)
    assert CountingOrg.calls <= 20 * sizes, (CountingOrg.calls, sizes)
