"""``calsync digest`` end to end with hostile text: a line break and terminal escapes in a leader's name,
an ESC in a calendar's event title, and one leader whose digest cannot be made at all (the demo org,
its outbox, the real command line)."""

from __future__ import annotations

import io
import re
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from calsync.cli import main
from calsync.demo import BROKEN_FILE, write_demo

AS_OF = date(2026, 11, 23)
NOW = "2026-11-23T09:00"
HOSTILE = "Diego\r\nBcc: evil@example.com\x1b[2J\x07"
#: A raw control character (a line break aside, which output is made of).
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
EVIL_TITLE_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//hostile//EN\r\n"
    "BEGIN:VEVENT\r\nUID:evil\x1b]0;pwned\x07@acme.test\r\nSUMMARY:Owned\x1b[31m\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    config, _ = write_demo(tmp_path, AS_OF)
    (tmp_path / "calendars" / BROKEN_FILE).unlink()
    roster = tmp_path / "org.csv"
    text = roster.read_text(encoding="utf-8")
    assert "Diego Alvarez" in text
    roster.write_text(text.replace("Diego Alvarez", '"' + HOSTILE + '"'), encoding="utf-8")
    (tmp_path / "calendars" / "evil@acme.test.ics").write_text(EVIL_TITLE_ICS, encoding="utf-8", newline="")
    return config


def digest(config: Path, *args: str) -> tuple[int, str, str]:
    return run("digest", "--config", str(config), "--now", NOW, *args)


def test_a_line_break_in_a_name_breaks_no_digest_and_injects_no_header(demo: Path) -> None:
    code, out, err = digest(demo)  # the listing
    assert "Traceback" not in err and "linefeed" not in err
    assert not RAW.search(out) and not RAW.search(err), (out, err)
    # The roster may drop or clean such a row when it is read (calsync.org): either way, no header
    # is injected and every other leader's digest is made.
    due = out.count("  due ")
    assert due >= 4 and code in (0, 3)
    assert not any(line.startswith("Bcc") for line in out.splitlines())

    code, out, err = digest(demo, "--preview", "omar@acme.test")  # Diego's manager: his name shows
    assert code in (0, 3) and not RAW.search(err)
    message = message_from_bytes(out.encode(), policy=policy.default)
    assert message["Bcc"] is None and str(message["To"].addresses[0].addr_spec) == "omar@acme.test"
    assert all(not RAW.search(str(value)) for _, value in message.items())
    assert "Bcc: evil" not in out.replace("\\r\\nBcc: evil", "")  # only ever escaped, inside a line

    code, out, err = digest(demo, "--send")
    assert f"{due} written." in out and not RAW.search(out) and not RAW.search(err), (out, err)
    files = sorted((demo.parent / "outbox").glob("*.eml"))
    assert len(files) == due
    for path in files:
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert mail["Bcc"] is None
        for part in mail.walk():
            if part.get_content_maintype() == "text":
                assert "\x1b" not in part.get_content() and "\x07" not in part.get_content()


def test_an_escape_in_a_calendar_reaches_no_terminal(demo: Path) -> None:
    for args in (("digest", "--now", NOW), ("report", "--as-of", AS_OF.isoformat())):
        code, out, err = run(args[0], "--config", str(demo), *args[1:])
        assert code == 3 and "Traceback" not in err  # exit 3: the broken event is a problem
        assert not RAW.search(out) and not RAW.search(err), (out, err)


def test_a_digest_that_cannot_be_made_is_that_leader_s_failure_alone(demo: Path) -> None:
    templates = demo.parent / "templates"
    templates.mkdir()
    (templates / "digest.txt.j2").write_text(
        '{% if d.leader.startswith("lena") %}{{ d.no_such_thing }}{% endif %}1:1s of {{ d.leader_name }}\n',
        encoding="utf-8",
    )
    demo.write_text(
        demo.read_text(encoding="utf-8").replace(
            'outbox = "outbox"\n', 'outbox = "outbox"\ntemplates = "templates"\n'
        ),
        encoding="utf-8",
    )
    due = digest(demo)[1].count("  due ")  # the listing: Lena's digest cannot be made either
    code, out, err = digest(demo, "--send")
    assert code == 3, (out, err)
    assert f"{due} written" in out and "1 failed" in out
    assert "failed: " in err and "lena@acme.test" in err and "the digest could not be made" in err
    assert len(list((demo.parent / "outbox").glob("*.eml"))) == due
    code, out, err = digest(demo, "--preview", "lena@acme.test")
    assert code == 3 and out == "" and "the digest could not be made" in err
