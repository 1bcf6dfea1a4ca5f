"""`calsync doctor` against the fakes: Graph (through real msal and requests), Google (through the real
client libraries), a real SMTP server (aiosmtpd) and ICS files, all on 127.0.0.1."""

from __future__ import annotations

import argparse
import io
import json
import os
import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from calsync.cli import build_parser
from calsync.doctor import Check, cmd_doctor, render_checks, run_checks
from calsync.sources.google import READ_SCOPES
from calsync.sources.ics import IcsSource
from calsync.store import CalendarState, StateStore
from tests.fakes.google import FakeGoogle
from tests.fakes.graph import FakeGraph
from tests.fakes.smtp import SmtpFake

pytestmark = pytest.mark.usefixtures("loopback_only")

MAYA, OMAR, ZOE = "maya@acme.test", "omar@acme.test", "zoe@acme.test"
LEE = "lee@acme.test"
ROSTER = (
    f"email,name,manager_email\n{OMAR},Omar Haddad,{MAYA}\n{MAYA},Maya Chen,\n{ZOE},Zoe Park,{MAYA}\n"
    f"{LEE},Lee Kim,{OMAR}\n"
)
ORG = '[org]\ndomains = ["acme.test"]\nroster = "org.csv"\ntimezone = "Europe/Berlin"\n'
CLIENT_ID = "5e1f0c2a-calsync-doctor"
SECRET = "correct horse battery staple"
WRONG_SECRET = "Q~not-the-secret-but-close-enough"
SMTP_PASSWORD = "s3cret-smtp-password"
NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)
EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//calsync tests//EN
BEGIN:VEVENT
UID:maya-omar@acme.test
DTSTAMP:20261101T000000Z
DTSTART:20261116T090000Z
DTEND:20261116T093000Z
SUMMARY:Maya / Omar
ORGANIZER:mailto:maya@acme.test
ATTENDEE;PARTSTAT=ACCEPTED:mailto:maya@acme.test
ATTENDEE;PARTSTAT=ACCEPTED:mailto:omar@acme.test
END:VEVENT
END:VCALENDAR
"""


def doctor(config: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cmd_doctor(config, out, err)
    return code, out.getvalue(), err.getvalue()


def lines_of(output: str) -> dict[str, str]:
    """Each check's first line by the check's name, e.g. {"smtp": "[ ok ] smtp: ..."}."""
    found = {}
    for line in output.splitlines():
        if line.startswith(("[ ok ] ", "[FAIL] ")):
            name, _, rest = line[7:].partition(": ")
            if name.startswith("source ") and rest.startswith(("sign-in", "read")):
                name += ": " + rest.partition(": ")[0]
            found[name] = line
    return found


def smtp_section(fake: SmtpFake, password_file: Path) -> str:
    return (
        f'[smtp]\nhost = "127.0.0.1"\nport = {fake.port}\nsecurity = "{fake.security}"\n'
        f'helo_name = "calsync.test"\ntimeout_seconds = 10\nca_bundle = "{fake.ca_path}"\n'
        f'username = "calsync"\npassword_file = "{password_file}"\n'
    )


DIGEST = '[digest]\nfrom = "1:1 digests <calsync@acme.test>"\n'


@pytest.fixture
def smtp() -> Iterator[SmtpFake]:
    with SmtpFake("starttls", users={"calsync": SMTP_PASSWORD}) as fake:
        yield fake


def graph_install(
    root: Path, graph: FakeGraph, smtp: SmtpFake | None = None, *, mailboxes: bool = True
) -> Path:
    """The roster, an app registration with its secret in a file, and a config with a microsoft source
    named "graph" (and [digest] + [smtp] with ``smtp``)."""
    (root / "org.csv").write_text(ROSTER, encoding="utf-8")
    graph.add_user(MAYA, "Maya Chen")
    graph.add_user(OMAR, "Omar Haddad", manager=MAYA)
    graph.add_user(ZOE, "Zoe Park", manager=MAYA)
    graph.add_app(CLIENT_ID, secret=SECRET, roles=("Calendars.Read", "User.Read.All"))
    (root / "secret.txt").write_text(SECRET + "\n", encoding="utf-8")
    config = root / "calsync.toml"
    text = (
        ORG
        + f"""[[sources]]
type = "microsoft"
name = "graph"
tenant = "{graph.tenant}"
client_id = "{CLIENT_ID}"
client_secret_file = "secret.txt"
authority_host = "{graph.authority_host}"
graph_endpoint = "{graph.graph_endpoint}"
ca_bundle = "{graph.ca_path}"
timeout_seconds = 10
"""
    )
    if mailboxes:
        text += f'mailboxes = ["{ZOE}", "{OMAR}"]\n'
    if smtp is not None:
        password = root / "smtp-password"
        password.write_text(SMTP_PASSWORD + "\n", encoding="utf-8")
        text += DIGEST + smtp_section(smtp, password)
    config.write_text(text, encoding="utf-8")
    return config


def test_everything_passes_against_graph_and_smtp_and_nothing_is_sent_or_written(
    tmp_path, graph, smtp, monkeypatch
):
    config = graph_install(tmp_path, graph, smtp)
    before = sorted(p.name for p in tmp_path.iterdir())
    quits = []
    real_quit = smtplib.SMTP.quit

    def quit(self):
        quits.append(self)
        return real_quit(self)

    monkeypatch.setattr(smtplib.SMTP, "quit", quit)

    code, out, err = doctor(config)

    assert code == 0, out
    assert err == ""
    checks = lines_of(out)
    assert list(checks) == [
        "config",
        "roster",
        "state",
        "source graph: sign-in",
        f"source graph: read {ZOE}",  # the first mailbox the source lists
        "smtp",
    ]
    assert all(line.startswith("[ ok ] ") for line in checks.values()), out
    assert "4 people, 3 manager/report pairs" in checks["roster"]
    assert f"the app {CLIENT_ID} got a token" in checks["source graph: sign-in"]
    assert "logged in as calsync" in checks["smtp"] and "without sending" in checks["smtp"]
    assert out.endswith("6 checks, 0 failed\n")
    views = [r for r in graph.requests if r.path.endswith("/calendarView")]
    assert [(r.mailbox, r.status, r.query.get("$top")) for r in views] == [(ZOE, 200, "1")]
    assert views[0].query["startDateTime"].endswith("Z") and views[0].query["endDateTime"].endswith("Z")
    assert smtp.sessions == 1 and smtp.messages == [] and len(quits) == 1  # logged in, QUIT: no mail
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no state file, no outbox
    assert SECRET not in out and SMTP_PASSWORD not in out


def test_without_mailboxes_the_first_manager_is_read(tmp_path, graph):
    config = graph_install(tmp_path, graph, mailboxes=False)
    code, out, _ = doctor(config)
    assert code == 0, out
    assert f"[ ok ] source graph: read {MAYA}" in out
    assert "smtp" not in lines_of(out)  # neither [digest] nor [smtp]: no digests to deliver
    assert out.endswith("5 checks, 0 failed\n")


def test_without_mailboxes_and_without_a_roster_there_is_no_mailbox_to_try(tmp_path, graph):
    config = graph_install(tmp_path, graph, mailboxes=False)
    (tmp_path / "org.csv").write_text("who,boss\n", encoding="utf-8")
    code, out, _ = doctor(config)
    assert code == 3
    checks = lines_of(out)
    assert checks["roster"].startswith("[FAIL] roster: ")
    assert checks["source graph: sign-in"].startswith("[ ok ] ")
    assert checks["source graph: read"] == (
        "[FAIL] source graph: read: not checked: the source lists no mailboxes and the roster could not "
        "be read, so there is no mailbox to try"
    )
    assert 'mailboxes = ["someone@..."]' in out


def test_a_wrong_client_secret_fails_the_sign_in_with_the_fix_and_never_shows_the_secret(
    tmp_path, graph, smtp
):
    config = graph_install(tmp_path, graph, smtp)
    (tmp_path / "secret.txt").write_text(WRONG_SECRET + "\n", encoding="utf-8")

    code, out, _ = doctor(config)

    assert code == 3
    checks = lines_of(out)
    line = checks["source graph: sign-in"]
    assert line.startswith("[FAIL] source graph: sign-in: ")
    assert "invalid_client" in line and "Invalid client secret" in line
    assert line.endswith("; no mailbox was read")  # the read check is skipped, and the line says so
    assert not any(name.startswith("source graph: read") for name in checks)
    fix = next(x for x in out.splitlines() if x.strip().startswith("fix:") and "client_secret_file" in x)
    assert str(tmp_path / "secret.txt") in fix
    assert "VALUE (not its Secret ID)" in fix and "has not expired" in fix
    assert f"App registrations > {CLIENT_ID} > Certificates & secrets" in fix
    assert WRONG_SECRET not in out and SECRET not in out
    assert checks["smtp"].startswith("[ ok ] ")  # the other checks still run
    assert out.endswith("5 checks, 1 failed\n")
    assert not any(r.path.endswith("/calendarView") for r in graph.requests)


def test_a_secret_from_an_unset_environment_variable(tmp_path, graph, monkeypatch):
    config = graph_install(tmp_path, graph)
    text = config.read_text().replace(
        'client_secret_file = "secret.txt"', 'client_secret_env = "GRAPH_SECRET"'
    )
    config.write_text(text)
    monkeypatch.delenv("GRAPH_SECRET", raising=False)
    code, out, _ = doctor(config)
    assert code == 3
    assert "[FAIL] source graph: sign-in: the environment variable GRAPH_SECRET" in out
    assert "fix: check that the environment variable GRAPH_SECRET (client_secret_env) holds" in out
    monkeypatch.setenv("GRAPH_SECRET", SECRET)
    code, out, _ = doctor(config)
    assert code == 0, out
    assert SECRET not in out


def test_without_calendars_read_the_mailbox_check_says_which_permission(tmp_path, graph):
    config = graph_install(tmp_path, graph)
    graph.set_roles(CLIENT_ID, ("User.Read.All",))
    code, out, _ = doctor(config)
    assert code == 3
    checks = lines_of(out)
    assert checks["source graph: sign-in"].startswith("[ ok ] ")
    assert checks[f"source graph: read {ZOE}"].startswith(f"[FAIL] source graph: read {ZOE}: no access")
    assert "fix: grant the Calendars.Read application permission with admin consent" in out
    assert out.endswith("5 checks, 1 failed\n")


def test_a_wrong_smtp_password_fails_the_smtp_check(tmp_path, graph, smtp):
    config = graph_install(tmp_path, graph, smtp)
    (tmp_path / "smtp-password").write_text("not-the-password\n", encoding="utf-8")

    code, out, _ = doctor(config)

    assert code == 3
    checks = lines_of(out)
    assert checks["smtp"].startswith("[FAIL] smtp: ")
    assert "refused the login of 'calsync'" in checks["smtp"]
    assert f"fix: check [smtp] username (calsync) and the password in password_file {tmp_path}" in out
    assert "not-the-password" not in out and SMTP_PASSWORD not in out
    assert checks["source graph: sign-in"].startswith("[ ok ] ")
    assert smtp.messages == []
    assert out.endswith("6 checks, 1 failed\n")


def test_digests_through_smtp_without_an_smtp_section(tmp_path, graph):
    config = graph_install(tmp_path, graph)
    config.write_text(config.read_text() + DIGEST)
    code, out, _ = doctor(config)
    assert code == 3
    assert '[FAIL] smtp: [digest] delivery is "smtp" (the default) but the config has no [smtp]' in out
    assert 'delivery = "outbox"' in out


def test_a_server_that_is_down(tmp_path, graph, smtp):
    config = graph_install(tmp_path, graph, smtp)
    with SmtpFake() as gone:
        port = gone.port
    config.write_text(config.read_text().replace(f"port = {smtp.port}", f"port = {port}"))
    code, out, _ = doctor(config)
    assert code == 3
    assert "[FAIL] smtp: cannot talk to the mail server 127.0.0.1:" in out
    assert "fix: check [smtp] host (127.0.0.1), port" in out


def test_a_config_with_an_error_fails_the_config_check_and_stops(tmp_path):
    config = tmp_path / "calsync.toml"
    config.write_text(
        '[org]\ndomains = ["acme.test"]\nroster = "missing.csv"\n[cadence]\ndefault_days = "often"\n'
        '[[sources]]\ntype = "ics"\npath = "calendars"\n',
        encoding="utf-8",
    )
    checks = run_checks(config, now=NOW)
    assert [c.name for c in checks] == ["config"] and not checks[0].ok
    code, out, _ = doctor(config)
    assert code == 3
    lines = out.splitlines()
    assert lines[0] == "[FAIL] config: 3 problems; the other checks need a valid config: not run"
    assert any("[org] roster: file not found" in line for line in lines[1:4])
    expected = '[cadence] default_days: expected a whole number from 1 to 3660, got "often"'
    assert any(expected in x for x in lines[1:4])
    assert any("[[sources]] #1 path: not found" in line for line in lines[1:4])
    assert lines[4].startswith("       fix: edit the config") and "calsync demo" in lines[4]
    assert lines[5:] == ["1 check, 1 failed"]


def ics_install(root: Path, roster: str = ROSTER) -> Path:
    (root / "org.csv").write_text(roster, encoding="utf-8")
    calendars = root / "calendars"
    calendars.mkdir()
    (calendars / "maya.ics").write_text(EVENT, encoding="utf-8")
    (calendars / "omar.ics").write_text(EVENT, encoding="utf-8")
    config = root / "calsync.toml"
    config.write_text(
        ORG + '[[sources]]\ntype = "ics"\nname = "team"\npath = "calendars"\n', encoding="utf-8"
    )
    return config


def test_an_unreadable_ics_file_fails_its_source(tmp_path):
    config = ics_install(tmp_path)
    assert doctor(config)[:2] == (
        0,
        f"[ ok ] config: {config}: 1 source: team (ics)\n"
        "[ ok ] roster: 4 people, 3 manager/report pairs\n"
        f"[ ok ] state: {tmp_path / 'calsync-state.json'}: not created yet (the first sync writes it)\n"
        "[ ok ] source team: 2 calendars read\n"
        "4 checks, 0 failed\n",
    )
    (tmp_path / "calendars" / "omar.ics").write_text(
        "BEGIN:VCALENDAR\nthis export was cut off", encoding="utf-8"
    )

    code, out, _ = doctor(config)

    assert code == 3
    lines = out.splitlines()
    assert lines[3] == "[FAIL] source team: 1 calendar read, 1 could not be:"
    assert lines[4].startswith("       calendars/omar.ics: not a valid iCalendar file")
    assert lines[5].startswith("       fix: replace each listed file with a complete iCalendar export")
    assert lines[-1] == "4 checks, 1 failed"


def test_a_bad_roster_fails_and_the_sources_are_still_checked(tmp_path):
    config = ics_install(tmp_path, roster="who,boss\nmaya@acme.test,\n")
    code, out, _ = doctor(config)
    assert code == 3
    checks = lines_of(out)
    assert checks["roster"].startswith("[FAIL] roster: ")
    assert "fix: fix [org] roster" in out
    assert checks["source team"] == "[ ok ] source team: 2 calendars read"


def test_skipped_roster_lines_are_mentioned_but_pass(tmp_path):
    config = ics_install(tmp_path, roster=ROSTER + "not-an-email,Someone,\n")
    checks = run_checks(config, now=NOW)
    roster = next(c for c in checks if c.name == "roster")
    assert roster.ok
    assert roster.detail.startswith(
        "4 people, 3 manager/report pairs; 1 line skipped, the first: org.csv: line 6"
    )


def test_an_unexpected_exception_is_a_failed_check_not_a_traceback(tmp_path, monkeypatch):
    config = ics_install(tmp_path)

    def boom(self, window):
        raise RuntimeError("the disk caught fire")

    monkeypatch.setattr(IcsSource, "fetch", boom)
    code, out, _ = doctor(config)
    assert code == 3
    assert "[FAIL] source team: RuntimeError: the disk caught fire" in out
    assert "fix: unexpected" in out and "Traceback" not in out
    assert out.endswith("4 checks, 1 failed\n")


def test_a_config_that_fails_unexpectedly_stops_too(tmp_path, monkeypatch):
    def broken(path):
        raise RuntimeError("no config for you")

    monkeypatch.setattr("calsync.doctor.load_config", broken)
    [check] = run_checks(tmp_path / "calsync.toml", now=NOW)
    assert not check.ok and check.name == "config"
    assert check.detail == "RuntimeError: no config for you; the other checks need a valid config: not run"


def test_the_outbox_must_be_writable(tmp_path):
    config = ics_install(tmp_path)
    base = config.read_text()
    config.write_text(base + '[digest]\ndelivery = "outbox"\noutbox = "out/digests"\n')
    check = run_checks(config, now=NOW)[-1]
    assert check == Check(
        "outbox", True, f"{tmp_path / 'out' / 'digests'} does not exist yet; it can be created"
    )
    assert not (tmp_path / "out").exists()  # nothing is written
    (tmp_path / "out").write_text("a file, not a directory")
    check = run_checks(config, now=NOW)[-1]
    assert (check.name, check.ok) == ("outbox", False) and "is not writable" in check.detail
    assert "set [digest] outbox" in check.fix


# -- Google ----------------------------------------------------------------------------------------------


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle() as fake:
        yield fake


def google_install(root: Path, google: FakeGoogle) -> tuple[Path, dict[str, str]]:
    """Maya's calendar in the fake, a service account key, and a google source "workspace" without
    calendars (so the roster's first manager is read), with digests written to an outbox."""
    (root / "org.csv").write_text(ROSTER, encoding="utf-8")
    google.add_calendar(MAYA, "Europe/Berlin")
    info = google.service_account_info()
    key = root / "service-account.json"
    key.write_text(json.dumps(info))
    config = root / "calsync.toml"
    config.write_text(
        ORG
        + f"""[[sources]]
type = "google"
name = "workspace"
service_account_key = "{key.name}"
endpoint = "{google.calendar_endpoint}"
ca_bundle = "{google.ca_path}"
timeout_seconds = 10
[digest]
delivery = "outbox"
""",
        encoding="utf-8",
    )
    return config, info


def test_everything_passes_against_google(tmp_path, google):
    config, info = google_install(tmp_path, google)
    code, out, _ = doctor(config)
    assert code == 0, out
    checks = lines_of(out)
    assert list(checks) == [
        "config",
        "roster",
        "state",
        "source workspace: sign-in",
        f"source workspace: read {MAYA}",
        "outbox",
    ]
    assert all(line.startswith("[ ok ] ") for line in checks.values()), out
    assert (
        f"the service account {info['client_email']} may act as {MAYA}" in checks["source workspace: sign-in"]
    )
    assert "can list its events (time zone Europe/Berlin)" in checks[f"source workspace: read {MAYA}"]
    events = [r for r in google.requests if "/events" in r.path]
    assert [(r.subject, r.status, r.query.get("maxResults")) for r in events] == [(MAYA, 200, "1")]
    assert info["private_key"] not in out
    assert not (tmp_path / "outbox").exists() and not (tmp_path / "calsync-state.json").exists()


def test_without_domain_wide_delegation_the_fix_names_the_client_id_and_the_scope(tmp_path, google):
    config, info = google_install(tmp_path, google)
    google.revoke_delegation(MAYA)
    code, out, _ = doctor(config)
    assert code == 3
    checks = lines_of(out)
    assert checks["source workspace: sign-in"].startswith(
        f"[FAIL] source workspace: sign-in: the service account {info['client_email']} could not get a "
        f"token as {MAYA}: "
    )
    assert "unauthorized_client" in checks["source workspace: sign-in"]
    assert checks["source workspace: sign-in"].endswith(f"; {MAYA} was not read")
    assert not any(name.startswith("source workspace: read") for name in checks)
    fix = out[out.index("fix: one of these, the most likely first:") :]
    assert "1. grant domain-wide delegation" in fix.splitlines()[1]
    assert f"add client ID {info['client_id']} with the scope {READ_SCOPES[0]}" in fix
    assert "the key may have been revoked" in fix
    assert info["private_key"] not in out


def test_a_revoked_google_sign_in_says_to_sign_in_again(tmp_path, google):
    config, _ = google_install(tmp_path, google)
    google.add_oauth_client("desktop-client", "GOCSPX-desktop-secret", "refresh-1", MAYA)
    token = tmp_path / "google-token.json"
    token.write_text(
        json.dumps(
            {
                "refresh_token": "refresh-1",
                "client_id": "desktop-client",
                "client_secret": "GOCSPX-desktop-secret",
                "token_uri": google.token_uri,
            }
        )
    )
    config.write_text(
        config.read_text().replace(
            'service_account_key = "service-account.json"', f'token_file = "{token.name}"'
        )
    )
    code, out, _ = doctor(config)
    assert code == 0, out
    assert "[ ok ] source workspace: read primary: " in out

    google.revoke_refresh_token("refresh-1")
    code, out, _ = doctor(config)
    assert code == 3
    assert (
        f"[FAIL] source workspace: sign-in: the sign-in in {token} was refused: invalid_grant: "
        "Token has been expired or revoked.; primary was not read" in out
    )
    assert f"fix: run `calsync auth google --client-secrets CLIENT.json --token {token}` again" in out
    assert "GOCSPX-desktop-secret" not in out and "refresh-1" not in out


# -- rendering and the command line ----------------------------------------------------------------------


def test_render_checks_format():
    text = render_checks(
        [
            Check("config", True, "calsync.toml: 1 source: team (ics)"),
            Check("smtp", False, "refused\nsecond line", "check the password\nor the username"),
            Check("roster", True, "fine", fix="ignored when ok"),
        ]
    )
    assert text == (
        "[ ok ] config: calsync.toml: 1 source: team (ics)\n"
        "[FAIL] smtp: refused\n"
        "       second line\n"
        "       fix: check the password\n"
        "            or the username\n"
        "[ ok ] roster: fine\n"
        "3 checks, 1 failed\n"
    )


def test_the_state_check_reads_without_taking_it_and_names_who_holds_it(tmp_path):
    config = ics_install(tmp_path)
    state = tmp_path / "calsync-state.json"
    store = StateStore(state)  # a running calsync
    store.save("team", CalendarState("maya@acme.test", "c"))
    code, out, _ = doctor(config)
    assert code == 0
    line = next(text for text in out.splitlines() if text.startswith("[ ok ] state:"))
    assert "schema 2; team last synced 20" in line
    assert f"in use by a running calsync (pid {os.getpid()})" in line
    store.close()
    state.write_text('{"team": ')
    code, out, _ = doctor(config)
    assert code == 3 and "[FAIL] state:" in out and "corrupt" in out and "moves it aside" in out
    assert state.read_text() == '{"team": '  # doctor changes nothing


def test_the_doctor_subcommand():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    args = parser.parse_args(["doctor", "-c", "x.toml"])
    assert (args.command, args.config) == ("doctor", Path("x.toml"))
    assert parser.parse_args(["doctor", "--config", "y.toml"]).config == Path("y.toml")
    assert parser.parse_args(["doctor"]).config is None
    help_text = " ".join(commands.choices["doctor"].format_help().split())
    assert "default: $CALSYNC_CONFIG, else calsync.toml in $CONFIGURATION_DIRECTORY" in help_text
    assert "Nothing is written, except the token caches msal may refresh" in help_text
    for what in ("config", "roster", "state", "sources", "smtp"):
        assert f" {what} " in help_text
