"""Text from outside (roster names, org charts, calendars' titles and UIDs) made safe to show.

Anything read from a roster, a directory's org chart or a calendar may hold control characters: a line
break (``"Diego\\r\\nBcc: evil@example.com"``), an ESC sequence that recolours or rewrites a terminal,
a BEL, a bidirectional override that shows text in another order than it is. Wherever such text leaves
calsync (a mail header or body, the terminal table, the CSV, a line of command output or of the log)
it goes through :func:`printable`, the one helper for it, at the output: the roster may be read clean,
but calendars and org charts are not, and any new input would not be either.

:func:`printable` keeps the text readable and unambiguous about what it held: each such character is
written as a visible escape (``\\n``, ``\\x1b``, ``\\u202e``), as Python's ``repr`` would, so that an
operator sees that a name holds a line break instead of seeing two lines.
"""

from __future__ import annotations

import re

#: C0 and C1 controls and DEL (Unicode category Cc), the line and paragraph separators (Zl, Zp) and the
#: bidirectional embeddings, overrides and isolates (the "Trojan Source" characters). Other format
#: characters (zero-width joiners in emoji, soft hyphens) are left alone: they cannot rewrite a line.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character escaped: fit for one line of a terminal, a log or a
    mail header.

    >>> printable("Diego\\r\\nBcc: evil@example.com")
    'Diego\\\\r\\\\nBcc: evil@example.com'
    >>> printable("\\x1b[31mred\\x07")
    '\\\\x1b[31mred\\\\x07'
    >>> printable("Zoë Ångström")
    'Zoë Ångström'
    """
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


#: What a spreadsheet takes as the start of a formula (OWASP's "CSV injection"): ``=``, ``+``, ``-``,
#: ``@``, and a tab or carriage return before one of them
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(text: str) -> str:
    """A CSV cell that a spreadsheet shows as the text it is: :func:`printable`, and a cell that a
    spreadsheet would run as a formula (``=HYPERLINK(...)`` as a roster name, say) starts with ``'``.

    >>> spreadsheet_cell("=1+1")
    "'=1+1"
    >>> spreadsheet_cell("maya@acme.test")
    'maya@acme.test'
    """
    return "'" + printable(text) if text.startswith(_FORMULA) else printable(text)
