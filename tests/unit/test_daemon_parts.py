"""The daemon's pure parts: systemd notifications, the health rule, the log formats, the metrics."""

from __future__ import annotations

import io
import json
import logging
import socket
from pathlib import Path

from calsync.daemon import JsonFormatter, Metrics, Status, configure_logging, pair_counts
from calsync.detect import resolve
from calsync.model import CalendarData
from calsync.org import Org, Person
from calsync.report import Policy, build_report
from calsync.sdnotify import Notifier
from calsync.telemetry import REQUESTS
from tests.builders import at, clock, occ, series_copy


def test_notifier_sends_datagrams_and_never_blocks_or_fails(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000"})
    assert notifier.enabled and notifier.watchdog_interval == 10.0
    assert notifier.send("READY=1", "STATUS=two\nlines")
    assert listener.recv(100) == b"READY=1\nSTATUS=two lines"
    # Nobody reads: once the queue is full, messages are dropped, not waited on.
    results = [notifier.send("WATCHDOG=1") for _ in range(2000)]
    assert results[0] and not results[-1]
    listener.close()
    assert not notifier.send("STOPPING=1")  # the socket is gone
    assert not Notifier({}).enabled and not Notifier({}).send("READY=1")
    assert Notifier({"NOTIFY_SOCKET": "@abstract"}).address == "\0abstract"
    assert Notifier({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_interval is None  # not us


def test_healthz_fails_after_the_limit_without_a_successful_sync() -> None:
    status = Status(started=1000.0)
    assert status.unhealthy(900, now=1500) is None  # a fresh start has its time
    assert "no source has synced since calsync started 1000 s ago" in str(status.unhealthy(900, now=2000))
    status.last_success = {"google": 1800.0, "m365": 1900.0}
    assert status.unhealthy(900, now=2700) is None
    assert "no source has synced for 901 s" in str(status.unhealthy(900, now=2801))


def test_json_logs_are_one_object_per_line_with_fields() -> None:
    stream = io.StringIO()
    configure_logging(stream, "json")
    logging.getLogger("calsync").info(
        "cycle 1 done", extra={"fields": {"event": "cycle done", "problems": 2}}
    )
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "cycle 1 done" and entry["event"] == "cycle done" and entry["problems"] == 2
    assert entry["level"] == "info" and entry["time"].endswith("+00:00")
    assert isinstance(logging.getLogger("calsync").handlers[0].formatter, JsonFormatter)


def test_metrics_expose_requests_pairs_and_sources() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    REQUESTS.record("testprovider")
    REQUESTS.record("testprovider", error=True)
    status = Status()
    status.last_success = {"m365": 1234.0}
    status.source_up = {"m365": True}
    status.pairs = {"ok": 3, "overdue": 1}
    status.cycles = {"ok": 2}
    registry = CollectorRegistry()
    registry.register(Metrics(status))
    text = generate_latest(registry).decode()
    assert 'calsync_requests_total{provider="testprovider"}' in text
    assert 'calsync_request_errors_total{provider="testprovider"} 1.0' in text
    assert 'calsync_last_successful_sync_timestamp_seconds{source="m365"} 1234.0' in text
    assert 'calsync_pairs{status="ok"} 3.0' in text and 'calsync_pairs{status="at-risk"} 0.0' in text
    assert 'calsync_cycles_total{result="ok"} 2.0' in text


def test_metrics_count_the_untracked_pairs_of_the_report() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    boss, ann, bob = "boss@acme.test", "ann@acme.test", "bob@acme.test"
    org = Org([Person(boss, "Boss", None), Person(ann, "Ann", boss), Person(bob, "Bob", boss)], ["acme.test"])
    peers = occ(at(-10), people=(ann, bob), series="peer")  # a peer 1:1: reported, untracked
    calendar = CalendarData("cal-a", (peers,), (series_copy("cal-a", "peer"),))
    report = build_report(org, resolve([calendar]), clock(), Policy())
    assert sorted(str(p.status) for p in report.pairs) == ["no-series", "no-series", "untracked"]
    status = Status()
    status.pairs = pair_counts(report)
    registry = CollectorRegistry()
    registry.register(Metrics(status))
    text = generate_latest(registry).decode()
    assert 'calsync_pairs{status="untracked"} 1.0' in text
    assert 'calsync_pairs{status="no-series"} 2.0' in text
