"""calsync.config: the TOML config file, its defaults, and how each problem is reported."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from calsync.config import (
    _SECTIONS,
    _SOURCE_KEYS,
    CadenceConfig,
    Config,
    ConfigError,
    DaemonConfig,
    GoogleSourceConfig,
    IcsSourceConfig,
    MicrosoftSourceConfig,
    ReportConfig,
    load_config,
)
from calsync.org import Exclusion

EXAMPLE = Path(__file__).resolve().parents[2] / "calsync" / "examples" / "calsync.example.toml"

MINIMAL = """\
[org]
domains = ["acme.test"]
roster = "org.csv"

[[sources]]
type = "ics"
path = "calendars"
"""


def ics_sources(config: Config) -> list[IcsSourceConfig]:
    assert all(isinstance(source, IcsSourceConfig) for source in config.sources)
    return [source for source in config.sources if isinstance(source, IcsSourceConfig)]


def setup_dir(tmp_path: Path, text: str = MINIMAL, name: str = "calsync.toml") -> Path:
    """A config file with an existing roster and calendars directory next to it."""
    (tmp_path / "org.csv").write_text("email,name,manager_email\n", encoding="utf-8")
    (tmp_path / "calendars").mkdir(exist_ok=True)
    config = tmp_path / name
    config.write_text(text, encoding="utf-8")
    return config


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def only_problem(path: Path) -> str:
    problems = problems_of(path)
    assert len(problems) == 1, problems
    return problems[0]


def replace(text: str, old: str, new: str, count: int = -1) -> str:
    assert old in text
    return text.replace(old, new, count)


# -- valid configs -----------------------------------------------------------------------------------


def test_minimal_config_gets_the_defaults(tmp_path):
    config = load_config(setup_dir(tmp_path))
    assert isinstance(config, Config)
    assert config.path == tmp_path / "calsync.toml"
    assert config.base_dir == tmp_path
    assert config.org.domains == ("acme.test",)
    assert config.org.roster == (tmp_path / "org.csv").resolve()
    assert config.org.timezone is None
    assert config.cadence == CadenceConfig(default_days=14, grace_days=3, skip_level_days=None)
    assert config.report == ReportConfig(lookback_days=90, lookahead_days=90)
    assert config.sources == (
        IcsSourceConfig(location=str((tmp_path / "calendars").resolve()), name="calendars"),
    )
    assert config.sources[0].timeout_seconds == 30.0
    assert config.sources[0].type == "ics"
    assert not config.sources[0].is_url


def test_every_key_is_read(tmp_path):
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "ann.ics").write_text("BEGIN:VCALENDAR\nEND:VCALENDAR\n", encoding="utf-8")
    text = """\
[org]
domains = ["ACME.test", "Example.Test", "acme.test"]
roster = "org.csv"
timezone = "Europe/Berlin"

[cadence]
default_days = 7
grace_days = 0
skip_level_days = 30

[report]
lookback_days = 30
lookahead_days = 14

[[sources]]
type = "ics"
path = "feeds/ann.ics"
name = "Ann"
timeout_seconds = 5
"""
    config = load_config(setup_dir(tmp_path, text))
    assert config.org.domains == ("acme.test", "example.test")
    assert config.org.timezone == "Europe/Berlin"
    assert config.cadence == CadenceConfig(default_days=7, grace_days=0, skip_level_days=30)
    assert config.report == ReportConfig(lookback_days=30, lookahead_days=14)
    (source,) = ics_sources(config)
    assert source.location == str((tmp_path / "feeds" / "ann.ics").resolve())
    assert source.name == "Ann"
    assert source.timeout_seconds == 5.0
    assert isinstance(source.timeout_seconds, float)


def test_paths_are_relative_to_the_config_file_not_the_cwd(tmp_path, monkeypatch):
    conf_dir = tmp_path / "etc" / "calsync"
    conf_dir.mkdir(parents=True)
    config_path = setup_dir(conf_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path(os.path.relpath(config_path, elsewhere)))
    assert config.path == config_path
    assert config.base_dir == conf_dir
    assert config.org.roster == (conf_dir / "org.csv").resolve()
    assert ics_sources(config)[0].location == str((conf_dir / "calendars").resolve())


def test_url_sources_are_kept_as_urls(tmp_path):
    text = (
        MINIMAL
        + """
[[sources]]
type = "ics"
path = "https://cal.example.test/ann.ics?token=abc"

[[sources]]
type = "ics"
path = "webcal://cal.example.test/bob.ics"
name = "Bob"
timeout_seconds = 2.5

[[sources]]
type = "ics"
path = "HTTP://cal.example.test/eve.ics"
"""
    )
    config = load_config(setup_dir(tmp_path, text))
    files, ann, bob, eve = ics_sources(config)
    assert not files.is_url
    assert ann.location == "https://cal.example.test/ann.ics?token=abc"
    assert ann.is_url
    assert ann.name == "https://cal.example.test/ann.ics"  # the token is a secret: not in the name
    assert bob.location == "https://cal.example.test/bob.ics"
    assert bob.is_url
    assert bob.name == "Bob"
    assert bob.timeout_seconds == 2.5
    assert eve.location == "http://cal.example.test/eve.ics"
    assert eve.is_url


def test_a_utf8_bom_is_tolerated(tmp_path):
    path = setup_dir(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_config(path).org.domains == ("acme.test",)


def test_the_example_config_parses_with_the_documented_defaults(tmp_path):
    config_path = tmp_path / "calsync.toml"
    shutil.copy(EXAMPLE, config_path)
    (tmp_path / "org.csv").write_text("email,name,manager_email\n", encoding="utf-8")
    (tmp_path / "calendars").mkdir()
    config = load_config(config_path)
    assert config.org.domains == ("acme.test",)
    assert config.org.roster == (tmp_path / "org.csv").resolve()
    assert config.org.timezone is None
    assert config.cadence == CadenceConfig()
    assert config.report == ReportConfig()
    assert config.sources == (
        IcsSourceConfig(location=str((tmp_path / "calendars").resolve()), name="calendars"),
    )


def test_the_example_config_documents_every_key():
    text = EXAMPLE.read_text(encoding="utf-8")
    for key in [
        "cadence_days",
        "manager_email",
        "[state]",
        '"microsoft-graph"',
        "[agenda]",
        "exclude_until",
        "[[exclude]]",
        "[digest]",
        "[smtp]",
        *(key for keys in _SECTIONS.values() for key in keys),
        *(key for keys in _SOURCE_KEYS.values() for key in keys),
    ]:
        assert f"{key} " in text or f"{key}\n" in text, key


def test_the_example_optional_keys_work_when_uncommented(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    for key in ("timezone", "skip_level_days", "name", "timeout_seconds"):
        text = replace(text, f"\n# {key} = ", f"\n{key} = ", count=1)
    config = load_config(setup_dir(tmp_path, text))
    assert config.org.timezone == "Europe/Berlin"
    assert config.cadence.skip_level_days == 30
    assert config.sources[0].name == "team calendars"
    assert config.sources[0].timeout_seconds == 30.0


# -- problems ---------------------------------------------------------------------------------------


def test_unknown_key_suggests_the_close_one(tmp_path):
    text = MINIMAL + "\n[cadence]\ndefault_dayz = 7\n"
    message = only_problem(setup_dir(tmp_path, text))
    assert message.startswith(str(tmp_path / "calsync.toml") + ": ")
    assert "[cadence] default_dayz: unknown key (did you mean 'default_days'?)" in message


def test_messages_start_with_the_path_as_given(tmp_path, monkeypatch):
    setup_dir(tmp_path, MINIMAL + "\n[cadence]\ndefault_dayz = 7\n")
    monkeypatch.chdir(tmp_path)
    message = only_problem(Path("calsync.toml"))
    assert message == "calsync.toml: [cadence] default_dayz: unknown key (did you mean 'default_days'?)"


def test_unknown_section_and_source_key(tmp_path):
    text = MINIMAL + 'paht = "x"\n\n[cadense]\ndefault_days = 7\n'
    problems = problems_of(setup_dir(tmp_path, text))
    assert len(problems) == 2
    assert "[cadense]: unknown section (did you mean [cadence]?)" in problems[0]
    assert "[[sources]] #1 paht: unknown key (did you mean 'path'?)" in problems[1]


def test_key_in_the_wrong_section_says_where_it_belongs(tmp_path):
    text = "grace_days = 2\n" + MINIMAL + "lookback_days = 30\n"
    problems = problems_of(setup_dir(tmp_path, text))
    assert len(problems) == 2
    assert "grace_days: unknown top-level key ('grace_days' belongs in the [cadence] section)" in problems[0]
    assert (
        "[[sources]] #1 lookback_days: unknown key ('lookback_days' belongs in the [report] section)"
        in (problems[1])
    )


def test_unknown_key_without_a_close_match_lists_the_known_ones(tmp_path):
    text = MINIMAL + "\n[report]\nzzz = 1\n"
    message = only_problem(setup_dir(tmp_path, text))
    assert "[report] zzz: unknown key (known: lookback_days, lookahead_days)" in message


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('"14"', 'got "14" (a string)'),
        ("true", "got true (a boolean)"),
        ("14.0", "got 14.0 (a decimal number)"),
        ("0", "got 0"),
        ("-3", "got -3"),
        ("[14]", "got [14] (an array)"),
    ],
)
def test_default_days_must_be_a_whole_number_of_at_least_one(tmp_path, value, shown):
    text = MINIMAL + f"\n[cadence]\ndefault_days = {value}\n"
    message = only_problem(setup_dir(tmp_path, text))
    assert (
        message
        == f"{tmp_path / 'calsync.toml'}: [cadence] default_days: expected a whole number from 1 to 3660, "
        f"{shown}"
    )


def test_wrong_type_message_matches_the_documented_form(tmp_path, monkeypatch):
    setup_dir(tmp_path, MINIMAL + '\n[cadence]\ndefault_days = "14"\n')
    monkeypatch.chdir(tmp_path)
    assert only_problem(Path("calsync.toml")) == (
        'calsync.toml: [cadence] default_days: expected a whole number from 1 to 3660, got "14" (a string)'
    )


def test_grace_days_may_be_zero_but_not_negative(tmp_path):
    assert load_config(setup_dir(tmp_path, MINIMAL + "\n[cadence]\ngrace_days = 0\n")).cadence.grace_days == 0
    message = only_problem(setup_dir(tmp_path, MINIMAL + "\n[cadence]\ngrace_days = -1\n"))
    assert "[cadence] grace_days: expected a whole number from 0 to 3660, got -1" in message


@pytest.mark.parametrize("key", ["lookback_days", "lookahead_days"])
def test_report_windows_must_be_positive(tmp_path, key):
    message = only_problem(setup_dir(tmp_path, MINIMAL + f"\n[report]\n{key} = 0\n"))
    assert f"[report] {key}: expected a whole number from 1 to 3660, got 0" in message


def test_skip_level_days_bool_and_zero_are_rejected(tmp_path):
    message = only_problem(setup_dir(tmp_path, MINIMAL + "\n[cadence]\nskip_level_days = false\n"))
    expected = "[cadence] skip_level_days: expected a whole number from 1 to 3660, got false (a boolean)"
    assert expected in message
    message = only_problem(setup_dir(tmp_path, MINIMAL + "\n[cadence]\nskip_level_days = 0\n"))
    assert "[cadence] skip_level_days: expected a whole number from 1 to 3660, got 0" in message


@pytest.mark.parametrize("value", ["0", "-1", "true", '"30"', "nan", "inf", "3601", "1e300"])
def test_timeout_must_be_a_positive_number(tmp_path, value):
    message = only_problem(setup_dir(tmp_path, MINIMAL + f"timeout_seconds = {value}\n"))
    assert (
        "[[sources]] #1 timeout_seconds: expected a number of seconds > 0 and at most 3600 (an hour), got "
        in message
    )


def test_missing_org_section(tmp_path):
    text = '[[sources]]\ntype = "ics"\npath = "calendars"\n'
    message = only_problem(setup_dir(tmp_path, text))
    assert "calsync.toml: [org]: missing section; add an [org] table" in message


def test_empty_org_section_names_the_missing_keys(tmp_path):
    text = replace(MINIMAL, 'domains = ["acme.test"]\nroster = "org.csv"\n', "")
    problems = problems_of(setup_dir(tmp_path, text))
    assert len(problems) == 2
    assert "[org] domains: missing; expected a non-empty list of email domains" in problems[0]
    assert "[org] roster: missing; expected the path of the roster CSV" in problems[1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            '"acme.test"',
            '[org] domains: expected a non-empty list of email domains like ["acme.test"], '
            'got "acme.test" (a string)',
        ),
        ("[]", "[org] domains: expected a non-empty list of email domains"),
        (
            '["@acme.test"]',
            '[org] domains #1: expected a domain name like "acme.test" (no "@", no spaces), '
            'got "@acme.test" (a string)',
        ),
        ('["acme test"]', "[org] domains #1: expected a domain name"),
        ('["acme.test", 3]', '[org] domains #2: expected a domain name like "acme.test", got 3'),
    ],
)
def test_bad_domains(tmp_path, value, expected):
    text = replace(MINIMAL, 'domains = ["acme.test"]', f"domains = {value}")
    assert expected in only_problem(setup_dir(tmp_path, text))


def test_missing_roster_file_names_the_resolved_path(tmp_path):
    text = replace(MINIMAL, 'roster = "org.csv"', 'roster = "people/roster.csv"')
    message = only_problem(setup_dir(tmp_path, text))
    assert f"[org] roster: file not found: {(tmp_path / 'people' / 'roster.csv').resolve()}" in message


def test_roster_must_be_a_file(tmp_path):
    text = replace(MINIMAL, 'roster = "org.csv"', 'roster = "calendars"')
    message = only_problem(setup_dir(tmp_path, text))
    assert f"[org] roster: not a file: {(tmp_path / 'calendars').resolve()}" in message


def test_missing_source_path_names_the_resolved_path(tmp_path):
    text = replace(MINIMAL, 'path = "calendars"', 'path = "../nowhere/cals"')
    message = only_problem(setup_dir(tmp_path, text))
    assert f"[[sources]] #1 path: not found: {(tmp_path.parent / 'nowhere' / 'cals').resolve()}" in message


def test_source_without_path_or_type(tmp_path):
    text = MINIMAL + "\n[[sources]]\nname = 'x'\n"
    problems = problems_of(setup_dir(tmp_path, text))
    assert len(problems) == 2
    assert "[[sources]] #2 type: missing; expected one of: ics" in problems[0]
    assert "[[sources]] #2 path: missing; expected a directory of .ics files" in problems[1]


def test_unknown_source_type(tmp_path):
    text = MINIMAL + '\n[[sources]]\ntype = "caldav"\npath = "calendars"\nname = "g"\n'
    message = only_problem(setup_dir(tmp_path, text))
    expected = '[[sources]] #2 type: unknown source type "caldav" (a string); expected one of: ics, google'
    assert expected in message


def test_unsupported_url_scheme(tmp_path):
    text = replace(MINIMAL, 'path = "calendars"', 'path = "ftp://cal.example.test/a.ics"')
    message = only_problem(setup_dir(tmp_path, text))
    assert "[[sources]] #1 path: unsupported URL scheme 'ftp'" in message


def test_duplicate_source_names(tmp_path):
    text = MINIMAL + '\n[[sources]]\ntype = "ics"\npath = "calendars"\n'
    message = only_problem(setup_dir(tmp_path, text))
    assert '[[sources]] #2 name: "calendars" (a string) is already the name of source #1' in message


def test_no_sources(tmp_path):
    text = '[org]\ndomains = ["acme.test"]\nroster = "org.csv"\n'
    message = only_problem(setup_dir(tmp_path, text))
    assert "[[sources]]: missing; add at least one [[sources]]" in message


def test_empty_sources_array(tmp_path):
    text = 'sources = []\n[org]\ndomains = ["acme.test"]\nroster = "org.csv"\n'
    assert "[[sources]]: empty; add at least one" in only_problem(setup_dir(tmp_path, text))


def test_a_section_name_used_as_a_key(tmp_path):
    text = '[org]\ndomains = ["acme.test"]\nroster = "org.csv"\nsources = []\n'
    problems = problems_of(setup_dir(tmp_path, text))
    assert (
        "[org] sources: unknown key ([[sources]] is a section of its own, not a key of [org])" in problems[0]
    )
    assert "[[sources]]: missing" in problems[1]


def test_sources_written_as_a_single_table(tmp_path):
    text = replace(MINIMAL, "[[sources]]", "[sources]")
    message = only_problem(setup_dir(tmp_path, text))
    assert "write [[sources]] (double brackets), not [sources]" in message


def test_invalid_timezone_suggests_the_right_spelling(tmp_path):
    text = replace(MINIMAL, 'roster = "org.csv"', 'roster = "org.csv"\ntimezone = "europe/berlin"')
    message = only_problem(setup_dir(tmp_path, text))
    assert '[org] timezone: unknown IANA time zone "europe/berlin"' in message
    assert 'did you mean "Europe/Berlin"?' in message


def test_unknown_timezone(tmp_path):
    text = replace(MINIMAL, 'roster = "org.csv"', 'roster = "org.csv"\ntimezone = "Mars/Olympus_Mons"')
    assert '[org] timezone: unknown IANA time zone "Mars/Olympus_Mons"' in only_problem(
        setup_dir(tmp_path, text)
    )


def test_toml_syntax_error_names_file_line_and_column(tmp_path):
    text = replace(MINIMAL, 'roster = "org.csv"', "roster = org.csv")
    message = only_problem(setup_dir(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'calsync.toml'}: invalid TOML: ")
    assert "line 3" in message
    assert "column" in message


def test_missing_config_file_says_what_to_do(tmp_path):
    path = tmp_path / "nope.toml"
    message = only_problem(path)
    assert message.startswith(f"{path}: cannot read the config file")
    assert "No such file or directory" in message
    assert "calsync demo" in message


def test_config_path_that_is_a_directory(tmp_path):
    assert "cannot read the config file" in only_problem(tmp_path)


def test_config_that_is_not_utf8(tmp_path):
    path = tmp_path / "calsync.toml"
    path.write_bytes(b"[org]\ndomains = ['\xff']\n")
    assert "not valid UTF-8" in only_problem(path)


def test_all_problems_are_reported_together(tmp_path):
    text = """\
[org]
domains = "acme.test"
roster = "missing.csv"
timezone = "Nowhere/Land"

[cadence]
default_dayz = 7
grace_days = true

[report]
lookback_days = 0

[[sources]]
type = "caldav"
path = "no-such-dir"
"""
    problems = problems_of(setup_dir(tmp_path, text))
    keys = [p.split(": ")[1] for p in problems]
    assert keys == [
        "[org] domains",
        "[org] roster",
        "[org] timezone",
        "[cadence] default_dayz",
        "[cadence] grace_days",
        "[report] lookback_days",
        "[[sources]] #1 type",
        "[[sources]] #1 path",
    ]
    assert all(p.startswith(str(tmp_path / "calsync.toml") + ": ") for p in problems)


def test_config_error_from_a_single_message():
    error = ConfigError("calsync.toml: bad")
    assert error.problems == ["calsync.toml: bad"]
    assert str(error) == "calsync.toml: bad"


GOOGLE = """
[[sources]]
type = "google"
name = "workspace"
service_account_key = "sa.json"
calendars = ["Ann@Acme.test", "bob@acme.test"]
endpoint = "https://127.0.0.1:8443/calendar/v3/"
ca_bundle = "ca.pem"
timeout_seconds = 5
"""


def test_google_source_keys(tmp_path):
    path = setup_dir(tmp_path, MINIMAL + GOOGLE + '\n[state]\npath = "var/state.json"\n')
    (tmp_path / "sa.json").write_text("{}")
    (tmp_path / "ca.pem").write_text("x")
    config = load_config(path)
    google = config.sources[1]
    assert isinstance(google, GoogleSourceConfig)
    assert google.name == "workspace"
    assert google.service_account_key == (tmp_path / "sa.json").resolve()
    assert google.calendars == ("ann@acme.test", "bob@acme.test")
    assert google.endpoint == "https://127.0.0.1:8443/calendar/v3/"
    assert google.ca_bundle == (tmp_path / "ca.pem").resolve()
    assert google.timeout_seconds == 5
    assert config.state is not None and config.state.path == (tmp_path / "var" / "state.json").resolve()


def test_google_source_defaults_and_state_default(tmp_path):
    path = setup_dir(tmp_path, MINIMAL + '\n[[sources]]\ntype = "google"\nservice_account_key = "sa.json"\n')
    (tmp_path / "sa.json").write_text("{}")
    config = load_config(path)
    google = config.sources[1]
    assert isinstance(google, GoogleSourceConfig)
    assert (google.name, google.calendars, google.endpoint, google.ca_bundle) == ("google", None, None, None)
    assert config.state is not None and config.state.path == (tmp_path / "calsync-state.json").resolve()


def test_google_source_problems_are_all_reported(tmp_path):
    bad = (
        GOOGLE.replace('calendars = ["Ann@Acme.test", "bob@acme.test"]', 'calendars = "ann"').replace(
            "https://127.0.0.1", "http://127.0.0.1"
        )
        + 'path = "calendars"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(setup_dir(tmp_path, MINIMAL + bad))
    text = str(caught.value)
    assert "[[sources]] #2 service_account_key: not found" in text
    assert "[[sources]] #2 ca_bundle: not found" in text
    assert "[[sources]] #2 calendars: expected a list of email addresses" in text
    assert "[[sources]] #2 endpoint: expected an https:// URL" in text
    assert "[[sources]] #2 path: unknown key" in text  # an ics key on a google source


def test_google_source_takes_exactly_one_way_to_sign_in(tmp_path):
    (tmp_path / "sa.json").write_text("{}")
    (tmp_path / "token.json").write_text("{}")
    both = '\n[[sources]]\ntype = "google"\nservice_account_key = "sa.json"\ntoken_file = "token.json"\n'
    with pytest.raises(ConfigError, match="set exactly one of service_account_key"):
        load_config(setup_dir(tmp_path, MINIMAL + both))
    neither = '\n[[sources]]\ntype = "google"\n'
    with pytest.raises(ConfigError, match="set exactly one of service_account_key"):
        load_config(setup_dir(tmp_path, MINIMAL + neither))
    personal = load_config(
        setup_dir(tmp_path, MINIMAL + '\n[[sources]]\ntype = "google"\ntoken_file = "token.json"\n')
    )
    google = personal.sources[1]
    assert isinstance(google, GoogleSourceConfig)
    assert google.token_file == (tmp_path / "token.json").resolve() and google.service_account_key is None


def test_roster_from_the_google_directory_needs_an_admin_and_a_service_account(tmp_path):
    (tmp_path / "sa.json").write_text("{}")
    directory = MINIMAL.replace('roster = "org.csv"', 'roster = "google-directory"')
    with pytest.raises(ConfigError) as caught:
        load_config(setup_dir(tmp_path, directory))
    text = str(caught.value)
    assert '[org] directory_admin: required with roster = "google-directory"' in text
    with_admin = directory.replace(
        'roster = "google-directory"', 'roster = "google-directory"\ndirectory_admin = "it@acme.test"'
    )
    with pytest.raises(ConfigError, match="needs a google source with a service_account_key"):
        load_config(setup_dir(tmp_path, with_admin))
    google = '\n[[sources]]\ntype = "google"\nservice_account_key = "sa.json"\ndirectory_endpoint = "https://127.0.0.1:1/"\n'
    config = load_config(setup_dir(tmp_path, with_admin + google))
    assert config.org.roster is None and config.org.directory_admin == "it@acme.test"
    source = config.sources[1]
    assert isinstance(source, GoogleSourceConfig) and source.directory_endpoint == "https://127.0.0.1:1/"


MICROSOFT = """
[[sources]]
type = "microsoft"
name = "m365"
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "CALSYNC_M365_SECRET"
mailboxes = ["Ann@Acme.test", "bob@acme.test"]
authority_host = "https://127.0.0.1:8443/"
graph_endpoint = "https://127.0.0.1:8443/v1.0/"
ca_bundle = "ca.pem"
timeout_seconds = 5
"""


def test_microsoft_source_keys(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    config = load_config(setup_dir(tmp_path, MINIMAL + MICROSOFT))
    source = config.sources[1]
    assert isinstance(source, MicrosoftSourceConfig)
    assert (source.name, source.tenant, source.client_id) == (
        "m365",
        "contoso.onmicrosoft.com",
        "11111111-2222-3333-4444-555555555555",
    )
    assert source.client_secret_env == "CALSYNC_M365_SECRET" and source.app_only
    assert source.mailboxes == ("ann@acme.test", "bob@acme.test")
    assert source.authority == "https://127.0.0.1:8443/contoso.onmicrosoft.com"
    assert source.graph_endpoint == "https://127.0.0.1:8443/v1.0"
    assert source.ca_bundle == (tmp_path / "ca.pem").resolve() and source.timeout_seconds == 5


def test_microsoft_source_defaults(tmp_path):
    (tmp_path / "cache.json").write_text("{}")
    text = '\n[[sources]]\ntype = "microsoft"\ntenant = "t"\nclient_id = "c"\ntoken_cache = "cache.json"\n'
    source = load_config(setup_dir(tmp_path, MINIMAL + text)).sources[1]
    assert isinstance(source, MicrosoftSourceConfig)
    assert source.name == "microsoft" and source.mailboxes is None and not source.app_only
    assert source.authority == "https://login.microsoftonline.com/t"
    assert source.graph_endpoint == "https://graph.microsoft.com/v1.0"
    assert source.token_cache == (tmp_path / "cache.json").resolve()


def test_microsoft_source_takes_exactly_one_credential_and_never_the_secret_itself(tmp_path):
    (tmp_path / "secret").write_text("s3cret")
    base = '\n[[sources]]\ntype = "microsoft"\ntenant = "t"\nclient_id = "c"\n'
    with pytest.raises(ConfigError, match="set exactly one of client_secret_file"):
        load_config(setup_dir(tmp_path, MINIMAL + base))
    both = base + 'client_secret_file = "secret"\nclient_secret_env = "X"\n'
    with pytest.raises(ConfigError, match="got client_secret_file, client_secret_env"):
        load_config(setup_dir(tmp_path, MINIMAL + both))
    inline = base + 'client_secret = "s3cret"\n'
    problems = problems_of(setup_dir(tmp_path, MINIMAL + inline))
    assert any("client_secret: unknown key" in p for p in problems), problems
    assert not any("s3cret" in p for p in problems)
    value = base + 'client_secret_env = "SECRET=s3cret"\n'
    text = only_problem(setup_dir(tmp_path, MINIMAL + value))
    assert "the NAME of an environment variable" in text and "s3cret" not in text
    ok = load_config(setup_dir(tmp_path, MINIMAL + base + 'client_secret_file = "secret"\n')).sources[1]
    assert isinstance(ok, MicrosoftSourceConfig) and ok.client_secret_file == (tmp_path / "secret").resolve()


def test_microsoft_source_problems_are_all_reported(tmp_path):
    text = (
        '\n[[sources]]\ntype = "microsoft"\ntenant = ""\nclient_id = 7\ncertificate_file = "nope.pem"\n'
        'mailboxes = ["ann"]\ngraph_endpoint = "http://graph"\nservice_account_key = "sa.json"\n'
    )
    joined = "\n".join(problems_of(setup_dir(tmp_path, MINIMAL + text)))
    for expected in (
        "#2 tenant: expected the directory (tenant) ID",
        "#2 client_id: expected the application (client) ID",
        "#2 certificate_file: not found",
        "#2 mailboxes: expected a list of email addresses",
        "#2 graph_endpoint: expected an https:// URL",
        "#2 service_account_key: unknown key",
    ):
        assert expected in joined, joined


def test_roster_from_microsoft_graph_needs_a_microsoft_source(tmp_path):
    chart = MINIMAL.replace('roster = "org.csv"', 'roster = "microsoft-graph"')
    with pytest.raises(ConfigError, match='"microsoft-graph" needs a microsoft source'):
        load_config(setup_dir(tmp_path, chart))
    (tmp_path / "ca.pem").write_text("x")
    config = load_config(setup_dir(tmp_path, chart + MICROSOFT))
    assert config.org.roster is None and config.org.org_chart == "microsoft-graph"
    assert config.org.directory_admin is None


# -- [agenda] -----------------------------------------------------------------------------------------


def test_agenda_defaults_and_the_default_backend_per_source(tmp_path):
    from calsync.config import AgendaConfig, agenda_backend

    config = load_config(setup_dir(tmp_path))
    assert config.agenda == AgendaConfig()
    assert agenda_backend(config.sources[0], None) == "none"  # an ICS source without a directory
    text = (
        MINIMAL
        + '[agenda]\nmode = "rolling"\nlead_days = 0\ndirectory = "out"\nbase_url = "https://a.test/x"\n'
    )
    config = load_config(setup_dir(tmp_path, text))
    assert config.agenda.mode == "rolling" and config.agenda.lead_days == 0
    assert config.agenda.directory == (tmp_path / "out").resolve()
    assert config.agenda.base_url == "https://a.test/x/"
    assert agenda_backend(config.sources[0], config.agenda.directory) == "local"


def test_agenda_problems_are_reported_together(tmp_path):
    text = MINIMAL.replace('path = "calendars"', 'path = "calendars"\nagendas = "google-docs"') + (
        '[agenda]\nmode = "weekly"\nbase_url = "ftp://x"\ntemplates = "nope"\nlead_dayz = 2\n'
    )
    problems = "\n".join(problems_of(setup_dir(tmp_path, text)))
    assert "agendas: expected one of 'local', 'none' for a ics source, got \"google-docs\"" in problems
    assert '[agenda] mode: expected "per-meeting"' in problems
    assert "[agenda] base_url: expected an http(s):// URL" in problems
    assert "[agenda] templates: not a directory" in problems
    assert "[agenda] lead_dayz: unknown key (did you mean 'lead_days'?)" in problems


def test_a_local_backend_needs_a_directory_and_a_base_url(tmp_path):
    text = MINIMAL.replace('path = "calendars"', 'path = "calendars"\nagendas = "local"')
    problems = "\n".join(problems_of(setup_dir(tmp_path, text)))
    assert "[agenda] directory: a source writes its agendas" in problems


# -- [[exclude]], [digest], [smtp] ---------------------------------------------------------------------


def test_exclusions_digest_and_smtp_are_read(tmp_path):
    (tmp_path / "smtp-password").write_text("pw\n")
    text = MINIMAL + (
        '\n[[exclude]]\nemail = "Lena@acme.test"\nreason = "sabbatical"\nuntil = 2027-03-31\n'
        '\n[[exclude]]\nemail = "sam@acme.test"\n'
        '\n[digest]\nleaders = ["Maya@acme.test"]\nday = "Friday"\nhour = 17\nreply_to = "hr@acme.test"\n'
        '\n[smtp]\nhost = "smtp.acme.test"\nsecurity = "ssl"\nusername = "calsync"\n'
        'password_file = "smtp-password"\n'
    )
    config = load_config(setup_dir(tmp_path, text))
    assert config.exclusions == (
        Exclusion("lena@acme.test", "sabbatical", date(2027, 3, 31), source="config"),
        Exclusion("sam@acme.test", "excluded", None, source="config"),
    )
    digest = config.digest
    assert digest.leaders == ("maya@acme.test",) and (digest.weekday, digest.hour) == (4, 17)
    assert str(digest.sender) == "calsync@acme.test" and str(digest.reply_to) == "hr@acme.test"
    assert digest.delivery == "smtp" and digest.when_incomplete == "wait"
    smtp = config.smtp
    assert smtp is not None and (smtp.host, smtp.port, smtp.security) == ("smtp.acme.test", 465, "ssl")
    assert smtp.password_file == tmp_path / "smtp-password" and smtp.password_env is None


def test_digest_defaults_and_outbox(tmp_path):
    config = load_config(setup_dir(tmp_path, MINIMAL + '\n[digest]\ndelivery = "outbox"\n'))
    assert config.digest.outbox == tmp_path / "outbox"
    assert (config.digest.weekday, config.digest.hour) == (0, 8)
    assert config.smtp is None
    login = MINIMAL + '\n[smtp]\nhost = "mail.acme.test"\nusername = "me"\n'
    smtp = load_config(setup_dir(tmp_path, login)).smtp
    assert smtp is not None and smtp.port == 587 and smtp.password_env == "CALSYNC_SMTP_PASSWORD"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[exclude]]\nreason = "x"\n', "[[exclude]] #1 email: expected the email of a person"),
        (
            '[[exclude]]\nemail = "a@acme.test"\nuntil = "soon"\n',
            "[[exclude]] #1 until: expected the last day",
        ),
        ('[[exclude]]\nemail = "a@acme.test"\nuntl = 2027-01-01\n', "unknown key (did you mean 'until'?)"),
        ('[digest]\nday = "mon"\n', '[digest] day: expected a day of the week like "monday"'),
        ("[digest]\nhour = 24\n", "[digest] hour: expected an hour from 0 to 23, got 24"),
        ('[digest]\nfrom = "not an address"\n', "[digest] from: expected an address"),
        ('[digest]\ndelivery = "pigeon"\n', '[digest] delivery: expected "smtp"'),
        ("[digest]\nleaders = []\n", "[digest] leaders: expected a non-empty list"),
        ('[digest]\nwhen_incomplete = "maybe"\n', '[digest] when_incomplete: expected "wait"'),
        ('[smtp]\nhost = "smtp://x"\n', "[smtp] host: expected the mail server's host name"),
        ('[smtp]\nhost = "x"\nsecurity = "tls"\n', '[smtp] security: expected "starttls"'),
        ('[smtp]\nhost = "x"\nport = 0\n', "[smtp] port: expected a port number"),
        ('[smtp]\nhost = "x"\nsecurity = "none"\nusername = "u"\n', "would send the password in clear"),
        ('[smtp]\nhost = "x"\npassword_env = "P"\n', "a password is set but no username"),
        ('[smtp]\nhost = "x"\nusername = "u"\npassword_env = "hunter2=x"\n', "never the password itself"),
    ],
)
def test_bad_digest_settings_are_named(tmp_path, text, expected):
    message = only_problem(setup_dir(tmp_path, MINIMAL + "\n" + text))
    assert expected in message, message
    assert "hunter2" not in message


def test_a_choice_of_the_wrong_type_is_named(tmp_path):
    message = only_problem(setup_dir(tmp_path, MINIMAL + '\n[smtp]\nhost = "x"\nsecurity = ["ssl"]\n'))
    assert (
        '[smtp] security: expected "starttls" (port 587), "ssl" (implicit TLS, port 465) or "none"' in message
    )


# -- [daemon], and what systemd passes in the environment ---------------------------------------------


def test_daemon_defaults_and_durations(tmp_path):
    config = load_config(setup_dir(tmp_path))
    assert config.daemon == DaemonConfig()
    assert config.daemon.sync_interval == 300 and config.daemon.jitter_seconds == 30
    assert config.daemon.listen == ("127.0.0.1", 9468)
    text = (
        MINIMAL
        + '[daemon]\nsync_interval = "90s"\nlisten = "off"\nreport = "out/r.json"\nunhealthy_after = 5\n'
    )
    config = load_config(setup_dir(tmp_path, text))
    assert config.daemon.sync_interval == 90 and config.daemon.jitter_seconds == 9
    assert config.daemon.listen is None
    assert config.daemon.report == tmp_path / "out" / "r.json"
    assert config.daemon.unhealthy_after == 5
    for value, seconds in (('"5m"', 300), ('"1h"', 3600), ("42", 42), ("2.5", 2.5)):
        config = load_config(setup_dir(tmp_path, MINIMAL + f"[daemon]\nsync_interval = {value}\n"))
        assert config.daemon.sync_interval == seconds


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('sync_interval = "5 minutes"', r'\[daemon\] sync_interval: expected a duration .* got "5 minutes"'),
        ("sync_interval = 0", r"\[daemon\] sync_interval: expected a duration from 1 s to 604800 s"),
        ('jitter = "10m"', r"\[daemon\] jitter: must be shorter than sync_interval \(300 s\)"),
        ('listen = "9468"', r'\[daemon\] listen: expected "host:port"'),
        ('listen = "127.0.0.1:99999"', r'\[daemon\] listen: expected "host:port"'),
        ("unhealthy_after = 0", r"\[daemon\] unhealthy_after: expected a whole number from 1 to 1000"),
        ("interval = 5", r"\[daemon\] interval: unknown key"),
    ],
)
def test_daemon_problems_name_the_key(tmp_path, line, expected):
    import re

    problem = only_problem(setup_dir(tmp_path, MINIMAL + f"[daemon]\n{line}\n"))
    assert re.search(expected, problem), problem


def test_paths_expand_environment_variables_such_as_systemds_credentials(tmp_path, monkeypatch):
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "smtp-password").write_text("pw")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    text = (
        MINIMAL
        + '[smtp]\nhost = "mail.acme.test"\nusername = "calsync"\n'
        + 'password_file = "${CREDENTIALS_DIRECTORY}/smtp-password"\n'
    )
    config = load_config(setup_dir(tmp_path, text))
    assert config.smtp is not None and config.smtp.password_file == credentials / "smtp-password"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    text = MINIMAL + '[state]\npath = "$NOT_SET_ANYWHERE/state.json"\n'
    config = load_config(setup_dir(tmp_path, text))
    assert config.state is not None and "$NOT_SET_ANYWHERE" in str(config.state.path)  # left as written


def test_the_state_goes_to_systemds_state_directory_unless_set(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/calsync")
    config = load_config(setup_dir(tmp_path))
    assert config.state is not None and config.state.path == Path("/var/lib/calsync/calsync-state.json")
    config = load_config(setup_dir(tmp_path, MINIMAL + '[state]\npath = "mine.json"\n'))
    assert config.state is not None and config.state.path == tmp_path / "mine.json"


# -- fair flags: [[absence]], [org] holidays and weekend, [detect], an ICS source's owner --------------


def test_fair_flag_settings_are_read(tmp_path: Path) -> None:
    from calsync.absence import AbsenceEntry

    text = MINIMAL.replace(
        'roster = "org.csv"', 'roster = "org.csv"\nholidays = "de-by"\nweekend = ["Friday", "saturday"]'
    )
    text += (
        '\n[detect]\nignore_attendees = ["EA@acme.test", "*@Notetaker.example", "ea@acme.test"]\n'
        '\n[[absence]]\nemail = "Ann@acme.test"\nfrom = 2026-12-21\nuntil = "2027-01-01"\nreason = "leave"\n'
    )
    config = load_config(setup_dir(tmp_path, text))
    assert config.org.holidays == "DE-BY" and config.org.weekend == (4, 5)
    assert config.detect.ignore_attendees == ("ea@acme.test", "*@notetaker.example")
    assert config.absences == (AbsenceEntry("ann@acme.test", date(2026, 12, 21), date(2027, 1, 1), "leave"),)
    (tmp_path / "d").mkdir()
    default = load_config(setup_dir(tmp_path / "d"))
    assert (default.org.holidays, default.org.weekend, default.detect.ignore_attendees) == (None, (5, 6), ())


def test_a_single_ics_file_may_name_its_owner_and_a_directory_may_not(tmp_path: Path) -> None:
    config = setup_dir(
        tmp_path, MINIMAL.replace('path = "calendars"', 'path = "one.ics"\nowner = "Ann@acme.test"')
    )
    (tmp_path / "one.ics").write_text("BEGIN:VCALENDAR\nEND:VCALENDAR\n", encoding="utf-8")
    assert ics_sources(load_config(config))[0].owner == "ann@acme.test"
    config.write_text(MINIMAL.replace('path = "calendars"', 'path = "calendars"\nowner = "ann@acme.test"'))
    assert "name each file after its owner" in only_problem(config)


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ('[org]\nholidays = "XX"', "[org] holidays: 'XX' is not a country code"),
        ('[org]\nholidays = "DE-ZZ"', "[org] holidays: 'ZZ' is not a subdivision of DE"),
        ('[org]\nweekend = ["caturday"]', "[org] weekend: expected a list of days of the week"),
        ('[detect]\nignore_attendees = "ea@acme.test"', "[detect] ignore_attendees: expected a list"),
        ('[detect]\nignore_attendees = ["ea@*.test"]', 'is neither an address nor a "*@domain" pattern'),
        ("[[absence]]\nfrom = 2026-01-01\nuntil = 2026-01-02", "[[absence]] #1 email: expected the email"),
        (
            '[[absence]]\nemail = "a@acme.test"\nfrom = 2026-01-02\nuntil = 2026-01-01',
            "until is the last day away",
        ),
        (
            '[[absence]]\nemail = "a@acme.test"\nfrom = "soon"\nuntil = 2026-01-01',
            "[[absence]] #1 from: expected",
        ),
        (
            '[[absence]]\nemail = "a@acme.test"\nfrom = 2026-01-01\nuntill = 2026-01-02',
            "did you mean 'until'?",
        ),
    ],
)
def test_fair_flag_settings_that_are_wrong_say_so(tmp_path: Path, snippet: str, expected: str) -> None:
    if snippet.startswith("[org]"):
        text = MINIMAL.replace('roster = "org.csv"', 'roster = "org.csv"\n' + snippet.split("\n", 1)[1])
    else:
        text = MINIMAL + "\n" + snippet + "\n"
    problems = problems_of(setup_dir(tmp_path, text))
    assert any(expected in p for p in problems), problems
