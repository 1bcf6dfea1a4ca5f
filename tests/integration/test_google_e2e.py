"""The demo org served by the Google fake, read through the real client: the same report as ICS."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from calsync.config import load_config
from calsync.demo import demo_calendars, write_demo
from calsync.pipeline import run_report
from calsync.report import report_to_json
from tests.fakes.google import FakeGoogle
from tests.fakes.google_events import calendar_events

AS_OF = date(2026, 11, 21)
EVENTS_PATH = "/events"


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with FakeGoogle() as google:
        yield google


def setup(tmp_path: Path, fake: FakeGoogle, as_of: date = AS_OF) -> tuple[Path, dict[str, Any], list[str]]:
    """The demo org in the fake, a google config for it, and the ICS report to compare with."""
    ics_config, _ = write_demo(tmp_path / "demo", as_of)
    expected = report_to_json(run_report(load_config(ics_config), as_of))
    owners = []
    for owner, specs in sorted(demo_calendars(as_of).items()):
        calendar = f"{owner}@acme.test"
        owners.append(calendar)
        fake.add_calendar(calendar, "Europe/Berlin")
        for event in calendar_events(specs, "Europe/Berlin"):
            fake.put_event(calendar, event)
    key = tmp_path / "service-account.json"
    key.write_text(json.dumps(fake.service_account_info()))
    key.chmod(0o600)
    config = tmp_path / "google.toml"
    config.write_text(
        f"""[org]
domains = ["acme.test"]
roster = "demo/org.csv"
timezone = "Europe/Berlin"
[cadence]
skip_level_days = 30
[[sources]]
type = "google"
name = "workspace"
service_account_key = "{key.name}"
calendars = {json.dumps(owners)}
endpoint = "{fake.calendar_endpoint}"
ca_bundle = "{fake.ca_path}"
timeout_seconds = 10
[state]
path = "state/calsync.json"
"""
    )
    return config, expected, owners


def report(config: Path) -> dict[str, Any]:
    return report_to_json(run_report(load_config(config), AS_OF))


def test_google_source_gives_the_ics_report_then_one_request_per_calendar(
    tmp_path: Path, fake: FakeGoogle
) -> None:
    config, expected, owners = setup(tmp_path, fake)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "calsync",
            "report",
            "-c",
            str(config),
            "--as-of",
            AS_OF.isoformat(),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    first = json.loads(result.stdout)
    assert first["pairs"] == expected["pairs"]
    assert first["errors"] == []
    assert {r.subject for r in fake.requests if EVENTS_PATH in r.path} == set(
        owners
    )  # each read as its owner

    fake.reset_log()
    second = report(config)
    assert second["pairs"] == expected["pairs"]
    assert fake.count("GET", EVENTS_PATH) == len(owners)  # nothing changed: one request per calendar
    assert all("syncToken" in r.query for r in fake.requests if EVENTS_PATH in r.path)


def test_incremental_sync_sees_a_cancelled_occurrence_and_a_deleted_series(
    tmp_path: Path, fake: FakeGoogle
) -> None:
    config, expected, owners = setup(tmp_path, fake)
    assert report(config)["pairs"] == expected["pairs"]
    maya_omar = next(e for e in fake.events("maya@acme.test") if e["iCalUID"] == "maya-omar@acme.test")
    occurrence = "2026-11-16T09:00:00-05:00"  # the last one held before as_of
    for owner in ("maya@acme.test", "omar@acme.test"):
        fake.put_event(
            owner,
            {
                "id": f"{maya_omar['id']}_20261116T140000Z",
                "recurringEventId": maya_omar["id"],
                "originalStartTime": {"dateTime": occurrence, "timeZone": "America/New_York"},
                "status": "cancelled",
            },
        )
    ava_ethan = next(e for e in fake.events("ava@acme.test") if e["iCalUID"] == "ava-ethan@acme.test")
    for owner in ("ava@acme.test", "ethan@acme.test"):
        fake.delete_event(owner, ava_ethan["id"])
    fake.reset_log()
    after = {tuple(p["people"]): p for p in report(config)["pairs"]}
    pair = after[("maya@acme.test", "omar@acme.test")]
    assert "2026-11-16" in pair["cancelled"] and "2026-11-16" not in pair["held"]
    assert ("ava@acme.test", "ethan@acme.test") not in after  # the deleted series is gone
    assert fake.count("GET", EVENTS_PATH) == len(owners)  # one incremental request per calendar


def test_expired_sync_tokens_and_faults_end_in_the_same_report(tmp_path: Path, fake: FakeGoogle) -> None:
    config, expected, owners = setup(tmp_path, fake)
    report(config)
    fake.expire_sync_tokens()
    fake.fail_next(2, 429, retry_after=1, path_contains=EVENTS_PATH)
    fake.fail_next(1, 503, reason="backendError", path_contains=EVENTS_PATH)
    fake.fail_next(1, 403, reason="userRateLimitExceeded", path_contains=EVENTS_PATH)
    fake.drop_next(1, path_contains=EVENTS_PATH)
    fake.reset_log()
    again = report(config)
    assert again["pairs"] == expected["pairs"]
    assert again["errors"] == []
    statuses = [r.status for r in fake.requests if EVENTS_PATH in r.path]
    assert statuses.count(410) == len(owners)  # every token expired: each calendar was read in full again
    assert {429, 503, 403} <= set(statuses)


def test_a_calendar_without_delegation_is_reported_and_the_rest_synced(
    tmp_path: Path, fake: FakeGoogle
) -> None:
    config, expected, _ = setup(tmp_path, fake)
    fake.revoke_delegation("grace@acme.test")
    result = report(config)
    assert [e["source"] for e in result["errors"]] == ["workspace: grace@acme.test"]
    assert "domain-wide delegation" in result["errors"][0]["message"]
    pairs = {tuple(p["people"]): p for p in result["pairs"]}
    assert pairs[("lena@acme.test", "sam@acme.test")] == next(
        p for p in expected["pairs"] if p["people"] == ["lena@acme.test", "sam@acme.test"]
    )
