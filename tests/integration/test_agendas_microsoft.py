"""`calsync agendas` with the onedrive backend against the Graph fake, through real msal and requests:
a Markdown file in the organizer's OneDrive, shared with two, linked once in a marked section of the
occurrence's body, the rest of the body (a Teams block) kept byte for byte."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from calsync.agenda import LINK_START
from calsync.config import load_config
from calsync.pipeline import AgendaRun, run_agendas
from calsync.publish.onedrive import GraphEventLinks
from calsync.store import StateStore
from tests.agenda_scenario import (
    MAYA,
    OMAR,
    ORG,
    ROSTER,
    UID,
    ZOE,
    before,
    number_of,
    only,
    series,
    week,
)
from tests.fakes.graph import FakeGraph
from tests.fakes.graph_events import load_mailbox
from tests.integration.cli import run_calsync

CLIENT_ID = "5e1f0c2a-calsync-agendas"
SECRET = "correct horse battery staple"
TEAMS = (
    "<div>________________________________________________________________________________</div>\r\n"
    '<div><b>Microsoft Teams meeting</b></div>\r\n<div><a href="https://teams.microsoft.com/l/meetup-join/'
    '19%3ameeting_x%40thread.v2/0?context=%7b%22Tid%22%3a%22t%22%7d">Join the meeting now</a></div>\r\n'
)
WRITES = ("POST", "PATCH", "PUT", "DELETE")
#: POSTs that only read.
READ_POSTS = ("/$batch", "/calendar/getSchedule")


pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    with FakeGraph() as graph:
        yield graph


class Tenant:
    def __init__(self, root: Path, fake: FakeGraph, mode: str = "per-meeting") -> None:
        self.fake = fake
        (root / "org.csv").write_text(ROSTER, encoding="utf-8")
        fake.add_user(MAYA, "Maya Chen")
        fake.add_user(OMAR, "Omar Haddad", manager=MAYA)
        fake.add_user(ZOE, "Zoe Park", manager=MAYA)
        fake.add_app(
            CLIENT_ID,
            secret=SECRET,
            roles=("Calendars.ReadWrite", "Files.ReadWrite.All", "User.Read.All"),
        )
        (root / "secret.txt").write_text(SECRET)
        for mailbox in (MAYA, OMAR):
            load_mailbox(fake, mailbox, [series()], "Europe/Berlin")
        self.master = next(
            e["id"] for e in fake.events(MAYA) if e.get("type") == "seriesMaster" and e["iCalUId"] == UID
        )
        fake.patch_event(MAYA, self.master, {"body": {"contentType": "html", "content": TEAMS}})
        self.config = root / "calsync.toml"
        self.config.write_text(
            ORG
            + f"""[[sources]]
type = "microsoft"
tenant = "{fake.tenant}"
client_id = "{CLIENT_ID}"
client_secret_file = "secret.txt"
mailboxes = ["{MAYA}", "{OMAR}"]
authority_host = "{fake.authority_host}"
graph_endpoint = "{fake.graph_endpoint}"
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

    def files(self) -> list[dict[str, Any]]:
        return [i for i in self.fake.drive_items(MAYA) if "file" in i]

    def text(self, url: str | None) -> str:
        item = next(i for i in self.files() if i["webUrl"] == url)
        return self.fake.item_content(MAYA, item["path"]).decode("utf-8")

    def item(self, url: str | None) -> dict[str, Any]:
        return next(i for i in self.files() if i["webUrl"] == url)

    def occurrence(self, n: int) -> dict[str, Any] | None:
        """Maya's exception for the n-th occurrence, if it became one."""
        for event in self.fake.events(MAYA):
            original = event.get("originalStart")
            if event.get("type") == "exception" and original and _instant(original) == week(n):
                return event
        return None

    def writes(self) -> list[Any]:
        # a $batch is a POST that only carries reads (its inner requests are logged on their own), and
        # so is getSchedule (Zoe's out-of-office, asked through a mailbox read)
        return [
            r
            for r in self.fake.requests
            if r.method in WRITES and "/oauth2/" not in r.path and not r.path.endswith(READ_POSTS)
        ]


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text[:19])
    return moment.replace(tzinfo=UTC)


def body_of(event: dict[str, Any] | None) -> str:
    assert event is not None
    return str(event["body"]["content"])


def test_a_file_is_uploaded_shared_with_the_two_and_linked_in_that_occurrence_only(tmp_path, fake):
    org = Tenant(tmp_path, fake)
    made = only(org.run(before(3)))
    assert made.action == "created"
    [item] = org.files()
    assert item["path"].startswith("calsync agendas/1-1 agenda ") and item["path"].endswith(".md")
    text = org.text(made.url)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert number_of(text) == 4 and "big picture" in text
    grants = fake.item_permissions(MAYA, item["id"])
    assert sorted(
        ((p.get("grantedToV2") or {}).get("user") or {}).get("email", "")
        or (p.get("invitation") or {}).get("email", "")
        for p in grants
        if "owner" not in p["roles"]
    ) == [OMAR]
    assert all(p["roles"] == ["write"] for p in grants if "owner" not in p["roles"])
    assert fake.sent_invitations == []  # shared without mail
    event = org.occurrence(3)
    assert event is not None
    body = body_of(event)
    assert LINK_START in body and made.url is not None and made.url.replace("&", "&amp;") in body
    assert body.endswith(TEAMS + "\r\n</body>\r\n</html>\r\n")  # the Teams block, byte for byte
    assert org.occurrence(2) is None and org.occurrence(4) is None
    assert fake.meeting_updates == [(MAYA, event["id"])]  # the event was written once, as organizer
    assert all(r.mailbox == MAYA for r in org.writes())  # Omar's mailbox is never written

    fake.reset_log()
    again = only(org.run(before(3) + timedelta(hours=1)))
    assert again.action == "unchanged"
    assert org.writes() == []
    assert len(fake.meeting_updates) == 1


def test_human_edits_are_kept_and_open_items_carry_over_three_meetings(tmp_path, fake):
    org = Tenant(tmp_path, fake)
    first = only(org.run(before(3)))
    item = org.item(first.url)
    edited = (
        org.text(first.url)
        .replace("- [ ] \n", "- [ ] Draft the on-call proposal\n- [x] Book the offsite\n- [ ] Ask Lee\n")
        .replace("Growth theme: (choose", "Growth theme: Public speaking\n(choose")
    )
    fake.human_edit_item(MAYA, item["id"], edited.encode(), OMAR)
    event = org.occurrence(3)
    assert event is not None
    words = body_of(event).replace("<body>\r\n", "<body>\r\n<p>Maya: bring the Q1 numbers</p>", 1)
    fake.patch_event(MAYA, event["id"], {"body": {"contentType": "html", "content": words}})

    assert only(org.run(before(3) + timedelta(hours=2))).action == "unchanged"
    second = only(org.run(before(4)))
    text = org.text(second.url)
    assert "- [ ] Draft the on-call proposal" in text and "- [ ] Ask Lee" in text
    assert "Book the offsite" not in text and "## Growth theme: Public speaking" in text
    assert number_of(text) == 5 and "big picture" not in text
    assert org.text(first.url) == edited
    assert body_of(org.occurrence(3)) == words

    fake.human_edit_item(
        MAYA, org.item(second.url)["id"], text.replace("- [ ] Ask Lee", "- [x] Ask Lee").encode(), MAYA
    )
    third = org.text(only(org.run(before(5))).url)
    assert "- [ ] Draft the on-call proposal" in third and "Ask Lee" not in third
    assert number_of(third) == 6 and "big picture" in third
    assert len(org.files()) == 3
    assert len(fake.meeting_updates) == 3  # one write per occurrence, never more


def test_a_412_race_reads_the_body_again_and_keeps_the_other_change(tmp_path, fake, monkeypatch):
    org = Tenant(tmp_path, fake)
    real = GraphEventLinks.send
    raced = {"done": False}

    def send(self: GraphEventLinks, method: str, user: str, path: str, what: str, **options: Any) -> Any:
        if method == "PATCH" and not raced["done"]:
            raced["done"] = True  # Maya edits the invitation between calsync's read and its write
            event_id = urllib.parse.unquote(path.rsplit("/", 1)[1])
            fake.patch_event(
                MAYA, event_id, {"body": {"contentType": "html", "content": f"<p>Maya's note</p>{TEAMS}"}}
            )
        return real(self, method, user, path, what, **options)

    monkeypatch.setattr(GraphEventLinks, "send", send)
    made = only(org.run(before(3)))
    assert made.action == "created"
    assert [r.status for r in fake.requests if r.method == "PATCH"] == [412, 200]
    body = body_of(org.occurrence(3))
    assert (
        LINK_START in body
        and "<p>Maya's note</p>" in body
        and body.endswith(TEAMS + "\r\n</body>\r\n</html>\r\n")
    )
    assert len(fake.meeting_updates) == 1


def test_a_moved_occurrence_keeps_its_file_and_a_cancelled_ones_items_move_on(tmp_path, fake):
    org = Tenant(tmp_path, fake)
    made = only(org.run(before(3)))
    moved_to = week(3) + timedelta(hours=5)
    for mailbox in (MAYA, OMAR):
        master = next(e["id"] for e in fake.events(mailbox) if e.get("type") == "seriesMaster")
        fake.put_exception(
            mailbox,
            master,
            week(3),
            {
                "start": {
                    "dateTime": moved_to.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "timeZone": "UTC",
                },
                "end": {
                    "dateTime": (moved_to + timedelta(minutes=30))
                    .astimezone(UTC)
                    .strftime("%Y-%m-%dT%H:%M:%S"),
                    "timeZone": "UTC",
                },
            },
        )
    moved = only(org.run(before(3) + timedelta(hours=1)))
    assert (moved.action, moved.url, moved.start) == ("unchanged", made.url, moved_to)
    assert len(org.files()) == 1

    fourth = only(org.run(before(4)))
    fake.human_edit_item(
        MAYA,
        org.item(fourth.url)["id"],
        org.text(fourth.url).replace("- [ ] \n", "- [ ] Review the roadmap\n").encode(),
        OMAR,
    )
    for mailbox in (MAYA, OMAR):
        master = next(e["id"] for e in fake.events(mailbox) if e.get("type") == "seriesMaster")
        fake.cancel_occurrence(mailbox, master, week(4))
    fifth = only(org.run(before(5)))
    text = org.text(fifth.url)
    assert "- [ ] Review the roadmap" in text
    assert number_of(text) == 5  # the cancelled meeting did not use up its number
    assert fourth.url in {i["webUrl"] for i in org.files()}


def test_a_crash_after_uploading_makes_no_second_file_and_no_second_write(tmp_path, fake, monkeypatch):
    org = Tenant(tmp_path, fake)

    def crash(self: StateStore, record: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(StateStore, "save_agenda", crash)
    with pytest.raises(KeyboardInterrupt):
        org.run(before(3))
    assert len(org.files()) == 1 and org.occurrence(3) is None
    monkeypatch.undo()
    assert only(org.run(before(3))).action == "linked"  # the file is found at its path
    assert len(org.files()) == 1 and len(fake.meeting_updates) == 1

    real = StateStore.save_agenda

    def crash_late(self: StateStore, record: Any) -> None:
        if record.get("linked"):
            raise KeyboardInterrupt  # dies after the event was written, before it is recorded
        real(self, record)

    monkeypatch.setattr(StateStore, "save_agenda", crash_late)
    with pytest.raises(KeyboardInterrupt):
        org.run(before(4))
    monkeypatch.undo()
    assert only(org.run(before(4))).action == "unchanged"  # the link is found in the body
    assert len(org.files()) == 2 and len(fake.meeting_updates) == 2
    assert body_of(org.occurrence(4)).count(LINK_START) == 1


def test_rolling_mode_one_file_per_pair_linked_once_on_the_series(tmp_path, fake):
    org = Tenant(tmp_path, fake, mode="rolling")
    first = only(org.run(before(3)))
    assert first.action == "created"
    master = next(e for e in fake.events(MAYA) if e["id"] == org.master)
    assert LINK_START in master["body"]["content"] and master["body"]["content"].endswith(
        TEAMS + "\r\n</body>\r\n</html>\r\n"
    )
    item = org.item(first.url)
    human = org.text(first.url).replace("- [ ] \n", "- [ ] Share the hiring plan\n")
    fake.human_edit_item(MAYA, item["id"], human.encode(), OMAR)

    fake.reset_log()
    second = only(org.run(before(4)))
    assert second.action == "updated" and second.url == first.url
    assert len(org.files()) == 1
    assert [r.method for r in org.writes()] == ["PUT"]  # the new section, with If-Match
    text = org.text(first.url)
    assert text.endswith(human) and text.index("1:1 number 5") < text.index("1:1 number 4")
    assert text.count("- [ ] Share the hiring plan") == 2
    assert fake.meeting_updates == [(MAYA, org.master)]  # the series was written once
    fake.reset_log()
    assert only(org.run(before(4) + timedelta(hours=1))).action == "unchanged"
    assert org.writes() == []


def test_the_cli_links_once_through_throttling_and_is_a_no_op_when_run_again(tmp_path, fake):
    org = Tenant(tmp_path, fake)
    fake.fail_next(429, retry_after=1, path_contains=":/content")  # OneDrive throttles the upload
    fake.fail_next(503, path_contains="/invite")
    when = before(3).isoformat()
    first = run_calsync("agendas", "-c", str(org.config), "--now", when, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "1 1:1s due an agenda: 1 created" in first.stdout
    assert len(org.files()) == 1 and len(fake.meeting_updates) == 1
    fake.reset_log()
    second = run_calsync("agendas", "-c", str(org.config), "--now", when, timeout=120)
    assert second.returncode == 0 and "1 unchanged" in second.stdout
    assert org.writes() == []


def test_without_the_files_permission_the_failure_says_so_and_nothing_is_linked(tmp_path, fake):
    org = Tenant(tmp_path, fake)
    fake.set_roles(CLIENT_ID, ("Calendars.ReadWrite", "User.Read.All"))
    result = run_calsync("agendas", "-c", str(org.config), "--now", before(3).isoformat(), timeout=120)
    assert result.returncode == 3
    assert "failed" in result.stdout and "cannot look for the agenda document" in result.stderr
    assert "Files.ReadWrite.All" in result.stderr and "403" in result.stderr
    assert org.files() == [] and fake.meeting_updates == []
    fake.set_roles(CLIENT_ID, ("Calendars.ReadWrite", "Files.ReadWrite.All", "User.Read.All"))
    assert only(org.run(before(3))).action == "created"  # granted: the next pass does it
