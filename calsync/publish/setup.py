"""The agenda backends a config asks for, one per source, ready to publish."""

from __future__ import annotations

import functools
from typing import Any

from google.oauth2 import service_account

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
from calsync.sources.google import (
    build_client,
    load_user_credentials,
)
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


def _google_clients(source: GoogleSourceConfig) -> tuple[Any, Any]:
    """Calendar and Drive clients acting as a given user, with the scopes agendas need."""
    options = (source.ca_bundle, source.timeout_seconds)
    if source.service_account_key is not None:
        base = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            str(source.service_account_key), scopes=list(AGENDA_SCOPES)
        )

        @functools.cache
        def calendar_for(user: str) -> Any:
            return build_client("calendar", "v3", base.with_subject(user), source.endpoint, *options)

        @functools.cache
        def drive_for(user: str) -> Any:
            return build_client("drive", "v3", base.with_subject(user), source.drive_endpoint, *options)

        return calendar_for, drive_for
    assert source.token_file is not None
    credentials = load_user_credentials(source.token_file, AGENDA_SCOPES)

    calendar = build_client("calendar", "v3", credentials, source.endpoint, *options)
    drive = build_client("drive", "v3", credentials, source.drive_endpoint, *options)

    def user_calendar(user: str) -> Any:
        return calendar

    def user_drive(user: str) -> Any:
        return drive

    return user_calendar, user_drive
