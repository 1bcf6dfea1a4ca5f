"""The TOML configuration file: reading, validating and defaults.

:func:`load_config` checks the whole file in one pass and raises a single :class:`ConfigError` that
lists every problem, each one naming the file and the key, what was expected and what was found.
Relative paths are resolved against the directory of the config file, never the working directory.
``calsync config example`` (``calsync/examples/calsync.example.toml``) documents every key.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from email.headerregistry import Address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from calsync.absence import DEFAULT_WEEKEND, WEEKDAY_NAMES, AbsenceEntry, holiday_problem
from calsync.digest.headers import mailbox
from calsync.org import Exclusion, timezone_problem
from calsync.redact import redact_url

SOURCE_TYPES = ("ics", "google", "microsoft")
#: Where a source's agenda documents go, by source type (the first is the default; "local" is the
#: default of an ICS source only when [agenda] names a directory).
GOOGLE_DOCS, ONEDRIVE, LOCAL, NO_AGENDAS = "google-docs", "onedrive", "local", "none"
AGENDA_BACKENDS: dict[str, tuple[str, ...]] = {
    "google": (GOOGLE_DOCS, LOCAL, NO_AGENDAS),
    "microsoft": (ONEDRIVE, LOCAL, NO_AGENDAS),
    "ics": (LOCAL, NO_AGENDAS),
}
PER_MEETING, ROLLING = "per-meeting", "rolling"
SMTP, OUTBOX = "smtp", "outbox"
WAIT, SEND_ANYWAY = "wait", "send"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
STARTTLS, SSL, PLAIN = "starttls", "ssl", "none"
SMTP_PORTS = {STARTTLS: 587, SSL: 465, PLAIN: 25}
DEFAULT_PASSWORD_ENV = "CALSYNC_SMTP_PASSWORD"  # noqa: S105 (the name of a variable)
_URL_SCHEMES = ("http", "https", "webcal")
_HINT = (
    "`calsync config example` prints every key with what it does, and `calsync demo` writes a working example"
)


class ConfigError(Exception):
    """Raised with every problem found; ``str(e)`` is a ready-to-print multi-line message."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


@dataclass(frozen=True)
class OrgConfig:
    """``[org]``: who belongs to the organisation."""

    domains: tuple[str, ...]  # lower case, e.g. ("acme.test",)
    roster: Path | None  # absolute path of the roster CSV; None: read ``org_chart``
    timezone: str | None = None  # IANA name; None means UTC
    directory_admin: str | None = None  # with the Google Directory: the admin the service account acts as
    org_chart: str | None = None  # "google-directory" or "microsoft-graph" instead of a roster CSV
    holidays: str | None = None  # public holidays: "DE", "DE-BY", "US-CA" (the holidays package); None: none
    weekend: tuple[int, ...] = DEFAULT_WEEKEND  # weekdays (0 = Monday) nobody is expected to work


@dataclass(frozen=True)
class DetectConfig:
    """``[detect]``: what decides which meetings are 1:1s."""

    #: Addresses and ``*@domain`` patterns that never count as participants (assistants, note-taking
    #: bots), lower case.
    ignore_attendees: tuple[str, ...] = ()


@dataclass(frozen=True)
class CadenceConfig:
    """``[cadence]``: how often 1:1s should happen."""

    default_days: int = 14
    grace_days: int = 3
    skip_level_days: int | None = None  # skip-level pairs are tracked only when set


@dataclass(frozen=True)
class ReportConfig:
    """``[report]``: the windows a report looks at, around its as-of date."""

    lookback_days: int = 90
    lookahead_days: int = 90


@dataclass(frozen=True)
class IcsSourceConfig:
    """One ``[[sources]]`` entry of type ``ics``."""

    location: str  # absolute filesystem path, or an http(s) URL
    name: str
    timeout_seconds: float = 30.0
    agendas: str | None = None  # "local" or "none"; None: local when [agenda] has a directory
    owner: str | None = None  # whose calendar a single file or URL is (lower-case email)
    type: str = "ics"

    @property
    def is_url(self) -> bool:
        return self.location.startswith(("http://", "https://"))


#: Calendars (mailboxes) an API source syncs at the same time. Eight requests in flight at ~50 ms each
#: stay below Google's 10,000 requests a minute per project, and Graph's limit of 4 in flight is per
#: mailbox, of which each worker reads one at a time.
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 64


@dataclass(frozen=True)
class GoogleSourceConfig:
    """One ``[[sources]]`` entry of type ``google``: Google Workspace through a service account."""

    name: str
    service_account_key: Path | None  # the key (JSON) of a service account with domain-wide delegation
    token_file: Path | None = None  # or: one person's sign-in, written by `calsync auth google`
    calendars: tuple[str, ...] | None = None  # None: every manager (service account) / "primary" (token)
    endpoint: str | None = None  # Calendar API root override (tests, emulators, proxies)
    directory_endpoint: str | None = None  # Directory API root override
    drive_endpoint: str | None = None  # Drive API root override
    ca_bundle: Path | None = None  # CA certificates to trust for the endpoint
    timeout_seconds: float = 30.0
    concurrency: int = DEFAULT_CONCURRENCY  # calendars synced at the same time
    agendas: str | None = None  # "google-docs" (None), "local" or "none"
    type: str = "google"


MICROSOFT_AUTHORITY_HOST = "https://login.microsoftonline.com"
GRAPH_ENDPOINT = "https://graph.microsoft.com/v1.0"


@dataclass(frozen=True)
class MicrosoftSourceConfig:
    """One ``[[sources]]`` entry of type ``microsoft``: Microsoft 365 through Microsoft Graph.

    The whole org signs in as an app registration (client credentials: a secret read from a file or an
    environment variable, or a certificate); one person signs in with ``calsync auth microsoft`` and
    points ``token_cache`` at what it wrote. Exactly one of the four is set.
    """

    name: str
    tenant: str  # directory (tenant) ID, or a verified domain
    client_id: str  # application (client) ID of the app registration
    client_secret_file: Path | None = None
    client_secret_env: str | None = None  # the name of an environment variable holding the secret
    certificate_file: Path | None = None  # PEM: the private key and its certificate
    token_cache: Path | None = None  # one person's sign-in, written by `calsync auth microsoft`
    mailboxes: tuple[str, ...] | None = None  # None: every manager (app) / the signed-in person (token)
    authority_host: str = MICROSOFT_AUTHORITY_HOST
    graph_endpoint: str = GRAPH_ENDPOINT
    ca_bundle: Path | None = None  # CA certificates to trust for both endpoints
    timeout_seconds: float = 30.0
    concurrency: int = DEFAULT_CONCURRENCY  # mailboxes synced at the same time
    agendas: str | None = None  # "onedrive" (None), "local" or "none"
    type: str = "microsoft"

    @property
    def app_only(self) -> bool:
        """Whether this source signs in as the app (org-wide), not as one person."""
        return self.token_cache is None

    @property
    def authority(self) -> str:
        return f"{self.authority_host.rstrip('/')}/{self.tenant}"


SourceConfig = IcsSourceConfig | GoogleSourceConfig | MicrosoftSourceConfig


@dataclass(frozen=True)
class StateConfig:
    """``[state]``: where calsync keeps what it has synced."""

    path: Path  # absolute


@dataclass(frozen=True)
class AgendaConfig:
    """``[agenda]``: the agenda documents calsync writes before each 1:1."""

    mode: str = PER_MEETING  # or ROLLING: one document per pair, a new section on top before each 1:1
    lead_days: int = 2  # 1:1s starting within this many days get their agenda
    career_every_weeks: int = 8  # about this often a 1:1 is a career ("big picture") session
    templates: Path | None = None  # a directory of templates overriding calsync's
    directory: Path | None = None  # the local backend: where the documents are written
    base_url: str | None = None  # the local backend: the URL that directory is served under


@dataclass(frozen=True)
class DigestConfig:
    """``[digest]``: the leaders' weekly digests of 1:1 cadence gaps."""

    leaders: tuple[str, ...] | None = None  # None: everyone in the roster with reports
    weekday: int = 0  # the day digests are due (0 = Monday), in the org's time zone
    hour: int = 8  # the hour they are due that day
    sender: Address | None = None  # the From address ("from"); None: calsync@<the org's first domain>
    reply_to: Address | None = None  # who leaders should ask about the digest or the cadence
    delivery: str = SMTP  # or OUTBOX: write .eml files into ``outbox`` instead of sending
    outbox: Path | None = None
    templates: Path | None = None  # a directory of templates overriding calsync's
    when_incomplete: str = WAIT  # a calendar could not be read: WAIT (send later) or SEND_ANYWAY


@dataclass(frozen=True)
class SmtpConfig:
    """``[smtp]``: the mail server digests are sent through."""

    host: str
    port: int
    security: str = STARTTLS  # or SSL (implicit TLS, "SMTPS") or PLAIN (no TLS: a local relay only)
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None  # the name of an environment variable holding the password
    ca_bundle: Path | None = None  # CA certificates to trust for the server (else the system's)
    timeout_seconds: float = 30.0
    helo_name: str | None = None  # the name calsync gives in EHLO; None: this machine's FQDN


@dataclass(frozen=True)
class DaemonConfig:
    """``[daemon]``: how ``calsync run`` runs."""

    sync_interval: float = 300.0  # seconds between the starts of two sync cycles
    jitter: float | None = None  # up to this many seconds added to each start; None: a tenth, at most 30
    listen: tuple[str, int] | None = ("127.0.0.1", 9468)  # /healthz and /metrics; None: no endpoint
    report: Path | None = None  # the JSON report written after each cycle; None: beside the state file
    unhealthy_after: int = 3  # /healthz fails after this many intervals without a successful sync

    @property
    def jitter_seconds(self) -> float:
        return self.jitter if self.jitter is not None else min(30.0, self.sync_interval / 10)


@dataclass(frozen=True)
class Config:
    """The whole, validated configuration."""

    path: Path  # the config file, absolute
    org: OrgConfig
    cadence: CadenceConfig
    report: ReportConfig
    sources: tuple[SourceConfig, ...]
    state: StateConfig | None = None
    agenda: AgendaConfig = AgendaConfig()
    exclusions: tuple[Exclusion, ...] = ()  # [[exclude]]
    absences: tuple[AbsenceEntry, ...] = ()  # [[absence]]
    detect: DetectConfig = DetectConfig()
    digest: DigestConfig = DigestConfig()
    smtp: SmtpConfig | None = None
    daemon: DaemonConfig = DaemonConfig()

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in the config are resolved against."""
        return self.path.parent


_SECTIONS: dict[str, tuple[str, ...]] = {
    "org": ("domains", "roster", "timezone", "directory_admin", "holidays", "weekend"),
    "detect": ("ignore_attendees",),
    "absence": ("email", "from", "until", "reason"),
    "cadence": ("default_days", "grace_days", "skip_level_days"),
    "report": ("lookback_days", "lookahead_days"),
    "sources": ("type", "path", "name", "timeout_seconds"),
    "state": ("path",),
    "agenda": ("mode", "lead_days", "career_every_weeks", "templates", "directory", "base_url"),
    "exclude": ("email", "reason", "until"),
    "digest": (
        "leaders",
        "day",
        "hour",
        "from",
        "reply_to",
        "delivery",
        "outbox",
        "templates",
        "when_incomplete",
    ),
    "daemon": ("sync_interval", "jitter", "listen", "report", "unhealthy_after"),
    "smtp": (
        "host",
        "port",
        "security",
        "username",
        "password_file",
        "password_env",
        "ca_bundle",
        "timeout_seconds",
        "helo_name",
    ),
}
_SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "ics": ("type", "name", "path", "timeout_seconds", "agendas", "owner"),
    "google": (
        "type",
        "name",
        "service_account_key",
        "token_file",
        "directory_endpoint",
        "drive_endpoint",
        "calendars",
        "endpoint",
        "ca_bundle",
        "timeout_seconds",
        "concurrency",
        "agendas",
    ),
    "microsoft": (
        "type",
        "name",
        "tenant",
        "client_id",
        "client_secret_file",
        "client_secret_env",
        "certificate_file",
        "token_cache",
        "mailboxes",
        "authority_host",
        "graph_endpoint",
        "ca_bundle",
        "timeout_seconds",
        "concurrency",
        "agendas",
    ),
}
DEFAULT_STATE_FILE = "calsync-state.json"
#: The longest look-back, look-ahead or agenda lead time, in days: ten years.
MAX_SPAN_DAYS = 3660
#: The longest network timeout (``timeout_seconds``), in seconds: an hour.
MAX_TIMEOUT_SECONDS = 3600
#: The longest ``[daemon] sync_interval`` and ``jitter``, in seconds: a week.
MAX_INTERVAL_SECONDS = 7 * 24 * 3600
#: The most ``[daemon] unhealthy_after`` intervals.
MAX_UNHEALTHY_AFTER = 1000
GOOGLE_DIRECTORY = "google-directory"
MICROSOFT_GRAPH = "microsoft-graph"
ORG_CHART_ROSTERS = (GOOGLE_DIRECTORY, MICROSOFT_GRAPH)
_CREDENTIAL_KEYS = ("client_secret_file", "client_secret_env", "certificate_file", "token_cache")


#: The largest config file read (a real one is a few kB): more is not a config file.
MAX_CONFIG_BYTES = 10_000_000


def load_config(path: Path) -> Config:
    """Read and validate the config file at ``path``; raise :class:`ConfigError` listing every problem."""
    label = str(path)
    try:
        with Path(path).open("rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise ConfigError(
                    [f"{label}: not a regular file; expected the path of calsync's TOML config file"]
                )
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            [
                f"{label}: cannot read the config file ({reason}); check its path, or start "
                "from `calsync config example > calsync.toml` (`calsync demo` writes a working example)"
            ]
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [f"{label}: larger than {MAX_CONFIG_BYTES // 1_000_000} MB; is it calsync's TOML config file?"]
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{label}: not valid UTF-8 (byte {exc.start}); save the config file as UTF-8"]
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{label}: invalid TOML: {exc}; {_HINT}"]) from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(
            [
                f"{label}: invalid TOML: arrays or inline tables nested hundreds deep; no key of calsync's "
                f"config takes more than a list of strings or of tables; {_HINT}"
            ]
        ) from None
    try:
        given = Path(path).expanduser().absolute()
        config_path = given.parent.resolve() / given.name
    except (OSError, RuntimeError) as exc:  # e.g. the working directory vanished
        raise ConfigError([f"{label}: cannot resolve the config file's path ({exc})"]) from None
    return _Checker(label, config_path).config(data)


# -- validation ------------------------------------------------------------------------------------------


class _Checker:
    """Collects the problems of one config document while building its values."""

    def __init__(self, label: str, config_path: Path) -> None:
        self.label = label
        self.path = config_path
        self.problems: list[str] = []
        self.trouble = ""  # why the last path :meth:`resolve` returned None for is unusable, if known

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{self.label}: {where}: {message}" if where else f"{self.label}: {message}")

    def config(self, data: dict[str, Any]) -> Config:
        for key, value in data.items():
            if key not in _SECTIONS:
                self.unknown(_toml_name(key, value), key, _SECTIONS, section=None)
        org = self.org(self.section(data, "org", required=True))
        cadence = self.cadence(self.section(data, "cadence") or {})
        report = self.report(self.section(data, "report") or {})
        sources = self.sources(data)
        state = self.state(self.section(data, "state") or {})
        agenda = self.agenda(self.section(data, "agenda") or {}, sources)
        exclusions = self.exclusions(data)
        absences = self.absences(data)
        detect = self.detect(self.section(data, "detect") or {})
        digest = self.digest(self.section(data, "digest") or {}, org)
        smtp_section = self.section(data, "smtp")
        smtp = self.smtp(smtp_section) if smtp_section is not None else None
        daemon = self.daemon(self.section(data, "daemon") or {})
        if (
            org is not None
            and org.org_chart == GOOGLE_DIRECTORY
            and not any(
                isinstance(s, GoogleSourceConfig) and s.service_account_key is not None for s in sources
            )
        ):
            self.problem(
                "[org] roster",
                f'"{GOOGLE_DIRECTORY}" needs a google source with a service_account_key '
                "to read the directory with",
            )
        if (
            org is not None
            and org.org_chart == MICROSOFT_GRAPH
            and not any(isinstance(s, MicrosoftSourceConfig) for s in sources)
        ):
            self.problem(
                "[org] roster",
                f'"{MICROSOFT_GRAPH}" needs a microsoft source to read the users and their managers with',
            )
        if self.problems or org is None:
            raise ConfigError(self.problems or [f"{self.label}: [org]: invalid"])
        return Config(
            path=self.path,
            org=org,
            cadence=cadence,
            report=report,
            sources=sources,
            state=state,
            agenda=agenda,
            exclusions=exclusions,
            absences=absences,
            detect=detect,
            digest=digest,
            smtp=smtp,
            daemon=daemon,
        )

    def state(self, section: dict[str, Any]) -> StateConfig:
        # Under systemd (StateDirectory=), the state goes where the unit says state goes.
        home = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        value = section.get("path", str(Path(home) / DEFAULT_STATE_FILE) if home else DEFAULT_STATE_FILE)
        path = self.resolve(value) if isinstance(value, str) and value.strip() else None
        if path is None:
            self.problem("[state] path", f"expected the path of calsync's state file, got {self.got(value)}")
            path = self.path.parent / DEFAULT_STATE_FILE
        return StateConfig(path=path)

    def agenda(self, section: dict[str, Any], sources: Iterable[SourceConfig]) -> AgendaConfig:
        default = AgendaConfig()
        mode = self.choice(
            section,
            "[agenda] mode",
            {PER_MEETING: "a document per meeting", ROLLING: "one document per pair"},
            default.mode,
        )
        templates = self.directory(section, "agenda", "templates", must_exist=True)
        directory = self.directory(section, "agenda", "directory")
        base_url = section.get("base_url")
        if base_url is not None and (
            not isinstance(base_url, str) or not base_url.startswith(("https://", "http://"))
        ):
            self.problem("[agenda] base_url", f"expected an http(s):// URL, got {_describe(base_url)}")
            base_url = None
        if any(agenda_backend(s, directory) == LOCAL for s in sources) and (
            directory is None or base_url is None
        ):
            self.problem(
                "[agenda] directory",
                'a source writes its agendas "local"ly: set both directory (where the documents are '
                "written) and base_url (the URL that directory is served under)",
            )
        return AgendaConfig(
            mode=str(mode),
            lead_days=_or(self.integer(section, "agenda", "lead_days", 0, MAX_SPAN_DAYS), default.lead_days),
            career_every_weeks=_or(
                self.integer(section, "agenda", "career_every_weeks", 1, MAX_SPAN_DAYS // 7),
                default.career_every_weeks,
            ),
            templates=templates,
            directory=directory,
            base_url=(base_url.rstrip("/") + "/") if isinstance(base_url, str) else None,
        )

    def agenda_choice(self, prefix: str, kind: str, item: dict[str, Any]) -> tuple[bool, str | None]:
        """The source's ``agendas`` key: (valid, value)."""
        if "agendas" not in item:
            return True, None
        value = item["agendas"]
        allowed = AGENDA_BACKENDS[kind]
        if value not in allowed:
            self.problem(
                f"{prefix} agendas",
                f"expected one of {', '.join(repr(a) for a in allowed)} for a {kind} source, "
                f"got {_describe(value)}",
            )
            return False, None
        return True, str(value)

    def exclusions(self, data: Mapping[str, Any]) -> tuple[Exclusion, ...]:
        """``[[exclude]]``: people whose 1:1s are not flagged for a while (leave, a notice period)."""
        example = (
            '[[exclude]] with email = "someone@acme.test", reason = "parental leave", until = 2027-01-31'
        )
        found: list[Exclusion] = []
        for prefix, item, address in self.people_tables(data, "exclude", example):
            reason = item.get("reason", "excluded")
            if not isinstance(reason, str) or not reason.strip():
                self.problem(
                    f"{prefix} reason", f'expected a few words like "parental leave", got {_describe(reason)}'
                )
                continue
            until = item.get("until")
            if isinstance(until, str):
                with contextlib.suppress(ValueError):
                    until = date.fromisoformat(until.strip())
            if until is not None and (isinstance(until, datetime) or not isinstance(until, date)):
                self.problem(
                    f"{prefix} until",
                    "expected the last day of the exclusion as a date like 2027-01-31, got "
                    + _describe(until),
                )
                continue
            found.append(Exclusion(address, reason.strip(), until, source="config"))
        return tuple(found)

    def people_tables(
        self, data: Mapping[str, Any], name: str, example: str
    ) -> Iterator[tuple[str, dict[str, Any], str]]:
        """The ``[[name]]`` tables about one person each (``[[exclude]]``, ``[[absence]]``): each as
        (its prefix in messages, the table, the person's email), unknown keys and bad emails reported
        and those tables skipped."""
        if name not in data:
            return
        value = data[name]
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.problem(f"[[{name}]]", f"expected one or more {example}, got {_describe(value)}")
            return
        for index, item in enumerate(value, start=1):
            prefix = f"[[{name}]] #{index}"
            for key in item:
                if key not in _SECTIONS[name]:
                    self.unknown(f"{prefix} {key}", key, _SECTIONS[name], section=name)
            address = self.person(prefix, item)
            if address is not None:
                yield prefix, item, address

    def person(self, prefix: str, item: Mapping[str, Any]) -> str | None:
        """A table's ``email`` of one person, lower case; None (reported) if it is not one."""
        address = item.get("email")
        if not isinstance(address, str) or "@" not in address or any(c.isspace() for c in address.strip()):
            self.problem(f"{prefix} email", f"expected the email of a person, got {_describe(address)}")
            return None
        return address.strip().lower()

    def absences(self, data: Mapping[str, Any]) -> tuple[AbsenceEntry, ...]:
        """``[[absence]]``: a person away from one date to another (inclusive), e.g. leave that is in
        no calendar. The reason stays in the config: reports and digests only count the days."""
        example = '[[absence]] with email = "someone@acme.test", from = 2026-12-21, until = 2027-01-01'
        found: list[AbsenceEntry] = []
        for prefix, item, address in self.people_tables(data, "absence", example):
            days: dict[str, date] = {}
            for key in ("from", "until"):
                day = item.get(key)
                if isinstance(day, str):
                    with contextlib.suppress(ValueError):
                        day = date.fromisoformat(day.strip())
                if isinstance(day, datetime) or not isinstance(day, date):
                    what = "first" if key == "from" else "last"
                    self.problem(
                        f"{prefix} {key}",
                        f"expected the {what} day away as a date like 2026-12-21, got {_describe(day)}",
                    )
                    continue
                days[key] = day
            if len(days) < 2:
                continue
            if days["until"] < days["from"]:
                self.problem(
                    f"{prefix} until",
                    f"{days['until']} is before from = {days['from']}: until is the last day away",
                )
                continue
            reason = item.get("reason")
            if reason is not None and not isinstance(reason, str):
                self.problem(f"{prefix} reason", f"expected a few words, got {_describe(reason)}")
                continue
            found.append(AbsenceEntry(address, days["from"], days["until"], reason))
        return tuple(found)

    def detect(self, section: dict[str, Any]) -> DetectConfig:
        value = section.get("ignore_attendees", [])
        expected = 'a list of addresses and "*@domain" patterns like ["ea@acme.test", "*@notetaker.example"]'
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem("[detect] ignore_attendees", f"expected {expected}, got {_describe(value)}")
            return DetectConfig()
        patterns: list[str] = []
        for entry in value:
            text = entry.strip().lower()
            local, at, domain = text.rpartition("@")
            if (
                not at
                or not domain
                or "*" in domain
                or (local != "*" and ("*" in local or not local))
                or any(c.isspace() for c in text)
            ):
                self.problem(
                    "[detect] ignore_attendees",
                    f'{_describe(entry)} is neither an address nor a "*@domain" pattern; expected {expected}',
                )
                continue
            patterns.append(text)
        return DetectConfig(ignore_attendees=tuple(dict.fromkeys(patterns)))

    def digest(self, section: dict[str, Any], org: OrgConfig | None) -> DigestConfig:
        default = DigestConfig()
        leaders: tuple[str, ...] | None = None
        if "leaders" in section:
            leaders = self.emails(
                "[digest] leaders",
                section["leaders"],
                "a non-empty list of email addresses (or leave it out: everyone with reports gets a digest)",
            )
        weekday = default.weekday
        if "day" in section:
            day = section["day"]
            if isinstance(day, str) and day.strip().lower() in WEEKDAYS:
                weekday = WEEKDAYS.index(day.strip().lower())
            else:
                self.problem(
                    "[digest] day", f'expected a day of the week like "monday", got {_describe(day)}'
                )
        hour = default.hour
        if "hour" in section:
            value = section["hour"]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 23:
                self.problem("[digest] hour", f"expected an hour from 0 to 23, got {_describe(value)}")
            else:
                hour = value
        addresses: dict[str, Address | None] = {}
        for key in ("from", "reply_to"):
            value = section.get(key)
            addresses[key] = None
            if value is None:
                continue
            try:
                if not isinstance(value, str):
                    raise ValueError("it is not a string")
                addresses[key] = mailbox(value)
            except ValueError as exc:
                self.problem(
                    f"[digest] {key}",
                    f'expected an address like "calsync@acme.test" or "1:1 digests <calsync@acme.test>", '
                    f"got {_describe(value)} ({exc})",
                )
        sender = addresses["from"]
        if sender is None and org is not None and org.domains:
            sender = Address(username="calsync", domain=org.domains[0])
        delivery = self.choice(
            section,
            "[digest] delivery",
            {SMTP: "send through [smtp]", OUTBOX: "write .eml files into outbox"},
            default.delivery,
        )
        templates = self.directory(section, "digest", "templates", must_exist=True)
        outbox = self.directory(section, "digest", "outbox")
        if delivery == OUTBOX and "outbox" not in section:
            outbox = self.path.parent / "outbox"
        when_incomplete = self.choice(
            section,
            "[digest] when_incomplete",
            {
                WAIT: "hold the digests back until every calendar can be read",
                SEND_ANYWAY: "send them with a warning",
            },
            default.when_incomplete,
        )
        return DigestConfig(
            leaders=leaders,
            weekday=weekday,
            hour=hour,
            sender=sender,
            reply_to=addresses["reply_to"],
            delivery=str(delivery),
            outbox=outbox,
            templates=templates,
            when_incomplete=str(when_incomplete),
        )

    def smtp(self, section: dict[str, Any]) -> SmtpConfig | None:
        ok = True
        host = section.get("host")
        if (
            not isinstance(host, str)
            or not host.strip()
            or any(c.isspace() or c in "/:@" for c in host.strip())
        ):
            self.problem(
                "[smtp] host",
                f'expected the mail server\'s host name like "smtp.acme.test", got {_describe(host)}',
            )
            ok = False
        security = self.choice(
            section,
            "[smtp] security",
            {STARTTLS: "port 587", SSL: "implicit TLS, port 465", PLAIN: "no TLS: a local relay only"},
            STARTTLS,
        )
        ok = ok and security == section.get("security", STARTTLS)
        port = SMTP_PORTS[str(security)]
        if "port" in section:
            value = section["port"]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
                self.problem("[smtp] port", f"expected a port number from 1 to 65535, got {_describe(value)}")
                ok = False
            else:
                port = value
        username = section.get("username")
        if username is not None and (not isinstance(username, str) or not username.strip()):
            self.problem("[smtp] username", f"expected the login name, got {_describe(username)}")
            ok = False
            username = None
        password_file = self.existing_file(
            section, "[smtp] password_file", "password_file", "a file holding the SMTP password"
        )
        if "password_file" in section and password_file is None:
            ok = False
        password_env = section.get("password_env")
        if password_env is not None and not _is_variable_name(password_env):
            self.problem("[smtp] password_env", _not_a_variable_name(password_env, "the password"))
            ok = False
            password_env = None
        if username is not None:
            if "password_file" in section and password_env is not None:
                self.problem("[smtp] password_env", "set password_file or password_env, not both")
                ok = False
            if security == PLAIN:
                self.problem(
                    "[smtp] security",
                    f'"{PLAIN}" would send the password in clear: use "{STARTTLS}" or "{SSL}", or leave '
                    "username out for a local relay that needs no login",
                )
                ok = False
            if password_file is None and password_env is None:
                password_env = DEFAULT_PASSWORD_ENV
        elif password_file is not None or password_env is not None:
            self.problem("[smtp] username", "a password is set but no username: set the login name too")
            ok = False
        ca_bundle = self.existing_file(
            section, "[smtp] ca_bundle", "ca_bundle", "a PEM file of CA certificates"
        )
        if "ca_bundle" in section and ca_bundle is None:
            ok = False
        timeout = self.number(section, "[smtp] timeout_seconds", 30.0)
        helo = section.get("helo_name")
        if helo is not None and (
            not isinstance(helo, str) or not helo.strip() or any(c.isspace() for c in helo)
        ):
            self.problem(
                "[smtp] helo_name", f'expected a host name like "calsync.acme.test", got {_describe(helo)}'
            )
            ok = False
        if not ok or timeout is None or not isinstance(host, str):
            return None
        return SmtpConfig(
            host=host.strip(),
            port=port,
            security=str(security),
            username=username.strip() if isinstance(username, str) else None,
            password_file=password_file,
            password_env=password_env.strip() if isinstance(password_env, str) else None,
            ca_bundle=ca_bundle,
            timeout_seconds=timeout,
            helo_name=helo.strip() if isinstance(helo, str) else None,
        )

    # -- sections --------------------------------------------------------------------------------------

    def section(self, data: Mapping[str, Any], name: str, *, required: bool = False) -> dict[str, Any] | None:
        """The table ``[name]``, its unknown keys reported; None if it is missing or not a table."""
        if name not in data:
            if required:
                self.problem(f"[{name}]", f"missing section; add an [{name}] table ({_HINT})")
            return None
        value = data[name]
        if not isinstance(value, dict):
            self.problem(
                f"[{name}]", f"expected a table ([{name}] with keys below it), got {_describe(value)}"
            )
            return None
        for key in value:
            if key not in _SECTIONS[name]:
                self.unknown(f"[{name}] {key}", key, _SECTIONS[name], section=name)
        return value

    def org(self, section: dict[str, Any] | None) -> OrgConfig | None:
        if section is None:  # already reported
            return None
        domains = self.domains(section)
        chart = section.get("roster") if section.get("roster") in ORG_CHART_ROSTERS else None
        roster = None if chart else self.roster(section)
        timezone = self.timezone(section)
        holidays = self.holidays(section)
        weekend = self.weekend(section)
        admin = section.get("directory_admin")
        if chart == GOOGLE_DIRECTORY and (not isinstance(admin, str) or "@" not in admin):
            self.problem(
                "[org] directory_admin",
                f'required with roster = "{GOOGLE_DIRECTORY}": the email of a Workspace admin whom the '
                f"service account acts as to read the directory, got {_describe(admin)}",
            )
            return None
        if domains is None or (roster is None and not chart):
            return None
        return OrgConfig(
            domains=domains,
            roster=roster,
            timezone=timezone,
            directory_admin=admin.strip().lower()
            if chart == GOOGLE_DIRECTORY and isinstance(admin, str)
            else None,
            org_chart=chart,
            holidays=holidays,
            weekend=weekend,
        )

    def holidays(self, section: dict[str, Any]) -> str | None:
        if "holidays" not in section:
            return None
        value = section["holidays"]
        if not isinstance(value, str) or not value.strip():
            self.problem(
                "[org] holidays",
                f'expected a country code, optionally with a subdivision, like "DE" or "DE-BY", got '
                f"{_describe(value)}",
            )
            return None
        message = holiday_problem(value)
        if message is not None:
            self.problem("[org] holidays", message)
            return None
        return value.strip().upper()

    def weekend(self, section: dict[str, Any]) -> tuple[int, ...]:
        if "weekend" not in section:
            return DEFAULT_WEEKEND
        value = section["weekend"]
        if (
            not isinstance(value, list)
            or not all(isinstance(v, str) and v.strip().lower() in WEEKDAY_NAMES for v in value)
            or len(value) >= len(WEEKDAY_NAMES)
        ):
            self.problem(
                "[org] weekend",
                f'expected a list of days of the week like ["saturday", "sunday"] (or [] for none), got '
                f"{_describe(value)}",
            )
            return DEFAULT_WEEKEND
        return tuple(sorted({WEEKDAY_NAMES.index(v.strip().lower()) for v in value}))

    def domains(self, section: dict[str, Any]) -> tuple[str, ...] | None:
        where = "[org] domains"
        expected = 'a non-empty list of email domains like ["acme.test"]'
        if "domains" not in section:
            self.problem(where, f"missing; expected {expected}")
            return None
        value = section["domains"]
        if not isinstance(value, list) or not value:
            self.problem(where, f"expected {expected}, got {_describe(value)}")
            return None
        domains: list[str] = []
        ok = True
        for index, item in enumerate(value, start=1):
            if not isinstance(item, str):
                self.problem(
                    f"{where} #{index}", f'expected a domain name like "acme.test", got {_describe(item)}'
                )
                ok = False
                continue
            domain = item.strip().lower()
            if (
                not domain
                or "@" in domain
                or any(c.isspace() for c in domain)
                or domain.startswith(".")
                or domain.endswith(".")
            ):
                self.problem(
                    f"{where} #{index}",
                    f'expected a domain name like "acme.test" (no "@", no spaces), got {_describe(item)}',
                )
                ok = False
                continue
            if domain not in domains:
                domains.append(domain)
        return tuple(domains) if ok else None

    def roster(self, section: dict[str, Any]) -> Path | None:
        where = "[org] roster"
        if "roster" not in section:
            self.problem(where, "missing; expected the path of the roster CSV (email,name,manager_email)")
            return None
        value = section["roster"]
        if not isinstance(value, str) or not value.strip():
            self.problem(where, f"expected the path of the roster CSV as a string, got {_describe(value)}")
            return None
        path = self.resolve(value)
        if path is None:
            self.problem(where, f"invalid path {self.got(value)}")
            return None
        if not path.exists():
            self.problem(where, f"file not found: {path} (relative paths start at {self.path.parent})")
            return None
        if not path.is_file():
            self.problem(where, f"not a file: {path}; expected the roster CSV (email,name,manager_email)")
            return None
        return path

    def timezone(self, section: dict[str, Any]) -> str | None:
        if "timezone" not in section:
            return None
        value = section["timezone"]
        if not isinstance(value, str):
            self.problem(
                "[org] timezone", f'expected an IANA time zone like "Europe/Berlin", got {_describe(value)}'
            )
            return None
        message = timezone_problem(value)
        if message is not None:
            self.problem("[org] timezone", message)
            return None
        return value

    def cadence(self, section: dict[str, Any]) -> CadenceConfig:
        default = CadenceConfig()
        return CadenceConfig(
            default_days=_or(
                self.integer(section, "cadence", "default_days", 1, MAX_SPAN_DAYS), default.default_days
            ),
            grace_days=_or(
                self.integer(section, "cadence", "grace_days", 0, MAX_SPAN_DAYS), default.grace_days
            ),
            skip_level_days=self.integer(section, "cadence", "skip_level_days", 1, MAX_SPAN_DAYS),
        )

    def report(self, section: dict[str, Any]) -> ReportConfig:
        default = ReportConfig()
        return ReportConfig(
            lookback_days=_or(
                self.integer(section, "report", "lookback_days", 1, MAX_SPAN_DAYS), default.lookback_days
            ),
            lookahead_days=_or(
                self.integer(section, "report", "lookahead_days", 1, MAX_SPAN_DAYS), default.lookahead_days
            ),
        )

    def sources(self, data: Mapping[str, Any]) -> tuple[SourceConfig, ...]:
        example = '[[sources]] with type = "ics" and path = "calendars"'
        if "sources" not in data:
            self.problem("[[sources]]", f"missing; add at least one {example}")
            return ()
        value = data["sources"]
        if isinstance(value, dict):
            self.problem(
                "[[sources]]",
                "expected an array of tables: write [[sources]] (double brackets), not [sources]",
            )
            return ()
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.problem("[[sources]]", f"expected one or more {example}, got {_describe(value)}")
            return ()
        if not value:
            self.problem("[[sources]]", f"empty; add at least one {example}")
            return ()
        sources: list[SourceConfig] = []
        names: dict[str, int] = {}
        for index, item in enumerate(value, start=1):
            source = self.source(index, item)
            if source is None:
                continue
            if source.name in names:
                self.problem(
                    f"[[sources]] #{index} name",
                    f"{_describe(source.name)} is already the name of source #{names[source.name]}; "
                    "give each source its own name (or remove the duplicate)",
                )
                continue
            names[source.name] = index
            sources.append(source)
        return tuple(sources)

    def source(self, index: int, item: dict[str, Any]) -> SourceConfig | None:
        prefix = f"[[sources]] #{index}"
        kind = item.get("type")
        known = (
            _SOURCE_KEYS.get(kind, _SECTIONS["sources"]) if isinstance(kind, str) else _SECTIONS["sources"]
        )
        for key in item:
            if key not in known:
                self.unknown(f"{prefix} {key}", key, known, section="sources")
        if kind == "google":
            return self.google_source(prefix, item)
        if kind == "microsoft":
            return self.microsoft_source(prefix, item)
        ok = True
        if kind is None:
            self.problem(f"{prefix} type", f"missing; expected one of: {', '.join(SOURCE_TYPES)}")
            ok = False
        elif not isinstance(kind, str) or kind not in SOURCE_TYPES:
            what = "unknown source type" if isinstance(kind, str) else "got"
            self.problem(
                f"{prefix} type", f"{what} {_describe(kind)}; expected one of: {', '.join(SOURCE_TYPES)}"
            )
            ok = False
        location = self.location(prefix, item)
        # Named by its path as written; a URL by its redacted form, since the URL is often the secret.
        name: str | None = item["path"] if isinstance(item.get("path"), str) else None
        if location is not None and location.startswith(("http://", "https://")):
            name = redact_url(location)
        if "name" in item:
            if isinstance(item["name"], str) and item["name"].strip():
                name = item["name"]
            else:
                self.problem(f"{prefix} name", f"expected a non-empty string, got {_describe(item['name'])}")
                ok = False
        timeout = self.number(item, f"{prefix} timeout_seconds", 30.0)
        agendas_ok, agendas = self.agenda_choice(prefix, "ics", item)
        owner = item.get("owner")
        if owner is not None and (
            not isinstance(owner, str) or "@" not in owner or any(c.isspace() for c in owner.strip())
        ):
            self.problem(
                f"{prefix} owner",
                f"expected the email of the person whose calendar this is, got {_describe(owner)}",
            )
            ok = False
        elif owner is not None and location is not None and Path(location).is_dir():
            self.problem(
                f"{prefix} owner",
                "a directory holds several people's calendars: name each file after its owner "
                "(maya@acme.test.ics or maya.ics) instead",
            )
            ok = False
        if not ok or not agendas_ok or location is None or name is None or timeout is None:
            return None
        return IcsSourceConfig(
            location=location,
            name=name,
            timeout_seconds=timeout,
            agendas=agendas,
            owner=owner.strip().lower() if isinstance(owner, str) else None,
            type="ics",
        )

    def google_source(self, prefix: str, item: dict[str, Any]) -> GoogleSourceConfig | None:
        ok = True
        name = item.get("name", "google")
        if not isinstance(name, str) or not name.strip():
            self.problem(f"{prefix} name", f"expected a non-empty string, got {_describe(name)}")
            ok = False
        key_file = self.existing_file(
            item,
            f"{prefix} service_account_key",
            "service_account_key",
            "the service account's JSON key file",
        )
        token_file = self.existing_file(
            item, f"{prefix} token_file", "token_file", "the token written by `calsync auth google`"
        )
        if ("service_account_key" in item) == ("token_file" in item):
            self.problem(
                f"{prefix} service_account_key",
                "set exactly one of service_account_key (the whole org, domain-wide delegation) and "
                "token_file (one person, from `calsync auth google`)",
            )
            ok = False
        ca_bundle = self.existing_file(
            item, f"{prefix} ca_bundle", "ca_bundle", "a PEM file of CA certificates"
        )
        calendars: tuple[str, ...] | None = None
        if "calendars" in item:
            value = item["calendars"]
            if not isinstance(value, list) or not all(isinstance(v, str) and "@" in v for v in value):
                self.problem(
                    f"{prefix} calendars", f"expected a list of email addresses, got {_describe(value)}"
                )
                ok = False
            else:
                calendars = tuple(v.strip().lower() for v in value)
        endpoint = item.get("endpoint")
        directory_endpoint = item.get("directory_endpoint")
        drive_endpoint = item.get("drive_endpoint")
        for key, value in (
            ("endpoint", endpoint),
            ("directory_endpoint", directory_endpoint),
            ("drive_endpoint", drive_endpoint),
        ):
            if value is not None and (not isinstance(value, str) or not value.startswith("https://")):
                self.problem(f"{prefix} {key}", f"expected an https:// URL, got {_describe(value)}")
                ok = False
        agendas_ok, agendas = self.agenda_choice(prefix, "google", item)
        ok = ok and agendas_ok
        timeout = self.number(item, f"{prefix} timeout_seconds", 30.0)
        concurrency = self.concurrency(item, prefix)
        if (
            not ok
            or (key_file is None and token_file is None)
            or timeout is None
            or concurrency is None
            or ("ca_bundle" in item and ca_bundle is None)
        ):
            return None
        return GoogleSourceConfig(
            name=str(name),
            service_account_key=key_file,
            token_file=token_file,
            calendars=calendars,
            endpoint=endpoint,
            directory_endpoint=directory_endpoint,
            drive_endpoint=drive_endpoint,
            ca_bundle=ca_bundle,
            timeout_seconds=timeout,
            concurrency=concurrency,
            agendas=agendas,
        )

    def microsoft_source(self, prefix: str, item: dict[str, Any]) -> MicrosoftSourceConfig | None:
        ok = True
        name = item.get("name", "microsoft")
        if not isinstance(name, str) or not name.strip():
            self.problem(f"{prefix} name", f"expected a non-empty string, got {_describe(name)}")
            ok = False
        ids: dict[str, str] = {}
        for key, what in (
            ("tenant", "the directory (tenant) ID, or a verified domain like acme.onmicrosoft.com"),
            ("client_id", "the application (client) ID of the app registration"),
        ):
            value = item.get(key)
            if not isinstance(value, str) or not value.strip() or any(c.isspace() or c == "/" for c in value):
                self.problem(f"{prefix} {key}", f"expected {what}, got {_describe(value)}")
                ok = False
            else:
                ids[key] = value.strip()
        given = [key for key in _CREDENTIAL_KEYS if key in item]
        if len(given) != 1:
            self.problem(
                f"{prefix} {given[1] if len(given) > 1 else 'client_secret_file'}",
                "set exactly one of client_secret_file, client_secret_env or certificate_file (the whole "
                "org, as the app) and token_cache (one person, from `calsync auth microsoft`)"
                + (f"; got {', '.join(given)}" if given else ""),
            )
            ok = False
        secret_file = self.existing_file(
            item, f"{prefix} client_secret_file", "client_secret_file", "a file holding the client secret"
        )
        certificate = self.existing_file(
            item,
            f"{prefix} certificate_file",
            "certificate_file",
            "a PEM file with the app's private key and certificate",
        )
        token_cache = self.existing_file(
            item,
            f"{prefix} token_cache",
            "token_cache",
            "the token cache written by `calsync auth microsoft` (run it first)",
        )
        secret_env = item.get("client_secret_env")
        if "client_secret_env" in item and not _is_variable_name(secret_env):
            self.problem(f"{prefix} client_secret_env", _not_a_variable_name(secret_env, "the client secret"))
            ok = False
        if any(
            key in item and value is None
            for key, value in (
                ("client_secret_file", secret_file),
                ("certificate_file", certificate),
                ("token_cache", token_cache),
            )
        ):
            ok = False
        mailboxes: tuple[str, ...] | None = None
        if "mailboxes" in item:
            mailboxes = self.emails(f"{prefix} mailboxes", item["mailboxes"], "a list of email addresses")
            ok = ok and mailboxes is not None
        endpoints: dict[str, str] = {}
        for key in ("authority_host", "graph_endpoint"):
            value = item.get(key)
            if value is None:
                continue
            if (
                not isinstance(value, str)
                or not value.startswith("https://")
                or len(value) <= len("https://")
            ):
                self.problem(f"{prefix} {key}", f"expected an https:// URL, got {_describe(value)}")
                ok = False
            else:
                endpoints[key] = value.rstrip("/")
        ca_bundle = self.existing_file(
            item, f"{prefix} ca_bundle", "ca_bundle", "a PEM file of CA certificates"
        )
        timeout = self.number(item, f"{prefix} timeout_seconds", 30.0)
        agendas_ok, agendas = self.agenda_choice(prefix, "microsoft", item)
        concurrency = self.concurrency(item, prefix)
        if (
            not ok
            or not agendas_ok
            or timeout is None
            or concurrency is None
            or ("ca_bundle" in item and ca_bundle is None)
        ):
            return None
        return MicrosoftSourceConfig(
            name=str(name),
            tenant=ids["tenant"],
            client_id=ids["client_id"],
            client_secret_file=secret_file,
            client_secret_env=secret_env.strip() if isinstance(secret_env, str) else None,
            certificate_file=certificate,
            token_cache=token_cache,
            mailboxes=mailboxes,
            authority_host=endpoints.get("authority_host", MICROSOFT_AUTHORITY_HOST),
            graph_endpoint=endpoints.get("graph_endpoint", GRAPH_ENDPOINT),
            ca_bundle=ca_bundle,
            timeout_seconds=timeout,
            concurrency=concurrency,
            agendas=agendas,
        )

    def existing_file(
        self, item: dict[str, Any], where: str, key: str, what: str, *, required: bool = False
    ) -> Path | None:
        if key not in item:
            if required:
                self.problem(where, f"missing; expected the path of {what}")
            return None
        value = item[key]
        path = self.resolve(value) if isinstance(value, str) and value.strip() else None
        if path is None:
            self.problem(where, f"expected the path of {what}, got {self.got(value)}")
            return None
        if not path.is_file():
            self.problem(
                where, f"not found: {path} (relative paths start at {self.path.parent}); expected {what}"
            )
            return None
        return path

    def location(self, prefix: str, item: dict[str, Any]) -> str | None:
        where = f"{prefix} path"
        expected = "a directory of .ics files, one .ics file, or an http(s) URL"
        if "path" not in item:
            self.problem(where, f"missing; expected {expected}")
            return None
        value = item["path"]
        if not isinstance(value, str) or not value.strip():
            self.problem(where, f"expected {expected} as a string, got {_describe(value)}")
            return None
        text = value.strip()
        if "://" in text:
            parts = urlsplit(text)
            scheme = parts.scheme.lower()
            if scheme not in _URL_SCHEMES:
                self.problem(
                    where, f"unsupported URL scheme {scheme!r}; expected an http, https or webcal URL"
                )
                return None
            if not parts.netloc:
                self.problem(where, f"URL without a host: {_describe(value)}")
                return None
            return urlunsplit(parts._replace(scheme="https" if scheme == "webcal" else scheme))
        path = self.resolve(value)
        if path is None:
            self.problem(where, f"invalid path {self.got(value)}")
            return None
        if not path.exists():
            self.problem(
                where, f"not found: {path} (relative paths start at {self.path.parent}); expected {expected}"
            )
            return None
        return str(path)

    # -- values ----------------------------------------------------------------------------------------

    def choice(self, section: dict[str, Any], where: str, allowed: Mapping[str, str], default: str) -> str:
        """``section[key]`` (the last word of ``where``) if it is one of ``allowed`` (value -> what it
        means), else ``default`` after a problem that lists them."""
        value = section.get(where.rsplit(" ", 1)[-1], default)
        if isinstance(value, str) and value in allowed:
            return value
        options = [f'"{name}" ({meaning})' for name, meaning in allowed.items()]
        listed = ", ".join(options[:-1]) + f" or {options[-1]}"
        self.problem(where, f"expected {listed}, got {_describe(value)}")
        return default

    def directory(
        self, section: dict[str, Any], name: str, key: str, *, must_exist: bool = False
    ) -> Path | None:
        """``[name] key``: a directory path (relative to the config), None if absent or (reported) bad."""
        if key not in section:
            return None
        value = section[key]
        path = self.resolve(value) if isinstance(value, str) and value.strip() else None
        if path is None:
            self.problem(f"[{name}] {key}", f"expected the path of a directory, got {self.got(value)}")
            return None
        if must_exist and not path.is_dir():
            self.problem(
                f"[{name}] {key}", f"not a directory: {path} (relative paths start at {self.path.parent})"
            )
            return None
        return path

    def emails(self, where: str, value: object, expected: str) -> tuple[str, ...] | None:
        """A non-empty list of email addresses, lower case and without repeats; None if (reported) not."""
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and "@" in v for v in value)
        ):
            self.problem(where, f"expected {expected}, got {_describe(value)}")
            return None
        return tuple(dict.fromkeys(v.strip().lower() for v in value))

    def integer(
        self, section: dict[str, Any], name: str, key: str, minimum: int, maximum: int | None = None
    ) -> int | None:
        """``section[key]`` if it is a whole number >= minimum (and <= maximum); None if absent or
        (reported) invalid."""
        if key not in section:
            return None
        value = section[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            expected = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            self.problem(f"[{name}] {key}", f"expected a whole number {expected}, got {_describe(value)}")
            return None
        return value

    def concurrency(self, item: dict[str, Any], prefix: str) -> int | None:
        """A source's ``concurrency``: calendars synced at once (default 8), 1 to 64."""
        value = item.get("concurrency", DEFAULT_CONCURRENCY)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
            self.problem(
                f"{prefix} concurrency",
                f"expected a whole number from 1 to {MAX_CONCURRENCY} (calendars synced at once), got "
                f"{_describe(value)}",
            )
            return None
        return value

    def number(self, item: dict[str, Any], where: str, default: float) -> float | None:
        if "timeout_seconds" not in item:
            return default
        value = item["timeout_seconds"]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 < value <= MAX_TIMEOUT_SECONDS
        ):
            self.problem(
                where,
                f"expected a number of seconds > 0 and at most {MAX_TIMEOUT_SECONDS} (an hour), "
                f"got {_describe(value)}",
            )
            return None
        return float(value)

    def resolve(self, value: str) -> Path | None:
        """A path from the config, relative to the config file's directory; ``~`` and ``${VAR}`` (such
        as systemd's ``${CREDENTIALS_DIRECTORY}``) are expanded. An unset variable is left as written,
        so the path is reported as not found.

        None for a path the system cannot use at all (longer than the file system allows, a loop of
        symbolic links, a NUL character); :meth:`got` then says why. A path that does not exist (yet)
        is returned: whether it must exist is the caller's to check."""
        self.trouble = ""
        expanded = _VARIABLE.sub(lambda m: os.environ.get(m.group(1) or m.group(2), m.group(0)), value)
        try:
            path = (self.path.parent / Path(expanded).expanduser()).resolve()
            path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return path
        except OSError as exc:
            self.trouble = f": {exc.strerror or type(exc).__name__}"
            return None
        except (RuntimeError, ValueError) as exc:
            self.trouble = f": {exc}" if "null" in str(exc) else ""
            return None
        return path

    def got(self, value: object) -> str:
        """``value`` as written (shortened), then why :meth:`resolve` could not use it, if it said."""
        trouble, self.trouble = self.trouble, ""
        return f"{_describe(value)}{trouble}"

    def daemon(self, section: dict[str, Any]) -> DaemonConfig:
        default = DaemonConfig()
        interval = self.duration(section, "sync_interval", default.sync_interval, minimum=1.0)
        jitter = self.duration(section, "jitter", None, minimum=0.0)
        if jitter is not None and jitter >= interval:
            self.problem("[daemon] jitter", f"must be shorter than sync_interval ({interval:g} s)")
            jitter = None
        listen = default.listen
        if "listen" in section:
            listen = self.listen(section["listen"])
        report = None
        if "report" in section:
            value = section["report"]
            report = self.resolve(value) if isinstance(value, str) and value.strip() else None
            if report is None:
                self.problem("[daemon] report", f"expected the path of a JSON file, got {self.got(value)}")
        unhealthy = self.integer(section, "daemon", "unhealthy_after", 1, MAX_UNHEALTHY_AFTER)
        return DaemonConfig(
            sync_interval=interval,
            jitter=jitter,
            listen=listen,
            report=report,
            unhealthy_after=_or(unhealthy, default.unhealthy_after),
        )

    def duration(self, section: dict[str, Any], key: str, default: float | None, *, minimum: float) -> Any:
        """A duration: a number of seconds, or a string like "90s", "5m", "1h"."""
        if key not in section:
            return default
        value = section[key]
        seconds: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            seconds = float(value)
        elif isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", value.lower())
            if match:
                seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
        if seconds is None or not minimum <= seconds <= MAX_INTERVAL_SECONDS:
            self.problem(
                f"[daemon] {key}",
                f"expected a duration from {minimum:g} s to {MAX_INTERVAL_SECONDS} s (a week), like "
                f'"5m", "90s" or 300, got {_describe(value)}',
            )
            return default
        return seconds

    def listen(self, value: object) -> tuple[str, int] | None:
        if value in ("", "off", False):
            return None
        host, _, port = str(value).rpartition(":") if isinstance(value, str) else ("", "", "")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            self.problem(
                "[daemon] listen",
                f'expected "host:port" like "127.0.0.1:9468", or "off", got {_describe(value)}',
            )
            return None
        return host, int(port)

    def unknown(self, where: str, key: str, known: Iterable[str], *, section: str | None) -> None:
        """Report an unknown key, suggesting a close match or the section the key belongs in."""
        choices = list(known)
        home = next((name for name, keys in _SECTIONS.items() if key in keys and name != section), None)
        close = difflib.get_close_matches(key, choices, n=1) or difflib.get_close_matches(
            key.lower(), choices, n=1
        )
        if section is not None:
            what = "unknown key"
        else:
            what = "unknown section" if where.startswith("[") else "unknown top-level key"
        if section is not None and key in _SECTIONS:
            hint = f"{_toml_name(key, None)} is a section of its own, not a key of [{section}]"
        elif home is not None:
            table = "[[sources]] entry" if home == "sources" else f"[{home}] section"
            hint = f"{key!r} belongs in the {table}"
        elif close:
            hint = f"did you mean {_toml_name(close[0], None) if section is None else repr(close[0])}?"
        else:
            names = [_toml_name(c, None) for c in choices] if section is None else choices
            hint = "known: " + ", ".join(names)
        self.problem(where, f"{what} ({hint})")


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _is_variable_name(value: object) -> bool:
    """Whether ``value`` is a string naming an environment variable (surrounding spaces allowed)."""
    return isinstance(value, str) and _VARIABLE_NAME.fullmatch(value.strip()) is not None


def _not_a_variable_name(value: object, what: str) -> str:
    """The problem of a ``*_env`` key whose value is not a variable name. The value is never shown, not
    even in part: it is often the secret itself, typed where its variable's name belongs."""
    kind = next((label for cls, label in _KINDS if isinstance(value, cls)), "a value")
    return (
        f"expected the NAME of an environment variable that holds {what} (letters, digits and _, not "
        f"starting with a digit, like CALSYNC_SECRET), never {what} itself; got {kind} that is not "
        "such a name (not shown here, in case it is the secret)"
    )


def agenda_backend(source: SourceConfig, local_directory: Path | None) -> str:
    """Where a source's agendas go: its ``agendas`` key, else its type's default."""
    if source.agendas is not None:
        return source.agendas
    if isinstance(source, GoogleSourceConfig):
        return GOOGLE_DOCS
    if isinstance(source, MicrosoftSourceConfig):
        return ONEDRIVE
    return LOCAL if local_directory is not None else NO_AGENDAS


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _toml_name(key: str, value: object) -> str:
    """How a top-level key is written in TOML: ``[org]``, ``[[sources]]`` or ``key``."""
    if key == "sources" or (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
        return f"[[{key}]]"
    if value is None or isinstance(value, dict):
        return f"[{key}]"
    return key


_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "a whole number"),
    (float, "a decimal number"),
    (str, "a string"),
    (datetime, "a date-time"),
    (date, "a date"),
    (time, "a time"),
    (list, "an array"),
    (dict, "a table"),
)


def _describe(value: object) -> str:
    """A value as the user wrote it, followed by its TOML kind unless that is obvious."""
    kind = next((label for cls, label in _KINDS if isinstance(value, cls)), type(value).__name__)
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, str):
        shown = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif isinstance(value, dict):
        shown = "{...}"
    else:
        shown = repr(value) if isinstance(value, list) else str(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    if isinstance(value, int) and not isinstance(value, bool):
        return shown
    return f"{shown} ({kind})"
