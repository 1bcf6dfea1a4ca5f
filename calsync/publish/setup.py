"""The agenda backends a config asks for, one per source, ready to publish."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from calsync.config import (
    GOOGLE_DOCS,
    LOCAL,
    NO_AGENDAS,
    ONEDRIVE,
    Config,
    GoogleSourceConfig,
    MicrosoftSourceConfig,
    SourceConfig,
    agenda_backend,
)
from calsync.publish.base import PublishError
from calsync.publish.google_docs import AGENDA_SCOPES, DriveDocuments, GoogleEventLinks
from calsync.publish.local import LocalDocuments, NoLinks
from calsync.publish.onedrive import GraphEventLinks, OneDriveDocuments
from calsync.publish.runner import Backend
from calsync.sources.google import service_account_service, user_token_service
from calsync.sources.microsoft import graph_client
from calsync.sources.microsoft_auth import AGENDA_DELEGATED_SCOPES, AuthError


def make_backends(config: Config) -> dict[str, Backend | str]:
    """For each source (by name): its backend, or why it has none (a sentence for the person)."""
    local: LocalDocuments | None = None
    if config.agenda.directory is not None and config.agenda.base_url is not None:
        local = LocalDocuments(config.agenda.directory, config.agenda.base_url)
    backends: dict[str, Backend | str] = {}
    for source in config.sources:
        choice = agenda_backend(source, config.agenda.directory)
        try:
            backends[source.name] = _backend(source, choice, local)
        except (PublishError, AuthError, OSError, ValueError) as exc:
            backends[source.name] = f"source {source.name!r} cannot publish agendas: {exc}"
    return backends


def _backend(source: SourceConfig, choice: str, local: LocalDocuments | None) -> Backend | str:
    if choice == NO_AGENDAS:
        return f'source {source.name!r} writes no agendas (agendas = "none")'
    if isinstance(source, GoogleSourceConfig):
        calendar_for, drive_for = _google_clients(source)
        links = GoogleEventLinks(calendar_for)
        if choice == GOOGLE_DOCS:
            return Backend(GOOGLE_DOCS, DriveDocuments(drive_for), links)
        assert choice == LOCAL and local is not None
        return Backend(LOCAL, local, links)
    if isinstance(source, MicrosoftSourceConfig):
        client = graph_client(source, scopes=AGENDA_DELEGATED_SCOPES)
        graph_links = GraphEventLinks(client)
        if choice == ONEDRIVE:
            return Backend(ONEDRIVE, OneDriveDocuments(client), graph_links)
        assert choice == LOCAL and local is not None
        return Backend(LOCAL, local, graph_links)
    assert choice == LOCAL and local is not None
    return Backend(LOCAL, local, NoLinks(), writes_events=False)


def _google_clients(source: GoogleSourceConfig) -> tuple[Callable[[str], Any], Callable[[str], Any]]:
    """Calendar and Drive clients acting as a given user, with the scopes agendas need; one client per
    user and API for the whole pass."""

    def clients(api: tuple[str, str], endpoint: str | None) -> Callable[[str], Any]:
        options: dict[str, Any] = {
            "scopes": AGENDA_SCOPES,
            "api": api,
            "endpoint": endpoint,
            "ca_bundle": source.ca_bundle,
            "timeout": source.timeout_seconds,
        }
        if source.service_account_key is not None:
            return functools.cache(service_account_service(source.service_account_key, **options))
        assert source.token_file is not None
        return functools.cache(user_token_service(source.token_file, **options))

    return clients(("calendar", "v3"), source.endpoint), clients(("drive", "v3"), source.drive_endpoint)
