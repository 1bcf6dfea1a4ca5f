"""The ``local`` backend: agendas as HTML and Markdown files in a directory the org serves itself.

Each document's file name is an HMAC of its key under a secret kept in the directory (created once,
mode 0600), so its URL cannot be guessed from the pair's names and dates: whoever has the link (the
two participants, from their invitation) can open it. Serve the directory with a web server that does
not list it. Files are written atomically; an existing document is never rewritten, only added to on
top in rolling mode.
"""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile
from pathlib import Path

from calsync.agenda import (
    Agenda,
    mark_html,
    mark_markdown,
    prepend_html,
    prepend_markdown,
    section_marker,
)
from calsync.publish.base import Doc, Meeting, PublishError

SECRET_FILE = ".calsync-agenda-secret"  # noqa: S105 - a file name, not a secret


class LocalDocuments:
    name = "local"

    def __init__(self, directory: Path, base_url: str) -> None:
        self.directory = directory
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._secret: bytes | None = None

    def _name(self, doc_key: str) -> str:
        if self._secret is None:
            self._secret = _secret(self.directory)
        return hmac.new(self._secret, doc_key.encode(), "sha256").hexdigest()[:32]

    def _doc(self, name: str, owner: str) -> Doc:
        return Doc(name, f"{self.base_url}{name}.html", owner)

    def find(self, doc_key: str, owner: str) -> Doc | None:
        name = self._name(doc_key)
        return self._doc(name, owner) if (self.directory / f"{name}.md").is_file() else None

    def create(
        self, doc_key: str, owner: str, title: str, agenda: Agenda, section_id: str | None = None
    ) -> Doc:
        name = self._name(doc_key)
        markdown, html = agenda.markdown, agenda.html
        if section_id:
            markdown, html = mark_markdown(markdown, section_id), mark_html(html, section_id)
        # the Markdown file last: it is what find() looks for, so a crash leaves no half document
        _write(self.directory / f"{name}.html", html)
        _write(self.directory / f"{name}.md", markdown)
        return self._doc(name, owner)

    def share(self, doc: Doc, email: str) -> None:
        """Nothing to do: whoever has the link can open the document."""

    def read(self, doc: Doc) -> str:
        try:
            return (self.directory / f"{doc.id}.md").read_text(encoding="utf-8")
        except OSError as exc:
            raise PublishError(f"cannot read the agenda {doc.url}: {exc.strerror or exc}") from exc

    def prepend(self, doc: Doc, agenda: Agenda, section_id: str) -> bool:
        markdown = self.read(doc)
        if section_marker(section_id) in markdown:
            return False
        try:
            html = (self.directory / f"{doc.id}.html").read_text(encoding="utf-8")
        except OSError as exc:
            raise PublishError(f"cannot read the agenda {doc.url}: {exc.strerror or exc}") from exc
        _write(self.directory / f"{doc.id}.html", prepend_html(html, agenda.html, section_id))
        _write(self.directory / f"{doc.id}.md", prepend_markdown(markdown, agenda.markdown, section_id))
        return True


class NoLinks:
    """For calendars calsync only reads (ICS): the document is written, no event is."""

    def link(self, meeting: Meeting, doc: Doc) -> bool:
        return False


def _secret(directory: Path) -> bytes:
    path = directory / SECRET_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        return path.read_bytes()
    except OSError as exc:
        raise PublishError(
            f"cannot use the agenda directory {directory}: {exc.strerror or exc}; check [agenda] directory "
            "and that calsync may write there"
        ) from exc


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except OSError as exc:
        raise PublishError(f"cannot write {path}: {exc.strerror or exc}") from exc
