"""Hostile config files (from a fuzzing campaign): every one is a config error (exit 2) with a clear
message, within seconds; never an internal error (exit 1), a hang, or a secret repeated back."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from calsync.cli import main
from calsync.config import (
    MAX_INTERVAL_SECONDS,
    MAX_SPAN_DAYS,
    MAX_TIMEOUT_SECONDS,
    ConfigError,
    load_config,
)
from calsync.doctor import run_checks

HEAD = """\
[org]
domains = ["acme.test"]
roster = "org.csv"

[[sources]]
type = "ics"
path = "calendars"
"""

ROSTER = "email,name,manager_email\nann@acme.test,Ann,\nbob@acme.test,Bob,ann@acme.test\n"


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "org.csv").write_text(ROSTER, encoding="utf-8")
    (tmp_path / "calendars").mkdir(exist_ok=True)
    config = tmp_path / "calsync.toml"
    config.write_text(text, encoding="utf-8")
    return config


def run(config: Path, *args: str) -> tuple[int, str, str]:
    """``calsync report`` (or ``args``) on ``config``: (exit code, stdout, stderr), within seconds."""
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    code = main([*(args or ("report",)), "--config", str(config)], out, err)
    assert time.monotonic() - started < 10
    return code, out.getvalue(), err.getvalue()


def problems(config: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(config)
    return info.value.problems


# -- numbers: every one bounded, the range in the message ----------------------------------------------


@pytest.mark.parametrize(
    ("section", "line", "expected"),
    [
        ("report", "lookback_days = 1000000", f"from 1 to {MAX_SPAN_DAYS}"),
        ("report", "lookback_days = 1000000000", f"from 1 to {MAX_SPAN_DAYS}"),
        ("report", "lookahead_days = 1000000", f"from 1 to {MAX_SPAN_DAYS}"),
        ("report", "lookahead_days = -5", f"from 1 to {MAX_SPAN_DAYS}"),
        ("cadence", "default_days = 99999999999999999", f"from 1 to {MAX_SPAN_DAYS}"),
        ("cadence", "grace_days = -1", f"from 0 to {MAX_SPAN_DAYS}"),
        ("agenda", "lead_days = 1000000", f"from 0 to {MAX_SPAN_DAYS}"),
        ("daemon", "sync_interval = 1e300", f"from 1 s to {MAX_INTERVAL_SECONDS} s"),
        ("daemon", f'sync_interval = "{"9" * 400}s"', f"from 1 s to {MAX_INTERVAL_SECONDS} s"),
        ("daemon", 'sync_interval = "100000h"', f"from 1 s to {MAX_INTERVAL_SECONDS} s"),
        ("daemon", "jitter = -1", f"from 0 s to {MAX_INTERVAL_SECONDS} s"),
        ("daemon", "unhealthy_after = 9223372036854775807", "from 1 to 1000"),
    ],
)
def test_huge_or_negative_numbers_are_config_errors_with_the_range(tmp_path, section, line, expected):
    config = write(tmp_path, HEAD + f"[{section}]\n{line}\n")
    [problem] = problems(config)
    key = line.split(" = ")[0]
    assert f"[{section}] {key}: expected" in problem and expected in problem, problem
    code, _, err = run(config)
    assert code == 2, err
    assert "internal error" not in err and expected in err


def test_a_huge_timeout_is_a_config_error(tmp_path):
    config = write(tmp_path, HEAD + "timeout_seconds = 1e300\n")
    [problem] = problems(config)
    assert f"timeout_seconds: expected a number of seconds > 0 and at most {MAX_TIMEOUT_SECONDS}" in problem


# -- structure and paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("opening", ["[", "{a = "])
def test_values_nested_hundreds_deep_are_a_config_error(tmp_path, opening):
    closing = "]" if opening == "[" else "}"
    config = write(tmp_path, HEAD + "[report]\nlookback_days = " + opening * 500 + closing * 500 + "\n")
    [problem] = problems(config)
    assert "nested hundreds deep" in problem
    code, _, err = run(config)
    assert code == 2 and "internal error" not in err and "nested hundreds deep" in err


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('roster = "org.csv"', f'roster = "{"a" * 5000}"'),
        ('path = "calendars"', f'path = "{"a" * 300}"'),
        ('path = "calendars"', f'path = "calendars/{"b" * 300}.ics"'),
    ],
)
def test_a_path_longer_than_the_file_system_allows_is_a_config_error(tmp_path, old, new):
    config = write(tmp_path, HEAD.replace(old, new))
    [problem] = problems(config)
    assert "File name too long" in problem and len(problem) < 400, problem
    code, _, err = run(config)
    assert code == 2 and "internal error" not in err and "File name too long" in err


@pytest.mark.parametrize(
    "extra",
    [
        f'[state]\npath = "{"s" * 300}.json"\n',
        f'[daemon]\nreport = "{"r" * 300}.json"\n',
        f'[agenda]\ntemplates = "{"t" * 300}"\n',
        f'[digest]\ndelivery = "outbox"\noutbox = "{"o" * 300}"\n',
    ],
)
def test_every_over_long_path_is_a_config_error(tmp_path, extra):
    [problem] = problems(write(tmp_path, HEAD + extra))
    assert "File name too long" in problem, problem


def test_a_config_that_is_a_directory_or_a_device_is_a_config_error(tmp_path):
    for path in (tmp_path, Path("/dev/zero")):
        code, _, err = run(path)
        assert code == 2 and "internal error" not in err, err


def test_a_config_path_longer_than_the_file_system_allows_is_a_config_error(tmp_path):
    code, _, err = run(tmp_path / ("c" * 300 + ".toml"))
    assert code == 2 and "File name too long" in err and "internal error" not in err


def test_an_unreadable_config_is_a_config_error(tmp_path, monkeypatch):
    config = write(tmp_path, HEAD)
    config.chmod(0)
    if os.access(config, os.R_OK):  # root reads whatever the mode: the system refuses it here instead
        real_open = Path.open

        def refusing(self: Path, *args: object, **kwargs: object) -> object:
            if self == config:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

        monkeypatch.setattr(Path, "open", refusing)
    try:
        code, _, err = run(config)
    finally:
        config.chmod(0o600)
    assert code == 2 and "cannot read the config file (Permission denied)" in err


# -- a secret typed where a variable's name belongs ----------------------------------------------------

MICROSOFT = """
[[sources]]
type = "microsoft"
name = "graph"
tenant = "acme.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret_env = "{value}"
"""

SMTP = """
[digest]
delivery = "smtp"

[smtp]
host = "smtp.acme.test"
username = "calsync"
password_env = "{value}"
"""

SECRETS = [
    "Q8~xYz.Ab_Cd-EfGhIjKlMnOpQrStUvWxabc123",
    "hunter2!correct horse",
    "9LIVES",
    "a b",
    "X=zq9v-s3cr3t",
]


def fragments(secret: str) -> list[str]:
    """Parts of ``secret`` that must not appear anywhere: every run of 5 characters of it (or all)."""
    return [secret[i : i + 5] for i in range(max(1, len(secret) - 4))]


@pytest.mark.parametrize("template", [MICROSOFT, SMTP], ids=["client_secret_env", "password_env"])
@pytest.mark.parametrize("secret", SECRETS)
def test_a_secret_typed_as_a_variable_name_is_refused_without_repeating_it(tmp_path, template, secret):
    config = write(tmp_path, HEAD + template.format(value=secret))
    key = "client_secret_env" if template is MICROSOFT else "password_env"
    [problem] = problems(config)
    assert key in problem and "the NAME of an environment variable" in problem
    code, out, err = run(config)
    json_code, json_out, json_err = run(config, "report", "--format", "json")
    doctor = run_checks(config)
    doctor_text = "\n".join(f"{c.name} {c.detail} {c.fix}" for c in doctor)
    assert code == 2 and json_code == 2 and not doctor[0].ok
    assert key in doctor_text
    for text in (problem, out, err, json_out, json_err, doctor_text):
        for part in fragments(secret):
            assert part not in text, (part, text)


@pytest.mark.parametrize("template", [MICROSOFT, SMTP], ids=["client_secret_env", "password_env"])
def test_a_variable_name_is_still_accepted(tmp_path, template):
    config = load_config(write(tmp_path, HEAD + template.format(value=" CALSYNC_SECRET_2 ")))
    if template is MICROSOFT:
        assert config.sources[1].client_secret_env == "CALSYNC_SECRET_2"  # type: ignore[union-attr]
    else:
        assert config.smtp is not None and config.smtp.password_env == "CALSYNC_SECRET_2"


def test_a_secret_given_as_a_number_is_not_repeated_either(tmp_path):
    config = write(tmp_path, HEAD + MICROSOFT.replace('"{value}"', "{value}").format(value="8675309123"))
    [problem] = problems(config)
    assert "8675309" not in problem and "a whole number" in problem
