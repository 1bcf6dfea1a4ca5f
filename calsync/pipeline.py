"""Wires the edges to the core: config -> roster + sources -> resolve -> report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from email.message import EmailMessage
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
from calsync.detect import one_on_ones, resolve
from calsync.digest.compose import build_message, compose, due_period, leaders, render
from calsync.digest.send import (
    Delivery,
    DeliveryError,
    DigestOutcome,
    OutboxDelivery,
    SmtpDelivery,
    already_sent,
    deliver_all,
    previous_digest,
    smtp_password,
)
from calsync.model import CalendarData, Occurrence, Problem
from calsync.org import Org, RosterError, load_roster, parse_roster
from calsync.progress import Progress
from calsync.publish.runner import AgendaPass, Backend, Outcome, cancelled_keys
from calsync.report import Policy, Report, build_report
from calsync.sources.base import Source, Window, display_path
from calsync.sources.google import (
    DIRECTORY_SCOPES,
    CalendarUnavailable,
    GoogleSource,
    directory_roster_csv,
    directory_users,
    service_account_directory,
    service_account_service,
    user_token_service,
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
from calsync.sources.retry import RateLimiter, RetryPolicy
from calsync.store import StateStore

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


def make_sources(
    config: Config, org: Org, store: StateStore | None, progress: Progress | None = None
) -> tuple[list[Source], list[Problem]]:
    """The configured sources, ready to fetch; a source that cannot even be set up is a problem."""
    tz = org_timezone(config)
    managers = tuple(sorted({m for m, _ in org.direct_pairs()}))
    sources: list[Source] = []
    problems: list[Problem] = []
    for source in config.sources:
        made: Source | Problem
        if isinstance(source, GoogleSourceConfig):
            assert store is not None
            made = _google_source(source, managers, store, tz, progress)
        elif isinstance(source, MicrosoftSourceConfig):
            assert store is not None
            made = _microsoft_source(source, managers, store, tz, progress)
        else:
            made = IcsSource(
                source.location,
                name=source.name,
                default_tz=tz,
                label_root=config.base_dir,
                timeout_seconds=source.timeout_seconds,
                progress=progress,
            )
        if isinstance(made, Problem):
            problems.append(made)
        else:
            sources.append(made)
    return sources, problems


def _google_source(
    source: GoogleSourceConfig,
    managers: tuple[str, ...],
    store: StateStore,
    tz: tzinfo,
    progress: Progress | None,
) -> Source | Problem:
    options: dict[str, Any] = {
        "endpoint": source.endpoint,
        "ca_bundle": source.ca_bundle,
        "timeout": source.timeout_seconds,
    }
    try:
        if source.token_file is not None:
            # One person's sign-in: their own calendar unless the config lists others.
            calendars = source.calendars or ("primary",)
            service_for = user_token_service(source.token_file, **options)
        else:
            assert source.service_account_key is not None
            # Every 1:1 with a manager is on the manager's calendar: by default, the managers'.
            calendars = source.calendars or managers
            service_for = service_account_service(source.service_account_key, **options)
    except (OSError, ValueError) as exc:
        what = "token file" if source.token_file is not None else "service account key"
        return Problem(source.name, f"cannot use the {what}: {exc}", unread=True)
    return GoogleSource(source.name, calendars, service_for, store, default_tz=tz, progress=progress)


def _microsoft_source(
    source: MicrosoftSourceConfig,
    managers: tuple[str, ...],
    store: StateStore,
    tz: tzinfo,
    progress: Progress | None,
) -> Source | Problem:
    try:
        client = graph_client(source)
        client.tokens.token()  # a refused credential is one problem of the source, not one per mailbox
    except AuthError as exc:
        return Problem(source.name, f"cannot sign in: {exc}", unread=True)
    if source.mailboxes:
        mailboxes: tuple[str, ...] = source.mailboxes
    elif client.tokens.user is not None:
        mailboxes = (client.tokens.user,)  # one person's sign-in: their own mailbox
    else:
        mailboxes = managers  # every 1:1 with a manager is in the manager's mailbox
    return MicrosoftSource(source.name, mailboxes, client, store, default_tz=tz, progress=progress)


def load_org(config: Config) -> tuple[Org, list[Problem]]:
    """The roster CSV, or the org chart of the Google Directory or of Microsoft Entra ID."""
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


def collect(sources: list[Source], window: Window) -> tuple[list[CalendarData], list[Problem]]:
    calendars: list[CalendarData] = []
    problems: list[Problem] = []
    for source in sources:
        result = source.fetch(window)
        calendars.extend(result.calendars)
        problems.extend(result.problems)
    return calendars, problems


@dataclass
class AgendaRun:
    """What ``calsync agendas`` did: one outcome per 1:1 due an agenda, and the problems met."""

    outcomes: list[Outcome]
    problems: list[Problem]


def run_agendas(
    config: Config,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> AgendaRun:
    """Sync every source, then give every direct 1:1 starting within ``[agenda] lead_days`` its agenda
    (one pass of :class:`calsync.publish.runner.AgendaPass`)."""
    from calsync.publish.setup import make_backends  # the write side's libraries, only when needed

    org, problems = load_org(config)
    now = now or datetime.now(UTC)
    clock = make_clock(config, now.astimezone(org_timezone(config)).date())
    assert config.state is not None
    store = StateStore(config.state.path)
    try:
        sources, setup_problems = make_sources(config, org, store, progress)
        problems.extend(setup_problems)
        calendars: list[CalendarData] = []
        source_of: dict[str, str] = {}
        window = sync_window(clock)
        for source in sources:
            result = source.fetch(window)
            calendars.extend(result.calendars)
            problems.extend(result.problems)
            source_of.update((c.calendar, source.name) for c in result.calendars)
        detection = one_on_ones(resolve(calendars).occurrences, org.is_member)
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
            name = source_of.get(occurrence.calendar)
            if name is None:
                return f"no source holds the calendar {occurrence.calendar}"
            return backends.get(name, f"source {name!r} has no agenda backend")

        outcomes = AgendaPass(
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
    finally:
        store.close()
    return AgendaRun(outcomes, problems)


def run_report(config: Config, as_of: date | None = None, progress: Progress | None = None) -> Report:
    """Read the roster and every source, and build the cadence report."""
    return report_and_org(config, as_of, progress)[0]


def report_and_org(
    config: Config, as_of: date | None = None, progress: Progress | None = None
) -> tuple[Report, Org]:
    """The cadence report and the org it was built for."""
    org, problems = load_org(config)
    clock = make_clock(config, as_of)
    needs_state = any(isinstance(s, GoogleSourceConfig | MicrosoftSourceConfig) for s in config.sources)
    store = StateStore(config.state.path) if needs_state and config.state is not None else None
    try:
        sources, setup_problems = make_sources(config, org, store, progress)
        calendars, source_problems = collect(sources, sync_window(clock))
    finally:
        if store is not None:
            store.close()
    source_problems = setup_problems + source_problems
    report = build_report(org, resolve(calendars), clock, policy(config), [*problems, *source_problems])
    return report, org


def policy(config: Config) -> Policy:
    """The cadence the org wants, and who is excluded from it, as the core takes it."""
    return Policy(
        default_days=config.cadence.default_days,
        grace_days=config.cadence.grace_days,
        skip_level_days=config.cadence.skip_level_days,
        exclusions=config.exclusions,
    )


@dataclass
class DigestRun:
    """What ``calsync digest`` did or would do for one period."""

    period: date
    messages: dict[str, EmailMessage]  # by leader: the digests of this period
    outcomes: list[DigestOutcome]  # one per leader when sending; empty for a preview or a listing
    problems: list[Problem]
    sent_before: dict[str, str]  # leader -> when their digest of this period was sent (a listing)


def run_digests(
    config: Config,
    *,
    now: datetime | None = None,
    send: bool = False,
    only: str | None = None,
    progress: Progress | None = None,
) -> DigestRun:
    """Build the digests of the period ``now`` falls in and, with ``send``, deliver those not yet sent.

    ``only`` limits the run to one leader (a preview). Digests are held back, not sent, while a calendar
    or source cannot be read, unless ``[digest] when_incomplete = "send"``.
    """
    settings = config.digest
    delivery = make_delivery(config) if send else None  # a config problem stops us before any sync
    moment = now or datetime.now(UTC)
    period = due_period(moment, settings.weekday, settings.hour, org_timezone(config))
    report, org = report_and_org(config, period, progress)
    problems = list(report.errors)
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
            raise DigestError(
                f"{wanted} gets no digest: "
                + (
                    "not in [digest] leaders"
                    if settings.leaders is not None
                    else "they lead no one in the roster"
                )
            )
        chosen = [wanted]
    assert config.state is not None and settings.sender is not None
    env = environment(settings.templates)
    store = StateStore(config.state.path)
    try:
        messages: dict[str, EmailMessage] = {}
        items = []
        sent_before: dict[str, str] = {}
        for leader in chosen:
            previous, previous_period = previous_digest(store, leader, period)
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
            )
            message = build_message(
                digest, render(digest, env), sender=settings.sender, reply_to=settings.reply_to, when=moment
            )
            messages[leader] = message
            items.append((digest, message))
            record = already_sent(store, leader, period)
            if record is not None:
                sent_before[leader] = str(record.get("sent_at"))
        outcomes: list[DigestOutcome] = []
        unread = [p for p in report.errors if p.unread]
        if delivery is not None and unread and settings.when_incomplete == WAIT:
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
            outcomes = deliver_all(items, store, delivery, now_function(now), written=written)
    finally:
        store.close()
    return DigestRun(period, messages, outcomes, problems, sent_before)


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
