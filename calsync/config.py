"""The TOML configuration file: reading, validating and defaults.

:func:`load_config` checks the whole file in one pass and raises a single :class:`ConfigError` that
lists every problem, each one naming the file and the key, what was expected and what was found.
Relative paths are resolved against the directory of the config file, never the working directory.
``config/calsync.example.toml`` documents every key.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from calsync.org import timezone_problem
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
_URL_SCHEMES = ("http", "https", "webcal")
_HINT = "see config/calsync.example.toml for every key, or run `calsync demo` to see a working example"


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
    type: str = "ics"

    @property
    def is_url(self) -> bool:
        return self.location.startswith(("http://", "https://"))


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
class Config:
    """The whole, validated configuration."""

    path: Path  # the config file, absolute
    org: OrgConfig
    cadence: CadenceConfig
    report: ReportConfig
    sources: tuple[SourceConfig, ...]
    state: StateConfig | None = None
    agenda: AgendaConfig = AgendaConfig()

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in the config are resolved against."""
        return self.path.parent


_SECTIONS: dict[str, tuple[str, ...]] = {
    "org": ("domains", "roster", "timezone", "directory_admin"),
    "cadence": ("default_days", "grace_days", "skip_level_days"),
    "report": ("lookback_days", "lookahead_days"),
    "sources": ("type", "path", "name", "timeout_seconds"),
    "state": ("path",),
    "agenda": ("mode", "lead_days", "career_every_weeks", "templates", "directory", "base_url"),
}
_SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "ics": ("type", "name", "path", "timeout_seconds", "agendas"),
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
        "agendas",
    ),
}
DEFAULT_STATE_FILE = "calsync-state.json"
GOOGLE_DIRECTORY = "google-directory"
MICROSOFT_GRAPH = "microsoft-graph"
ORG_CHART_ROSTERS = (GOOGLE_DIRECTORY, MICROSOFT_GRAPH)
_CREDENTIAL_KEYS = ("client_secret_file", "client_secret_env", "certificate_file", "token_cache")


def load_config(path: Path) -> Config:
    """Read and validate the config file at ``path``; raise :class:`ConfigError` listing every problem."""
    label = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            [
                f"{label}: cannot read the config file ({reason}); check its path, or start from "
                "config/calsync.example.toml (run `calsync demo` to see a working example)"
            ]
        ) from None
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
        )

    def state(self, section: dict[str, Any]) -> StateConfig:
        value = section.get("path", DEFAULT_STATE_FILE)
        path = self.resolve(value) if isinstance(value, str) and value.strip() else None
        if path is None:
            self.problem("[state] path", f"expected the path of calsync's state file, got {_describe(value)}")
            path = self.path.parent / DEFAULT_STATE_FILE
        return StateConfig(path=path)

    def agenda(self, section: dict[str, Any], sources: Iterable[SourceConfig]) -> AgendaConfig:
        default = AgendaConfig()
        mode = section.get("mode", default.mode)
        if mode not in (PER_MEETING, ROLLING):
            self.problem(
                "[agenda] mode",
                f'expected "{PER_MEETING}" (a document per meeting) or "{ROLLING}" (one document per '
                f"pair), got {_describe(mode)}",
            )
            mode = default.mode
        templates = directory = None
        for key in ("templates", "directory"):
            if key not in section:
                continue
            value = section[key]
            path = self.resolve(value) if isinstance(value, str) and value.strip() else None
            if path is None:
                self.problem(f"[agenda] {key}", f"expected the path of a directory, got {_describe(value)}")
            elif key == "templates":
                if not path.is_dir():
                    self.problem(
                        "[agenda] templates",
                        f"not a directory: {path} (relative paths start at {self.path.parent})",
                    )
                templates = path
            else:
                directory = path
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
            lead_days=_or(self.integer(section, "agenda", "lead_days", 0), default.lead_days),
            career_every_weeks=_or(
                self.integer(section, "agenda", "career_every_weeks", 1), default.career_every_weeks
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
        )

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
            self.problem(where, f"invalid path {_describe(value)}")
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
            default_days=_or(self.integer(section, "cadence", "default_days", 1), default.default_days),
            grace_days=_or(self.integer(section, "cadence", "grace_days", 0), default.grace_days),
            skip_level_days=self.integer(section, "cadence", "skip_level_days", 1),
        )

    def report(self, section: dict[str, Any]) -> ReportConfig:
        default = ReportConfig()
        return ReportConfig(
            lookback_days=_or(self.integer(section, "report", "lookback_days", 1), default.lookback_days),
            lookahead_days=_or(self.integer(section, "report", "lookahead_days", 1), default.lookahead_days),
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
        if not ok or not agendas_ok or location is None or name is None or timeout is None:
            return None
        return IcsSourceConfig(
            location=location, name=name, timeout_seconds=timeout, agendas=agendas, type="ics"
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
        if (
            not ok
            or (key_file is None and token_file is None)
            or timeout is None
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
        if "client_secret_env" in item and (
            not isinstance(secret_env, str) or not secret_env.strip() or "=" in secret_env
        ):
            self.problem(
                f"{prefix} client_secret_env",
                "expected the NAME of an environment variable that holds the client secret (never the "
                f"secret itself), got {'a value' if isinstance(secret_env, str) else _describe(secret_env)}",
            )
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
            value = item["mailboxes"]
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) and "@" in v for v in value)
            ):
                self.problem(
                    f"{prefix} mailboxes", f"expected a list of email addresses, got {_describe(value)}"
                )
                ok = False
            else:
                mailboxes = tuple(v.strip().lower() for v in value)
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
        if not ok or not agendas_ok or timeout is None or ("ca_bundle" in item and ca_bundle is None):
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
            self.problem(where, f"expected the path of {what}, got {_describe(value)}")
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
            self.problem(where, f"invalid path {_describe(value)}")
            return None
        if not path.exists():
            self.problem(
                where, f"not found: {path} (relative paths start at {self.path.parent}); expected {expected}"
            )
            return None
        return str(path)

    # -- values ----------------------------------------------------------------------------------------

    def integer(self, section: dict[str, Any], name: str, key: str, minimum: int) -> int | None:
        """``section[key]`` if it is a whole number >= minimum; None if absent or (reported) invalid."""
        if key not in section:
            return None
        value = section[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problem(f"[{name}] {key}", f"expected a whole number >= {minimum}, got {_describe(value)}")
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
            or value <= 0
        ):
            self.problem(where, f"expected a number of seconds > 0, got {_describe(value)}")
            return None
        return float(value)

    def resolve(self, value: str) -> Path | None:
        """A path from the config, relative to the config file's directory."""
        try:
            return (self.path.parent / Path(value).expanduser()).resolve()
        except (OSError, RuntimeError, ValueError):
            return None

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
