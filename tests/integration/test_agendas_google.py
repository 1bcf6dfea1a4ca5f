"""`calsync agendas` with the google-docs backend against the Google fake (Calendar + Drive), through
the real google-api-python-client: Docs created once, shared with two, attached once, never twice."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from calsync.config import load_config
from calsync.pipeline import AgendaRun, run_agendas
from calsync.publish.google_docs import GoogleEventLinks
from calsync.store import StateStore
from tests.agenda_scenario import (
    MAYA,
    OMAR,
    ORG,
    ROSTER,
    UID,
    before,
    number_of,
    only,
    series,
    week,
)
from tests.fakes.google import FakeGoogle
from tests.fakes.google_events import event_id, load_calendar
from tests.integration.cli import run_calsync

WRITES = ("POST", "PATCH", "PUT", "DELETE")


pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with FakeGoogle() as google:
        yield google


class Workspace:
    def __init__(self, root: Path, fake: FakeGoogle, mode: str = "per-meeting") -> None:
        self.fake = fake
        (root / "org.csv").write_text(ROSTER, encoding="utf-8")
        key = root / "service-account.json"
        key.write_text(json.dumps(fake.service_account_info()))
        key.chmod(0o600)
        for calendar in (MAYA, OMAR):
            load_calendar(fake, calendar, [series()], "Europe/Berlin")
        for person in roster_people():  # every Workspace user has a calendar, an empty one too
            if person not in (MAYA, OMAR):
                load_calendar(fake, person, [], "Europe/Berlin")
        self.config = root / "calsync.toml"
        self.config.write_text(
            ORG
            + f"""[[sources]]
type = "google"
service_account_key = "{key.name}"
calendars = ["{MAYA}", "{OMAR}"]
endpoint = "{fake.calendar_endpoint}"
drive_endpoint = "{fake.drive_endpoint}"
ca_bundle = "{fake.ca_path}"
timeout_seconds = 10
[agenda]
mode = "{mode}"
career_every_weeks = 2
""",
            encoding="utf-8",
        )

    def run(self, when: datetime) -> AgendaRun:
        return run_agendas(load_config(self.config), now=when)

    def docs(self) -> list[dict[str, Any]]:
        return self.fake.drive_files(owner=MAYA)

    def text(self, doc_id: str) -> str:
        return self.fake.export_text(doc_id)

    def instance(self, n: int) -> dict[str, Any] | None:
        """Maya's stored exception for the n-th occurrence (None: never written)."""
        ident = instance_id(n)
        return next((e for e in self.fake.events(MAYA) if e["id"] == ident), None)

    def writes(self) -> list[Any]:
        return [r for r in self.fake.requests if r.method in WRITES and r.path != "/token"]


def roster_people() -> list[str]:
    """Everyone in the scenario's roster."""
    return [row["email"] for row in csv.DictReader(io.StringIO(ROSTER))]


def instance_id(n: int) -> str:
    return f"{event_id(UID)}_{week(n).astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def change_occurrence(fake: FakeGoogle, calendar: str, n: int, changes: dict[str, Any]) -> None:
    """What a person does to the n-th occurrence in one calendar: it becomes (or stays) an exception."""
    ident = instance_id(n)
    if any(e["id"] == ident for e in fake.events(calendar)):
        fake.patch_event(calendar, ident, changes)
        return
    master = next(e for e in fake.events(calendar) if e["id"] == event_id(UID))
    start = {"dateTime": week(n).isoformat(), "timeZone": "Europe/Berlin"}
    end = {"dateTime": (week(n) + timedelta(minutes=30)).isoformat(), "timeZone": "Europe/Berlin"}
    resource = {
        k: v for k, v in master.items() if k not in ("recurrence", "etag", "updated", "created", "htmlLink")
    }
    resource.update(id=ident, recurringEventId=master["id"], originalStartTime=start, start=start, end=end)
    fake.put_event(calendar, {**resource, **changes})


def doc_id(url: str | None) -> str:
    assert url is not None
    return url.split("/d/")[1].split("/")[0]


def test_a_doc_is_created_shared_with_the_two_and_attached_to_that_occurrence_only(tmp_path, fake):
    org = Workspace(tmp_path, fake)
    made = only(org.run(before(3)))
    assert made.action == "created"
    [doc] = org.docs()
    assert doc_id(made.url) == doc["id"] and doc["mimeType"] == "application/vnd.google-apps.document"
    content = fake.file_content(doc["id"])
    assert "<script>" not in content and "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert {(p.get("emailAddress"), p["role"]) for p in fake.permissions_of(doc["id"])} == {
        (MAYA, "owner"),
        (OMAR, "writer"),
    }
    assert fake.notifications == []  # shared without mail
    event = org.instance(3)
    assert event is not None
    assert [a["fileId"] for a in event["attachments"]] == [doc["id"]]
    assert event["extendedProperties"]["private"]["calsyncAgenda"] == doc["id"]
    assert event.get("description") in (None, "")  # the description is not touched
    assert org.instance(2) is None and org.instance(4) is None  # no other occurrence was written
    patches = [r for r in fake.requests if r.method == "PATCH"]
    assert len(patches) == 1 and patches[0].subject == MAYA
    assert patches[0].query["sendUpdates"] == "none" and patches[0].query["supportsAttachments"] == "true"

    fake.reset_log()
    again = only(org.run(before(3) + timedelta(hours=1)))
    assert again.action == "unchanged"
    assert org.writes() == []  # a second pass writes nothing
    assert len(org.docs()) == 1


def test_human_edits_are_kept_and_open_items_carry_over_three_meetings(tmp_path, fake):
    org = Workspace(tmp_path, fake)
    first = only(org.run(before(3)))
    first_id = doc_id(first.url)
    assert number_of(org.text(first_id)) == 4 and "big picture" in org.text(first_id)  # 4th: career
    edited = fake.file_content(first_id).replace(
        "<li>[ ] </li>",
        "<li>[ ] Draft the on-call proposal</li><li>[x] Book the offsite</li><li>[ ] Ask Lee</li>",
    )
    edited = edited.replace("Growth theme: (choose", "Growth theme: Public speaking</p><p>(choose")
    fake.human_edit(first_id, edited, OMAR)
    fake.patch_event(MAYA, instance_id(3), {"description": "Omar: let's also talk about <b>Q1</b>"})
    version = next(d for d in org.docs() if d["id"] == first_id)["version"]

    assert only(org.run(before(3) + timedelta(hours=2))).action == "unchanged"
    second = only(org.run(before(4)))
    text = org.text(doc_id(second.url))
    assert "[ ] Draft the on-call proposal" in text and "[ ] Ask Lee" in text
    assert "Book the offsite" not in text and "Growth theme: Public speaking" in text
    assert number_of(text) == 5 and "big picture" not in text
    # what people wrote is still there, untouched
    assert next(d for d in org.docs() if d["id"] == first_id)["version"] == version
    assert fake.file_content(first_id) == edited
    event = org.instance(3)
    assert event is not None and event["description"] == "Omar: let's also talk about <b>Q1</b>"

    second_id = doc_id(second.url)
    fake.human_edit(second_id, fake.file_content(second_id).replace("[ ] Ask Lee", "[x] Ask Lee"), MAYA)
    third = org.text(doc_id(only(org.run(before(5))).url))
    assert "[ ] Draft the on-call proposal" in third and "Ask Lee" not in third
    assert number_of(third) == 6 and "big picture" in third  # every 2nd with career_every_weeks = 2
    assert len(org.docs()) == 3


def test_a_412_race_reads_the_event_again_and_keeps_the_other_change(tmp_path, fake, monkeypatch):
    org = Workspace(tmp_path, fake)
    real = GoogleEventLinks._event

    def raced(self: GoogleEventLinks, calendar: Any, meeting: Any) -> dict[str, Any]:
        event = real(self, calendar, meeting)
        # Maya attaches her own file between calsync's read and its write
        change_occurrence(
            fake, MAYA, 3, {"attachments": [{"fileUrl": "https://example.test/notes.pdf", "title": "notes"}]}
        )
        return event

    monkeypatch.setattr(GoogleEventLinks, "_event", raced)
    made = only(org.run(before(3)))
    assert made.action == "created"
    assert [r.status for r in fake.requests if r.method == "PATCH"] == [412, 200]
    event = org.instance(3)
    assert event is not None
    theirs, ours = event["attachments"]  # both: the 412 made calsync merge with Maya's change
    assert theirs["fileUrl"] == "https://example.test/notes.pdf"
    assert ours["fileId"] == doc_id(made.url)


def test_a_moved_occurrence_keeps_its_doc_and_a_cancelled_ones_items_move_on(tmp_path, fake):
    org = Workspace(tmp_path, fake)
    made = only(org.run(before(3)))
    moved_to = week(3) + timedelta(hours=5)
    for calendar in (MAYA, OMAR):
        change_occurrence(
            fake,
            calendar,
            3,
            {
                "start": {"dateTime": moved_to.isoformat(), "timeZone": "Europe/Berlin"},
                "end": {
                    "dateTime": (moved_to + timedelta(minutes=30)).isoformat(),
                    "timeZone": "Europe/Berlin",
                },
                "sequence": 1,
            },
        )
    moved = only(org.run(before(3) + timedelta(hours=1)))
    assert (moved.action, moved.url, moved.start) == ("unchanged", made.url, moved_to)
    assert len(org.docs()) == 1

    fourth = only(org.run(before(4)))
    fourth_id = doc_id(fourth.url)
    fake.human_edit(
        fourth_id,
        fake.file_content(fourth_id).replace("<li>[ ] </li>", "<li>[ ] Review the roadmap</li>"),
        OMAR,
    )
    for calendar in (MAYA, OMAR):
        change_occurrence(fake, calendar, 4, {"status": "cancelled", "sequence": 1})
    fifth = only(org.run(before(5)))
    text = org.text(doc_id(fifth.url))
    assert "[ ] Review the roadmap" in text
    assert number_of(text) == 5  # the cancelled meeting (number 5) did not use up its number
    assert fourth_id in {d["id"] for d in org.docs()}  # the cancelled one's Doc is kept


def test_a_crash_after_creating_the_doc_makes_no_second_doc(tmp_path, fake, monkeypatch):
    org = Workspace(tmp_path, fake)

    def crash(self: StateStore, record: Any) -> None:
        raise KeyboardInterrupt  # calsync dies after the Doc was created, before anything is recorded

    monkeypatch.setattr(StateStore, "save_agenda", crash)
    with pytest.raises(KeyboardInterrupt):
        org.run(before(3))
    assert len(org.docs()) == 1 and org.instance(3) is None
    monkeypatch.undo()
    after = only(org.run(before(3)))
    assert after.action == "linked"  # found by its key in appProperties, then linked
    assert len(org.docs()) == 1
    event = org.instance(3)
    assert event is not None and len(event["attachments"]) == 1

    # a crash after linking, before recording: the link is found in the event, not written twice
    fake.reset_log()
    calls = {"n": 0}
    real = StateStore.save_agenda

    def crash_late(self: StateStore, record: Any) -> None:
        calls["n"] += 1
        if record.get("linked"):
            raise KeyboardInterrupt
        real(self, record)

    monkeypatch.setattr(StateStore, "save_agenda", crash_late)
    with pytest.raises(KeyboardInterrupt):
        org.run(before(4))
    monkeypatch.undo()
    assert only(org.run(before(4))).action == "unchanged"
    assert len(org.docs()) == 2
    event = org.instance(4)
    assert event is not None and len(event["attachments"]) == 1
    assert len([r for r in fake.requests if r.method == "PATCH"]) == 1


def test_rolling_mode_one_doc_per_pair_linked_once_on_the_series(tmp_path, fake):
    org = Workspace(tmp_path, fake, mode="rolling")
    first = only(org.run(before(3)))
    assert first.action == "created"
    ident = doc_id(first.url)
    master = next(e for e in fake.events(MAYA) if e["id"] == event_id(UID))
    assert [a["fileId"] for a in master["attachments"]] == [ident]
    edited = fake.file_content(ident).replace("<li>[ ] </li>", "<li>[ ] Share the hiring plan</li>")
    fake.human_edit(ident, edited, OMAR)

    fake.reset_log()
    second = only(org.run(before(4)))
    assert second.action == "updated" and second.url == first.url
    assert len(org.docs()) == 1
    assert [r.method for r in org.writes()] == ["PATCH"]  # the new section; the series is linked already
    text = org.text(ident)
    assert text.index("1:1 number 5") < text.index("1:1 number 4")
    assert text.count("[ ] Share the hiring plan") == 2  # carried into the new section, kept in the old
    fake.reset_log()
    assert only(org.run(before(4) + timedelta(hours=1))).action == "unchanged"
    assert org.writes() == []


def test_the_cli_links_once_through_throttling_and_is_a_no_op_when_run_again(tmp_path, fake):
    org = Workspace(tmp_path, fake)
    # Drive throttles the upload, then the attachment: both are retried; one Doc, one attachment
    fake.fail_next(1, 429, retry_after=1, path_contains="/upload/drive/v3/files")
    fake.fail_next(1, 503, path_contains=instance_id(3))
    when = before(3).isoformat()
    first = run_calsync("agendas", "-c", str(org.config), "--now", when, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout and "Omar <b>Haddad</b> / Maya Chen" in first.stdout
    assert "1 1:1s due an agenda: 1 created" in first.stdout
    assert len(org.docs()) == 1
    event = org.instance(3)
    assert event is not None and len(event["attachments"]) == 1
    fake.reset_log()
    second = run_calsync("agendas", "-c", str(org.config), "--now", when, timeout=120)
    assert second.returncode == 0 and "1 unchanged" in second.stdout
    assert org.writes() == []


def test_a_refused_write_is_reported_and_retried_on_the_next_pass(tmp_path, fake):
    org = Workspace(tmp_path, fake)
    fake.fail_next(1, 403, reason="forbidden", path_contains="/permissions")
    failed = only(org.run(before(3)))
    assert (
        failed.action == "failed" and "cannot share the agenda document with omar@acme.test" in failed.detail
    )
    assert org.instance(3) is None  # not linked before it is shared
    made = only(org.run(before(3)))
    assert made.action == "linked" and len(org.docs()) == 1
    assert {p.get("emailAddress") for p in fake.permissions_of(org.docs()[0]["id"])} == {MAYA, OMAR}
