"""The local agenda backend's secret (issue item 8): created atomically, so that a kill while creating
it never leaves an empty key; a short one (the leftover of such a kill under an older calsync) is
replaced with a warning; a whole one is never touched, so every published link stays valid. And the
demo under ``umask 000`` (issue item 9): the served directory, the outbox and a preview."""

from __future__ import annotations

import hmac
import io
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from calsync.agenda import Agenda, Kind
from calsync.cli import main
from calsync.demo import email
from calsync.publish.local import SECRET_BYTES, SECRET_FILE, LocalDocuments

AGENDA = Agenda(Kind.REGULAR, "<p>1:1 number 3</p>", "1:1 number 3\n")
URL = "https://intranet.acme.test/1-1/"


def hmac_name(key: bytes, doc_key: str) -> str:
    return hmac.new(key, doc_key.encode(), "sha256").hexdigest()[:32]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("leftover", [b"", b"\x8f" * 5, b"\x01" * (SECRET_BYTES - 1)], ids=len)
def test_a_short_secret_is_replaced_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, leftover: bytes
) -> None:
    directory = tmp_path / "agendas"
    directory.mkdir()
    (directory / SECRET_FILE).write_bytes(leftover)
    with caplog.at_level(logging.WARNING, logger="calsync.publish.local"):
        doc = LocalDocuments(directory, URL).create("maya|omar|2026-11-23", "maya@acme.test", "1:1", AGENDA)
    secret = (directory / SECRET_FILE).read_bytes()
    assert len(secret) == SECRET_BYTES and secret != leftover
    assert mode(directory / SECRET_FILE) == 0o600
    # the document's name is not computable from public data (the empty or short key) ...
    assert doc.id != hmac_name(leftover, "maya|omar|2026-11-23")
    assert doc.id == hmac_name(secret, "maya|omar|2026-11-23")
    assert f"holds {len(leftover)} bytes, not a {SECRET_BYTES}-byte secret" in caplog.text
    # ... and the next run finds it again under the new secret, with no further warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="calsync.publish.local"):
        assert LocalDocuments(directory, URL).find("maya|omar|2026-11-23", "maya@acme.test") == doc
    assert caplog.text == ""


@pytest.mark.parametrize("length", [SECRET_BYTES, 64])
def test_a_whole_secret_is_kept_and_every_published_link_stays_valid(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, length: int
) -> None:
    directory = tmp_path / "agendas"
    directory.mkdir()
    secret = os.urandom(length)
    (directory / SECRET_FILE).write_bytes(secret)
    published = LocalDocuments(directory, URL).create("k1", "maya@acme.test", "1:1", AGENDA)
    assert published.url == f"{URL}{hmac_name(secret, 'k1')}.html"
    with caplog.at_level(logging.WARNING):
        again = LocalDocuments(directory, URL)
        assert again.find("k1", "maya@acme.test") == published
        assert again.create("k2", "maya@acme.test", "1:1", AGENDA).id == hmac_name(secret, "k2")
    assert (directory / SECRET_FILE).read_bytes() == secret and caplog.text == ""


class Killed(BaseException):
    """A kill (SIGKILL, power loss) at a given point: nothing after it runs."""


def test_a_kill_while_creating_the_secret_leaves_no_secret_and_no_empty_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "agendas"

    def killed(n: int) -> bytes:
        raise Killed

    monkeypatch.setattr(secrets, "token_bytes", killed)
    with pytest.raises(Killed):
        LocalDocuments(directory, URL).create("k1", "maya@acme.test", "1:1", AGENDA)
    # no secret (an empty one would be used as it is by an older calsync), no temporary file, no document
    assert sorted(p.name for p in directory.iterdir()) == []
    monkeypatch.undo()
    doc = LocalDocuments(directory, URL).create("k1", "maya@acme.test", "1:1", AGENDA)
    secret = (directory / SECRET_FILE).read_bytes()
    assert len(secret) == SECRET_BYTES and doc.id == hmac_name(secret, "k1")


def test_a_secret_another_calsync_creates_meanwhile_is_the_one_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "agendas"
    theirs = os.urandom(SECRET_BYTES)
    real = secrets.token_bytes

    def racing(n: int) -> bytes:
        (directory / SECRET_FILE).write_bytes(theirs)  # the other one links its secret first
        return real(n)

    monkeypatch.setattr(secrets, "token_bytes", racing)
    doc = LocalDocuments(directory, URL).create("k1", "maya@acme.test", "1:1", AGENDA)
    assert (directory / SECRET_FILE).read_bytes() == theirs
    assert doc.id == hmac_name(theirs, "k1")
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [SECRET_FILE, f"{doc.id}.html", f"{doc.id}.md"]
    )


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask_000")
def test_the_demo_under_umask_000_writes_nothing_world_writable(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    out, err = io.StringIO(), io.StringIO()
    assert main(["demo", str(directory), "--as-of", "2026-11-21", "--format", "json"], out, err) == 0, err
    agendas, outbox = directory / "agendas", directory / "outbox"
    assert mode(agendas) == 0o750 and mode(agendas / SECRET_FILE) == 0o600
    documents = [p for p in agendas.iterdir() if p.name != SECRET_FILE]
    assert documents and all(mode(p) == 0o640 for p in documents)
    assert mode(outbox) == 0o700
    mails = list(outbox.glob("*.eml"))
    assert mails and all(mode(p) == 0o600 for p in mails)
    preview = tmp_path / "maya.eml"
    args = ["digest", "--config", str(directory / "calsync.toml"), "--now", f"{date(2026, 11, 21)}T00:00"]
    code = main([*args, "--preview", email("maya"), "-o", str(preview)], io.StringIO(), err)
    assert code in (0, 3), err.getvalue()
    assert mode(preview) == 0o600
