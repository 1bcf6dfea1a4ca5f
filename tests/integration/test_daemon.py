"""`calsync run` in a subprocess against the Graph and SMTP fakes: cycles, changes, signals, health,
metrics, systemd notifications, and a second daemon on the same state."""

from __future__ import annotations

import io
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from calsync.cli import main
from tests.fakes.graph import FakeGraph
from tests.fakes.graph_events import load_mailbox
from tests.fakes.smtp import SmtpFake
from tests.integration.daemon_env import MAYA, OMAR, SECRET, ZOE, Service, weekly

pytestmark = pytest.mark.usefixtures("loopback_only")


class Systemd:
    """A stand-in for systemd's notification socket, read as systemd does: as messages arrive."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.notes: list[str] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.closed.is_set():
            try:
                self.notes.extend(self.sock.recv(4096).decode().split("\n"))
            except TimeoutError:
                continue

    def close(self) -> None:
        self.closed.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[Systemd]:
    listener = Systemd(tmp_path / "notify.sock")
    yield listener
    listener.close()


def stops_cleanly_within(service: Service, seconds: float) -> None:
    """SIGTERM: exit code 0, within ``seconds``."""
    asked = time.monotonic()
    service.signal(signal.SIGTERM)
    assert service.wait(timeout=seconds + 5) == 0
    assert time.monotonic() - asked < seconds


def test_cycles_sync_link_report_and_send_pick_up_changes_reload_and_stop_cleanly(
    tmp_path: Path, graph: FakeGraph, smtp: SmtpFake, systemd: Systemd
) -> None:
    service = Service(tmp_path, graph, smtp)
    service.start(env={"NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "1000000"})
    try:
        service.wait_for(service.cycles, why="the first cycle")
        # The first cycle synced, reported, wrote the agenda and sent the digest.
        assert service.pair_status(OMAR) == "ok"
        assert service.pair_status(ZOE) == "no-series"
        assert len(service.agenda_files()) == 1 and len(service.linked_events()) == 1
        assert [m.rcpt_tos for m in smtp.messages] == [(MAYA,)]
        status, body = service.get("/healthz")
        assert status == 200 and '"ok"' in body
        status, metrics = service.get("/metrics")
        assert status == 200
        assert 'calsync_pairs{status="ok"} 1.0' in metrics
        assert 'calsync_pairs{status="no-series"} 1.0' in metrics
        assert "calsync_agendas_linked_total 1.0" in metrics
        assert "calsync_digests_sent_total 1.0" in metrics
        assert 'calsync_source_up{source="m365"} 1.0' in metrics
        requests = next(
            line
            for line in metrics.splitlines()
            if line.startswith('calsync_requests_total{provider="microsoft"}')
        )
        assert float(requests.split()[-1]) > 0
        assert 'calsync_last_successful_sync_timestamp_seconds{source="m365"}' in metrics

        # A change in the tenant is picked up by the next cycle.
        cycles = service.cycles()
        for mailbox in (MAYA, ZOE):
            load_mailbox(graph, mailbox, [weekly("maya-zoe@acme.test", ZOE, "Zoe Park", service.first)])
        service.wait_for(lambda: service.cycles() > cycles + 1, why="two more cycles")
        assert service.pair_status(ZOE) == "ok"
        assert len(service.agenda_files()) == 2  # Zoe's 1:1 tomorrow got its agenda; Omar's none again
        assert len(smtp.messages_to(MAYA)) == 1  # one digest per period, however many cycles

        # SIGHUP with a broken config: rejected, the running config kept, the cycles go on.
        service.config.write_text(service.config.read_text() + "\n[daemon\n", encoding="utf-8")
        service.signal(signal.SIGHUP)
        rejected = service.wait_for(lambda: service.events("reload rejected"), why="the rejected reload")
        assert "invalid TOML" in rejected[0]["message"]
        cycles = service.cycles()
        service.wait_for(lambda: service.cycles() > cycles, why="a cycle after the rejected reload")

        # SIGTERM: stopped cleanly, within the limit.
        stops_cleanly_within(service, 10)
    finally:
        service.kill()
    time.sleep(0.3)
    notes = list(systemd.notes)
    assert "READY=1" in notes and "WATCHDOG=1" in notes and "STOPPING=1" in notes
    assert any(n.startswith("STATUS=last cycle") for n in notes)
    log = service.log_path.read_text(encoding="utf-8")
    assert SECRET not in log and "client_secret" not in log
    assert service.events("stopped")
    store = service.store()
    assert store.schema() == 2 and len(store.agendas()) >= 2
    store.close()


def test_sigterm_stops_within_the_limit_while_a_request_hangs(
    tmp_path: Path, graph: FakeGraph, smtp: SmtpFake
) -> None:
    service = Service(tmp_path, graph, smtp)
    service.start()
    try:
        service.wait_for(service.cycles, why="the first cycle")
        graph.slow_next(50, 60.0, path_contains="/users/")  # every mailbox's next request hangs a minute
        cycles = service.cycles()
        graph.reset_log()
        service.wait_for(lambda: graph.count("GET", "/users/") >= 1, why="the next cycle's requests")
        time.sleep(1.0)
        assert service.cycles() == cycles  # stuck in the slow requests
        stops_cleanly_within(service, 10)
    finally:
        graph.clear_faults()
        service.kill()
    store = service.store()  # whole, and still ours: nothing half-written
    assert store.calendars("m365") == sorted([MAYA, OMAR, ZOE])
    store.close()


def test_sigterm_during_a_throttled_wait_stops_at_once(
    tmp_path: Path, graph: FakeGraph, smtp: SmtpFake
) -> None:
    graph.fail_next(429, 100, retry_after=120, path_contains="/users/")
    service = Service(tmp_path, graph, smtp)
    service.start()
    try:
        service.wait_for(lambda: graph.count("GET", "/users/") >= 3, why="throttled requests")
        stops_cleanly_within(service, 5)
        assert service.events("cycle stopped")
    finally:
        graph.clear_faults()
        service.kill()


def test_a_second_daemon_on_the_same_state_refuses_to_start(
    tmp_path: Path, graph: FakeGraph, smtp: SmtpFake
) -> None:
    first = Service(tmp_path, graph, smtp)
    first.start()
    try:
        first.wait_for(first.cycles, why="the first cycle")
        second = Service.__new__(Service)
        second.__dict__.update(first.__dict__)
        second.log_path = tmp_path / "second.log"
        second.process = None
        second.start("--once")
        assert second.wait(timeout=30) == 2
        refused = second.events("start failed")
        assert refused and "in use by another calsync process" in refused[0]["message"]
        assert first.process is not None and first.process.poll() is None  # the first runs on
    finally:
        first.kill()


def test_healthz_fails_when_no_source_syncs_for_three_intervals(
    tmp_path: Path, graph: FakeGraph, smtp: SmtpFake
) -> None:
    service = Service(tmp_path, graph, smtp, interval="1s")
    service.start()
    try:
        service.wait_for(service.cycles, why="the first cycle")
        assert service.get("/healthz")[0] == 200
        graph.fail_next(401, 10_000, code="invalid_client", path_contains="/oauth2/")
        graph.expire_access_tokens()
        _, body = service.wait_for(
            lambda: (lambda answer: answer if answer[0] == 503 else None)(service.get("/healthz")),
            timeout=30,
            why="/healthz to fail",
        )
        assert "no source has synced" in body
        assert 'calsync_source_up{source="m365"} 0.0' in service.get("/metrics")[1]
        graph.clear_faults()
        service.wait_for(lambda: service.get("/healthz")[0] == 200, timeout=30, why="/healthz to recover")
    finally:
        graph.clear_faults()
        service.kill()


def test_read_only_commands_work_beside_the_service_and_writing_ones_name_it(
    tmp_path: Path, graph: FakeGraph, smtp: SmtpFake
) -> None:
    service = Service(tmp_path, graph, smtp, interval="1h")
    service.start()
    try:
        service.wait_for(service.cycles, why="the first cycle")
        assert service.process is not None
        pid = service.process.pid
        config = str(service.config)

        def run(*args: str) -> tuple[int, str, str]:
            out, err = io.StringIO(), io.StringIO()
            return main([args[0], "--config", config, *args[1:]], out, err), out.getvalue(), err.getvalue()

        note = (
            f"calsync: note: {service.state} is in use by another calsync (pid {pid}): read as it last wrote"
        )
        code, out, err = run("report", "--format", "json")
        assert code == 0, err
        assert note in err
        assert {p["report"]: p["status"] for p in json.loads(out)["pairs"]}[OMAR] == "ok"
        code, out, err = run("digest")
        assert code == 0 and note in err and "maya@acme.test" in out
        code, out, err = run("digest", "--preview", MAYA)
        assert code == 0 and note in err and "Subject: 1:1s in Maya Chen's org" in out
        code, out, err = run("agendas", "--dry-run")
        assert code == 0 and note in err, err
        for writing in (("agendas",), ("digest", "--send")):
            code, out, err = run(*writing)
            assert code == 2 and out == "", writing
            assert f"in use by another calsync process (pid {pid})" in err and "read-only commands" in err
        assert service.process.poll() is None  # and the service runs on, its state its own
        assert service.store().calendars("m365") == sorted(service.mailboxes)
    finally:
        service.kill()
