"""End to end: `calsync report` as a subprocess on generated calendars, compared with hand-computed JSON."""

from __future__ import annotations

import io
import json
import subprocess
import threading
from datetime import UTC, date, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calsync.cli import main
from calsync.demo import Attendee, EventSpec, ics_calendar, override
from tests.integration.cli import run_calsync

BERLIN = ZoneInfo("Europe/Berlin")
AS_OF = "2026-11-21"


def berlin(y: int, m: int, d: int, h: int = 10) -> datetime:
    return datetime(y, m, d, h, tzinfo=BERLIN)


def people(*emails: str, declined: str | None = None) -> list[Attendee]:
    return [Attendee(e, None, "DECLINED" if e == declined else "ACCEPTED") for e in emails]


ANN, BOB, CAT, DAN = (f"{n}@acme.test" for n in ("ann", "bob", "cat", "dan"))


def write_org(root: Path, *, sources: str | None = None) -> Path:
    (root / "calendars").mkdir(parents=True, exist_ok=True)
    (root / "org.csv").write_text(
        "email,name,manager_email,cadence_days\n"
        f"{ANN},Ann Alder,,\n{BOB},Bob Birch,{ANN},\n{CAT},Cat Cole,{ANN},21\n{DAN},Dan Dorn,{ANN},\n"
    )

    def ab_series(**kw: Any) -> EventSpec:
        return EventSpec(
            uid="ab@acme.test",
            summary="Ann / Bob",
            organizer=ANN,
            rrule={"freq": "weekly"},
            start=berlin(2026, 9, 1),
            attendees=people(ANN, BOB),
            **kw,
        )

    moved = override(ab_series(), berlin(2026, 11, 3), start=berlin(2026, 11, 4, 15), sequence=2)
    declined = override(
        ab_series(),
        berlin(2026, 10, 27),
        attendees=people(ANN, BOB, declined=BOB),
        last_modified=datetime(2026, 10, 20, tzinfo=UTC),
    )
    # Ann's copy removed 13 Oct (SEQUENCE 1); Bob's file is a stale export without that change.
    ann_series = ab_series(sequence=1, exdates=[berlin(2026, 10, 13)])
    bob_series = ab_series(sequence=0)
    cat_series = EventSpec(
        uid="ac@acme.test",
        summary="Ann <> Cat",
        organizer=ANN,
        start=berlin(2026, 8, 6, 14),
        attendees=people(ANN, CAT),
        rrule={"freq": "weekly", "interval": 2, "until": datetime(2026, 10, 2, tzinfo=UTC)},
    )
    peer = EventSpec(
        uid="bc@acme.test",
        summary="coffee",
        organizer=BOB,
        start=datetime(2026, 11, 12, 12, tzinfo=UTC),
        attendees=people(BOB, CAT),
    )
    external = EventSpec(
        uid="ax@acme.test",
        summary="Ann / Guest",
        organizer=ANN,
        start=berlin(2026, 11, 10),
        attendees=people(ANN, "guest@other.example"),
        rrule={"freq": "weekly"},
    )
    cal = root / "calendars"
    (cal / "ann.ics").write_bytes(ics_calendar([ann_series, moved, declined, cat_series, external]))
    (cal / "bob.ics").write_bytes(ics_calendar([bob_series, moved, declined, peer]))
    (cal / "broken.ics").write_text("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\n")
    source = sources if sources is not None else '[[sources]]\ntype = "ics"\npath = "calendars"\n'
    config = root / "calsync.toml"
    config.write_text(
        '[org]\ndomains = ["acme.test"]\nroster = "org.csv"\n\n'
        f"[cadence]\ndefault_days = 14\ngrace_days = 3\n\n{source}"
    )
    return config


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_calsync(*args, cwd=cwd, timeout=120)


EXPECTED_ANN_BOB = {
    "people": [ANN, BOB],
    "manager": ANN,
    "report": BOB,
    "relationship": "direct",
    "status": "ok",
    "cadence_days": 14,
    "held": [
        "2026-09-01",
        "2026-09-08",
        "2026-09-15",
        "2026-09-22",
        "2026-09-29",
        "2026-10-06",
        "2026-10-20",
        "2026-11-04",
        "2026-11-10",
        "2026-11-17",
    ],
    "cancelled": ["2026-10-13"],
    "declined": ["2026-10-27"],
    "excused": [],
    "last_held": "2026-11-17",
    "next_scheduled": "2026-11-24",
    "days_since_last": 4,
    "absent_days_since_last": 0,
    "since": None,
    "gaps": [],
    "series": [
        {"id": "ab@acme.test", "title": "Ann / Bob", "recurrence": "FREQ=WEEKLY", "scheduled_cadence_days": 7}
    ],
    "reasons": [
        "last 1:1 4 days ago; next scheduled 2026-11-24",
        "1 cancelled in the last 90 days",
        "1 declined in the last 90 days",
    ],
    "names": {ANN: "Ann Alder", BOB: "Bob Birch"},
    "excluded": None,
}

EXPECTED_ANN_CAT = {
    "people": [ANN, CAT],
    "manager": ANN,
    "report": CAT,
    "relationship": "direct",
    "status": "overdue",
    "cadence_days": 21,
    "held": ["2026-09-03", "2026-09-17", "2026-10-01"],
    "cancelled": [],
    "declined": [],
    "excused": [],
    "last_held": "2026-10-01",
    "next_scheduled": None,
    "days_since_last": 51,
    "absent_days_since_last": 0,
    "since": None,
    "gaps": [{"from": "2026-10-01", "to": None, "days": 51, "absent_days": 0}],
    "series": [
        {
            "id": "ac@acme.test",
            "title": "Ann <> Cat",
            "recurrence": "FREQ=WEEKLY;UNTIL=20261002T000000Z;INTERVAL=2",
            "scheduled_cadence_days": 14,
        }
    ],
    "reasons": ["no 1:1 held for 51 days (cadence 21 + 3 grace)"],
    "names": {ANN: "Ann Alder", CAT: "Cat Cole"},
    "excluded": None,
}


def test_report_json_end_to_end(tmp_path: Path) -> None:
    config = write_org(tmp_path)
    result = run("report", "--config", str(config), "--as-of", AS_OF, "--format", "json", cwd=Path("/"))
    assert result.returncode == 3, result.stderr  # produced, but broken.ics was skipped
    report = json.loads(result.stdout)
    assert report["as_of"] == AS_OF
    assert report["window"] == {"start": "2026-08-23", "end": AS_OF}
    pairs = {tuple(p["people"]): p for p in report["pairs"]}
    assert set(pairs) == {(ANN, BOB), (ANN, CAT), (ANN, DAN), (BOB, CAT)}  # the external pair is ignored
    series = pairs[(ANN, CAT)]["series"][0]
    assert sorted(series.pop("recurrence").split(";")) == [
        "FREQ=WEEKLY",
        "INTERVAL=2",
        "UNTIL=20261002T000000Z",
    ]
    expected_cat = json.loads(json.dumps(EXPECTED_ANN_CAT))
    expected_cat["series"][0].pop("recurrence")
    assert pairs[(ANN, BOB)] == EXPECTED_ANN_BOB
    assert pairs[(ANN, CAT)] == expected_cat
    dan = pairs[(ANN, DAN)]
    # no calendar read shows Dan's 1:1s, and broken.ics (whose it is is not known) might: unknown
    assert (dan["status"], dan["held"], dan["next_scheduled"], dan["series"]) == ("unknown", [], None, [])
    peer = pairs[(BOB, CAT)]
    assert (peer["relationship"], peer["status"], peer["held"], peer["cadence_days"]) == (
        "peer",
        "untracked",
        ["2026-11-12"],
        None,
    )
    assert report["errors"] == [{"source": "calendars/broken.ics", "message": report["errors"][0]["message"]}]
    assert "calendars/broken.ics" in result.stderr
    assert "not a valid iCalendar file" in report["errors"][0]["message"]


def test_report_table_and_csv(tmp_path: Path) -> None:
    config = write_org(tmp_path)
    table = run("report", "-c", str(config), "--as-of", AS_OF)
    lines = table.stdout.splitlines()
    rows = [
        line.split()[0]
        for line in lines
        if line.split() and line.split()[0] in {"unknown", "overdue", "no-series", "ok"}
    ]
    # Dan's pair, in no calendar that was read, could be in broken.ics (whose it is is not known):
    # not "no-series" but could not be checked, first under its own heading; then worst first, the peer
    # pair hidden
    assert rows == ["unknown", "overdue", "ok"]
    assert "COULD NOT BE CHECKED (1)" in table.stdout and "1 could not be checked." in table.stdout
    assert "1 untracked (not shown; --all shows them)" in table.stdout
    assert "untracked (peer)" in run("report", "-c", str(config), "--as-of", AS_OF, "--all").stdout
    csv_out = run("report", "-c", str(config), "--as-of", AS_OF, "--format", "csv").stdout.splitlines()
    assert csv_out[0].startswith("manager,report,person_a,person_b,relationship,status")
    assert len(csv_out) == 5
    bob_row = next(r for r in csv_out if r.startswith(f"{ANN},{BOB},"))
    assert ",ok,14,2026-11-17,4,2026-11-24,10,1,1,0," in bob_row


def test_output_file_and_default_config_from_cwd(tmp_path: Path) -> None:
    write_org(tmp_path)
    out = tmp_path / "report.json"
    result = run("report", "--as-of", AS_OF, "--format", "json", "-o", str(out), cwd=tmp_path)
    assert result.returncode == 3
    assert result.stdout == ""
    assert json.loads(out.read_text())["as_of"] == AS_OF


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path):
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_published_calendar_over_http_and_a_failing_url(tmp_path: Path, http_root) -> None:
    served, base = http_root
    config = write_org(tmp_path / "org")
    secret = served / "private-7f3a9c"
    secret.mkdir()
    for name in ("ann.ics", "bob.ics"):
        (secret / name).write_bytes((tmp_path / "org" / "calendars" / name).read_bytes())
    sources = "".join(
        f'[[sources]]\ntype = "ics"\npath = "{base}/private-7f3a9c/{name}?token=s3cret"\n\n'
        for name in ("ann.ics", "bob.ics", "missing.ics")
    )
    config = write_org(tmp_path / "org", sources=sources)
    result = run("report", "-c", str(config), "--as-of", AS_OF, "--format", "json")
    assert result.returncode == 3
    report = json.loads(result.stdout)
    pairs = {tuple(p["people"]): p for p in report["pairs"]}
    assert pairs[(ANN, BOB)] == EXPECTED_ANN_BOB
    assert report["errors"] == [
        {"source": f"{base}/…/missing.ics", "message": "download failed: HTTP 404 File not found"}
    ]
    # the URL is the calendar's credential: it never appears in what calsync prints
    for secret_part in ("private-7f3a9c", "s3cret"):
        assert secret_part not in result.stdout and secret_part not in result.stderr


def test_failed_source_is_an_error_not_an_empty_calendar(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/nothing-listens-here.ics"
    sources = f'[[sources]]\ntype = "ics"\npath = "{url}"\ntimeout_seconds = 5\n'
    config = write_org(tmp_path, sources=sources)
    result = run("report", "-c", str(config), "--as-of", AS_OF, "--format", "json")
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert report["errors"][0]["source"] == url
    assert report["errors"][0]["message"].startswith("download failed")


def test_empty_calendar_directory_is_reported(tmp_path: Path) -> None:
    config = write_org(tmp_path)
    for f in (tmp_path / "calendars").iterdir():
        f.unlink()
    result = run("report", "-c", str(config), "--as-of", AS_OF, "--format", "json")
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert report["errors"] == [
        {
            "source": "calendars",
            "message": "no .ics files in this directory: add calendar exports here or fix the source's path",
        }
    ]
    # no calendar at all: no pair can be checked, and none is reported as having no 1:1s
    assert {p["status"] for p in report["pairs"]} == {"unknown"}
    assert all(p["reasons"][0].startswith("could not be checked: ") for p in report["pairs"])


def test_config_typo_is_a_clear_error_with_exit_2(tmp_path: Path) -> None:
    config = write_org(tmp_path)
    config.write_text(config.read_text().replace("default_days", "default_dayz"))
    result = run("report", "-c", str(config), "--as-of", AS_OF)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "calsync.toml" in result.stderr and "default_dayz" in result.stderr
    assert "default_days" in result.stderr  # the suggestion
    assert "Traceback" not in result.stderr


def test_missing_config_and_bad_arguments(tmp_path: Path) -> None:
    result = run("report", "-c", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "nope.toml" in result.stderr and "Traceback" not in result.stderr
    result = run("report", "--as-of", "21/11/2026")
    assert result.returncode == 2 and "YYYY-MM-DD" in result.stderr


def test_roster_cycle_is_reported_and_the_report_still_produced(tmp_path: Path) -> None:
    config = write_org(tmp_path)
    (tmp_path / "org.csv").write_text(
        f"email,name,manager_email\n{ANN},Ann,{DAN}\n{BOB},Bob,{ANN}\n{DAN},Dan,{BOB}\n"
    )
    result = run("report", "-c", str(config), "--as-of", AS_OF, "--format", "json")
    assert result.returncode == 3
    report = json.loads(result.stdout)
    roster_errors = [e for e in report["errors"] if e["source"] == "org.csv"]
    assert len(roster_errors) == 1 and "cycle" in roster_errors[0]["message"]
    assert any(p["people"] == [ANN, BOB] and p["status"] == "ok" for p in report["pairs"])


def test_help_explains_commands_and_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == 0
    for word in ("report", "demo", "exit codes", "3    done in part"):
        assert word in result.stdout
    report_help = run("report", "--help").stdout
    assert "--as-of" in report_help and "overdue" in report_help and "--format" in report_help


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("calsync ")


def test_dates_other_than_today_are_deterministic(tmp_path: Path) -> None:
    config = write_org(tmp_path)
    first = run("report", "-c", str(config), "--as-of", AS_OF, "--format", "json").stdout
    second = run("report", "-c", str(config), "--as-of", AS_OF, "--format", "json").stdout
    assert first == second
    assert date.fromisoformat(json.loads(first)["as_of"]) == date(2026, 11, 21)


CUT_SHORT_BODY = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" * 3


class _CutShortHandler(_QuietHandler):
    """Promises a long calendar and closes the connection after a few bytes."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/calendar")
        self.send_header("Content-Length", "10000")
        self.end_headers()
        self.wfile.write(CUT_SHORT_BODY)
        self.wfile.flush()
        self.close_connection = True


def test_a_download_cut_short_is_an_error_not_a_crash(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CutShortHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/team.ics"
        config = write_org(tmp_path, sources=f'[[sources]]\ntype = "ics"\npath = "{url}"\n')
        result = run("report", "-c", str(config), "--as-of", AS_OF, "--format", "json")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 3, result.stderr
    (error,) = json.loads(result.stdout)["errors"]
    assert error["source"] == url
    assert (
        error["message"]
        == f"download failed: the connection closed after {len(CUT_SHORT_BODY)} of 10000 bytes"
    )


def test_a_roster_with_only_its_header_is_a_roster_problem_not_a_clean_report(tmp_path: Path) -> None:
    config = write_org(tmp_path)
    (tmp_path / "calendars" / "broken.ics").unlink()
    (tmp_path / "org.csv").write_text("email,name,manager_email,cadence_days\n")
    table = run("report", "-c", str(config), "--as-of", AS_OF)
    assert table.returncode == 3, table.stderr
    assert "org.csv: the roster lists no one: no 1:1 can be checked" in table.stderr
    # the calendars hold 1:1s between Ann and Bob, Ann and Cat, Bob and Cat: said, not denied
    assert (
        "(nothing to check: the roster lists no one; 1:1s between 3 pairs of people were found in the "
        "calendars, but none can be checked without a roster)"
    ) in table.stdout
    assert "no 1:1 was found" not in table.stdout
    report = json.loads(run("report", "-c", str(config), "--as-of", AS_OF, "--format", "json").stdout)
    assert [e["source"] for e in report["errors"]] == ["org.csv"]
    assert {p["status"] for p in report["pairs"]} == {"untracked"} and len(report["pairs"]) == 3


def test_a_roster_where_no_one_has_a_manager_is_a_roster_problem(tmp_path: Path) -> None:
    config = write_org(tmp_path)
    (tmp_path / "calendars" / "broken.ics").unlink()
    (tmp_path / "org.csv").write_text(f"email,name,manager_email\n{ANN},Ann,\n{BOB},Bob,\n{CAT},Cat,\n")
    table = run("report", "-c", str(config), "--as-of", AS_OF)
    assert table.returncode == 3, table.stderr
    assert (
        "org.csv: none of the 3 people in the roster has a manager: there is no manager/report pair "
        "to check; fill in manager_email"
    ) in table.stderr
    assert (
        "(nothing to check: no one in the roster has reports; 1:1s between 3 pairs of people were found "
        "in the calendars, none of them between a manager and their report: --all lists them)"
    ) in table.stdout
    assert "no 1:1 was found" not in table.stdout


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_table_fits_columns_on_a_terminal_and_is_left_alone_in_a_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_org(tmp_path)

    def table(out: io.StringIO, *extra: str) -> str:
        assert main(["report", "-c", str(config), "--as-of", AS_OF, *extra], out, io.StringIO()) == 3
        return out.getvalue()

    monkeypatch.delenv("COLUMNS", raising=False)
    plain = table(io.StringIO())
    assert max(len(line) for line in plain.splitlines()) > 100  # one line per pair: what scripts read
    monkeypatch.setenv("COLUMNS", "80")
    fitted = table(_Terminal())
    assert fitted != plain and max(len(line) for line in fitted.splitlines()) <= 80
    reason = "no 1:1 held for 51 days (cadence 21 + 3 grace)"
    assert reason in " ".join(plain.split()) and reason in " ".join(fitted.split())  # wrapped, not cut
    # a pipe or a file is never fitted, $COLUMNS or not (readline exports COLUMNS=80 to subprocesses)
    assert table(io.StringIO()) == plain
    table(_Terminal(), "-o", str(tmp_path / "report.txt"))
    assert (tmp_path / "report.txt").read_text(encoding="utf-8") == plain
