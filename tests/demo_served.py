"""The demo org loaded into the Google or the Graph fake, and the config that reads it there: shared by
the end-to-end tests and the fuzz harness, so that both serve the org the same way."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

from calsync.demo import DOMAIN, PEOPLE, demo_calendars
from tests.demo_rules import demo_rules
from tests.fakes.google import FakeGoogle
from tests.fakes.google_events import load_calendar
from tests.fakes.graph import FakeGraph
from tests.fakes.graph_events import load_mailbox

ZONE = "Europe/Berlin"  # the demo's calendars are written in it
STATE = '[state]\npath = "state/calsync.json"\n'


def load_google_demo(fake: FakeGoogle, as_of: date) -> list[str]:
    """Every roster person's calendar (a new report's is still empty, as every Workspace user has one)."""
    demo = demo_calendars(as_of)
    owners = []
    for owner in sorted({local for local, *_ in PEOPLE} | demo.keys()):
        owners.append(f"{owner}@{DOMAIN}")
        load_calendar(fake, owners[-1], demo.get(owner, []), ZONE)
    return owners


def google_config(fake: FakeGoogle, directory: Path, owners: list[str], roster: str) -> Path:
    """``google.toml`` in ``directory`` with the demo's rules and a service-account key the fake knows."""
    key = directory / "service-account.json"
    key.write_text(json.dumps(fake.service_account_info()))
    key.chmod(0o600)
    config = directory / "google.toml"
    config.write_text(
        demo_rules(roster)
        + f"""[[sources]]
type = "google"
name = "workspace"
service_account_key = "{key.name}"
calendars = {json.dumps(owners)}
endpoint = "{fake.calendar_endpoint}"
ca_bundle = "{fake.ca_path}"
timeout_seconds = 10
"""
        + STATE
    )
    return config


def load_graph_demo(fake: FakeGraph, roster: Path, as_of: date, owners: list[str] | None = None) -> list[str]:
    """The roster's people as directory users (with their managers) and the demo's calendars in their
    mailboxes (only ``owners``' when given, by local part); the mailboxes loaded."""
    with roster.open() as rows:
        for row in csv.DictReader(rows):
            fake.add_user(row["email"], row["name"], manager=row["manager_email"] or None)
    mailboxes = []
    for owner, specs in sorted(demo_calendars(as_of).items()):
        if owners is None or owner in owners:
            mailboxes.append(f"{owner}@{DOMAIN}")
            load_mailbox(fake, mailboxes[-1], specs, ZONE)
    return mailboxes


def microsoft_toml(
    fake: FakeGraph, mailboxes: list[str], client_id: str, *, name: str = "m365", extra: str = ""
) -> str:
    """A ``[[sources]]`` table reading ``mailboxes`` from the fake with ``secret.txt`` as the secret."""
    return f"""
[[sources]]
type = "microsoft"
name = "{name}"
tenant = "{fake.tenant}"
client_id = "{client_id}"
client_secret_file = "secret.txt"
mailboxes = {json.dumps(mailboxes)}
authority_host = "{fake.authority_host}"
graph_endpoint = "{fake.graph_endpoint}"
ca_bundle = "{fake.ca_path}"
timeout_seconds = 10
{extra}"""


def microsoft_config(
    fake: FakeGraph, directory: Path, mailboxes: list[str], roster: str, client_id: str, secret: str
) -> Path:
    """``m365.toml`` in ``directory`` with the demo's rules, an app the fake knows and its secret file."""
    fake.add_app(client_id, secret=secret)
    path = directory / "secret.txt"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    config = directory / "m365.toml"
    config.write_text(demo_rules(roster) + STATE + microsoft_toml(fake, mailboxes, client_id))
    return config
