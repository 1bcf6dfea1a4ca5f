"""What a newcomer meets first on the command line: the shipped files, the help, the dates it takes,
and where a config's path came from."""

from __future__ import annotations

import contextlib
import io
import re
import tomllib
from pathlib import Path

import pytest

from calsync.cli import main


def run(*args: str) -> tuple[int, str, str]:
    """The command line in this process; argparse's own errors and --help exit, as for a user."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args), out, err)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_config_example_prints_the_shipped_example_which_documents_every_section() -> None:
    code, out, err = run("config", "example")
    assert code == 0 and err == ""
    shipped = Path(__file__).resolve().parents[2] / "calsync" / "examples" / "calsync.example.toml"
    assert out == shipped.read_text(encoding="utf-8")
    assert {"org", "sources"} <= set(tomllib.loads(out))  # the required ones; the others commented out
    for section in ("cadence", "report", "agenda", "digest", "smtp", "state", "daemon", "[sources]"):
        assert re.search(rf"^(# )?\[{re.escape(section)}\]", out, re.M), section
    assert "calsync config example > calsync.toml" in out


def test_config_systemd_unit_prints_the_unit() -> None:
    code, out, _ = run("config", "systemd-unit")
    assert code == 0
    assert "[Service]" in out and "ExecStart=/opt/calsync/venv/bin/calsync run" in out


def test_messages_point_at_what_an_installed_calsync_has(tmp_path: Path) -> None:
    code, _, err = run("report", "--config", str(tmp_path / "nope.toml"))
    assert code == 2
    assert "calsync config example" in err and "config/calsync.example.toml" not in err
    (tmp_path / "calsync.toml").write_text("[org\n")  # not TOML
    code, _, err = run("report", "--config", str(tmp_path / "calsync.toml"))
    assert code == 2 and "calsync config example" in err
    for command in ("run", "doctor"):
        code, out, _ = run(command, "--help")
        assert code == 0 and "systemd/calsync.service" not in out and "config/calsync" not in out
    assert "`calsync config systemd-unit` prints the unit" in run("run", "--help")[1]


def test_the_top_level_help_gives_every_command_s_exit_codes() -> None:
    code, text, _ = run("--help")
    assert code == 0
    codes = text.split("exit codes")[1]
    assert [int(c) for c in re.findall(r"^  (\d+) ", codes, re.M)] == [0, 2, 3, 1, 130]
    for word in ("agenda", "digest", "doctor", "run:", "state"):
        assert word in codes, word
    assert "config example" in text


@pytest.mark.parametrize(
    "args",
    [
        ("report", "--as-of", "9999-12-31"),
        ("report", "--as-of", "0001-01-01"),
        ("digest", "--now", "9999-12-30T00:00"),
        ("agendas", "--now", "9999-12-30T00:00"),
        ("agendas", "--now", "0001-01-01T00:00+05:00"),
        ("demo", "--as-of", "9999-12-31"),
    ],
    ids=" ".join,
)
def test_a_date_out_of_range_is_a_usage_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    code, out, err = run(
        *args[:1],
        *(["--config", str(tmp_path / "c.toml")] if args[0] != "demo" else []),
        *args[1:],
        *([str(tmp_path / "demo")] if args[0] == "demo" else []),
    )
    assert code == 2 and out == ""
    assert "is out of range: calsync takes dates from 1900-01-01 to 9899-12-31" in err
    assert "internal error" not in err and not (tmp_path / "demo").exists()


@pytest.mark.parametrize(
    ("as_of", "lookahead"), [("9899-12-31", 3660), ("1900-01-01", 3660)], ids=("latest", "earliest")
)
def test_the_ends_of_the_range_work_with_the_longest_windows(
    tmp_path: Path, as_of: str, lookahead: int
) -> None:
    code, _, err = run("demo", str(tmp_path / "demo"), "--as-of", as_of, "--format", "json")
    assert code == 0, err
    config = tmp_path / "demo" / "calsync.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("lookback_days = 90", f"lookback_days = {lookahead}")
    config.write_text(text.replace("lookahead_days = 90", f"lookahead_days = {lookahead}"), encoding="utf-8")
    for command in (
        ("report", "--as-of", as_of),
        ("agendas", "--dry-run", "--now", f"{as_of}T23:59+14:00"),
        ("digest", "--now", f"{as_of}T00:00-12:00"),
    ):
        code, _, err = run(command[0], "--config", str(config), *command[1:])
        assert code == 3, (command, err)  # the demo's planted broken file, nothing else
        assert "internal error" not in err


def test_a_window_longer_than_ten_years_is_a_config_problem(tmp_path: Path) -> None:
    assert run("demo", str(tmp_path / "demo"), "--as-of", "2026-11-21", "--format", "json")[0] == 0
    config = tmp_path / "demo" / "calsync.toml"
    config.write_text(config.read_text().replace("lookback_days = 90", "lookback_days = 1000000000"))
    code, _, err = run("report", "--config", str(config), "--as-of", "2026-11-21")
    assert code == 2
    assert "[report] lookback_days: expected a whole number from 1 to 3660, got 1000000000" in err


def test_a_bad_calsync_config_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALSYNC_CONFIG", str(tmp_path / "missing.toml"))
    code, _, err = run("report")
    assert code == 2
    assert "$CALSYNC_CONFIG" in err and "missing.toml" in err
    code, _, err = run("report", "--config", str(tmp_path / "other.toml"))
    assert code == 2 and "$CALSYNC_CONFIG" not in err  # --config wins, and is what is named
    monkeypatch.delenv("CALSYNC_CONFIG")
    monkeypatch.chdir(tmp_path)
    code, _, err = run("report")
    assert code == 2 and "./calsync.toml" in err
