"""`calsync run` as an admin runs it: a subprocess of this interpreter, against a Microsoft 365 tenant
(the Graph fake, https on 127.0.0.1) and a mail server (the SMTP fake), with the JSON log in a file.

The tenant: Maya manages Omar and Zoe. Maya and Omar have a weekly 1:1 whose next occurrence is a day
from now (so its agenda is due), Zoe has none yet. Everything is dated from the real clock, because the
daemon runs on it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from calsync.demo import Attendee, EventSpec
from calsync.store import StateStore
from tests.fakes.graph import FakeGraph
from tests.fakes.graph_events import load_mailbox
from tests.fakes.smtp import SmtpFake

MAYA, OMAR, ZOE = "maya@acme.test", "omar@acme.test", "zoe@acme.test"
CLIENT_ID = "7c0ffee0-calsync-daemon"
SECRET = "s3cret-value-that-must-never-be-logged"
ROSTER = f"email,name,manager_email\n{MAYA},Maya Chen,\n{OMAR},Omar Haddad,{MAYA}\n{ZOE},Zoe Park,{MAYA}\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def weekly(uid: str, report: str, name: str, first: datetime, organizer: str = MAYA) -> EventSpec:
    return EventSpec(
        uid=uid,
        summary="1:1",
        start=first,
        organizer=organizer,
        attendees=[Attendee(organizer, organizer), Attendee(report, name)],
        rrule={"FREQ": "WEEKLY"},
    )


def next_occurrence_start() -> datetime:
    """A day from now, on the hour: within the agendas' two days of lead time."""
    return (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


class Service:
    """The tenant, the mail server, the config and the running daemon of one test."""

    def __init__(
        self,
        root: Path,
        graph: FakeGraph,
        smtp: SmtpFake,
        *,
        interval: str = "2s",
        daemon: str = "",
        teams: int = 0,
    ) -> None:
        """``teams``: that many more managers, each with one report and a weekly 1:1 like Omar's."""
        self.root = root
        self.graph = graph
        self.smtp = smtp
        self.port = free_port()
        self.log_path = root / "calsync.log"
        self.state = root / "state" / "calsync-state.json"
        self.report = root / "state" / "calsync-report.json"
        self.notify = root / "notify.sock"
        self.teams = [(f"lead{n}@acme.test", f"member{n}@acme.test") for n in range(teams)]
        roster = ROSTER + "".join(
            f"{lead},Lead {n},\n{member},Member {n},{lead}\n" for n, (lead, member) in enumerate(self.teams)
        )
        (root / "org.csv").write_text(roster, encoding="utf-8")
        (root / "secret.txt").write_text(SECRET, encoding="utf-8")
        graph.add_user(MAYA, "Maya Chen")
        graph.add_user(OMAR, "Omar Haddad", manager=MAYA)
        graph.add_user(ZOE, "Zoe Park", manager=MAYA)
        graph.add_app(CLIENT_ID, secret=SECRET, roles=("Calendars.ReadWrite", "Files.ReadWrite.All"))
        self.first = next_occurrence_start() - timedelta(weeks=4)
        for mailbox in (MAYA, OMAR):
            load_mailbox(graph, mailbox, [weekly("maya-omar@acme.test", OMAR, "Omar Haddad", self.first)])
        for n, (lead, member) in enumerate(self.teams):
            graph.add_user(lead, f"Lead {n}")
            graph.add_user(member, f"Member {n}", manager=lead)
            series = weekly(f"team{n}@acme.test", member, f"Member {n}", self.first, organizer=lead)
            for mailbox in (lead, member):
                load_mailbox(graph, mailbox, [series])
        self.mailboxes = [MAYA, OMAR, ZOE, *(m for team in self.teams for m in team)]
        self.config = root / "calsync.toml"
        self.daemon_section = daemon
        self.interval = interval
        self.write_config()
        self.process: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None

    def write_config(self, extra: str = "") -> None:
        graph, smtp = self.graph, self.smtp
        self.config.write_text(
            f"""[org]
domains = ["acme.test"]
roster = "org.csv"
timezone = "Europe/Berlin"

[[sources]]
type = "microsoft"
name = "m365"
tenant = "{graph.tenant}"
client_id = "{CLIENT_ID}"
client_secret_file = "secret.txt"
mailboxes = {json.dumps(self.mailboxes)}
authority_host = "{graph.authority_host}"
graph_endpoint = "{graph.graph_endpoint}"
ca_bundle = "{graph.ca_path}"
timeout_seconds = 10

[state]
path = "{self.state}"

[digest]
from = "calsync@acme.test"

[smtp]
host = "127.0.0.1"
port = {smtp.port}
security = "none"
helo_name = "calsync.test"
timeout_seconds = 10

[daemon]
sync_interval = "{self.interval}"
jitter = 0
listen = "127.0.0.1:{self.port}"
{self.daemon_section}
{extra}""",
            encoding="utf-8",
        )

    # -- the process -----------------------------------------------------------------------------------

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self._log_handle = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "calsync",
                "run",
                "--config",
                str(self.config),
                "--log-format",
                "json",
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log_handle,
            env={**os.environ, **(env or {})},
        )
        return self.process

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self._log_handle is not None:
                self._log_handle.close()
                self._log_handle = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.wait()

    # -- what it says ----------------------------------------------------------------------------------

    def logs(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        entries = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"event": None, "message": line, "level": "raw"})
        return entries

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.logs() if e.get("event") == name]

    def wait_for(self, what: Callable[[], Any], timeout: float = 60, why: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = what()
            if found:
                return found
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"calsync exited ({self.process.returncode}) waiting for {why}: {self.tail()}"
                )
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {why}: {self.tail()}")

    def cycles(self) -> int:
        return len(self.events("cycle done"))

    def tail(self, lines: int = 15) -> str:
        return "\n".join(e.get("message", "") for e in self.logs()[-lines:])

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8")

    def report_json(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.report.read_text(encoding="utf-8"))
        return report

    def pair_status(self, report: str) -> str:
        pairs = self.report_json()["pairs"]
        return str(next(p["status"] for p in pairs if p["manager"] == MAYA and p["report"] == report))

    def store(self) -> StateStore:
        """The state as a restarted process would read it (without taking the lock)."""
        return StateStore(self.state, lock=False, recover=False)

    def agenda_files(self, owner: str = MAYA) -> list[dict[str, Any]]:
        return [i for i in self.graph.drive_items(owner) if "file" in i]

    def linked_events(self, organizer: str = MAYA) -> list[dict[str, Any]]:
        return [e for e in self.graph.events(organizer) if links_in(e)]


def links_in(event: dict[str, Any]) -> int:
    """How many calsync link sections the event's body holds."""
    from calsync.agenda import LINK_START

    return str((event.get("body") or {}).get("content", "")).count(LINK_START)
