"""Keeping secrets out of messages.

A published calendar's URL is usually its only credential (Google's ``…/private-<token>/basic.ics``,
Outlook's ``…/<guid>@domain/<token>/calendar.ics``, ``?token=`` query strings). Anything calsync prints
or reports names such a source by its configured ``name`` or by :func:`redact_url`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

ELLIPSIS = "…"


def redact_url(url: str) -> str:
    """The URL without credentials, query, fragment or inner path segments.

    >>> redact_url("https://user:pw@calendar.example/calendar/ical/a%40b/private-1f2e/basic.ics?x=1")
    'https://calendar.example/…/basic.ics'
    >>> redact_url("http://127.0.0.1:8080/team.ics")
    'http://127.0.0.1:8080/team.ics'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) > 1:
        path = f"/{ELLIPSIS}/{segments[-1]}"
    elif segments:
        path = f"/{segments[0]}"
    else:
        path = ""
    return f"{parts.scheme}://{host}{path}"
