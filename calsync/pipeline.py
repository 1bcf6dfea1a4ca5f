"""Wires the edges to the core: config -> roster + sources -> resolve -> report."""

from __future__ import annotations

import contextlib
import difflib
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from email.message import EmailMessage
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from google.auth.exceptions import RefreshError

from calsync.agenda import environment, plan
from calsync.cadence import Clock
from calsync.config import (
    GOOGLE_DIRECTORY,
    MICROSOFT_GRAPH,
    OUTBOX,
    WAIT,
    Config,
    GoogleSourceConfig,
    MicrosoftSourceConfig,
)
from calsync.detect import Ignored, Resolved, one_on_ones, resolve
from calsync.digest.compose import build_message, compose, due_period, leaders, pairs_by_manager, render
from calsync.digest.send import (
    IN_DOUBT,
    SENT,
    Delivery,
    DeliveryError,
    DigestOutcome,
    OutboxDelivery,
    SmtpDelivery,
    deliver_all,
    previous_digest,
    record_key,
    smtp_password,
)
from calsync.model import CalendarData, Occurrence, Problem
from calsync.org import Org, RosterError, load_roster, nothing_to_check, parse_roster
from calsync.progress import NoProgress, Progress
from calsync.publish.runner import AgendaPass, Backend, Outcome, cancelled_keys
from calsync.report import Coverage, Fairness, Policy, Report, build_report
from calsync.sources.base import ReadCache, Source, Window, display_path
from calsync.sources.google import (
    DIRECTORY_SCOPES,
    CalendarUnavailable,
    GoogleSource,
    directory_roster_csv,
    directory_users,
    service_account_calendars,
    service_account_directory,
    user_token_calendars,
)
from calsync.sources.ics import IcsSource
from calsync.sources.microsoft import (
    MailboxUnavailable,
    MicrosoftSource,
    graph_client,
    graph_roster_csv,
    graph_users,
)
from calsync.sources.microsoft_auth import AuthError
from calsync.sources.retry import RateLimiter, RetryPolicy, interruptible
from calsync.store import StateError, StateStore
from calsync.text import printable

#: Extra days synced on both sides of the report's windows, so that occurrences moved across a
#: window's edge are still seen with their original dates.
SYNC_MARGIN_DAYS = 7


def org_timezone(config: Config) -> tzinfo:
    return ZoneInfo(config.org.timezone) if config.org.timezone else UTC


def make_clock(
    config: Config, as_of: date | None = None, *, now: Callable[[], datetime] | None = None
) -> Clock:
    """00:00 of ``as_of`` (default: today) in the org's time zone, or UTC when none is set."""
    tz = org_timezone(config)
    if as_of is None:
        as_of = (now() if now is not None else datetime.now(UTC)).astimezone(tz).date()
    return Clock(
        as_of=datetime.combine(as_of, time(0), tzinfo=tz),
        lookback_days=config.report.lookback_days,
        lookahead_days=config.report.lookahead_days,
    )


def sync_window(clock: Clock) -> Window:
    margin = timedelta(days=SYNC_MARGIN_DAYS)
    start = datetime.combine(clock.window_start, time(0), tzinfo=clock.as_of.tzinfo)
    return Window(start - margin, clock.horizon + margin)


#: A new progress bar, one per source (on a terminal); see :class:`calsync.progress.ProgressBoard`.
Bars = Callable[[], Progress]


@dataclass
class SyncOptions:
    """How the sources are built and run: by a command, once; or by the daemon, cycle after cycle."""

    bars: Bars | None = None  # a progress bar per source, or none
    stop: threading.Event | None = None  # set when calsync is stopping: the sync in flight is given up
    #: The clients kept between cycles (their tokens with them), by source name; None: built per call.
    clients: dict[str, Any] | None = None
    #: Each calendar's reading, kept between cycles (the daemon's); None: every calendar is read afresh.
    reads: ReadCache | None = None

    def retry(self) -> RetryPolicy:
        return RetryPolicy(sleep=interruptible(self.stop)) if self.stop is not None else RetryPolicy()

    def bar(self) -> Progress:
        return self.bars() if self.bars is not None else NoProgress()


def make_sources(
    config: Config, org: Org, store: StateStore | None, options: SyncOptions | None = None
) -> tuple[list[Source], list[Problem]]:
    """The configured sources, ready to fetch; a source that cannot even be set up is a problem."""
    options = options or SyncOptions()
    tz = org_timezone(config)
    managers = managers_of(org)
    people = absentees_of(org)
    ignored = Ignored(config.detect.ignore_attendees)
    sources: list[Source] = []
    problems: list[Problem] = []
    # Whose calendars each API source reads: another source need not ask for their out-of-office.
    reading = {
        s.name: {c.lower() for c in intended_calendars(s, org) or ()}
        for s in config.sources
        if isinstance(s, GoogleSourceConfig | MicrosoftSourceConfig)
    }
    for source in config.sources:
        made: Source | Problem
        elsewhere = set().union(*(cals for name, cals in reading.items() if name != source.name))
        absentees = tuple(p for p in people if p not in elsewhere)
        if isinstance(source, GoogleSourceConfig):
            assert store is not None
            made = _google_source(source, managers, absentees, store, tz, options, ignored)
        elif isinstance(source, MicrosoftSourceConfig):
            assert store is not None
            made = _microsoft_source(source, managers, absentees, store, tz, options, ignored)
        else:
            made = IcsSource(
                source.location,
                name=source.name,
                default_tz=tz,
                label_root=config.base_dir,
                timeout_seconds=source.timeout_seconds,
                progress=options.bar(),
                owner=source.owner,
                owner_of=owner_lookup(org),
            )
        if isinstance(made, Problem):
            problems.append(made)
        else:
            sources.append(made)
    return sources, problems


def managers_of(org: Org) -> tuple[str, ...]:
    """Everyone with reports: whose calendars hold every 1:1 with a report."""
    return tuple(sorted({m for m, _ in org.direct_pairs()}))


def absentees_of(org: Org) -> tuple[str, ...]:
    """Everyone in a manager -> report line: whose out-of-office calsync needs (DESIGN.md 3b)."""
    return tuple(sorted({person for pair in org.direct_pairs() for person in pair}))


def owner_lookup(org: Org) -> Callable[[str], str | None]:
    """Whose calendar an ``.ics`` file is by its name: the roster person whose address or local part
    is the file's stem (a local part only when one person has it)."""
    by_local: dict[str, list[str]] = {}
    for email in org.people:
        by_local.setdefault(email.rpartition("@")[0], []).append(email)

    def owner(stem: str) -> str | None:
        key = stem.strip().lower()
        if org.person(key) is not None:
            return key
        found = by_local.get(key, [])
        return found[0] if len(found) == 1 else None

    return owner


def intended_calendars(
    source: GoogleSourceConfig | MicrosoftSourceConfig, org: Org
) -> tuple[str, ...] | None:
    """The calendars an API source is to read, when that is known without signing in: the configured
    list, else every manager for an org-wide source; None for one person's sign-in (whose calendar
    that is, the sign-in says)."""
    if isinstance(source, GoogleSourceConfig):
        if source.token_file is not None:
            return source.calendars
        return source.calendars or managers_of(org)
    if source.token_cache is not None:
        return source.mailboxes
    return source.mailboxes or managers_of(org)


def _google_source(
    source: GoogleSourceConfig,
    managers: tuple[str, ...],
    people: tuple[str, ...],
    store: StateStore,
    tz: tzinfo,
    options: SyncOptions,
    ignored: Ignored,
) -> Source | Problem:
    settings: dict[str, Any] = {
        "endpoint": source.endpoint,
        "ca_bundle": source.ca_bundle,
        "timeout": source.timeout_seconds,
    }
    if source.token_file is not None:
        # One person's sign-in: their own calendar unless the config lists others.
        calendars = source.calendars or ("primary",)
    else:
        # Every 1:1 with a manager is on the manager's calendar: by default, the managers'.
        calendars = source.calendars or managers
    kept = options.clients if options.clients is not None else {}
    service_for = kept.get(source.name)
    if service_for is None:
        try:
            if source.token_file is not None:
                service_for = user_token_calendars(source.token_file, **settings)
            else:
                assert source.service_account_key is not None
                service_for = service_account_calendars(source.service_account_key, **settings)
        except (OSError, ValueError) as exc:
            what = "token file" if source.token_file is not None else "service account key"
            return Problem(source.name, f"cannot use the {what}: {exc}", unread=True)
        kept[source.name] = service_for
    return GoogleSource(
        source.name,
        calendars,
        service_for,
        store,
        default_tz=tz,
        retry=options.retry(),
        progress=options.bar(),
        stop=options.stop,
        concurrency=source.concurrency,
        reads=options.reads,
        # One person's sign-in sees other people's calendars only where they are shared with them:
        # their reports' out-of-office is not asked for.
        absentees=people if source.token_file is None else (),
        ignored=ignored,
    )


def _microsoft_source(
    source: MicrosoftSourceConfig,
    managers: tuple[str, ...],
    people: tuple[str, ...],
    store: StateStore,
    tz: tzinfo,
    options: SyncOptions,
    ignored: Ignored,
) -> Source | Problem:
    kept = options.clients if options.clients is not None else {}
    try:
        client = kept.get(source.name) or graph_client(source, retry=options.retry())
        client.tokens.token()  # a refused credential is one problem of the source, not one per mailbox
    except AuthError as exc:
        return Problem(source.name, f"cannot sign in: {exc}", unread=True)
    kept[source.name] = client
    if source.mailboxes:
        mailboxes: tuple[str, ...] = source.mailboxes
    elif client.tokens.user is not None:
        mailboxes = (client.tokens.user,)  # one person's sign-in: their own mailbox
    else:
        mailboxes = managers  # every 1:1 with a manager is in the manager's mailbox
    return MicrosoftSource(
        source.name,
        mailboxes,
        client,
        store,
        default_tz=tz,
        parallel=source.concurrency,
        progress=options.bar(),
        stop=options.stop,
        reads=options.reads,
        absentees=people,
        ignored=ignored,
    )


def load_org(config: Config) -> tuple[Org, list[Problem]]:
    """The roster CSV, or the org chart of the Google Directory or of Microsoft Entra ID; an org with
    no manager/report pair at all (no one listed, or no one with a manager) is a problem of it."""
    org, problems = _read_org(config)
    roster = config.org.roster
    label = display_path(roster, config.base_dir) if roster is not None else str(config.org.org_chart)
    empty = nothing_to_check(org, label, skipped=bool(problems), chart=roster is None)
    return org, [*problems, empty] if empty is not None else problems


def _read_org(config: Config) -> tuple[Org, list[Problem]]:
    roster = config.org.roster
    if roster is not None:
        return load_roster(roster, config.org.domains, label=display_path(roster, config.base_dir))
    if config.org.org_chart == MICROSOFT_GRAPH:
        return _graph_org(config)
    assert config.org.org_chart == GOOGLE_DIRECTORY
    source = next(
        s for s in config.sources if isinstance(s, GoogleSourceConfig) and s.service_account_key is not None
    )
    admin = config.org.directory_admin
    assert source.service_account_key is not None and admin is not None
    try:
        service = service_account_directory(
            source.service_account_key,
            admin,
            endpoint=source.directory_endpoint,
            ca_bundle=source.ca_bundle,
            timeout=source.timeout_seconds,
        )
        users = directory_users(service, admin, RetryPolicy(), RateLimiter())
    except (CalendarUnavailable, RefreshError, OSError, ValueError) as exc:
        raise RosterError(
            f"google-directory: cannot read the directory as {admin}: {exc}. The service account needs "
            f"domain-wide delegation for {DIRECTORY_SCOPES[0]}, and directory_admin must be an admin who "
            "may list users."
        ) from exc
    return parse_roster(directory_roster_csv(users), config.org.domains, "google-directory")


def _graph_org(config: Config) -> tuple[Org, list[Problem]]:
    candidates = [s for s in config.sources if isinstance(s, MicrosoftSourceConfig)]
    source = next((s for s in candidates if s.app_only), candidates[0])
    try:
        users = graph_users(graph_client(source))
    except (AuthError, MailboxUnavailable) as exc:
        raise RosterError(
            f"{MICROSOFT_GRAPH}: cannot read the users and their managers with source {source.name!r}: "
            f"{exc}. The app needs the User.Read.All application permission with admin consent."
        ) from exc
    return parse_roster(graph_roster_csv(users), config.org.domains, MICROSOFT_GRAPH)


@dataclass(frozen=True)
class SourceStatus:
    """How one source's sync went."""

    name: str
    calendars: int  # calendars read
    unread: int  # calendars (or the whole source) that could not be read

    @property
    def ok(self) -> bool:
        """Synced: something was read, and nothing was refused wholesale."""
        return self.calendars > 0 or self.unread == 0


@dataclass
class Synced:
    """Every source synced once: what the report, the agendas and the digests are made from."""

    org: Org
    calendars: list[CalendarData]
    problems: list[Problem]  # the roster's and the sources'
    source_of: dict[str, str]  # calendar -> the name of the source that read it
    sources: dict[str, SourceStatus]
    #: (manager, report) -> the day calsync first saw the line (:meth:`StateStore.first_seen`).
    since: dict[tuple[str, str], date] = field(default_factory=dict)
    #: Owner -> why: the calendars of sources that could not even be set up (a refused sign-in), for
    #: which no stored reading was found.
    unread: dict[str, str] = field(default_factory=dict)
    #: The problems of those sources, whose calendars are in ``unread`` (or stood in for by their stored
    #: readings) each: they say nothing more about what could not be read.
    expanded: list[Problem] = field(default_factory=list)

    @cached_property
    def resolved(self) -> Resolved:
        """The copies merged, once for the report, the agendas and the digests of a sync."""
        return resolve(self.calendars)

    @cached_property
    def fairness(self) -> Fairness:
        """Who was away, since when each line exists, and what could not be read."""
        coverage = Coverage.of(self.calendars, [p for p in self.problems if p not in self.expanded])
        unread = {**self.unread, **coverage.unread}
        coverage = Coverage(unread, coverage.unowned, coverage.stored)
        blocks = tuple(block for calendar in self.calendars for block in calendar.absences)
        return Fairness(blocks, dict(self.since), coverage)

    def remember_lines(self, store: StateStore | None, today: date) -> None:
        """Record the roster's lines in the state, and learn since when each new one exists."""
        if store is not None:
            self.since = store.first_seen(self.org.direct_pairs(), today)
            self.__dict__.pop("fairness", None)


def sync_all(
    config: Config,
    org: Org,
    org_problems: list[Problem],
    store: StateStore | None,
    window: Window,
    options: SyncOptions | None = None,
) -> Synced:
    """Sync every source, all at once (each within its provider's limits: Google's per-user rate,
    Graph's requests in flight per mailbox), writing the state once at the end."""
    options = options or SyncOptions()
    sources, setup_problems = make_sources(config, org, store, options)
    synced = Synced(org, [], [*org_problems, *setup_problems], {}, {})
    for problem in setup_problems:
        synced.sources[problem.source] = SourceStatus(problem.source, 0, 1)
        _stored_instead(config, org, problem, store, window, synced)
    with (
        store.batch() if store is not None else contextlib.nullcontext(),
        ThreadPoolExecutor(max_workers=max(1, len(sources)), thread_name_prefix="source") as pool,
    ):
        futures = [(source, pool.submit(source.fetch, window)) for source in sources]
        for source, future in futures:
            result = future.result()
            synced.calendars.extend(result.calendars)
            synced.problems.extend(result.problems)
            synced.source_of.update((c.calendar, source.name) for c in result.calendars)
            unread = sum(1 for p in result.problems if p.unread)
            synced.sources[source.name] = SourceStatus(source.name, len(result.calendars), unread)
    return synced


def _stored_instead(
    config: Config, org: Org, problem: Problem, store: StateStore | None, window: Window, synced: Synced
) -> None:
    """A source that could not even be set up (a refused sign-in, an unreadable key): its calendars'
    stored readings stand in for them, and those without one are unread (DESIGN.md 3b, "Unknown")."""
    source = next((s for s in config.sources if s.name == problem.source), None)
    if not isinstance(source, GoogleSourceConfig | MicrosoftSourceConfig) or store is None:
        return
    calendars = intended_calendars(source, org)
    if calendars is None:
        return  # whose calendar is not known: the problem stands for any of them
    tz = org_timezone(config)
    if isinstance(source, GoogleSourceConfig):
        from calsync.sources.google import stored_calendars as google_stored

        stored = google_stored(store, source.name, calendars, window, tz)
    else:
        from calsync.sources.microsoft import stored_calendars as graph_stored

        stored = graph_stored(store, source.name, calendars, window, tz)
    synced.calendars.extend(stored)
    synced.source_of.update((c.calendar, source.name) for c in stored)
    have = {c.owner for c in stored}
    synced.unread.update(
        (calendar.lower(), str(problem)) for calendar in calendars if calendar.lower() not in have
    )
    synced.expanded.append(problem)


@dataclass
class AgendaRun:
    """What ``calsync agendas`` did: one outcome per 1:1 due an agenda, and the problems met."""

    outcomes: list[Outcome]
    problems: list[Problem]
    notices: list[str] = field(default_factory=list)  # not problems: how the state was used


def open_state(config: Config, *, writes: bool, notices: list[str]) -> StateStore:
    """The state for a command (:meth:`StateStore.for_command`); a read-only command beside a running
    calsync gets a notice saying that its sync is not saved."""
    assert config.state is not None
    store = StateStore.for_command(config.state.path, writes=writes)
    if store.read_only:
        notices.append(state_notice(store))
    return store


def state_notice(store: StateStore) -> str:
    holder = f"pid {store.held_by}" if store.held_by is not None else "another process"
    return (
        f"{store.path} is in use by another calsync ({holder}): read as it last wrote it, without the "
        "lock; this run's sync is not saved"
    )


def run_agendas(
    config: Config,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    bars: Bars | None = None,
) -> AgendaRun:
    """Sync every source, then give every direct 1:1 starting within ``[agenda] lead_days`` its agenda
    (one pass of :class:`calsync.publish.runner.AgendaPass`). A dry run is read-only: it works beside
    a running calsync (:func:`open_state`)."""
    org, problems = load_org(config)
    now = now or datetime.now(UTC)
    clock = make_clock(config, now.astimezone(org_timezone(config)).date())
    notices: list[str] = []
    store = open_state(config, writes=not dry_run, notices=notices)
    try:
        synced = sync_all(config, org, problems, store, sync_window(clock), SyncOptions(bars=bars))
        synced.remember_lines(store, today(config, now))
        outcomes = agenda_pass(config, synced, store, now, dry_run=dry_run)
    finally:
        store.close()
    return AgendaRun(outcomes, synced.problems, notices)


def agenda_pass(
    config: Config, synced: Synced, store: StateStore, now: datetime, *, dry_run: bool = False
) -> list[Outcome]:
    """Give every direct 1:1 starting within ``[agenda] lead_days`` of ``now`` its agenda."""
    from calsync.publish.setup import make_backends  # the write side's libraries, only when needed

    org = synced.org
    detection = one_on_ones(
        synced.resolved.occurrences, org.is_member, Ignored(config.detect.ignore_attendees)
    )
    settings = config.agenda
    plans = plan(
        detection.pairs,
        org.direct_pairs(),
        now,
        lead_days=settings.lead_days,
        default_days=config.cadence.default_days,
        career_every_weeks=settings.career_every_weeks,
    )
    backends = make_backends(config) if plans else {}

    def backend_for(occurrence: Occurrence) -> Backend | str:
        name = synced.source_of.get(occurrence.calendar)
        if name is None:
            return f"no source holds the calendar {occurrence.calendar}"
        return backends.get(name, f"source {name!r} has no agenda backend")

    return AgendaPass(
        plans=plans,
        org=org,
        backend_for=backend_for,
        store=store,
        settings=settings,
        env=environment(settings.templates),
        cancelled=cancelled_keys(o for occs in detection.pairs.values() for o in occs),
        dry_run=dry_run,
        now=now,
        backends_by_name={b.name: b for b in backends.values() if isinstance(b, Backend)},
    ).run()


def run_report(
    config: Config,
    as_of: date | None = None,
    bars: Bars | None = None,
    notices: list[str] | None = None,
) -> Report:
    """Read the roster and every source, and build the cadence report. Read-only: it works beside a
    running calsync (:func:`open_state`; what that says is added to ``notices``)."""
    org, problems = load_org(config)
    clock = make_clock(config, as_of)
    notices = notices if notices is not None else []
    needs_state = any(isinstance(s, GoogleSourceConfig | MicrosoftSourceConfig) for s in config.sources)
    store = _report_state(config, notices, required=needs_state)
    try:
        synced = sync_all(config, org, problems, store, sync_window(clock), SyncOptions(bars=bars))
        synced.remember_lines(store, today(config))
    finally:
        if store is not None:
            store.close()
    return report_of(config, synced, clock)


def _report_state(config: Config, notices: list[str], *, required: bool) -> StateStore | None:
    """The state for a report: needed by API sources (their sync cursors); with ICS sources only,
    used for the day each roster line was first seen, and done without when it cannot be opened."""
    assert config.state is not None
    if required:
        return open_state(config, writes=False, notices=notices)
    try:
        return open_state(config, writes=False, notices=notices)
    except (StateError, OSError) as exc:
        notices.append(
            f"cannot open the state ({exc}): new pairs are known only from the roster's since column"
        )
        return None


def today(config: Config, now: datetime | None = None) -> date:
    """Today (or ``now``'s date) in the org's time zone."""
    return (now or datetime.now(UTC)).astimezone(org_timezone(config)).date()


def report_of(config: Config, synced: Synced, clock: Clock) -> Report:
    return build_report(synced.org, synced.resolved, clock, policy(config), synced.problems, synced.fairness)


def policy(config: Config) -> Policy:
    """The cadence the org wants, who is excluded from it and what makes flags fair, as the core
    takes it."""
    return Policy(
        default_days=config.cadence.default_days,
        grace_days=config.cadence.grace_days,
        skip_level_days=config.cadence.skip_level_days,
        exclusions=config.exclusions,
        ignored=Ignored(config.detect.ignore_attendees),
        absences=config.absences,
        holidays=config.org.holidays,
        weekend=config.org.weekend,
        timezone=org_timezone(config),
    )


@dataclass
class DigestRun:
    """What ``calsync digest`` did or would do for one period."""

    period: date
    messages: dict[str, EmailMessage]  # by leader: the digests of this period
    outcomes: list[DigestOutcome]  # one per leader when sending; empty for a preview or a listing
    problems: list[Problem]
    sent_before: dict[str, str]  # leader -> when their digest of this period was sent (a listing)
    notices: list[str] = field(default_factory=list)  # not problems: how the state was used


def run_digests(
    config: Config,
    *,
    now: datetime | None = None,
    send: bool = False,
    only: str | None = None,
    bars: Bars | None = None,
) -> DigestRun:
    """Build the digests of the period ``now`` falls in and, with ``send``, deliver those not yet sent.

    ``only`` limits the run to one leader (a preview). Digests are held back, not sent, while a calendar
    or source cannot be read, unless ``[digest] when_incomplete = "send"``. Without ``send`` (a
    listing or a preview) it is read-only, and works beside a running calsync (:func:`open_state`).
    """
    delivery = make_delivery(config) if send else None  # a config problem stops us before any sync
    moment = now or datetime.now(UTC)
    org, org_problems = load_org(config)
    notices: list[str] = []
    store = open_state(config, writes=send, notices=notices)
    try:
        period = digest_period(config, moment)
        clock = make_clock(config, period)
        synced = sync_all(config, org, org_problems, store, sync_window(clock), SyncOptions(bars=bars))
        synced.remember_lines(store, today(config, moment))
        run = digest_pass(config, synced, store, moment, delivery, only=only, fixed_now=now)
    finally:
        store.close()
    run.notices.extend(notices)
    return run


def digest_period(config: Config, moment: datetime) -> date:
    """The period (its first day) of the digests due at ``moment``."""
    settings = config.digest
    return due_period(moment, settings.weekday, settings.hour, org_timezone(config))


def digests_enabled(config: Config) -> bool:
    """Whether digests can be sent at all: into an outbox, or through a configured [smtp]."""
    return config.digest.delivery == OUTBOX or config.smtp is not None


def digest_pass(
    config: Config,
    synced: Synced,
    store: StateStore,
    moment: datetime,
    delivery: Delivery | None,
    *,
    only: str | None = None,
    fixed_now: datetime | None = None,
    pending_only: bool = False,
) -> DigestRun:
    """The digests of the period ``moment`` falls in, made from ``synced``; delivered (those not sent
    yet) when ``delivery`` is given. ``pending_only``: make nothing when every leader has been sent
    theirs (the daemon asks every cycle)."""
    settings = config.digest
    org = synced.org
    period = digest_period(config, moment)
    problems = list(synced.problems)
    chosen = leaders(org, settings.leaders)
    if settings.leaders is not None:
        for leader in list(chosen):
            if org.person(leader) is None or not org.reports_of(leader):
                what = (
                    "is not in the roster" if org.person(leader) is None else "has no reports in the roster"
                )
                problems.append(Problem("[digest] leaders", f"{leader} {what}: no digest for them"))
                chosen.remove(leader)
    if only is not None:
        wanted = only.strip().lower()
        if wanted not in chosen:
            raise DigestError(f"{wanted} gets no digest: {_why_no_digest(org, wanted, settings.leaders)}")
        chosen = [wanted]
    sent_before: dict[str, str] = {}
    in_doubt = 0
    for leader in chosen:
        record = store.digest(record_key(leader, period)) or {}
        if record.get("status") == SENT:
            sent_before[leader] = str(record.get("sent_at"))
        elif record.get("status") == IN_DOUBT:
            in_doubt += 1  # reported once, when found; not sent again
    if pending_only and len(sent_before) + in_doubt == len(chosen):
        if delivery is not None:
            delivery.close()
        return DigestRun(period, {}, [], problems, sent_before)
    report = report_of(config, synced, make_clock(config, period))
    assert settings.sender is not None
    env = environment(settings.templates)
    messages: dict[str, EmailMessage] = {}
    items = []
    unbuilt: list[DigestOutcome] = []  # digests that could not be made: that leader's problem alone
    index = pairs_by_manager(report)  # once for every leader: each digest reads its subtree's pairs only
    for leader in chosen:
        previous, previous_period = previous_digest(store, leader, period)
        try:
            digest = compose(
                report,
                org,
                leader,
                period,
                previous=previous,
                previous_period=previous_period,
                cadence_days=config.cadence.default_days,
                grace_days=config.cadence.grace_days,
                skip_level_days=config.cadence.skip_level_days,
                index=index,
            )
            message = build_message(
                digest, render(digest, env), sender=settings.sender, reply_to=settings.reply_to, when=moment
            )
            for header, value in message.items():  # a header that cannot be written fails here, not
                message.policy.fold_binary(header, value)  # while sending: the headers alone, cheaply
        except Exception as exc:  # a bad address or name, a broken template: this leader's alone
            why = f"the digest could not be made: {printable(f'{type(exc).__name__}: {exc}')}"
            name = printable(org.name(leader))
            if delivery is None:
                problems.append(Problem(f"digest of {printable(leader)}", why))
            else:
                unbuilt.append(DigestOutcome(leader, name, "failed", why))
            continue
        messages[leader] = message
        items.append((digest, message))
    outcomes: list[DigestOutcome] = []
    unread = [p for p in report.errors if p.unread]
    if delivery is not None and unread and settings.when_incomplete == WAIT:
        delivery.close()
        why = (
            f"{len(unread)} calendar(s) or source(s) could not be read; the digests go out once "
            'they can be (or set [digest] when_incomplete = "send")'
        )
        outcomes = [
            DigestOutcome(d.leader, d.leader_name, "already sent", f"on {sent_before[d.leader]}")
            if d.leader in sent_before
            else DigestOutcome(d.leader, d.leader_name, "held back", why)
            for d, _ in items
        ]
    elif delivery is not None:
        written = settings.delivery == OUTBOX
        outcomes = deliver_all(items, store, delivery, now_function(fixed_now), written=written)
    if unbuilt:
        order = {leader: n for n, leader in enumerate(chosen)}
        outcomes = sorted([*outcomes, *unbuilt], key=lambda o: order.get(o.leader, len(order)))
    return DigestRun(period, messages, outcomes, problems, sent_before)


def _why_no_digest(org: Org, email: str, listed: tuple[str, ...] | None) -> str:
    """Why ``email`` is not among the leaders who get a digest: not in the config's list, not in the
    roster (with the closest address of the roster, for a typo), or without reports."""
    if listed is not None and email not in listed:
        return f"not in [digest] leaders ({', '.join(listed)})"
    but = "in [digest] leaders, but " if listed is not None else ""
    if org.person(email) is None:
        close = _close_address(email, org.people)
        return f"{but}not in the roster" + (f"; did you mean {close}?" if close else "")
    return f"{but}{org.name(email)} has no reports in the roster"


def _close_address(email: str, known: Iterable[str]) -> str | None:
    """The known address ``email`` is most likely a typo of: the same local part at a close domain, or
    a close local part at the same domain."""

    def likeness(other: str) -> float:
        local, _, domain = email.rpartition("@")
        other_local, _, other_domain = other.rpartition("@")
        if local == other_local:
            return difflib.SequenceMatcher(None, domain, other_domain).ratio()
        if domain == other_domain:
            return difflib.SequenceMatcher(None, local, other_local).ratio()
        return 0.0

    best = max(known, key=likeness, default=None)
    return best if best is not None and likeness(best) >= 0.8 else None


@dataclass
class CycleResult:
    """One cycle of the daemon: a sync, the report, the agenda pass and, when due, the digests."""

    report: Report
    agendas: list[Outcome]
    digests: DigestRun | None
    sources: dict[str, SourceStatus]
    problems: list[Problem]


def run_cycle(
    config: Config,
    store: StateStore,
    now: datetime,
    options: SyncOptions,
) -> CycleResult:
    """Everything ``calsync run`` does once: sync every source, report, write the agendas due, and
    send the digests of the current period not sent yet (when they can be sent)."""
    org, org_problems = load_org(config)
    clock = make_clock(config, now.astimezone(org_timezone(config)).date())
    synced = sync_all(config, org, org_problems, store, sync_window(clock), options)
    synced.remember_lines(store, today(config, now))
    report = report_of(config, synced, clock)
    agendas = agenda_pass(config, synced, store, now)
    digest_run: DigestRun | None = None
    if digests_enabled(config):
        delivery = make_delivery(config)
        digest_run = digest_pass(config, synced, store, now, delivery, pending_only=True)
    return CycleResult(report, agendas, digest_run, synced.sources, synced.problems)


def make_delivery(config: Config) -> Delivery:
    """Where ``--send`` delivers: the outbox directory, or the SMTP server with its password."""
    settings = config.digest
    if settings.delivery == OUTBOX:
        assert settings.outbox is not None
        return OutboxDelivery(settings.outbox)
    if config.smtp is None:
        raise DigestError(
            "the config has no [smtp] section: set [smtp] host (and security, username, password_file) "
            'to send digests, or [digest] delivery = "outbox" to write them as files'
        )
    try:
        password = smtp_password(config.smtp)
    except DeliveryError as exc:
        raise DigestError(str(exc)) from None
    assert settings.sender is not None
    return SmtpDelivery(config.smtp, settings.sender, password)


class DigestError(Exception):
    """The digests cannot be made or sent at all (a config or command-line problem); str() says why."""


def now_function(fixed: datetime | None) -> Callable[[], datetime]:
    """The clock: ``fixed`` (``--now``) if given, else the real time."""
    if fixed is not None:
        return lambda: fixed
    return lambda: datetime.now(UTC)
