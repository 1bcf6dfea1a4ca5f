"""Hostile rosters (from a fuzzing campaign): no row is lost silently, and no control character of a
cell reaches a name or an email (so never a mail header, a terminal or a log line)."""

from __future__ import annotations

import io
import json
import time
import unicodedata
from pathlib import Path

import pytest

from calsync.cli import main
from calsync.model import Problem
from calsync.org import MAX_CADENCE_DAYS, Org, load_roster, parse_roster

DOMAINS = ("acme.test",)
HEADER = "email,name,manager_email\n"


def parse(text: str) -> tuple[Org, list[str]]:
    started = time.monotonic()
    org, problems = parse_roster(text, DOMAINS, "org.csv")
    assert time.monotonic() - started < 5
    assert all(isinstance(p, Problem) for p in problems)
    return org, [p.message for p in problems]


def is_plain(text: str) -> bool:
    return not any(
        unicodedata.category(c) == "Cc"
        or c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
        for c in text
    )


# -- an unbalanced quote ----------------------------------------------------------------------------


def test_an_unbalanced_quote_loses_only_its_row_and_says_which():
    text = (
        HEADER
        + "sam@acme.test,Sam,\n"
        + 'omar@acme.test,"Omar Haddad,sam@acme.test\n'
        + "ann@acme.test,Ann,sam@acme.test\n"
        + "bob@acme.test,Bob,ann@acme.test\n"
        + "cat@acme.test,Cat,ann@acme.test\n"
    )
    org, problems = parse(text)
    assert sorted(org.people) == ["ann@acme.test", "bob@acme.test", "cat@acme.test", "sam@acme.test"]
    assert org.manager_of("cat@acme.test") == "ann@acme.test"
    assert len(problems) == 1 and problems[0].startswith('line 3: a quote (") opens a cell'), problems
    assert "this row is ignored" in problems[0] and "the next line is read on its own" in problems[0]


def test_two_unbalanced_quotes_do_not_pair_up_across_lines():
    text = (
        HEADER
        + 'ann@acme.test,"Ann,\nbob@acme.test,Bob,ann@acme.test\ncat@acme.test,"Cat,\ndan@acme.test,Dan,\n'
    )
    org, problems = parse(text)
    assert sorted(org.people) == ["bob@acme.test", "dan@acme.test"]
    assert [p[:7] for p in problems if "a quote" in p] == ["line 2:", "line 4:"]


def test_quoted_cells_with_commas_and_quotes_are_still_read():
    text = HEADER + 'ann@acme.test,"Lee, Ann",\nbob@acme.test,"Bob ""Bobby"" Jones",ann@acme.test\n'
    org, problems = parse(text)
    assert problems == []
    assert org.name("ann@acme.test") == "Lee, Ann" and org.name("bob@acme.test") == 'Bob "Bobby" Jones'


def test_a_quoted_name_across_two_lines_is_reported_not_read_as_one_row():
    org, problems = parse(HEADER + 'ann@acme.test,"Ann\nLee",\nbob@acme.test,Bob,\n')
    assert "ann@acme.test" not in org.people and "bob@acme.test" in org.people
    assert problems[0].startswith("line 2: a quote")
    assert any(p.startswith("line 3:") for p in problems)  # 'Lee",' is read on its own: not an email


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_numbers_count_every_kind_of_line_break(newline):
    text = newline.join(
        ["email,name,manager_email", "ann@acme.test,Ann,", 'bob@acme.test,"Bob,', "cat@acme.test,Cat,"]
    )
    org, problems = parse(text + newline)
    assert sorted(org.people) == ["ann@acme.test", "cat@acme.test"]
    assert problems[0].startswith("line 3: a quote")


def test_a_row_with_more_cells_than_the_header_is_reported_and_ignored():
    text = (
        HEADER
        + "ann@acme.test,Ann,\nbob@acme.test,Haddad, Bob,ann@acme.test\ncat@acme.test,Cat,ann@acme.test,,\n"
    )
    org, problems = parse(text)
    assert sorted(org.people) == ["ann@acme.test", "cat@acme.test"]  # trailing empty cells are harmless
    assert problems == [
        "line 3: 4 cells but the header names 3 columns: a comma in a cell that is not quoted? "
        '(write "Haddad, Omar" in quotes); this row is ignored'
    ]


def test_the_report_shows_the_rows_after_an_unbalanced_quote(tmp_path: Path):
    (tmp_path / "calendars").mkdir()
    (tmp_path / "org.csv").write_text(
        HEADER + 'omar@acme.test,"Omar Haddad,\nann@acme.test,Ann,\nbob@acme.test,Bob,ann@acme.test\n',
        encoding="utf-8",
    )
    config = tmp_path / "calsync.toml"
    config.write_text(
        '[org]\ndomains = ["acme.test"]\nroster = "org.csv"\n\n'
        '[[sources]]\ntype = "ics"\npath = "calendars"\n',
        encoding="utf-8",
    )
    out, err = io.StringIO(), io.StringIO()
    code = main(["report", "--config", str(config), "--format", "json"], out, err)
    assert code == 3, err.getvalue()
    report = json.loads(out.getvalue())
    assert any("line 2: a quote" in json.dumps(error) for error in report["errors"]), report["errors"]
    assert "ann@acme.test" in out.getvalue() and "bob@acme.test" in out.getvalue()


# -- control characters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Diego\x1b[31m Red\x07", "ESC, BEL"),
        ("Diego\u202eogeiD", "U+202E"),
        ("Diego\x85\x9b2J", "U+0085, U+009B"),
        ("Diego\x00\x7f", "NUL, DEL"),
        ("Diego\tTab", "TAB"),
        ("Diego\u2028Bcc: evil@example.com", "U+2028"),
    ],
)
def test_control_characters_in_a_name_are_replaced_and_reported(name, shown):
    org, problems = parse(HEADER + f"ann@acme.test,Ann,\ndiego@acme.test,{name},ann@acme.test\n")
    person = org.person("diego@acme.test")
    assert person is not None and person.manager == "ann@acme.test"
    assert is_plain(person.name) and person.name.startswith("Diego")
    assert len(problems) == 1 and problems[0].startswith("line 3: control character"), problems
    assert f"({shown})" in problems[0] and "replaced by spaces" in problems[0]
    assert is_plain(problems[0])


def test_a_header_injection_in_a_name_never_reaches_a_person():
    text = HEADER + 'ann@acme.test,Ann,\ndiego@acme.test,"Diego\r\nBcc: evil@example.com",ann@acme.test\n'
    org, problems = parse(text)
    assert all(is_plain(p.name) and is_plain(p.email) for p in org.people.values())
    assert "evil@example.com" not in {p.email for p in org.people.values()}
    assert problems[0].startswith("line 2: a quote") or problems[0].startswith("line 3: a quote")
    assert all(is_plain(p) for p in problems)


def test_control_characters_in_an_email_never_reach_a_person_or_a_problem():
    org, problems = parse(
        HEADER + "ann@acme.test,Ann,\nbob\x1b]0;pwned\x07@acme.test,Bob,ann\x1b@acme.test\n"
    )
    assert list(org.people) == ["ann@acme.test"]
    assert problems and all(is_plain(p) for p in problems)
    assert all(p.startswith("line 3:") for p in problems)


def test_a_file_with_nul_bytes_is_read_line_by_line(tmp_path: Path):
    roster = tmp_path / "org.csv"
    roster.write_bytes(b"email,name,manager_email\nann@acme.test,A\x00nn,\nbob@acme.test,Bob,ann@acme.test\n")
    org, problems = load_roster(roster, DOMAINS)
    assert sorted(org.people) == ["ann@acme.test", "bob@acme.test"] and org.name("ann@acme.test") == "A nn"
    assert [p.message[:7] for p in problems] == ["line 2:"]


# -- cadence_days ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["3661", "99999999999", "9" * 5000, "-1", "0"])
def test_cadence_days_is_bounded(value):
    org, problems = parse(
        "email,name,manager_email,cadence_days\nann@acme.test,Ann,\n"
        + f"bob@acme.test,Bob,ann@acme.test,{value}\n"
    )
    assert org.cadence_days_of("bob@acme.test") is None
    assert len(problems) == 1 and f"is not a whole number from 1 to {MAX_CADENCE_DAYS}" in problems[0]
    assert len(problems[0]) < 200


def test_the_longest_cadence_is_accepted():
    org, problems = parse(
        "email,name,manager_email,cadence_days\nann@acme.test,Ann,\n"
        + f"bob@acme.test,Bob,ann@acme.test,{MAX_CADENCE_DAYS}\n"
    )
    assert problems == [] and org.cadence_days_of("bob@acme.test") == MAX_CADENCE_DAYS


def test_the_cadence_bound_is_the_configs():
    from calsync.config import MAX_SPAN_DAYS

    assert MAX_CADENCE_DAYS == MAX_SPAN_DAYS
