"""Files and directories calsync creates get explicit modes, whatever the umask (issue item 9): private
files 0600 in 0700 directories; the local agenda backend's served directory 0750, its documents
readable as far as the directory lets the web server in. Every test runs under ``umask 000``."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from email.message import EmailMessage
from io import StringIO
from pathlib import Path

import pytest

from calsync.agenda import Agenda, Kind
from calsync.cli import _write_preview
from calsync.digest.send import OutboxDelivery
from calsync.publish.local import SECRET_FILE, LocalDocuments, document_mode
from calsync.store import CalendarState, StateStore, lock_path, make_directory, write_output, write_private


@pytest.fixture(autouse=True)
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


AGENDA = Agenda(Kind.REGULAR, "<p>1:1 number 3</p>", "1:1 number 3\n")


def test_make_directory_creates_it_and_its_parents_with_exactly_the_mode(tmp_path: Path) -> None:
    make_directory(tmp_path / "a" / "b")
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == 0o700
    make_directory(tmp_path / "served" / "agendas", 0o750)
    assert mode(tmp_path / "served") == mode(tmp_path / "served" / "agendas") == 0o750


def test_make_directory_leaves_an_existing_directory_as_it_is(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    mine.chmod(0o755)
    make_directory(mine)
    make_directory(mine / "new")
    assert mode(mine) == 0o755 and mode(mine / "new") == 0o700
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        make_directory(tmp_path / "file")


def test_write_private_is_0600_in_a_0700_directory_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "tokens" / "token.json"
    write_private(path, "one")
    write_private(path, "two")
    assert path.read_text() == "two"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["token.json"]  # no temporary file left


def test_the_state_its_directory_and_its_lock_are_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "calsync.json"
    store = StateStore(path)
    try:
        store.save("ics", CalendarState("ann@acme.test", None, None, {}))
    finally:
        store.close()
    assert mode(path) == mode(lock_path(path)) == 0o600
    assert mode(path.parent) == 0o700


def test_write_output_creates_0600_and_makes_an_old_file_0600(tmp_path: Path) -> None:
    new = tmp_path / "report.json"
    write_output(new, "{}")
    assert new.read_text() == "{}" and mode(new) == 0o600
    old = tmp_path / "old.csv"
    old.write_text("a much longer earlier report\n")
    old.chmod(0o666)  # as calsync wrote it before, under umask 000
    write_output(old, "new\n")
    assert old.read_text() == "new\n" and mode(old) == 0o600


def test_write_output_still_writes_to_what_is_not_a_regular_file() -> None:
    before = mode(Path(os.devnull))
    write_output(Path(os.devnull), "discarded")  # like -o /dev/stdout: written to, never replaced
    assert mode(Path(os.devnull)) == before


@pytest.mark.parametrize("name", ["preview.eml", "preview.html", "preview.txt"])
def test_a_digest_preview_written_with_o_is_0600(tmp_path: Path, name: str) -> None:
    message = EmailMessage()
    message["Subject"] = "1:1s in Maya Chen's org"
    message.set_content("Overdue: Omar Haddad")
    message.add_alternative("<p>Overdue: Omar Haddad</p>", subtype="html")
    target = tmp_path / name
    assert _write_preview(message, target, StringIO(), StringIO()) == 0
    assert "Omar Haddad" in target.read_text(encoding="utf-8")
    assert mode(target) == 0o600


def test_the_outbox_is_0700_and_each_mail_0600(tmp_path: Path) -> None:
    message = EmailMessage()
    message["X-Calsync-Digest"] = "2026-11-23"
    message.set_content("Overdue: Omar Haddad")
    outbox = tmp_path / "spool" / "outbox"
    written = Path(OutboxDelivery(outbox).deliver(message, "maya@acme.test"))
    assert written.parent == outbox and mode(written) == 0o600
    assert mode(outbox) == mode(outbox.parent) == 0o700


def test_an_agenda_directory_calsync_creates_is_0750_documents_0640_secret_0600(tmp_path: Path) -> None:
    directory = tmp_path / "www" / "agendas"
    docs = LocalDocuments(directory, "https://intranet.acme.test/1-1")
    doc = docs.create("key-1", "maya@acme.test", "1:1", AGENDA)
    assert mode(directory) == mode(directory.parent) == 0o750
    assert mode(directory / SECRET_FILE) == 0o600
    files = sorted(p for p in directory.iterdir() if p.name != SECRET_FILE)
    assert [p.name for p in files] == [f"{doc.id}.html", f"{doc.id}.md"]
    assert all(mode(p) == 0o640 for p in files)
    assert docs.prepend(doc, Agenda(Kind.REGULAR, "<p>1:1 number 4</p>", "1:1 number 4\n"), "s4")
    assert all(mode(p) == 0o640 for p in files)


@pytest.mark.parametrize(
    ("directory_mode", "document"),
    [
        (0o750, 0o640),
        (0o2750, 0o640),
        (0o755, 0o644),
        (0o711, 0o644),
        (0o701, 0o604),
        (0o700, 0o600),
        (0o777, 0o644),
    ],
)
def test_documents_in_a_directory_set_up_by_hand_are_as_readable_as_it_lets_in(
    tmp_path: Path, directory_mode: int, document: int
) -> None:
    assert document_mode(directory_mode) == document
    directory = tmp_path / "agendas"
    directory.mkdir()
    directory.chmod(directory_mode)
    doc = LocalDocuments(directory, "https://intranet.acme.test/1-1/").create("k", "m", "t", AGENDA)
    assert stat.S_IMODE(directory.stat().st_mode) == directory_mode  # calsync leaves it as it is
    assert mode(directory / f"{doc.id}.md") == mode(directory / f"{doc.id}.html") == document
    assert mode(directory / SECRET_FILE) == 0o600
