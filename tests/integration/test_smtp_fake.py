"""The SMTP fake driven by the stdlib's smtplib, on 127.0.0.1 only."""

from __future__ import annotations

import base64
import smtplib
import ssl
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from tests.fakes.smtp import SmtpFake

pytestmark = pytest.mark.usefixtures("loopback_only")

SENDER = "calsync@acme.test"
ANN = "ann@acme.test"
BOB = "bob@acme.test"
USERS = {"calsync": "s3cret"}
ME = "client.test"  # smtplib would ask getfqdn() otherwise


def message(to: list[str], subject: str = "Your 1:1s") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg.set_content("Ann met Bob three times.\n.a line starting with a dot\n")
    return msg


def plain(fake: SmtpFake) -> smtplib.SMTP:
    return smtplib.SMTP(fake.host, fake.port, local_hostname=ME, timeout=5)


def tls_context(fake: SmtpFake) -> ssl.SSLContext:
    assert fake.ca_path is not None
    return ssl.create_default_context(cafile=str(fake.ca_path))


@pytest.fixture
def fake() -> Iterator[SmtpFake]:
    with SmtpFake() as server:
        yield server


@pytest.fixture
def starttls() -> Iterator[SmtpFake]:
    with SmtpFake("starttls", users=USERS) as server:
        yield server


def test_plain_send_is_stored_with_parsed_headers(fake: SmtpFake) -> None:
    with plain(fake) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        client.send_message(message([ANN]))
    [received] = fake.messages
    assert received.mail_from == SENDER
    assert received.rcpt_tos == (ANN,)
    assert received.message["Subject"] == "Your 1:1s"
    assert received.message["To"] == ANN
    assert received.message.get_content() == "Ann met Bob three times.\n.a line starting with a dot\n"
    assert b"\r\n.a line starting" in received.data
    assert received.authenticated_as is None
    assert received.tls is False
    assert fake.ca_path is None


def test_starttls_and_login(starttls: SmtpFake) -> None:
    with plain(starttls) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")  # offered only once encrypted
        client.starttls(context=tls_context(starttls))
        client.ehlo()
        assert not client.has_extn("starttls")
        client.login("calsync", "s3cret")
        client.send_message(message([ANN]))
    [received] = starttls.messages
    assert received.tls is True
    assert received.authenticated_as == "calsync"


def test_implicit_ssl_and_login() -> None:
    with SmtpFake("ssl", users=USERS) as fake:
        with smtplib.SMTP_SSL(
            fake.host, fake.port, local_hostname=ME, timeout=5, context=tls_context(fake)
        ) as client:
            client.login("calsync", "s3cret")
            client.send_message(message([BOB]))
        [received] = fake.messages
        assert received.tls is True
        assert received.authenticated_as == "calsync"
        assert received.rcpt_tos == (BOB,)
        ca_path = fake.ca_path
        assert ca_path is not None and ca_path.exists()
    assert not ca_path.exists()


def test_login_in_clear_is_allowed_with_security_none() -> None:
    with SmtpFake(users=USERS) as fake, plain(fake) as client:
        client.login("calsync", "s3cret")
        client.send_message(message([ANN]))
        [received] = fake.messages
        assert (received.authenticated_as, received.tls) == ("calsync", False)


def test_wrong_password_is_refused_and_nothing_stored(starttls: SmtpFake) -> None:
    with plain(starttls) as client:
        client.starttls(context=tls_context(starttls))
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login("calsync", "wrong")
        assert refused.value.smtp_code == 535
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.send_message(message([ANN]))
    assert starttls.messages == []


def test_mail_without_auth_is_refused(starttls: SmtpFake) -> None:
    with plain(starttls) as client:
        client.starttls(context=tls_context(starttls))
        client.ehlo()
        assert client.mail(SENDER) == (530, b"5.7.0 Authentication required")
    assert starttls.messages == []


def test_auth_in_clear_is_refused_before_starttls(starttls: SmtpFake) -> None:
    credentials = base64.b64encode(b"\0calsync\0s3cret").decode()
    with plain(starttls) as client:
        client.ehlo()
        code, _ = client.docmd("AUTH", f"PLAIN {credentials}")
        assert code == 530
        assert client.mail(SENDER)[0] == 530  # STARTTLS first


def test_refused_single_recipient_raises_and_stores_nothing(fake: SmtpFake) -> None:
    fake.refuse_recipient(ANN)
    with plain(fake) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.send_message(message([ANN]))
    assert refused.value.recipients == {ANN: (550, b"5.1.1 Mailbox unavailable")}
    assert fake.messages == []
    assert fake.refused == [(ANN, 550)]


def test_refused_one_of_two_recipients_keeps_the_other(fake: SmtpFake) -> None:
    fake.refuse_recipient("ANN@acme.test", code=553, text="5.1.3 No such user")
    with plain(fake) as client:
        errors = client.send_message(message([ANN, BOB]))
    assert errors == {ANN: (553, b"5.1.3 No such user")}
    [received] = fake.messages
    assert received.rcpt_tos == (BOB,)


def test_refusal_for_a_number_of_times_then_allow(fake: SmtpFake) -> None:
    fake.refuse_recipient(ANN, code=450, text="4.2.1 Try later", times=1)
    fake.refuse_recipient(BOB)
    with plain(fake) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.send_message(message([ANN]))
        client.send_message(message([ANN]))
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.send_message(message([BOB]))
        fake.allow_recipient(BOB.upper())
        client.send_message(message([BOB]))
    assert [m.rcpt_tos for m in fake.messages] == [(ANN,), (BOB,)]
    assert fake.refused == [(ANN, 450), (BOB, 550)]


def test_fail_next_data_once(fake: SmtpFake) -> None:
    fake.fail_next_data()
    with plain(fake) as client:
        with pytest.raises(smtplib.SMTPDataError) as failed:
            client.send_message(message([ANN], subject="first"))
        assert (failed.value.smtp_code, failed.value.smtp_error) == (451, b"4.3.0 Temporary failure")
        client.send_message(message([ANN], subject="second"))
    assert [m.message["Subject"] for m in fake.messages] == ["second"]


@pytest.mark.parametrize("after", ["connect", "mail", "data"])
def test_dropped_connection(fake: SmtpFake, after: str) -> None:
    fake.drop_next_connection(after)  # type: ignore[arg-type]
    with pytest.raises(smtplib.SMTPServerDisconnected), plain(fake) as client:
        client.send_message(message([ANN]))
    with plain(fake) as client:  # only that one connection
        client.send_message(message([BOB]))
    assert [m.rcpt_tos for m in fake.messages] == [(BOB,)]


def test_dropped_connection_over_implicit_tls() -> None:
    with SmtpFake("ssl") as fake:
        fake.drop_next_connection("data")
        context = tls_context(fake)
        with (
            pytest.raises(smtplib.SMTPServerDisconnected),
            smtplib.SMTP_SSL(fake.host, fake.port, local_hostname=ME, timeout=5, context=context) as client,
        ):
            client.send_message(message([ANN]))
        assert fake.messages == []


def test_messages_to_is_case_insensitive(fake: SmtpFake) -> None:
    with plain(fake) as client:
        client.send_message(message(["Ann@Acme.Test"]))
        client.send_message(message([BOB]))
    assert [m.rcpt_tos for m in fake.messages_to("ANN@acme.test")] == [("Ann@Acme.Test",)]
    assert fake.messages_to("carol@acme.test") == []


def test_sessions_count_connections(starttls: SmtpFake) -> None:
    assert starttls.sessions == 0  # the controller's readiness probe does not count
    with plain(starttls) as client:
        client.starttls(context=tls_context(starttls))  # still the same session
    with plain(starttls):
        pass
    assert starttls.sessions == 2
