"""The demo org served by the Google fake, read through the real client: the same report as ICS."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calsync.config import load_config
from calsync.demo import write_demo
from calsync.org import RosterError
from calsync.pipeline import run_report
from calsync.report import report_to_json
from tests.demo_served import google_config, load_google_demo
from tests.fakes.google import FakeGoogle
from tests.integration.cli import run_calsync

AS_OF = date(2026, 11, 21)
EVENTS_PATH = "/events"


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with FakeGoogle() as google:
        yield google


def setup(tmp_path: Path, fake: FakeGoogle, as_of: date = AS_OF) -> tuple[Path, dict[str, Any], list[str]]:
    """The demo org in the fake, a google config for it, and the ICS report to compare with. Everyone
    in the roster has a calendar, as every Workspace user has (a new report's is still empty)."""
    ics_config, _ = write_demo(tmp_path / "demo", as_of)
    expected = report_to_json(run_report(load_config(ics_config), as_of))
    owners = load_google_demo(fake, as_of)
    return google_config(fake, tmp_path, owners, "demo/org.csv"), expected, owners


def report(config: Path) -> dict[str, Any]:
    return report_to_json(run_report(load_config(config), AS_OF))


def test_google_source_gives_the_ics_report_then_one_request_per_calendar(
    tmp_path: Path, fake: FakeGoogle
) -> None:
    config, expected, owners = setup(tmp_path, fake)
    result = run_calsync(
        "report", "-c", str(config), "--as-of", AS_OF.isoformat(), "--format", "json", timeout=300
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


def master_of(fake: FakeGoogle, calendar: str, uid: str) -> dict[str, Any]:
    return next(e for e in fake.events(calendar) if e.get("iCalUID") == uid)


def exception(master: dict[str, Any], original: str, zone: str, **changes: Any) -> dict[str, Any]:
    """An exception of one occurrence of ``master`` (originally at ``original``, local ISO time)."""
    start = datetime.fromisoformat(original).replace(tzinfo=ZoneInfo(zone))
    stamp = start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    resource = {
        k: v for k, v in master.items() if k not in ("recurrence", "etag", "updated", "created", "htmlLink")
    }
    resource.update(
        id=f"{master['id']}_{stamp}",
        recurringEventId=master["id"],
        originalStartTime={"dateTime": start.isoformat(), "timeZone": zone},
        start={"dateTime": start.isoformat(), "timeZone": zone},
        end={"dateTime": (start + timedelta(minutes=30)).isoformat(), "timeZone": zone},
    )
    resource.update(changes)
    return resource


def test_incremental_sync_after_each_kind_of_change(tmp_path: Path, fake: FakeGoogle) -> None:
    config, expected, owners = setup(tmp_path, fake)
    assert report(config)["pairs"] == expected["pairs"]

    def both(a: str, b: str, event: dict[str, Any]) -> None:
        for owner in (a, b):
            fake.put_event(f"{owner}@acme.test", event)

    # a cancelled occurrence (Google's stripped tombstone), Maya / Omar on 16 Nov
    mo = master_of(fake, "maya@acme.test", "maya-omar@acme.test")
    tombstone = exception(mo, "2026-11-16T09:00:00", "America/New_York")
    both(
        "maya",
        "omar",
        {k: tombstone[k] for k in ("id", "recurringEventId", "originalStartTime")} | {"status": "cancelled"},
    )
    # a moved occurrence: Diego / Ava from 26 Oct 10:00 to 27 Oct 11:00 (their last one held before
    # Ava's out-of-office, during which the series' occurrences are removed)
    da = master_of(fake, "diego@acme.test", "diego-ava@acme.test")
    moved = exception(da, "2026-10-26T10:00:00", "America/New_York")
    moved["start"] = {"dateTime": "2026-10-27T11:00:00-04:00", "timeZone": "America/New_York"}
    moved["end"] = {"dateTime": "2026-10-27T11:30:00-04:00", "timeZone": "America/New_York"}
    moved["sequence"] = 1
    both("diego", "ava", moved)
    # a declined occurrence: Chloe declines 18 Nov
    dc = master_of(fake, "diego@acme.test", "diego-chloe@acme.test")
    declined = exception(dc, "2026-11-18T09:00:00", "Europe/Berlin")
    declined["attendees"] = [
        {**a, "responseStatus": "declined"} if a["email"] == "chloe@acme.test" else a for a in dc["attendees"]
    ]
    both("diego", "chloe", declined)
    # a new series: Priya and Ethan start weekly 1:1s
    new = {
        "id": "priyaethanweekly",
        "iCalUID": "priya-ethan-new@acme.test",
        "summary": "Priya / Ethan",
        "start": {"dateTime": "2026-11-02T10:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-11-02T10:30:00+01:00", "timeZone": "Europe/Berlin"},
        "recurrence": ["RRULE:FREQ=WEEKLY"],
        "organizer": {"email": "priya@acme.test"},
        "attendees": [
            {"email": "priya@acme.test", "responseStatus": "accepted"},
            {"email": "ethan@acme.test", "responseStatus": "accepted"},
        ],
    }
    both("priya", "ethan", new)
    # a deleted series: Ava / Ethan
    ae = master_of(fake, "ava@acme.test", "ava-ethan@acme.test")
    for owner in ("ava@acme.test", "ethan@acme.test"):
        fake.delete_event(owner, ae["id"])

    fake.reset_log()
    after = {tuple(p["people"]): p for p in report(config)["pairs"]}
    assert fake.count("GET", EVENTS_PATH) == len(owners)  # one incremental request per calendar

    maya_omar = after[("maya@acme.test", "omar@acme.test")]
    assert "2026-11-16" in maya_omar["cancelled"] and "2026-11-16" not in maya_omar["held"]
    ava = after[("ava@acme.test", "diego@acme.test")]
    assert "2026-10-27" in ava["held"] and "2026-10-26" not in ava["held"]
    chloe = after[("chloe@acme.test", "diego@acme.test")]
    assert chloe["declined"] == ["2026-11-18"] and chloe["last_held"] == "2026-11-11"
    ethan = after[("ethan@acme.test", "priya@acme.test")]
    assert (ethan["status"], ethan["held"], ethan["next_scheduled"]) == (
        "ok",
        ["2026-11-02", "2026-11-09", "2026-11-16"],
        "2026-11-23",
    )
    assert ("ava@acme.test", "ethan@acme.test") not in after  # the deleted series is gone


def test_expired_sync_tokens_and_faults_end_in_the_same_report(tmp_path: Path, fake: FakeGoogle) -> None:
    config, expected, owners = setup(tmp_path, fake)
    report(config)
    fake.expire_sync_tokens()
    fake.fail_next(2, 429, retry_after=1, path_contains=EVENTS_PATH)
    fake.fail_next(1, 503, reason="backendError", path_contains=EVENTS_PATH)
    fake.fail_next(1, 403, reason="userRateLimitExceeded", path_contains=EVENTS_PATH)
    fake.drop_next(1, path_contains=EVENTS_PATH)
    fake.slow_next(1, 3.0, path_contains=EVENTS_PATH)  # longer than the client's timeout
    config.write_text(config.read_text().replace("timeout_seconds = 10", "timeout_seconds = 1"))
    fake.reset_log()
    again = report(config)
    assert again["pairs"] == expected["pairs"]
    assert again["errors"] == []
    statuses = [r.status for r in fake.requests if EVENTS_PATH in r.path]
    # every token expired: each calendar was told so, and read in full again
    assert {r.subject for r in fake.requests if EVENTS_PATH in r.path and r.status == 410} == set(owners)
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


def directory_config(config: Path, fake: FakeGoogle, admin: str) -> None:
    text = config.read_text().replace(
        'roster = "demo/org.csv"', f'roster = "google-directory"\ndirectory_admin = "{admin}"'
    )
    config.write_text(
        text.replace(
            "timeout_seconds = 10", f'timeout_seconds = 10\ndirectory_endpoint = "{fake.directory_endpoint}"'
        )
    )


def test_the_org_chart_from_the_google_directory(tmp_path: Path, fake: FakeGoogle) -> None:
    config, expected, _ = setup(tmp_path, fake)
    with (tmp_path / "demo" / "org.csv").open() as roster:
        for row in csv.DictReader(roster):
            fake.add_user(row["email"], row["name"], row["manager_email"] or None)
    fake.add_user("gone@acme.test", "Left Last Year", "maya@acme.test", suspended=True)
    fake.directory_admins.add("maya@acme.test")
    directory_config(config, fake, "maya@acme.test")

    result = report(config)

    assert fake.count("GET", "/admin/directory/v1/users") >= 1
    assert [r.subject for r in fake.requests if "/admin/directory" in r.path] == ["maya@acme.test"]
    shape = {(tuple(p["people"]), p["relationship"], p["manager"], p["report"]) for p in result["pairs"]}
    assert shape == {
        (tuple(p["people"]), p["relationship"], p["manager"], p["report"]) for p in expected["pairs"]
    }
    statuses = {tuple(p["people"]): p["status"] for p in result["pairs"]}
    wanted = {tuple(p["people"]): p["status"] for p in expected["pairs"]}
    # The directory has no roster `since`: at calsync's first run every line is old, so Zara, who
    # joined five days ago, is not known to be new, and her pair with nothing scheduled is no-series.
    assert wanted[("priya@acme.test", "zara@acme.test")] == "at-risk"
    assert statuses == {**wanted, ("priya@acme.test", "zara@acme.test"): "no-series"}
    assert not any("gone@acme.test" in p["people"] for p in result["pairs"])  # suspended users are left out


def test_reading_the_directory_as_a_non_admin_is_a_clear_error(tmp_path: Path, fake: FakeGoogle) -> None:
    config, _, _ = setup(tmp_path, fake)
    fake.add_user("maya@acme.test", "Maya Chen")
    directory_config(config, fake, "sam@acme.test")
    with pytest.raises(RosterError, match=r"cannot read the directory as sam@acme\.test"):
        report(config)
    result = run_calsync("report", "-c", str(config), "--as-of", AS_OF.isoformat(), timeout=120)
    assert (
        result.returncode == 2
        and "domain-wide delegation" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_a_managers_calendar_that_cannot_be_read_gives_unknown_and_a_stored_reading_does_not(
    tmp_path: Path, fake: FakeGoogle
) -> None:
    config, expected, _ = setup(tmp_path, fake)
    wanted = {tuple(p["people"]): p for p in expected["pairs"]}
    priya = "priya@acme.test"
    # never read: the pairs no other calendar shows cannot be checked (not "no 1:1s")
    fake.revoke_delegation(priya)
    result = report(config)
    pairs = {tuple(p["people"]): p for p in result["pairs"]}
    for report_ in ("ethan", "grace", "zara"):
        pair = pairs[tuple(sorted((priya, f"{report_}@acme.test")))]
        assert pair["status"] == "unknown", pair
        assert pair["reasons"][0].startswith("could not be checked: Priya Raman's calendar could not be read")
    # Hugo's and Fatima's 1:1s are in their own calendars: judged as usual
    for other in ("fatima", "hugo"):
        key = tuple(sorted((priya, f"{other}@acme.test")))
        assert pairs[key]["status"] == wanted[key]["status"]
    assert [e["source"] for e in result["errors"]] == [f"workspace: {priya}"]
    # read once, then refused again: judged from the stored reading, and it says so
    fake.grant_delegation(priya)
    assert report(config)["pairs"] == expected["pairs"]
    fake.revoke_delegation(priya)
    result = report(config)
    pairs = {tuple(p["people"]): p for p in result["pairs"]}
    assert all(p["status"] != "unknown" for p in result["pairs"])
    for key in [k for k in wanted if priya in k and wanted[k]["manager"] == priya]:
        assert pairs[key]["status"] == wanted[key]["status"]
        assert any(
            r.startswith("judged from Priya Raman's calendar as last synced on")
            for r in pairs[key]["reasons"]
        )
