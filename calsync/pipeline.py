"""Wires the edges to the core: config -> roster + sources -> resolve -> report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from google.auth.exceptions import RefreshError

from calsync.agenda import environment, plan
from calsync.cadence import Clock
from calsync.config import (
    GOOGLE_DIRECTORY,
    MICROSOFT_GRAPH,
    Config,
    GoogleSourceConfig,
    MicrosoftSourceConfig,
)
from calsync.detect import one_on_ones, resolve
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
        return Problem(source.name, f"cannot use the {what}: {exc}")
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
        return Problem(source.name, f"cannot sign in: {exc}")
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
    policy = Policy(
        default_days=config.cadence.default_days,
        grace_days=config.cadence.grace_days,
        skip_level_days=config.cadence.skip_level_days,
    )
    return build_report(org, resolve(calendars), clock, policy, [*problems, *source_problems])
