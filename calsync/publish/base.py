"""What every agenda backend offers: a place for documents, and a way to link one from an event."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from calsync.agenda import Agenda


@dataclass(frozen=True)
class Doc:
    """An agenda document: its id in the backend, the link people open, and whose it is."""

    id: str
    url: str
    owner: str


@dataclass(frozen=True)
class Meeting:
    """The event a link goes on, as its organizer's calendar has it."""

    organizer: str
    series_id: str
    # The occurrence's original start (a per-meeting link on one occurrence); None: the event itself
    # (a one-off meeting, or a whole series in rolling mode).
    original_start: datetime | None
    start: datetime


class PublishError(Exception):
    """A document or a link could not be written or read; str() says why and, if known, what to do.

    Nothing is recorded as done when it is raised: the next pass tries again.
    """


class Documents(Protocol):
    """Where agenda documents live. Every write is idempotent by ``doc_key``: a document created
    before a crash is found again, never created twice."""

    name: str

    def find(self, doc_key: str, owner: str) -> Doc | None: ...

    def create(
        self, doc_key: str, owner: str, title: str, agenda: Agenda, section_id: str | None = None
    ) -> Doc: ...

    def share(self, doc: Doc, email: str) -> None:
        """Let ``email`` (the other participant) edit the document, without sending them mail."""

    def read(self, doc: Doc) -> str:
        """The document's text (Markdown or plain text), to find its open items and growth theme."""
        ...

    def prepend(self, doc: Doc, agenda: Agenda, section_id: str) -> bool:
        """Add ``agenda`` as a new section on top; False if the section is there already. Whatever
        people wrote in the document is kept."""
        ...


class Links(Protocol):
    """How a document's link gets into an event."""

    def link(self, meeting: Meeting, doc: Doc) -> bool:
        """Put ``doc``'s link into the meeting's event; False if it was there already (no write)."""
        ...


def digest(text: str, length: int = 24) -> str:
    """A short, stable, non-reversible name for a key (keys hold email addresses)."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]
