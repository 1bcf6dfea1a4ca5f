"""`calsync demo`: every scenario shows its intended status, on any date, deterministically."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import date, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from calsync.cli import main
from calsync.demo import SCENARIOS, email

DATES = [
    date(2026, 11, 21),
    date(2026, 3, 29),  # EU clocks go forward that night
    date(2026, 11, 1),  # US clocks go back
    date(2027, 1, 1),
    date(2028, 2, 29),
    *(date(2026, 11, 23) + timedelta(days=n) for n in range(7)),  # every weekday
]


def run_demo(directory: Path, as_of: date, fmt: str = "json") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["demo", str(directory), "--as-of", as_of.isoformat(), "--format", fmt], out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("as_of", DATES, ids=str)
def test_every_scenario_has_its_status(tmp_path: Path, as_of: date) -> None:
    code, out, _ = run_demo(tmp_path / "demo", as_of)
    assert code == 0
    report = json.loads(out)
    by_pair = {tuple(p["people"]): p for p in report["pairs"]}
    for a, b, expected, what in SCENARIOS:
        pair = tuple(sorted((email(a), email(b))))
        assert pair in by_pair, f"{a}/{b} missing ({what})"
        assert by_pair[pair]["status"] == expected, f"{a}/{b} ({what}): {by_pair[pair]['reasons']}"
    assert {p["status"] for p in report["pairs"]} == {"ok", "at-risk", "overdue", "no-series", "untracked"}
    assert [e["source"] for e in report["errors"]] == ["calendars/leo@acme.test.ics"]
    # the 1:1 Omar declined on the latest New York holiday of the window is excused: listed, not counted
    omar = by_pair[(email("maya"), email("omar"))]
    assert len(omar["declined"]) == 1 and omar["declined"] == omar["excused"]
    # a real org meets on weekdays: every date of every pair is one
    for pair in report["pairs"]:
        days = [*pair["held"], *pair["cancelled"], *pair["declined"], pair["next_scheduled"]]
        weekend = [d for d in days if d and date.fromisoformat(d).weekday() >= 5]
        assert weekend == [], (pair["people"], weekend)
    # the external 1:1 (Grace and a customer) is not a pair
    assert not any("client.example" in person for p in report["pairs"] for person in p["people"])


def test_demo_edge_cases_in_detail(tmp_path: Path) -> None:
    as_of = date(2026, 11, 21)
    _, out, _ = run_demo(tmp_path / "demo", as_of)
    pairs = {tuple(p["people"]): p for p in json.loads(out)["pairs"]}

    def pair(a: str, b: str) -> Any:
        return pairs[tuple(sorted((email(a), email(b))))]

    # the stale copy in Sam's file does not bring back Lena's cancellation, and nothing counts twice
    lena_sam = pair("lena", "sam")
    assert lena_sam["cancelled"] == ["2026-11-09"]
    assert len(lena_sam["held"]) == len(set(lena_sam["held"])) == 12
    # the moved occurrence counts at its new date, the EXDATE as cancelled
    maya_priya = pair("maya", "priya")
    assert "2026-10-27" in maya_priya["held"] and "2026-10-26" not in maya_priya["held"]
    assert maya_priya["cancelled"] == ["2026-11-09"]
    # a month of cancellations leaves a closed gap
    # (Columbus Day, a New York holiday of Diego's, is not counted in it)
    assert pair("diego", "chloe")["gaps"] == [
        {"from": "2026-09-16", "to": "2026-10-28", "days": 42, "absent_days": 1}
    ]
    assert len(pair("diego", "chloe")["cancelled"]) == 5
    # roster cadence 7 for the new hire; skip-level cadence from the config
    assert pair("lena", "noah")["cadence_days"] == 7
    assert pair("omar", "sam")["cadence_days"] == 30 and pair("omar", "sam")["relationship"] == "skip-level"
    assert pair("diego", "ava")["declined"] == ["2026-10-05"]
    # Ava's three weeks out of office: the 1:1s cancelled in them are excused, the days not counted
    ava = pair("diego", "ava")
    assert ava["status"] == "ok" and ava["days_since_last"] == 26
    assert ava["excused"] == ava["cancelled"] == ["2026-11-02", "2026-11-09", "2026-11-16"]
    assert ava["absent_days_since_last"] == 22
    assert "family matters" not in out
    # Maya's assistant schedules her 1:1s with Priya, a bot joins Diego's with Chloe: still 1:1s
    assert maya_priya["status"] == "ok" and pair("diego", "chloe")["status"] == "ok"
    # a new report, too new to be flagged as having no 1:1s
    zara = pair("priya", "zara")
    assert (zara["status"], zara["since"]) == ("at-risk", "2026-11-16")
    assert zara["reasons"][0] == "new since 2026-11-16: no 1:1 scheduled yet"
    # Omar declined the 1:1 on Veterans Day (11 November, a New York holiday): excused
    assert pair("maya", "omar")["excused"] == pair("maya", "omar")["declined"] == ["2026-11-11"]


def test_demo_is_deterministic_for_a_date(tmp_path: Path) -> None:
    # Two processes with different string-hash seeds: set ordering must not leak into the files.
    for name, seed in (("one", "1"), ("two", "2")):
        code = (
            "from datetime import date; from pathlib import Path; from calsync.demo import write_demo; "
            f"write_demo(Path({str(tmp_path / name)!r}), date(2026, 11, 21))"
        )
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) > 10
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel


def test_demo_table_output(tmp_path: Path) -> None:
    code, out, err = run_demo(tmp_path / "demo", date(2026, 11, 21), fmt="table")
    assert code == 0
    for status in ("overdue", "no-series", "at-risk", "ok"):
        assert f"\n{status} " in out
    assert "Omar Haddad" in out and "Lena Fischer" in out
    assert "calendars/leo@acme.test.ics" in err
    assert "calsync report --config" in err


def test_demo_into_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, out, err = run_demo(blocker / "demo", date(2026, 11, 21))
    assert code == 2
    assert out == ""
    assert f"cannot write the demo into {blocker / 'demo'}" in err


KINDS = {
    "first": "This is your first 1:1.",
    "career": "This session is about the big picture",
    "regular": "- How are you? (A real answer, not a status update",
}


@pytest.mark.parametrize("as_of", [date(2026, 11, 23) + timedelta(days=n) for n in range(7)], ids=str)
def test_demo_writes_agendas_of_every_kind_for_the_next_days(tmp_path: Path, as_of: date) -> None:
    code, _, err = run_demo(tmp_path / "demo", as_of, fmt="table")
    assert code == 0
    agendas = sorted((tmp_path / "demo" / "agendas").glob("*.md"))
    assert "Agendas for the 1:1s of the next 3 days" in err
    assert err.count("\ncreated ") == len(agendas) >= 3
    texts = [p.read_text(encoding="utf-8") for p in agendas]
    assert all("## Action items" in t for t in texts)
    kinds = {kind for t in texts for kind, marker in KINDS.items() if marker in t}
    assert kinds == set(KINDS), as_of  # a first 1:1, a career session and a regular one
    assert any("Fatima &lt;&gt; Priya" in t for t in texts)  # the demo's title with "<>" is escaped
    # on weekdays only, within the lead time
    for line in err.splitlines():
        if line.startswith("created "):
            when = date.fromisoformat(line.split()[1])
            assert when.weekday() < 5 and 0 <= (when - as_of).days <= 3, line
    # a demo run again starts afresh: the same documents (under new, unguessable names), none left over
    run_demo(tmp_path / "demo", as_of, fmt="table")
    again = sorted(p.read_text(encoding="utf-8") for p in (tmp_path / "demo" / "agendas").glob("*.md"))
    assert again == sorted(texts)


def test_demo_writes_the_leaders_digests_to_its_outbox(tmp_path: Path) -> None:
    code, _, err = run_demo(tmp_path / "demo", date(2026, 11, 21), fmt="table")
    assert code == 0
    outbox = sorted((tmp_path / "demo" / "outbox").glob("*.eml"))
    leaders = ("diego", "lena", "maya", "omar", "priya")
    assert [p.name for p in outbox] == [f"2026-11-21-{who}@acme.test.eml" for who in leaders]
    assert "The leaders' digests" in err and err.count("\n  written ") == 5
    maya = message_from_bytes(outbox[2].read_bytes(), policy=policy.default)
    assert maya["To"] == "Maya Chen <maya@acme.test>"
    assert (
        maya["Subject"]
        == "1:1s in Maya Chen's org, week of 21 Nov 2026: 3 overdue, 4 at risk, 2 without 1:1s"
    )
    text = maya.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    # the planted broken file is announced, as the demo sends with when_incomplete = "send"
    assert "1 calendar or source could not be read" in text
    assert "- Iris Novak: Excluded." in text
    # why she is excluded is for her own manager's digest only (Priya's), not Maya's
    assert "parental leave" not in text
    # a demo run again starts afresh: the same five digests, none left over and none skipped as sent
    code, _, err = run_demo(tmp_path / "demo", date(2026, 11, 21), fmt="table")
    assert code == 0 and err.count("\n  written ") == 5
    assert len(list((tmp_path / "demo" / "outbox").glob("*.eml"))) == 5


def someones_files(directory: Path) -> dict[str, bytes]:
    """A directory of someone's own calsync set-up, as the issue found it deleted by the demo."""
    files = {
        "calsync.toml": b'[org]\ndomains = ["mine.test"]\n',
        "calendars/boss.ics": b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
        "agendas/2026-12-01-boss-me.md": b"# my notes\n",
        "outbox/2026-11-30-boss@mine.test.eml": b"Subject: mine\n\nmine\n",
    }
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return files


def test_the_demo_refuses_a_directory_that_is_not_its_own(tmp_path: Path) -> None:
    mine = someones_files(tmp_path)
    code, out, err = run_demo(tmp_path, date(2026, 11, 21))
    assert code == 2 and out == ""
    assert f"calsync: {tmp_path} is not empty (agendas, calendars, calsync.toml, outbox)" in err
    assert "--force" in err
    assert {n: (tmp_path / n).read_bytes() for n in mine} == mine  # nothing deleted or overwritten
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(Path(n).name for n in mine)


def test_force_writes_the_demo_beside_someone_s_files_and_deletes_none(tmp_path: Path) -> None:
    mine = someones_files(tmp_path)
    code, out, _ = main_demo(tmp_path, "--force")
    assert code == 0, out
    # the demo's own config replaced the one of the same name (that is what --force says); the rest stays
    del mine["calsync.toml"]
    assert {n: (tmp_path / n).read_bytes() for n in mine} == mine
    assert "demo calendars" in (tmp_path / "calsync.toml").read_text(encoding="utf-8")
    # and a second run, now in a demo directory, needs no --force and still keeps them
    code, _, err = run_demo(tmp_path, date(2026, 11, 21))
    assert code == 0, err
    assert {n: (tmp_path / n).read_bytes() for n in mine} == mine


def main_demo(directory: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["demo", str(directory), "--as-of", "2026-11-21", "--format", "json", *extra], out, err)
    return code, out.getvalue(), err.getvalue()


def test_a_rerun_removes_only_what_the_demo_wrote(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    assert run_demo(demo, date(2026, 11, 23))[0] == 0
    first = {p.relative_to(demo).as_posix() for p in demo.rglob("*") if p.is_file()}
    assert {"calsync.toml", "org.csv", "calendars/maya.ics", ".calsync-demo", "calsync-state.json"} <= first
    assert any(n.startswith("agendas/") for n in first) and any(n.startswith("outbox/") for n in first)
    # someone adds notes of their own, into the demo's directories too
    (demo / "notes.txt").write_text("mine")
    (demo / "agendas" / "my-own.md").write_text("mine")
    (demo / "calendars" / "extra.txt").write_text("mine")
    # a demo of another date: its agendas and digests replace the earlier ones, which are gone
    assert run_demo(demo, date(2026, 11, 21))[0] == 0
    after = {p.relative_to(demo).as_posix() for p in demo.rglob("*") if p.is_file()}
    assert {"notes.txt", "agendas/my-own.md", "calendars/extra.txt"} <= after
    assert not any(n.startswith("outbox/2026-11-23-") for n in after)
    assert (demo / "notes.txt").read_text() == "mine" and (
        demo / "agendas" / "my-own.md"
    ).read_text() == "mine"


def test_a_demo_file_someone_changed_is_kept_and_not_written_over(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    assert run_demo(demo, date(2026, 11, 23))[0] == 0
    agenda = sorted((demo / "agendas").glob("*.md"))[0]
    agenda.write_text(agenda.read_text(encoding="utf-8") + "\nWe agreed: more 1:1s.\n", encoding="utf-8")
    edited = agenda.read_text(encoding="utf-8")
    assert run_demo(demo, date(2026, 11, 21))[0] == 0  # the edited agenda is not in its way: kept
    assert agenda.read_text(encoding="utf-8") == edited
    config = demo / "calsync.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n# my change\n", encoding="utf-8")
    code, _, err = run_demo(demo, date(2026, 11, 21))
    assert code == 2 and "calsync.toml changed since the demo wrote them" in err
    assert config.read_text(encoding="utf-8").endswith("# my change\n")
    assert agenda.read_text(encoding="utf-8") == edited
