"""`calsync agendas` with the local backend over ICS calendars: documents written once, carried items,
the career rotation, moved and cancelled occurrences, crashes, rolling mode, escaping."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from calsync.cli import main
from calsync.config import load_config
from calsync.demo import ics_calendar, override
from calsync.pipeline import AgendaRun, run_agendas
from calsync.store import AGENDA_TABLE
from tests.agenda_scenario import ORG, ROSTER, before, number_of, only, series, week


class Org:
    """A config, roster and one calendar file that tests rewrite between passes."""

    def __init__(self, root: Path, mode: str = "per-meeting") -> None:
        self.root = root
        (root / "calendars").mkdir()
        (root / "org.csv").write_text(ROSTER, encoding="utf-8")
        (root / "calsync.toml").write_text(
            ORG + '[[sources]]\ntype = "ics"\npath = "calendars"\n'
            f'[agenda]\nmode = "{mode}"\ndirectory = "agendas"\nbase_url = "https://agendas.acme.test/a"\n',
            encoding="utf-8",
        )
        self.specs = [series()]
        self.write()

    def write(self) -> None:
        (self.root / "calendars" / "maya.ics").write_bytes(ics_calendar(self.specs, name="maya"))

    def run(self, when: datetime) -> AgendaRun:
        return run_agendas(load_config(self.root / "calsync.toml"), now=when)

    def documents(self) -> list[Path]:
        return sorted((self.root / "agendas").glob("*.md"))

    def text(self, url: str | None, suffix: str = ".md") -> str:
        assert url is not None
        name = url.rsplit("/", 1)[1].removesuffix(".html")
        return (self.root / "agendas" / f"{name}{suffix}").read_text(encoding="utf-8")

    def records(self) -> list[dict[str, Any]]:
        data = json.loads((self.root / "calsync-state.json").read_text(encoding="utf-8"))
        return list(data.get(AGENDA_TABLE, {}).values())


def test_an_agenda_is_written_once_for_the_occurrence_due_and_escapes_calendar_text(tmp_path):
    org = Org(tmp_path)
    assert org.run(week(3) - timedelta(days=3)).outcomes == []  # nothing within two days yet
    first = only(org.run(before(3)))
    assert first.action == "created" and first.start == week(3)
    assert (
        first.url is not None
        and first.url.startswith("https://agendas.acme.test/a/")
        and first.url.endswith(".html")
    )
    html, markdown = org.text(first.url, ".html"), org.text(first.url)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>" not in html and "Omar &lt;b&gt;Haddad&lt;/b&gt;" in html  # a roster name is escaped too
    assert "<script>" not in markdown and "1:1 number 4" in markdown  # three held before it
    # only the due occurrence got one; the name is an HMAC, not derived from names or dates
    assert len(org.documents()) == 1 and "omar" not in first.url and "2026" not in first.url

    state = (tmp_path / "calsync-state.json").read_bytes()
    stamps = [p.stat().st_mtime_ns for p in org.documents()]
    again = only(org.run(before(3) + timedelta(hours=1)))
    assert again.action == "unchanged" and again.url == first.url
    assert (tmp_path / "calsync-state.json").read_bytes() == state  # a second pass writes nothing
    assert [p.stat().st_mtime_ns for p in org.documents()] == stamps


def test_open_items_and_the_growth_theme_carry_over_across_three_meetings(tmp_path):
    org = Org(tmp_path)
    one = only(org.run(before(3)))
    path = org.root / "agendas" / (str(one.url).rsplit("/", 1)[1].removesuffix(".html") + ".md")
    edited = (
        org.text(one.url)
        .replace(
            "- [ ] \n",
            "- [ ] Draft the on-call proposal\n- [x] Book the offsite\n"
            "- [ ] Ask Lee about &lt;mentoring&gt;\n",
        )
        .replace("Growth theme: (choose", "Growth theme: Public speaking\n(choose")
    )
    path.write_text(edited, encoding="utf-8")

    two = only(org.run(before(4)))
    second = org.text(two.url)
    assert "- [ ] Draft the on-call proposal" in second and "Book the offsite" not in second
    assert "- [ ] Ask Lee about &lt;mentoring&gt;" in second  # carried once, escaped once
    assert "## Growth theme: Public speaking" in second
    assert path.read_text(encoding="utf-8") == edited  # the edited document is never written again
    # the pair ticks one item in the second agenda; the other moves on to the third
    second_path = org.root / "agendas" / (str(two.url).rsplit("/", 1)[1].removesuffix(".html") + ".md")
    second_path.write_text(second.replace("- [ ] Draft the on-call", "- [x] Draft the on-call"), "utf-8")
    third = org.text(only(org.run(before(5))).url)
    assert "Draft the on-call proposal" not in third and "- [ ] Ask Lee about &lt;mentoring&gt;" in third
    assert "Public speaking" in third


def test_a_cancelled_occurrence_keeps_its_document_and_its_items_move_on(tmp_path):
    org = Org(tmp_path)
    cancelled = only(org.run(before(3)))
    path = org.root / "agendas" / (str(cancelled.url).rsplit("/", 1)[1].removesuffix(".html") + ".md")
    path.write_text(org.text(cancelled.url).replace("- [ ] \n", "- [ ] Review the roadmap\n"), "utf-8")
    org.specs.append(override(org.specs[0], week(3), status="CANCELLED", sequence=1))
    org.write()
    nxt = only(org.run(before(4)))
    assert nxt.action == "created"
    assert path.exists()  # the cancelled meeting's document stays
    text = org.text(nxt.url)
    assert "- [ ] Review the roadmap" in text
    assert "1:1 number 4" in text  # the cancelled meeting did not use up its number
    cancelled_record = next(r for r in org.records() if r.get("start", "").startswith("2026-11-23"))
    assert cancelled_record["cancelled"] is True


def test_a_moved_occurrence_keeps_its_agenda(tmp_path):
    org = Org(tmp_path)
    made = only(org.run(before(3)))
    org.specs.append(override(org.specs[0], week(3), start=week(3) + timedelta(hours=5), sequence=1))
    org.write()
    moved = only(org.run(before(3) + timedelta(hours=1)))
    assert moved.action == "unchanged" and moved.url == made.url
    assert moved.start == week(3) + timedelta(hours=5)
    assert len(org.documents()) == 1


def test_every_eighth_weekly_meeting_is_a_career_session(tmp_path):
    org = Org(tmp_path)
    kinds = {}
    for n in range(3, 13):
        made = only(org.run(before(n)))
        text = org.text(made.url)
        kinds[number_of(text)] = "big picture" in text
    assert sorted(kinds) == list(range(4, 14))
    assert [n for n, career in kinds.items() if career] == [8]


def test_a_crash_between_writing_the_document_and_recording_it_makes_no_second_document(
    tmp_path, monkeypatch
):
    org = Org(tmp_path)
    from calsync.store import StateStore

    real = StateStore.save_agenda

    def crash(self, record):
        raise KeyboardInterrupt  # the process dies right after the document was written

    monkeypatch.setattr(StateStore, "save_agenda", crash)
    with pytest.raises(KeyboardInterrupt):
        org.run(before(3))
    assert len(org.documents()) == 1
    monkeypatch.setattr(StateStore, "save_agenda", real)
    after = only(org.run(before(3)))
    assert after.action == "unchanged"  # found again by its key, not written again
    assert len(org.documents()) == 1


def test_rolling_mode_keeps_one_document_per_pair_with_the_newest_section_on_top(tmp_path):
    org = Org(tmp_path, mode="rolling")
    first = only(org.run(before(3)))
    assert first.action == "created"
    path = org.root / "agendas" / (str(first.url).rsplit("/", 1)[1].removesuffix(".html") + ".md")
    path.write_text(org.text(first.url).replace("- [ ] \n", "- [ ] Share the hiring plan\n"), "utf-8")
    human = path.read_text(encoding="utf-8")
    second = only(org.run(before(4)))
    assert second.action == "updated" and second.url == first.url
    assert len(org.documents()) == 1
    text = org.text(first.url)
    assert text.endswith(human)  # what the pair wrote is kept, below the new section
    top = text[: text.index("1:1 number 4")]
    assert "Tuesday" not in top and "1:1 number 5" in text[: len(text) - len(human)]
    assert text.index("1:1 number 5") < text.index("1:1 number 4")
    assert "- [ ] Share the hiring plan" in text[: len(text) - len(human)]  # carried into the new one
    again = only(org.run(before(4) + timedelta(hours=1)))
    assert again.action == "unchanged" and org.text(first.url) == text
    html = org.text(first.url, ".html")
    assert html.count("<html") == 1 and html.index("1:1 number 5") < html.index("1:1 number 4")


def test_the_cli_prints_what_it_did_and_a_dry_run_writes_nothing(tmp_path, capsys):
    org = Org(tmp_path)
    when = before(3).strftime("%Y-%m-%dT%H:%M")
    config = str(tmp_path / "calsync.toml")
    assert main(["agendas", "--config", config, "--now", when, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would create" in out and "Omar <b>Haddad</b> / Maya Chen" in out
    assert (org.documents() == [] and not (tmp_path / "agendas").exists()) or org.documents() == []
    assert main(["agendas", "--config", config, "--now", when]) == 0
    out = capsys.readouterr().out
    assert "created" in out and "1 1:1s due an agenda: 1 created" in out
    assert main(["agendas", "--config", config, "--now", when]) == 0
    assert "1 unchanged" in capsys.readouterr().out


READ_ONLY = "ICS calendars are read-only, so the link is not put in the event"


@pytest.mark.parametrize("mode", ["per-meeting", "rolling"])
def test_an_ics_calendar_s_agenda_is_never_said_to_be_linked(tmp_path, mode):
    org = Org(tmp_path, mode=mode)
    first = only(org.run(before(3)))
    created = "document created" if mode == "per-meeting" else "the pair's document created"
    assert (first.action, first.detail) == ("created", f"{created}; {READ_ONLY}")
    again = only(org.run(before(3) + timedelta(hours=1)))
    assert (again.action, again.detail) == ("unchanged", f"already written; {READ_ONLY}")
    assert "linked" not in first.detail + again.detail
