"""``calsync run``: the long-running service.

One process, for months: a sync cycle every ``[daemon] sync_interval`` (with jitter) runs every
source, writes the JSON report, the agendas due and the digests of the current period not sent yet;
the digest job wakes a cycle at the digests' due time. What keeps it going unattended:

- **No overlap.** Jobs run one at a time on one worker thread; a cycle that overruns its interval
  makes APScheduler skip (not stack) the next start.
- **The state is always whole** (:mod:`calsync.store`): atomic writes, one lock, a corrupt file moved
  aside and rebuilt. A cycle that fails (a bug, the roster unreadable) is logged and the next one
  runs as usual.
- **Signals.** SIGTERM and SIGINT stop within :data:`STOP_SECONDS`: the cycle in flight is given up
  at its next wait or calendar, the state flushed, exit 0. SIGHUP reloads the config; a config with
  problems is rejected, logged, and the running one kept.
- **systemd.** ``Type=notify``: READY=1 once started, WATCHDOG=1 while the scheduler is alive and no
  cycle is stuck, STOPPING=1, and a STATUS= line after each cycle.
- **Observability.** ``/healthz`` (503 once no source has synced for ``unhealthy_after`` intervals)
  and ``/metrics`` (Prometheus) on a localhost port; one log line per event, plain or JSON, never a
  secret (URLs are redacted where sources name them, credentials are never logged).
"""

from __future__ import annotations

import dataclasses
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor as JobExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from calsync import __version__
from calsync.cadence import PairStatus
from calsync.config import Config, ConfigError, load_config
from calsync.model import Problem
from calsync.pipeline import CycleResult, DigestError, SyncOptions, org_timezone, run_cycle
from calsync.progress import ProgressBoard, progress_board_for
from calsync.report import Report, render_json
from calsync.sdnotify import Notifier
from calsync.sources.base import ReadCache
from calsync.sources.retry import Stopped
from calsync.store import StateError, StateStore, write_private
from calsync.telemetry import REQUESTS
from calsync.text import printable

log = logging.getLogger("calsync")

#: SIGTERM to exit: the cycle in flight has this long to reach a point where it can stop (the rest of
#: the 10 seconds is for closing the listener and the state).
STOP_SECONDS = 6.0
EXIT_OK, EXIT_USAGE, EXIT_PARTIAL = 0, 2, 3
SYNC_JOB, DIGEST_JOB = "sync", "digest"
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# -- logging -------------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")


def configure_logging(stream: TextIO, log_format: str) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else PlainFormatter())
    root = logging.getLogger("calsync")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    # APScheduler logs every run of every job; only its errors are worth a line.
    aps = logging.getLogger("apscheduler")
    aps.handlers[:] = [handler]
    aps.setLevel(logging.ERROR)  # a skipped start is logged by calsync, in its words
    aps.propagate = False
    return handler


def _event(level: int, message: str, **fields: Any) -> None:
    log.log(level, message, extra={"fields": {"event": fields.pop("event", None), **fields}})


# -- what the daemon knows about itself ----------------------------------------------------------------


@dataclass
class Status:
    """The daemon's figures, for /healthz, /metrics and STATUS=; guarded by ``lock``."""

    started: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cycles: dict[str, int] = field(default_factory=dict)  # by result: ok, partial, failed, stopped
    cycle_started: float | None = None  # while a cycle runs
    last_cycle_seconds: float | None = None
    last_success: dict[str, float] = field(default_factory=dict)  # by source: its last good sync
    source_up: dict[str, bool] = field(default_factory=dict)
    pairs: dict[str, int] = field(default_factory=dict)  # by shown status
    problems: int = 0
    agendas_linked: int = 0
    digests_sent: int = 0
    skipped_starts: int = 0

    def unhealthy(self, limit_seconds: float, now: float) -> str | None:
        """Why /healthz fails, or None: no source synced within ``limit_seconds`` (counted from the
        start of the daemon, so that a fresh start has its first cycles to succeed)."""
        with self.lock:
            newest = max(self.last_success.values(), default=self.started)
        if now - max(newest, self.started) <= limit_seconds:
            return None
        if not self.last_success:
            return f"no source has synced since calsync started {now - self.started:.0f} s ago"
        return f"no source has synced for {now - newest:.0f} s (the limit is {limit_seconds:.0f} s)"


def pair_counts(report: Report) -> dict[str, int]:
    """Pairs by status, worst first (untracked last), and the excluded ones (not counted under a
    status): what ``calsync_pairs``, the STATUS= line and the "cycle done" log line show."""
    counts = {str(s): report.count(s) for s in PairStatus}
    counts["excluded"] = report.excluded_count
    return counts


class Metrics(Collector):
    """Prometheus metrics, read from :class:`Status` and the request counters when scraped."""

    def __init__(self, status: Status) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        s = self.status
        requests, errors = REQUESTS.snapshot()
        sent = CounterMetricFamily(
            "calsync_requests", "Requests sent to calendar providers, retries included", labels=["provider"]
        )
        failed = CounterMetricFamily(
            "calsync_request_errors", "Requests that failed (HTTP error, network)", labels=["provider"]
        )
        for provider in sorted(set(requests) | set(errors)):
            sent.add_metric([provider], requests.get(provider, 0))
            failed.add_metric([provider], errors.get(provider, 0))
        yield sent
        yield failed
        with s.lock:
            last = GaugeMetricFamily(
                "calsync_last_successful_sync_timestamp_seconds",
                "When each source last synced successfully (Unix time)",
                labels=["source"],
            )
            for name, when in sorted(s.last_success.items()):
                last.add_metric([name], when)
            yield last
            up = GaugeMetricFamily(
                "calsync_source_up", "1 if the source's last sync succeeded", labels=["source"]
            )
            for name, ok in sorted(s.source_up.items()):
                up.add_metric([name], 1.0 if ok else 0.0)
            yield up
            pairs = GaugeMetricFamily(
                "calsync_pairs", "Manager/report pairs by status in the last report", labels=["status"]
            )
            for status in [*(str(p) for p in PairStatus), "excluded"]:
                pairs.add_metric([status], s.pairs.get(status, 0))
            yield pairs
            cycles = CounterMetricFamily("calsync_cycles", "Sync cycles run, by result", labels=["result"])
            for result in ("ok", "partial", "failed", "stopped"):
                cycles.add_metric([result], s.cycles.get(result, 0))
            yield cycles
            yield CounterMetricFamily(
                "calsync_agendas_linked", "Agendas created or linked into events", value=s.agendas_linked
            )
            yield CounterMetricFamily("calsync_digests_sent", "Digests delivered", value=s.digests_sent)
            yield CounterMetricFamily(
                "calsync_skipped_starts",
                "Cycle starts skipped because the previous cycle was still running",
                value=s.skipped_starts,
            )
            yield GaugeMetricFamily(
                "calsync_problems", "Problems (skipped inputs) in the last cycle", value=s.problems
            )
            if s.last_cycle_seconds is not None:
                yield GaugeMetricFamily(
                    "calsync_cycle_duration_seconds",
                    "How long the last cycle took",
                    value=s.last_cycle_seconds,
                )
            yield GaugeMetricFamily(
                "calsync_cycle_running", "1 while a cycle runs", value=1.0 if s.cycle_started else 0.0
            )
        info = GaugeMetricFamily("calsync_info", "calsync's version", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info


class _Handler(BaseHTTPRequestHandler):
    daemon_ref: Daemon  # set on the subclass made per server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            reason = self.daemon_ref.health()
            body = json.dumps({"status": "ok" if reason is None else "failing", "reason": reason}).encode()
            self._answer(200 if reason is None else 503, "application/json", body)
        elif path == "/metrics":
            self._answer(
                200, "text/plain; version=0.0.4; charset=utf-8", generate_latest(self.daemon_ref.registry)
            )
        else:
            self._answer(404, "text/plain", b"not found: try /healthz or /metrics\n")

    def _answer(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every 15 s is not an event


# -- the daemon ------------------------------------------------------------------------------------------


class Daemon:
    def __init__(
        self,
        config_path: Path,
        config: Config,
        *,
        stderr: TextIO,
        notifier: Notifier | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.stderr = stderr
        self.notifier = notifier or Notifier()
        self.now = now or (lambda: datetime.now(UTC))
        self.status = Status()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(Metrics(self.status))
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self.clients: dict[str, Any] = {}  # kept between cycles (their tokens with them)
        self.reads = ReadCache()  # each calendar's reading, kept between cycles
        self.store: StateStore | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.server: ThreadingHTTPServer | None = None
        self._cycle_lock = threading.Lock()
        self._cycle_number = 0
        self._known_problems: set[str] = set()
        self._held: set[str] = set()

    # -- life cycle ------------------------------------------------------------------------------------

    def open_store(self) -> int | None:
        """Take the state; an exit code if it cannot be (another daemon holds it, a newer schema)."""
        assert self.config.state is not None
        try:
            self.store = StateStore(self.config.state.path)
        except StateError as exc:
            _event(logging.ERROR, f"cannot start: {exc}", event="start failed")
            return EXIT_USAGE
        _event(
            logging.INFO,
            f"state {self.config.state.path} (schema {self.store.schema()})",
            event="state opened",
            recovered=str(self.store.recovered) if self.store.recovered else None,
        )
        return None

    def once(self) -> int:
        """``--once``: one cycle, then exit (0: complete, 3: something was skipped or failed)."""
        code = self.open_store()
        if code is not None:
            return code
        self._signals(reload=False)
        try:
            result = self.cycle(progress=True)
        finally:
            assert self.store is not None
            self.store.close()
        if result is None:
            return EXIT_PARTIAL
        failed = [o for o in result.agendas if o.failed]
        failed_digests = [o for o in result.digests.outcomes if o.failed] if result.digests else []
        return EXIT_PARTIAL if result.problems or failed or failed_digests else EXIT_OK

    def serve(self) -> int:
        """Run until SIGTERM or SIGINT; 0 after a clean stop."""
        code = self.open_store()
        if code is not None:
            return code
        try:
            self._listen()
        except OSError as exc:
            assert self.store is not None
            self.store.close()
            host, port = self.config.daemon.listen or ("", 0)
            _event(
                logging.ERROR,
                f"cannot listen on {host}:{port} for /healthz and /metrics: {exc.strerror or exc}; "
                'choose another [daemon] listen, or "off"',
                event="start failed",
            )
            return EXIT_USAGE
        self._signals(reload=True)
        self.scheduler = BackgroundScheduler(
            executors={"default": JobExecutor(1)},  # one job at a time: cycles never overlap
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self.scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)
        self._schedule(first=True)
        self.scheduler.start()
        daemon = self.config.daemon
        _event(
            logging.INFO,
            f"calsync {__version__} running: a cycle every {daemon.sync_interval:g} s "
            f"(jitter {daemon.jitter_seconds:g} s)"
            + (f", /healthz and /metrics on http://{self._address()}" if self.server else ""),
            event="started",
            pid=os.getpid(),
            listen=self._address() if self.server else None,
        )
        self.notifier.send("READY=1", "STATUS=first sync running", f"MAINPID={os.getpid()}")
        self._main_loop()
        return self._shutdown()

    def _main_loop(self) -> None:
        """The main thread: signals land here; reloads and watchdog pings happen here."""
        ping_every = self.notifier.watchdog_interval
        last_ping = 0.0
        while not self.stop.wait(min(1.0, ping_every or 1.0)):
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            if ping_every is not None and time.monotonic() - last_ping >= ping_every and self._alive():
                self.notifier.send("WATCHDOG=1")
                last_ping = time.monotonic()

    def _alive(self) -> bool:
        """For the watchdog: the scheduler runs and no cycle is stuck (one taking ten intervals, and at
        least an hour, is: systemd then restarts calsync)."""
        if self.scheduler is None or not self.scheduler.running:
            return False
        with self.status.lock:
            started = self.status.cycle_started
        stuck_after = max(3600.0, 10 * self.config.daemon.sync_interval)
        return started is None or time.time() - started < stuck_after

    def _shutdown(self) -> int:
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        _event(logging.INFO, "stopping", event="stopping")
        assert self.scheduler is not None
        self.scheduler.shutdown(wait=False)
        finished = self._cycle_lock.acquire(timeout=STOP_SECONDS)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        assert self.store is not None
        self.store.close()  # waits for a write in progress; everything saved is on disk
        if not finished:
            _event(
                logging.WARNING,
                "the cycle in flight did not stop in time; exiting without it (the state is whole: "
                "the next start resumes from the last saved cursors)",
                event="stopped",
            )
            logging.shutdown()
            os._exit(EXIT_OK)  # the worker is blocked in a request: do not wait for it
        _event(logging.INFO, "stopped", event="stopped")
        return EXIT_OK

    def _signals(self, *, reload: bool) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            self.stop.set()

        def hup(signum: int, frame: FrameType | None) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        faulthandler.register(signal.SIGUSR1, file=self.stderr, all_threads=True)  # kill -USR1: the stacks
        if reload:
            signal.signal(signal.SIGHUP, hup)

    def _listen(self) -> None:
        listen = self.config.daemon.listen
        if listen is None:
            return
        handler = type("Handler", (_Handler,), {"daemon_ref": self})
        self.server = ThreadingHTTPServer(listen, handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="http", daemon=True).start()

    def _address(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"{host if isinstance(host, str) else host.decode()}:{port}"

    def health(self) -> str | None:
        daemon = self.config.daemon
        return self.status.unhealthy(daemon.unhealthy_after * daemon.sync_interval, time.time())

    # -- schedule --------------------------------------------------------------------------------------

    def _schedule(self, *, first: bool = False) -> None:
        assert self.scheduler is not None
        daemon = self.config.daemon
        sync = IntervalTrigger(seconds=daemon.sync_interval, jitter=daemon.jitter_seconds or None)
        digest = self.config.digest
        due = CronTrigger(
            day_of_week=WEEKDAY_NAMES[digest.weekday], hour=digest.hour, timezone=org_timezone(self.config)
        )
        if first:
            self.scheduler.add_job(self._job, sync, id=SYNC_JOB, next_run_time=datetime.now(UTC))
            self.scheduler.add_job(self._job, due, id=DIGEST_JOB)
        else:
            self.scheduler.reschedule_job(SYNC_JOB, trigger=sync)
            self.scheduler.reschedule_job(DIGEST_JOB, trigger=due)

    def _skipped(self, event: JobExecutionEvent) -> None:
        with self.status.lock:
            self.status.skipped_starts += 1
        _event(
            logging.WARNING,
            "the previous cycle is still running: this start is skipped (raise [daemon] sync_interval "
            "if this happens often)",
            event="start skipped",
        )

    def reload(self) -> None:
        """SIGHUP: read the config again; keep the running one if the new one has problems."""
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            _event(
                logging.ERROR,
                f"config reload rejected, the running config is kept: {exc}".replace("\n", " | "),
                event="reload rejected",
            )
            return
        old = self.config
        assert old.state is not None and config.state is not None
        if config.state.path != old.state.path:
            _event(
                logging.WARNING,
                "[state] path changed: the new path is used after a restart",
                event="reload",
            )
            config = dataclasses.replace(config, state=old.state)
        if config.daemon.listen != old.daemon.listen:
            _event(
                logging.WARNING, "[daemon] listen changed: it takes effect after a restart", event="reload"
            )
        with self._cycle_lock:  # not in the middle of a cycle
            self.config = config
            self.clients.clear()  # credentials may have changed
            self.reads = ReadCache()  # and so may time zones or sources
            self._schedule()
        _event(logging.INFO, f"config reloaded from {self.config_path}", event="reloaded")

    # -- one cycle -------------------------------------------------------------------------------------

    def _job(self) -> None:
        self.cycle(progress=self._cycle_number == 0)

    def cycle(self, *, progress: bool = False) -> CycleResult | None:
        """One cycle; never raises (a failed cycle is logged, and the next one runs)."""
        with self._cycle_lock:
            if self.stop.is_set():
                return None
            self._cycle_number += 1
            number = self._cycle_number
            config = self.config
            store = self.store
            assert store is not None
            board: ProgressBoard | None = progress_board_for(self.stderr) if progress else None
            options = SyncOptions(
                bars=board.bar if board else None, stop=self.stop, clients=self.clients, reads=self.reads
            )
            start = time.time()
            with self.status.lock:
                self.status.cycle_started = start
            result: CycleResult | None = None
            outcome = "failed"
            try:
                result = run_cycle(config, store, self.now(), options)
                outcome = "partial" if result.problems else "ok"
            except Stopped:
                outcome = "stopped"
                _event(logging.INFO, f"cycle {number} given up: calsync is stopping", event="cycle stopped")
            except (ConfigError, StateError, DigestError) as exc:
                _event(logging.ERROR, f"cycle {number} failed: {exc}", event="cycle failed")
            except Exception as exc:
                log.exception(
                    "cycle %d failed: %s: %s (a bug: please report it)",
                    number,
                    type(exc).__name__,
                    exc,
                    extra={"fields": {"event": "cycle failed"}},
                )
            finally:
                if board is not None:
                    board.close()
                store.flush()
            seconds = time.time() - start
            counts = pair_counts(result.report) if result is not None else {}
            self._record(result, outcome, start, seconds, counts)
            if result is not None:
                self._write_report(result)  # before "cycle done": a reader of the log finds it written
                self._log_cycle(number, result, seconds, counts)
            return result

    def _record(
        self, result: CycleResult | None, outcome: str, start: float, seconds: float, counts: dict[str, int]
    ) -> None:
        with self.status.lock:
            s = self.status
            s.cycle_started = None
            s.cycles[outcome] = s.cycles.get(outcome, 0) + 1
            s.last_cycle_seconds = seconds
            if result is None:
                return
            for name, source in result.sources.items():
                s.source_up[name] = source.ok
                if source.ok:
                    s.last_success[name] = start + seconds
            s.pairs = counts
            s.problems = len(result.problems)
            s.agendas_linked += sum(1 for o in result.agendas if o.action in ("created", "linked", "updated"))
            if result.digests is not None:
                s.digests_sent += sum(1 for o in result.digests.outcomes if o.action in ("sent", "written"))
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()) if n) or "no pairs"
        self.notifier.send(f"STATUS=last cycle {outcome} in {seconds:.0f} s: {summary}")

    def _log_cycle(self, number: int, result: CycleResult, seconds: float, counts: dict[str, int]) -> None:
        for name, source in sorted(result.sources.items()):
            _event(
                logging.INFO if source.ok else logging.WARNING,
                f"source {name}: {source.calendars} calendar(s) read"
                + (f", {source.unread} could not be read" if source.unread else ""),
                event="source synced" if source.ok else "source failed",
                source=name,
                calendars=source.calendars,
                unread=source.unread,
            )
        self._log_problems(result.problems)
        for o in result.agendas:
            if o.action in ("created", "linked", "updated", "failed"):
                _event(
                    logging.WARNING if o.failed else logging.INFO,
                    f"agenda {o.action}: {printable(f'{o.names} {o.start.isoformat()}: {o.detail}')}",
                    event=f"agenda {o.action}",
                    manager=o.manager,
                    report=o.report,
                )
        if result.digests is not None:
            for d in result.digests.outcomes:
                key = f"{d.leader}|{result.digests.period}"
                if d.action == "held back":
                    if key not in self._held:
                        self._held.add(key)
                        _event(
                            logging.WARNING,
                            f"digest held back: {printable(f'{d.leader}: {d.detail}')}",
                            event="digest held back",
                        )
                    continue
                if d.action in ("sent", "written", "failed", "not tried", "in doubt"):
                    self._held.discard(key)
                    _event(
                        logging.WARNING if d.failed else logging.INFO,
                        f"digest {d.action}: {printable(d.leader)} (week of {result.digests.period}): "
                        + printable(d.detail),
                        event=f"digest {d.action}",
                        leader=d.leader,
                    )
        statuses = {status: n for status, n in counts.items() if status != "excluded"}
        _event(
            logging.INFO,
            f"cycle {number} done in {seconds:.1f} s: "
            + ", ".join(f"{n} {status}" for status, n in statuses.items())
            + f"; {len(result.problems)} problem(s)",
            event="cycle done",
            seconds=round(seconds, 3),
            problems=len(result.problems),
            **{f"pairs_{k.replace('-', '_')}": v for k, v in statuses.items()},
        )

    def _log_problems(self, problems: Iterable[Problem]) -> None:
        """A problem is logged when it appears and when it is gone, not every cycle in between."""
        now = {printable(str(p)) for p in problems}  # names, titles, UIDs: one line each, no raw ESC
        for text in sorted(now - self._known_problems):
            _event(logging.WARNING, f"skipped: {text}", event="problem")
        for text in sorted(self._known_problems - now):
            _event(logging.INFO, f"resolved: {text}", event="problem resolved")
        self._known_problems = now

    def _write_report(self, result: CycleResult) -> None:
        path = self.report_path()
        try:
            write_private(path, render_json(result.report))
        except OSError as exc:
            _event(
                logging.WARNING,
                f"cannot write the report {path}: {exc.strerror or exc}",
                event="report failed",
            )

    def report_path(self) -> Path:
        if self.config.daemon.report is not None:
            return self.config.daemon.report
        assert self.config.state is not None
        return self.config.state.path.with_name("calsync-report.json")


def run(config_path: Path, *, once: bool, log_format: str, stderr: TextIO | None = None) -> int:
    """``calsync run``; the exit code."""
    stream = stderr if stderr is not None else sys.stderr
    configure_logging(stream, log_format)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _event(logging.ERROR, f"the config has problems: {exc}".replace("\n", " | "), event="start failed")
        return EXIT_USAGE
    daemon = Daemon(config_path, config, stderr=stream)
    return daemon.once() if once else daemon.serve()


__all__ = ["Daemon", "run"]
