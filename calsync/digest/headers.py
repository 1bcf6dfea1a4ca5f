"""Mail headers that survive any name: addresses as the config writes them, and the policy digests are
written with.

Every address header calsync writes (From, To, Reply-To) is an :class:`email.headerregistry.Address`
set on an :class:`~email.message.EmailMessage`, so that the ``email`` package quotes or encodes the
display name as RFC 5322 and RFC 2047 need: ``1:1 digests`` (a colon would otherwise start a group),
``Smith, Jo`` (a comma would start a second address), quotes and non-ASCII names all round-trip.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.policy import EmailPolicy

#: Characters that cannot appear in an address as written in the config (outside a quoted name).
_NOT_IN_ADDRESS = re.compile(r"[\s<>(),;:\"\[\]\\]")


def mailbox(text: str) -> Address:
    """An address as a person writes it in the config: ``calsync@acme.test``, ``1:1 digests
    <calsync@acme.test>`` or ``"Smith, Jo" <jo@acme.test>``. The display name is everything before the
    last ``<``, taken as written (a quoted one is unquoted): colons, commas and non-ASCII are fine.
    ValueError says what is wrong."""
    if "\r" in text or "\n" in text:
        raise ValueError("it spans lines")
    text = text.strip()
    name = ""
    if text.endswith(">") and "<" in text:
        name, _, text = text[:-1].rpartition("<")
        name = name.strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = re.sub(r"\\(.)", r"\1", name[1:-1])
    local, at, domain = text.strip().rpartition("@")
    if not at or not local or not domain or "." not in domain.strip("."):
        raise ValueError("it has no address like calsync@acme.test")
    if _NOT_IN_ADDRESS.search(local) or _NOT_IN_ADDRESS.search(domain) or "@" in local:
        raise ValueError(f"{text.strip()!r} is not an email address")
    return Address(display_name=name, username=local, domain=domain)


class _MailPolicy(EmailPolicy):
    """``email.policy.default``, except that no header is folded right after its name.

    The standard library moves a whole header value to the next line when it fits on a line of its
    own but not after ``Subject: `` (a 75-character subject, say). Python's own parser, like some mail
    clients, then reads the value with a leading space. Such a header is written on one line instead:
    longer than the 78 characters RFC 5322 recommends, well within the 998 it allows."""

    def fold(self, name: str, value: str) -> str:
        return _join_first(super().fold(name, value), name, self.linesep)

    def fold_binary(self, name: str, value: str) -> bytes:
        folded = super().fold_binary(name, value).decode("ascii", "surrogateescape")
        return _join_first(folded, name, self.linesep).encode("ascii", "surrogateescape")


def _join_first(folded: str, name: str, linesep: str) -> str:
    head = f"{name}:{linesep}"
    if not folded.startswith(head) or folded[len(head) : len(head) + 1] not in (" ", "\t"):
        return folded
    return f"{name}: " + folded[len(head) :].lstrip(" \t")


#: The policy every digest is built with (and so generated and sent with).
MAIL_POLICY = _MailPolicy()
