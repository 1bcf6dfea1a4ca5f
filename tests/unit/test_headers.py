"""Addresses as the config writes them, and headers that survive any name (pure)."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from calsync.digest.headers import MAIL_POLICY, mailbox


@pytest.mark.parametrize(
    ("written", "name", "address"),
    [
        ("calsync@acme.test", "", "calsync@acme.test"),
        ("1:1 digests <calsync@acme.test>", "1:1 digests", "calsync@acme.test"),
        ('"Smith, Jo" <jo@acme.test>', "Smith, Jo", "jo@acme.test"),
        ('"Say \\"hi\\"" <hi@acme.test>', 'Say "hi"', "hi@acme.test"),
        ("  Zoë Ångström <zoe@acme.test>  ", "Zoë Ångström", "zoe@acme.test"),
        ("<bare@acme.test>", "", "bare@acme.test"),
    ],
)
def test_an_address_as_written_in_the_config(written: str, name: str, address: str) -> None:
    parsed = mailbox(written)
    assert (parsed.display_name, parsed.addr_spec) == (name, address)
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = parsed
    message.set_content("x")
    (back,) = message_from_bytes(bytes(message), policy=policy.default)["From"].addresses
    assert (back.display_name, back.addr_spec) == (name, address)


@pytest.mark.parametrize(
    "written",
    ["", "digests", "1:1 digests <calsync>", "a@b@acme.test", "x <a b@acme.test>", "a@acme.test\nBcc: x@y.z"],
)
def test_what_is_not_an_address(written: str) -> None:
    with pytest.raises(ValueError):
        mailbox(written)
