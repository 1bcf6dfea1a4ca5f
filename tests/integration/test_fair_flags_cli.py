"""End to end through the ICS reader and the command line: out-of-office, [[absence]], holidays,
new pairs remembered in the state, ignored attendees and pairs that could not be checked."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from calsync.config import load_config
from calsync.demo import Attendee, EventSpec, ics_calendar
from calsync.pipeline import today
from tests.integration.cli import run_calsync

BERLIN = ZoneInfo("Europe/Berlin")
ANN, BOB, CAT, EA = (f"{n}@acme.test" for n in ("ann", "bob", "cat", "ea"))
BOT = "rec@notetaker.example"


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN)


def weekday_before(day: date, days: int) -> date:
    found = day - timedelta(days=days)
    while found.weekday() >= 5:
        found -= timedelta(days=1)
    return found


def write(
    root: Path,
    as_of: date,
    *,
    roster: str | None = None,
    extra: str = "",
    files: dict[str, Any] | None = None,
) -> Path:
    """Ann manages Bob and Cat. Bob's last 1:1 was 30 days ago; he was out of office for 15 days since.
    Cat's weekly 1:1s are organised by Ann's assistant and recorded by a bot."""
    (root / "calendars").mkdir(parents=True, exist_ok=True)
    (root / "org.csv").write_text(
        roster
        or (
            "email,name,manager_email,timezone\n"
            f"{ANN},Ann Alder,,Europe/Berlin\n{BOB},Bob Birch,{ANN},Europe/Berlin\n"
            f"{CAT},Cat Cole,{ANN},Europe/Berlin\n"
        ),
        encoding="utf-8",
    )
    last = weekday_before(as_of, 30)
    ab = EventSpec(
        uid="ab@acme.test",
        summary="Ann / Bob",
        start=at(last),
        organizer=ANN,
        attendees=[Attendee(ANN), Attendee(BOB)],
    )
    away = EventSpec(
        uid="bob-away@acme.test",
        summary="Bob: surgery",
        start=last + timedelta(days=3),
        duration=timedelta(days=15),
        organizer=BOB,
        extra={"X-MICROSOFT-CDO-BUSYSTATUS": "OOF"},
    )
    ac = EventSpec(
        uid="ac@acme.test",
        summary="Ann / Cat",
        start=at(weekday_before(as_of, 40)),
        organizer=EA,
        attendees=[Attendee(EA), Attendee(ANN), Attendee(CAT), Attendee(BOT)],
        rrule={"freq": "weekly"},
    )
    calendars = files if files is not None else {"ann": [ab, ac], "bob": [ab, away], "cat": [ac]}
    for owner, specs in calendars.items():
        target = root / "calendars" / f"{owner}.ics"
        target.write_bytes(specs if isinstance(specs, bytes) else ics_calendar(specs))
    config = root / "calsync.toml"
    config.write_text(
        f"""
[org]
domains = ["acme.test"]
roster = "org.csv"
timezone = "Europe/Berlin"

[detect]
ignore_attendees = ["{EA}", "*@notetaker.example"]

[[sources]]
type = "ics"
path = "calendars"
{extra}
""",
        encoding="utf-8",
    )
    return config


def report(config: Path, as_of: date, *more: str) -> tuple[int, dict[str, Any], str]:
    result = run_calsync(
        "report", "--config", str(config), "--as-of", as_of.isoformat(), "--format", "json", *more
    )
    assert result.returncode in (0, 3), result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def pairs(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["report"]: p for p in data["pairs"] if p["manager"] == ANN}


def test_out_of_office_in_an_ics_export_excuses_the_gap_and_stays_private(tmp_path: Path) -> None:
    as_of = date(2026, 11, 20)
    code, data, _ = report(write(tmp_path, as_of), as_of)
    assert code == 0
    bob = pairs(data)[BOB]
    assert bob["days_since_last"] >= 30 and bob["absent_days_since_last"] >= 15
    assert bob["status"] == "at-risk"  # nothing scheduled; but not overdue
    assert bob["reasons"][0].startswith("nothing scheduled in the next 90 days")  # not about a gap
    assert "of them away" in bob["reasons"][0]
    text = json.dumps(data)
    assert "surgery" not in text
    # without the block, the same 1:1s make Bob overdue
    bare = tmp_path / "bare"
    config = write(bare, as_of)
    (bare / "calendars" / "bob.ics").unlink()
    _, data, _ = report(config, as_of)
    assert pairs(data)[BOB]["status"] == "overdue"


def test_an_assistant_and_a_bot_do_not_stop_a_1on1_and_the_ignore_list_is_what_decides(
    tmp_path: Path,
) -> None:
    as_of = date(2026, 11, 20)
    config = write(tmp_path, as_of)
    _, data, _ = report(config, as_of)
    assert pairs(data)[CAT]["status"] == "ok"
    text = config.read_text(encoding="utf-8").replace(f'["{EA}", "*@notetaker.example"]', "[]")
    config.write_text(text, encoding="utf-8")
    _, data, _ = report(config, as_of)
    assert pairs(data)[CAT]["status"] == "no-series"


def test_config_absences_and_holidays_of_the_roster(tmp_path: Path) -> None:
    as_of = date(2026, 11, 20)
    last = weekday_before(as_of, 30)
    extra = f"""
[[absence]]
email = "{ANN}"
from = {(last + timedelta(days=2)).isoformat()}
until = {(last + timedelta(days=14)).isoformat()}
reason = "sabbatical planning"
"""
    config = write(tmp_path, as_of, files=None, extra="")
    config.write_text(config.read_text(encoding="utf-8") + extra, encoding="utf-8")
    (tmp_path / "calendars" / "bob.ics").unlink()  # no out-of-office: the config's absence decides
    _, data, _ = report(config, as_of)
    bob = pairs(data)[BOB]
    assert bob["absent_days_since_last"] >= 13 and bob["status"] == "at-risk"
    assert "sabbatical" not in json.dumps(data)


def test_a_new_line_is_remembered_from_the_day_calsync_first_saw_it(tmp_path: Path) -> None:
    config = write(tmp_path, date(2026, 11, 20))
    now = today(load_config(config))
    # the first run: every line was there before calsync, none has a since
    _, data, _ = report(config, now)
    assert {p["since"] for p in pairs(data).values()} == {None}
    # a new report joins Ann: new since today, at-risk rather than no-series
    with (tmp_path / "org.csv").open("a", encoding="utf-8") as roster:
        roster.write("dan@acme.test,Dan Dorn,ann@acme.test,Europe/Berlin\n")
    _, data, _ = report(config, now)
    dan = pairs(data)["dan@acme.test"]
    assert (dan["since"], dan["status"]) == (now.isoformat(), "at-risk")
    assert dan["reasons"][0] == f"new since {now.isoformat()}: no 1:1 scheduled yet"
    assert pairs(data)[BOB]["since"] is None
    # ... and stays so: the state remembers it, as it remembers the old lines without one
    _, data, _ = report(config, now)
    assert pairs(data)["dan@acme.test"]["since"] == now.isoformat()
    # the roster's since wins
    text = (tmp_path / "org.csv").read_text(encoding="utf-8")
    text = text.replace("email,name,manager_email,timezone", "email,name,manager_email,timezone,since")
    text = text.replace(
        "dan@acme.test,Dan Dorn,ann@acme.test,Europe/Berlin",
        "dan@acme.test,Dan Dorn,ann@acme.test,Europe/Berlin,2026-01-05",
    )
    (tmp_path / "org.csv").write_text(text, encoding="utf-8")
    _, data, _ = report(config, now)
    assert pairs(data)["dan@acme.test"]["since"] == "2026-01-05"


def test_a_managers_unreadable_calendar_makes_her_empty_pairs_unknown_with_exit_3(tmp_path: Path) -> None:
    as_of = date(2026, 11, 20)
    config = write(tmp_path, as_of)
    # Ann's 1:1 with Bob is also in Bob's file: it is judged. Cat's is only in Ann's and Cat's files;
    # with both unreadable, and a third report with nothing anywhere, those are unknown.
    broken = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\n"
    (tmp_path / "calendars" / "ann.ics").write_bytes(broken)
    (tmp_path / "calendars" / "cat.ics").write_bytes(broken)
    with (tmp_path / "org.csv").open("a", encoding="utf-8") as roster:
        roster.write("dan@acme.test,Dan Dorn,ann@acme.test,Europe/Berlin\n")
    code, data, _ = report(config, as_of)
    assert code == 3
    found = pairs(data)
    assert found[BOB]["status"] != "unknown"
    assert found[CAT]["status"] == found["dan@acme.test"]["status"] == "unknown"
    assert found[CAT]["reasons"][0].startswith("could not be checked: Ann Alder's calendar could not be read")
    table = run_calsync("report", "--config", str(config), "--as-of", as_of.isoformat())
    assert table.returncode == 3
    lines = table.stdout.splitlines()
    heading = next(i for i, line in enumerate(lines) if line.startswith("COULD NOT BE CHECKED (2)"))
    assert lines[heading + 2].startswith("unknown") and lines[heading + 3].startswith("unknown")
    assert "2 could not be checked." in table.stdout


def test_a_broken_file_of_unknown_owner_leaves_every_empty_pair_unknown(tmp_path: Path) -> None:
    as_of = date(2026, 11, 20)
    config = write(tmp_path, as_of)
    (tmp_path / "calendars" / "export (2).ics").write_bytes(b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n")
    with (tmp_path / "org.csv").open("a", encoding="utf-8") as roster:
        roster.write("dan@acme.test,Dan Dorn,ann@acme.test,Europe/Berlin\n")
    code, data, _ = report(config, as_of)
    assert code == 3
    dan = pairs(data)["dan@acme.test"]
    assert dan["status"] == "unknown" and "name calendar files after their owners" in dan["reasons"][0]
    assert pairs(data)[CAT]["status"] == "ok"  # shown by a calendar that was read
