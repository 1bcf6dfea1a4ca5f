"""``calsync digest`` end to end: the demo org's calendars, the real command line, and a real SMTP
server (aiosmtpd, :mod:`tests.fakes.smtp`) on 127.0.0.1."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from email import message_from_bytes, message_from_string, policy
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from calsync.cli import main
from calsync.demo import BROKEN_FILE, CONFIG, PEOPLE, demo_calendars, email, write_demo
from tests.fakes.smtp import Received, SmtpFake

pytestmark = pytest.mark.usefixtures("loopback_only")

AS_OF = date(2026, 11, 23)  # a Monday: the period of digests due on Mondays at 08:00
NOW = "2026-11-23T09:00"
LEADERS = {"maya", "omar", "priya", "lena", "diego"}
#: Who manages whom in the demo, and each leader's subtree.
MANAGER = {local: manager for local, _, manager, _, _ in PEOPLE}
NAMES = {local: name for local, name, *_ in PEOPLE}
EVIL = "Ben <script>alert('x')</script> Carter"


def below(leader: str) -> set[str]:
    found: set[str] = set()
    todo = [leader]
    while todo:
        boss = todo.pop()
        for person, manager in MANAGER.items():
            if manager == boss:
                found.add(person)
                todo.append(person)
    return found


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out, err)
    return code, out.getvalue(), err.getvalue()


def smtp_section(fake: SmtpFake, **extra: str) -> str:
    lines = [
        "[smtp]",
        'host = "127.0.0.1"',
        f"port = {fake.port}",
        f'security = "{fake.security}"',
        'helo_name = "calsync.test"',
        "timeout_seconds = 10",
    ]
    if fake.ca_path is not None:
        lines.append(f'ca_bundle = "{fake.ca_path}"')
    lines += [f"{key} = {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


class Org:
    """The demo org written into a directory, with its config pointed at an SMTP server."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.config, _ = write_demo(directory, AS_OF)
        (directory / "calendars" / BROKEN_FILE).unlink()  # the planted broken file: see its own test
        roster = directory / "org.csv"
        roster.write_text(roster.read_text(encoding="utf-8").replace("Ben Carter", EVIL), encoding="utf-8")

    def configure(self, fake: SmtpFake, digest: str = "", **smtp: str) -> None:
        text = CONFIG + '\n[digest]\nfrom = "1:1 digests <calsync@acme.test>"\n' + digest + "\n"
        self.config.write_text(text + smtp_section(fake, **smtp), encoding="utf-8")

    def digest(self, *args: str, now: str = NOW) -> tuple[int, str, str]:
        return run("digest", "--config", str(self.config), "--now", now, *args)


@pytest.fixture
def org(tmp_path: Path) -> Org:
    return Org(tmp_path / "org")


@pytest.fixture
def smtp(org: Org) -> Iterator[SmtpFake]:
    with SmtpFake() as fake:
        org.configure(fake)
        yield fake


def text_of(received: Received | EmailMessage) -> str:
    message = received.message if isinstance(received, Received) else received
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(received: Received | EmailMessage) -> str:
    message = received.message if isinstance(received, Received) else received
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def sections(text: str) -> list[str]:
    """The managers' names heading the sections of a digest's text part."""
    return [
        re.sub(r" \((your own 1:1s|reports to .*)\)$", "", line[3:])
        for line in text.splitlines()
        if line.startswith("== ") and not line.startswith("== 1:1s held per week")
    ]


def by_leader(fake: SmtpFake) -> dict[str, list[Received]]:
    found: dict[str, list[Received]] = {}
    for received in fake.messages:
        for rcpt in received.rcpt_tos:
            found.setdefault(rcpt.split("@")[0], []).append(received)
    return found


def test_every_leader_gets_one_digest_of_exactly_their_subtree(org: Org, smtp: SmtpFake) -> None:
    code, out, err = org.digest("--send")
    assert code == 0, err
    assert "5 sent." in out
    received = by_leader(smtp)
    assert set(received) == LEADERS and all(len(m) == 1 for m in received.values())
    for leader, (message,) in received.items():
        assert message.mail_from == "calsync@acme.test" and message.rcpt_tos == (email(leader),)
        text = text_of(message)
        managers = {leader} | {p for p in below(leader) if p in LEADERS}
        assert set(sections(text)) == {NAMES[m] for m in managers}, leader
        # nobody outside the subtree is named anywhere in the message
        outside = set(NAMES) - below(leader) - {leader}
        for person in outside:
            if person == "ben":
                continue
            assert NAMES[person] not in text and NAMES[person] not in html_of(message), (leader, person)
        assert f"because you lead {len(below(leader))} people" in text


def test_a_skip_level_leader_sees_the_deeper_managers(org: Org, smtp: SmtpFake) -> None:
    assert org.digest("--send")[0] == 0
    maya = text_of(by_leader(smtp)["maya"][0])
    # Maya's own 1:1s first, then her direct reports' teams, then the teams below them
    assert sections(maya) == ["Maya Chen", "Omar Haddad", "Priya Raman", "Diego Alvarez", "Lena Fischer"]
    assert "== Lena Fischer (reports to Omar Haddad)" in maya
    assert "Noah Berg: At risk." in maya  # a pair two levels below Maya
    # the weekly heatmap: Maya's own 1:1s, then one row per direct report's part of the org
    rows = [line.split("  ")[0] for line in maya.split("== 1:1s held per week")[1].splitlines()[2:6]]
    assert rows == ["All 1:1s", "Maya Chen", "Omar Haddad's org", "Priya Raman"]
    assert sections(text_of(by_leader(smtp)["omar"][0])) == ["Omar Haddad", "Diego Alvarez", "Lena Fischer"]


def figures_from_report(pairs: list[dict[str, Any]], leader: str) -> dict[str, int]:
    scope = below(leader) | {leader}
    mine = [p for p in pairs if p["status"] != "untracked" and (p["manager"] or "").split("@")[0] in scope]
    assessed = [p for p in mine if p["excluded"] is None]
    return {
        "Tracked pairs": len(assessed),
        "Overdue": sum(p["status"] == "overdue" for p in assessed),
        "No 1:1s": sum(p["status"] == "no-series" for p in assessed),
        "At risk": sum(p["status"] == "at-risk" for p in assessed),
        "Excluded": len(mine) - len(assessed),
    }


def weeks_from_report(pairs: list[dict[str, Any]], leader: str) -> list[int]:
    scope = below(leader) | {leader}
    counts = [0] * 12
    first = AS_OF - timedelta(weeks=12)
    for p in pairs:
        if p["status"] == "untracked" or (p["manager"] or "").split("@")[0] not in scope:
            continue
        for held in p["held"]:
            index = (date.fromisoformat(held) - first).days // 7
            if 0 <= index < 12:
                counts[index] += 1
    return counts


def test_figures_and_week_counts_match_the_report(org: Org, smtp: SmtpFake) -> None:
    code, out, err = run(
        "report", "--config", str(org.config), "--as-of", AS_OF.isoformat(), "--format", "json"
    )
    assert code == 0, err
    pairs = json.loads(out)["pairs"]
    assert org.digest("--send")[0] == 0
    for leader, (message,) in by_leader(smtp).items():
        text = text_of(message)
        shown = {
            m[1]: int(m[2])
            for m in re.finditer(r"^(Tracked pairs|Overdue|No 1:1s|At risk|Excluded): +(\d+)", text, re.M)
        }
        assert shown == figures_from_report(pairs, leader), leader
        total = re.search(r"^All 1:1s +([\d. ]+)$", text, re.M)
        assert total is not None
        weeks = [0 if cell == "." else int(cell) for cell in total[1].split()]
        assert weeks == weeks_from_report(pairs, leader), leader
        # and the HTML heatmap has the same total row
        html = html_of(message)
        row = html[html.index(">All 1:1s</td>") :].split("</tr>")[0]
        assert [int(c) for c in re.findall(r">(\d+)</td>", row)] == weeks
    # Priya's excluded report (Iris, on parental leave) is shown as excluded, not flagged
    priya = text_of(by_leader(smtp)["priya"][0])
    assert "- Iris Novak: Excluded. Iris Novak: parental leave until 2027-01-22" in priya
    assert "Excluded:      1" in priya


def test_names_are_escaped_and_titles_never_shown(org: Org, smtp: SmtpFake) -> None:
    assert org.digest("--send")[0] == 0
    diego = by_leader(smtp)["diego"][0]
    html = html_of(diego)
    assert "<script" not in html and "Ben &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Carter" in html
    titles = {
        spec.summary for specs in demo_calendars(AS_OF).values() for spec in specs if "/" in spec.summary
    }
    assert titles  # e.g. "Maya / Priya 1:1 (moved)"
    for received in smtp.messages:
        for title in titles:
            assert title not in text_of(received) and title not in html_of(received)


#: Display names that RFC 5322 must quote or encode: a colon (group syntax), a comma (a second
#: address), quotes and a backslash, non-ASCII, and a name long enough to be folded.
AWKWARD = {
    "maya": 'Chen, Maya "MC"',
    "omar": "Omar: Haddad (Ops)",
    "priya": "Priya Rāman-Ålström",
    "lena": "Lena \\ Fischer; Dr.",
    "diego": "Diego Alejandro María de la Santísima Trinidad Alvarez y Ruiz-Picasso",
}


def test_address_headers_round_trip_for_any_name(org: Org, tmp_path: Path) -> None:
    import csv

    roster = org.dir / "org.csv"
    rows = list(csv.DictReader(io.StringIO(roster.read_text(encoding="utf-8"))))
    for row in rows:
        row["name"] = AWKWARD.get(row["email"].split("@")[0], row["name"])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    roster.write_text(out.getvalue(), encoding="utf-8")
    senders = [
        ("1:1 digests", "calsync@acme.test"),  # the example config's own sender
        ('People "team", Berlin', "people@acme.test"),
        ("Équipe RH: 1:1s", "rh@acme.test"),
    ]
    for number, (name, address) in enumerate(senders):
        with SmtpFake() as fake:
            quoted = name.replace("\\", "\\\\").replace('"', '\\"')
            org.configure(
                fake,
                digest=f'reply_to = "{quoted} <{address.replace("@", "+reply@")}>"\n',
            )
            text = org.config.read_text(encoding="utf-8")
            org.config.write_text(
                text.replace('from = "1:1 digests <calsync@acme.test>"', f'from = "{quoted} <{address}>"'),
                encoding="utf-8",
            )
            code, _, err = org.digest("--send", now=f"{AS_OF + timedelta(weeks=number)}T09:00")
            assert code == 0, err
            assert len(fake.messages) == 5
            for received in fake.messages:
                parsed = message_from_bytes(received.data, policy=policy.default)
                (sender,) = parsed["From"].addresses
                assert (sender.display_name, sender.addr_spec) == (name, address)
                assert parsed["From"].groups[0].display_name is None  # not a group
                (reply,) = parsed["Reply-To"].addresses
                assert (reply.display_name, reply.addr_spec) == (name, address.replace("@", "+reply@"))
                (to,) = parsed["To"].addresses
                leader = to.addr_spec.split("@")[0]
                assert received.rcpt_tos == (to.addr_spec,)
                assert to.display_name == AWKWARD[leader]
                assert parsed["Subject"].startswith(f"1:1s in {AWKWARD[leader]}'s org, week of ")
                for key, value in parsed.items():
                    assert value == value.strip(), (key, value)  # no header parses with a leading space
                for line in received.data.split(b"\r\n"):
                    assert len(line) <= 998


def test_no_header_is_folded_right_after_its_name() -> None:
    # 75 characters: it fits on a line of its own but not after "Subject: ", which is where the
    # standard library's folding breaks it (Priya's digest in the demo, with a leading space)
    subject = "1:1s in Priya Raman's org, week of 21 Nov 2026: 1 overdue, 2 without 1:1s"
    from calsync.digest.headers import MAIL_POLICY

    message = EmailMessage(policy=MAIL_POLICY)
    message["Subject"] = subject
    message["To"] = Address(display_name="A" * 70, addr_spec="a@acme.test")
    message.set_content("x")
    for data in (bytes(message), message.as_string().encode()):
        assert not re.search(rb"^[A-Za-z-]+:\r?\n", data, re.M)
        parsed = message_from_bytes(data, policy=policy.default)
        assert parsed["Subject"] == subject
        assert parsed["To"].addresses[0].display_name == "A" * 70
    plain = EmailMessage()  # the standard policy still folds so (if it ever stops, MAIL_POLICY can go)
    plain["Subject"] = subject
    assert plain.as_string().startswith("Subject:\n ")


def test_a_second_send_in_the_same_period_sends_nothing(org: Org, smtp: SmtpFake) -> None:
    assert org.digest("--send")[0] == 0
    code, out, _ = org.digest("--send", now="2026-11-27T18:00")  # later the same week
    assert code == 0
    assert "5 already sent." in out and len(smtp.messages) == 5
    code, out, _ = org.digest(now="2026-11-27T18:00")  # the listing says so too
    assert out.count("sent 2026-11-23T09:00") == 5
    # the next Monday at 08:00 a new period begins: one more each, with the change since the last
    code, out, _ = org.digest("--send", now="2026-11-30T08:00")
    assert code == 0 and "5 sent." in out and len(smtp.messages) == 10
    latest = text_of(by_leader(smtp)["maya"][-1])
    assert "(Changes since the digest of 2026-11-23.)" in latest
    assert re.search(r"^Overdue: +\d+ \([+-±]\d+\)$", latest, re.M)


def test_a_refused_recipient_is_retried_later_without_resending_the_others(org: Org, smtp: SmtpFake) -> None:
    smtp.refuse_recipient(email("lena"), 550, "5.1.1 Mailbox unavailable")
    code, out, err = org.digest("--send")
    assert code == 3
    assert "failed" in out and "refused the recipient lena@acme.test: 550 5.1.1 Mailbox unavailable" in err
    assert set(by_leader(smtp)) == LEADERS - {"lena"}
    smtp.allow_recipient(email("lena"))
    code, out, _ = org.digest("--send", now="2026-11-23T10:00")
    assert code == 0 and "1 sent" in out and "4 already sent" in out
    assert set(by_leader(smtp)) == LEADERS and all(len(m) == 1 for m in by_leader(smtp).values())


def test_preview_is_what_is_sent(org: Org, smtp: SmtpFake, tmp_path: Path) -> None:
    preview = tmp_path / "maya.eml"
    code, out, err = org.digest("--preview", "Maya@acme.test", "--output", str(preview))
    assert code == 0, err
    assert out == "" and smtp.messages == []  # a preview sends nothing
    code, html_out, _ = org.digest("--preview", "maya@acme.test")
    assert code == 0
    shown = message_from_string(preview.read_text(encoding="utf-8"), policy=policy.default)
    assert isinstance(shown, EmailMessage)
    assert org.digest("--send")[0] == 0
    (sent,) = by_leader(smtp)["maya"]
    assert sent.message["Subject"] == shown["Subject"]
    assert sent.message["Message-ID"] == shown["Message-ID"]
    assert text_of(sent) == text_of(shown) and html_of(sent) == html_of(shown)
    assert html_out == preview.read_text(encoding="utf-8")  # stdout and file alike
    # FILE.html gets the HTML part alone, ready for a browser
    page = tmp_path / "maya.html"
    assert org.digest("--preview", "maya@acme.test", "-o", str(page))[0] == 0
    assert page.read_text(encoding="utf-8") == html_of(sent)
    # someone who leads no one gets no digest, and is told so
    code, _, err = org.digest("--preview", "ben@acme.test")
    assert code == 2 and f"ben@acme.test gets no digest: {EVIL} has no reports in the roster" in err


def test_starttls_with_a_login_from_the_environment(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    with SmtpFake("starttls", users={"calsync": "s3cret"}) as fake:
        org.configure(fake, username='"calsync"')
        monkeypatch.delenv("CALSYNC_SMTP_PASSWORD", raising=False)
        code, _, err = org.digest("--send")
        assert code == 2 and "export CALSYNC_SMTP_PASSWORD=" in err and fake.messages == []
        monkeypatch.setenv("CALSYNC_SMTP_PASSWORD", "wrong")
        code, out, err = org.digest("--send")
        assert code == 3 and "refused the login of 'calsync'" in err and "s3cret" not in err + out
        assert "1 failed, 4 not tried." in out and fake.messages == []  # one refused login, not five
        monkeypatch.setenv("CALSYNC_SMTP_PASSWORD", "s3cret")
        code, out, err = org.digest("--send")
        assert code == 0, err
        # no connection without a password, one refused, then one for all five digests
        assert len(fake.messages) == 5 and fake.sessions == 2
        assert all(m.tls and m.authenticated_as == "calsync" for m in fake.messages)


def test_implicit_tls_with_a_password_file(org: Org, tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n", encoding="utf-8")
    with SmtpFake("ssl", users={"calsync": "s3cret"}) as fake:
        org.configure(fake, username='"calsync"', password_file=f'"{secret}"')
        code, _, err = org.digest("--send")
        assert code == 0, err
        assert len(fake.messages) == 5 and all(m.tls for m in fake.messages)


def test_an_untrusted_certificate_is_a_clear_error(org: Org) -> None:
    with SmtpFake("starttls") as fake:
        org.configure(fake)
        org.config.write_text(org.config.read_text().replace(f'ca_bundle = "{fake.ca_path}"\n', ""))
        code, _, err = org.digest("--send")
        assert code == 3 and "set [smtp] ca_bundle" in err and fake.messages == []


def test_a_dropped_connection_is_reopened(org: Org, smtp: SmtpFake) -> None:
    smtp.drop_next_connection("mail")
    code, _, err = org.digest("--send")
    assert code == 0, err
    assert len(smtp.messages) == 5 and smtp.sessions == 2


def test_a_server_that_is_down_fails_every_digest_and_the_next_run_sends(org: Org, smtp: SmtpFake) -> None:
    with SmtpFake() as gone:
        port = gone.port
    org.config.write_text(org.config.read_text().replace(f"port = {smtp.port}", f"port = {port}"))
    code, out, err = org.digest("--send")
    assert code == 3 and "cannot talk to the mail server 127.0.0.1" in err
    assert "1 failed, 4 not tried." in out
    org.configure(smtp)
    assert org.digest("--send")[0] == 0 and len(smtp.messages) == 5


def test_digests_wait_while_a_calendar_cannot_be_read(org: Org, smtp: SmtpFake) -> None:
    broken = org.dir / "calendars" / "diego.ics"
    good = broken.read_bytes()
    broken.write_text("BEGIN:VCALENDAR\nthis export was cut off", encoding="utf-8")
    code, out, err = org.digest("--send")
    assert code == 3 and "5 held back." in out and "could not be read" in err
    assert smtp.messages == []
    broken.write_bytes(good)
    assert org.digest("--send")[0] == 0 and len(smtp.messages) == 5


def test_send_anyway_warns_in_the_digest(org: Org, smtp: SmtpFake) -> None:
    (org.dir / "calendars" / "diego.ics").write_text("not a calendar", encoding="utf-8")
    org.configure(smtp, digest='when_incomplete = "send"\n')
    code, _, _ = org.digest("--send")
    assert code == 3  # sent, but an input was skipped
    assert all("could not be read for this digest" in text_of(m) for m in smtp.messages)


def test_only_the_listed_leaders_get_a_digest(org: Org, smtp: SmtpFake) -> None:
    org.configure(smtp, digest='leaders = ["omar@acme.test", "ben@acme.test"]\n')
    code, _, err = org.digest("--send")
    assert code == 3 and "[digest] leaders: ben@acme.test has no reports in the roster" in err
    assert set(by_leader(smtp)) == {"omar"}


def test_a_preview_for_someone_who_gets_no_digest_says_why(org: Org, smtp: SmtpFake) -> None:
    code, _, err = org.digest("--preview", "nobody@acme.test")
    assert code == 2 and "calsync: nobody@acme.test gets no digest: not in the roster\n" in err
    code, _, err = org.digest("--preview", "Maya@acme.tst")
    assert code == 2 and (
        "maya@acme.tst gets no digest: not in the roster; did you mean maya@acme.test?\n" in err
    )
    code, _, err = org.digest("--preview", "ben@acme.test")
    assert code == 2 and f"ben@acme.test gets no digest: {EVIL} has no reports in the roster\n" in err
    org.configure(smtp, digest='leaders = ["omar@acme.test", "ben@acme.test"]\n')
    code, _, err = org.digest("--preview", "maya@acme.test")
    assert code == 2 and (
        "maya@acme.test gets no digest: not in [digest] leaders (omar@acme.test, ben@acme.test)\n" in err
    )
    code, _, err = org.digest("--preview", "ben@acme.test")
    why = f"in [digest] leaders, but {EVIL} has no reports in the roster"
    assert code == 2 and f"ben@acme.test gets no digest: {why}\n" in err
    assert smtp.messages == []


def test_sending_without_a_mail_server_is_a_usage_error(org: Org, smtp: SmtpFake) -> None:
    text = org.config.read_text()
    org.config.write_text(text[: text.index("[smtp]")])
    code, out, err = org.digest("--send")
    assert code == 2 and out == "" and smtp.messages == []
    assert "the config has no [smtp] section" in err and 'delivery = "outbox"' in err
    code, _, err = org.digest("--output", "x.eml")
    assert code == 2 and "--output goes with --preview EMAIL" in err
