"""The ``local`` backend: agendas as HTML and Markdown files in a directory the org serves itself.

Each document's file name is an HMAC of its key under a secret kept in the directory (created once,
mode 0600), so its URL cannot be guessed from the pair's names and dates: whoever has the link (the
two participants, from their invitation) can open it. Serve the directory with a web server that does
not list it. Files are written atomically; an existing document is never rewritten, only added to on
top in rolling mode.

**The secret** is created atomically (a temporary file beside it, fsync, then linked into place), so a
crash leaves either no secret or a whole one. A secret shorter than :data:`SECRET_BYTES` can only be
the leftover of a crash while an older calsync created it (it created the file, then wrote it: a kill
in between left it empty), never one a link was published with: it is replaced by a new one, with a
warning, since an empty or short key makes every document's name computable from public data. A whole
secret is never replaced (every link published with it stays valid). Documents an older calsync wrote
under a short secret, if any, keep their files and links, but calsync no longer finds them by key.

**Modes, whatever the umask.** The directory is served by a web server, which runs as another user:
a directory calsync creates (and its missing parents) is 0750, for the web server to reach through the
directory's group (``chgrp www-data DIR; chmod g+s DIR``, so that new files get that group), and never
for anyone else to list. A document is readable by the group or by others exactly when the directory
lets them in (its search bits): 0640 in a 0750 directory, 0644 in a 0755 or 0711 one set up by hand,
0600 in a 0700 one; never writable but by calsync. The secret is 0600: the web server never reads it.
"""

from __future__ import annotations

import errno
import hmac
import logging
import os
import secrets
import stat
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
from calsync.store import PRIVATE_FILE_MODE, make_directory

log = logging.getLogger("calsync.publish.local")

SECRET_FILE = ".calsync-agenda-secret"  # noqa: S105 - a file name, not a secret
#: The secret's length; a shorter one is the leftover of a crash while creating it (see the module).
SECRET_BYTES = 32
#: A directory calsync creates for the agendas: the web server reaches it through its group.
DIRECTORY_MODE = 0o750


class LocalDocuments:
    name = "local"

    def __init__(self, directory: Path, base_url: str) -> None:
        self.directory = directory
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._secret: bytes | None = None
        self._mode: int | None = None

    def _name(self, doc_key: str) -> str:
        if self._secret is None:
            self._secret = _secret(self.directory)
        return hmac.new(self._secret, doc_key.encode(), "sha256").hexdigest()[:32]

    def _file_mode(self) -> int:
        """A document's mode: what the directory lets the web server (its group, or others) reach."""
        if self._mode is None:
            try:
                self._mode = document_mode(self.directory.stat().st_mode)
            except OSError as exc:
                raise PublishError(
                    f"cannot use the agenda directory {self.directory}: {exc.strerror or exc}"
                ) from exc
        return self._mode

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
        mode = self._file_mode()
        _write(self.directory / f"{name}.html", html, mode)
        _write(self.directory / f"{name}.md", markdown, mode)
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
        mode = self._file_mode()
        _write(self.directory / f"{doc.id}.html", prepend_html(html, agenda.html, section_id), mode)
        _write(self.directory / f"{doc.id}.md", prepend_markdown(markdown, agenda.markdown, section_id), mode)
        return True


class NoLinks:
    """For calendars calsync only reads (ICS): the document is written, no event is."""

    def link(self, meeting: Meeting, doc: Doc) -> bool:
        return False


def document_mode(directory_mode: int) -> int:
    """The mode of a document in a directory of mode ``directory_mode`` (see the module): read for the
    group, or for others, when the directory lets them search it; write for calsync only."""
    mode = PRIVATE_FILE_MODE
    if directory_mode & stat.S_IXGRP:
        mode |= stat.S_IRGRP
    if directory_mode & stat.S_IXOTH:
        mode |= stat.S_IROTH
    return mode


def _secret(directory: Path) -> bytes:
    path = directory / SECRET_FILE
    try:
        make_directory(directory, DIRECTORY_MODE)
        for _ in range(3):  # a race with another calsync creating it is settled by the second pass
            try:
                secret = path.read_bytes()
            except FileNotFoundError:
                secret = None
            if secret is not None and len(secret) >= SECRET_BYTES:
                return secret
            if secret is not None:
                log.warning(
                    "%s holds %d bytes, not a %d-byte secret: a calsync was stopped while creating it. "
                    "Replacing it with a new one; agendas written under the short one by an older "
                    "calsync, if any, keep their files and links (which could be guessed)",
                    path,
                    len(secret),
                    SECRET_BYTES,
                )
            _create_secret(path, replace=secret is not None)
        raise PublishError(f"cannot create the agenda secret {path}: another process keeps changing it")
    except OSError as exc:
        raise PublishError(
            f"cannot use the agenda directory {directory}: {exc.strerror or exc}; check [agenda] directory "
            "and that calsync may write there"
        ) from exc


def _create_secret(path: Path, *, replace: bool) -> None:
    """Write a new secret atomically: a temporary file beside it (0600, fsync), then linked into
    place (never over a secret another process made meanwhile) or, to ``replace`` a short one,
    renamed over it."""
    fd, tmp = tempfile.mkstemp(prefix=f"{SECRET_FILE}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE_FILE_MODE)
            handle.write(secrets.token_bytes(SECRET_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            Path(tmp).replace(path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another calsync's: the caller reads it
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                Path(tmp).replace(path)  # a file system without hard links
    finally:
        Path(tmp).unlink(missing_ok=True)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, text: str, mode: int) -> None:
    try:
        make_directory(path.parent, DIRECTORY_MODE)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except OSError as exc:
        raise PublishError(f"cannot write {path}: {exc.strerror or exc}") from exc
