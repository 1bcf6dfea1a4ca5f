"""Mutators of calsync's inputs and the runner that feeds them to the real command line.

Every case starts from the demo org (``calsync.demo.write_demo``, as of :data:`AS_OF`) and mutates ONE
input: one calendar's ICS file, one event of one calendar served by the Google or the Graph fake, the
roster (one line, or the whole file's encoding) or the config. Then ``calsync report --format json``
(and for some cases ``calsync digest`` listing or ``--preview``) runs as a subprocess with a time limit
and an address-space limit. A case passes when every command

- ends with exit 0, 2 or 3 within its time limit, under :data:`MAX_RSS_MB` of peak RSS, with no Python
  traceback on stderr and no planted secret in its output;
- (report) leaves every pair the mutation could not have changed exactly as in the unmutated run
  (:meth:`Mutation.may_change`): a mutated calendar may change the pairs its owner is in, and the pairs
  of two people who are both named in it; a mutated roster line those of its person, and of two people
  among that person, their manager, their reports and whoever the new line names; a whole-file change
  of the roster nothing. Exit 2 (nothing produced) is a failure unless the roster or the config was
  mutated: one broken calendar must not cost everyone else's report.

A case is a pure function of (seed, case number): ``random.Random(f"{seed}:{number}")`` drives it, and
the kind is ``KINDS[number % len(KINDS)]``, so ``python -m tests.fuzz --seed S --case N`` re-runs one.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import queue
import random
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

AS_OF = date(2026, 11, 21)
NOW = "2026-11-21T09:00"
DOMAIN = "acme.test"
KINDS = ("ics", "roster", "config", "google", "graph")
MEMORY_LIMIT = 600 * 1024 * 1024  # RLIMIT_AS of each command
MAX_RSS_MB = 300
CASE_TIMEOUT = 30.0  # seconds per command
CANARY = "hunter2-CANARY-7c1e"  # a secret planted in *_env keys and the environment: never to be shown
SECRET_VARIABLE = "CALSYNC_FUZZ_SECRET"
INJECTED_HEADER = "X-Fuzz-Injected"
CLIENT_ID = "5e1f0c2a-calsync-fuzz"
GRAPH_SECRET = "correct horse battery staple"
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@acme\.test", re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def emails_in(text: str) -> set[str]:
    return {m.lower() for m in EMAIL.findall(text)}


# --------------------------------------------------------------------------------------------- mutations


@dataclass
class Mutation:
    """What a case changed, and which pairs it may therefore change."""

    kind: str
    what: str  # a short human description
    owner: str | None = None  # a pair containing this person may change
    named: set[str] = field(default_factory=set)  # a pair of two of these may change
    any_pair: bool = False  # every pair may change (a config rule was changed)
    exit2_ok: bool = False  # a config or roster error (exit 2, nothing produced) is a right answer

    def may_change(self, people: Iterable[str]) -> bool:
        people = {p.lower() for p in people}
        if self.any_pair or (self.owner is not None and self.owner in people):
            return True
        return len(people) >= 2 and people <= self.named


HOSTILE_TEXT = (
    "\x00",
    "\x1b[31mred\x1b[0m",
    "\x07\x08\x7f",
    "\r",
    "\u202eevil\u202c",
    "\ufeff",
    "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "Ω≈ç√∫˜µ≤≥÷",
    "😀" * 50,
    "%s%n{0}{{}}",
    "<script>alert(1)</script>",
)

GARBAGE_RRULES = (
    "FREQ=SECONDLY",
    "FREQ=SECONDLY;INTERVAL=1;COUNT=1000000000",
    "FREQ=MINUTELY;UNTIL=99991231T235959Z",
    "FREQ=DAILY;INTERVAL=0",
    "FREQ=WEEKLY;INTERVAL=-3",
    "FREQ=DAILY;COUNT=1000000000",
    "FREQ=HOURLY;UNTIL=99991231T000000Z",
    "FREQ=YEARLY;UNTIL=00010101T000000Z",
    "FREQ=DAILY;UNTIL=00010101",
    "FREQ=WEEKLY;BYDAY=ZZ",
    "FREQ=BOGUS",
    "",
    "FREQ=DAILY;INTERVAL=" + "9" * 40,
    "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2",
    "FREQ=YEARLY;BYSETPOS=" + ",".join(str(i) for i in range(1, 367)),
    "FREQ=SECONDLY;BYSECOND="
    + ",".join(str(i) for i in range(60))
    + ";BYMINUTE="
    + ",".join(str(i) for i in range(60)),
    "FREQ=WEEKLY;COUNT=" + str(10**30),
    "FREQ=WEEKLY;UNTIL=20261012T210000Z;COUNT=5",
)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _pick_line(rng: random.Random, lines: list[str], prefix: str) -> int | None:
    found = [i for i, line in enumerate(lines) if line.upper().startswith(prefix)]
    return rng.choice(found) if found else None


def _hostile(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice("xA\x00\x1b") * rng.choice((1000, 100_000, 1_000_000))
    return "".join(rng.choice(HOSTILE_TEXT) for _ in range(rng.randint(1, 4)))


def mutate_ics(rng: random.Random, data: bytes) -> tuple[bytes, str, set[str]]:
    """One mutation of an ICS file: the new bytes, a description, and the roster emails it injected."""
    text = data.decode("utf-8", "replace")
    lines = _lines(text)
    how = rng.choice(
        (
            "flip",
            "delete",
            "duplicate",
            "truncate",
            "rrule",
            "rrule",
            "dates",
            "dates",
            "text",
            "text",
            "nesting",
            "tzid",
            "many",
            "encoding",
            "attendee",
        )
    )
    injected: set[str] = set()
    at: int | None
    if how == "flip":
        raw = bytearray(data)
        count = rng.randint(1, 8)
        for _ in range(count):
            at = rng.randrange(len(raw))
            raw[at] ^= 1 << rng.randrange(8)
        return bytes(raw), f"{count} bit flips", injected
    if how == "delete":
        at = rng.randrange(len(lines))
        count = rng.randint(1, 5)
        del lines[at : at + count]
        return "".join(lines).encode(), f"deleted {count} lines at line {at + 1}", injected
    if how == "duplicate":
        at = rng.randrange(len(lines))
        count = rng.randint(1, 12)
        times = rng.choice((1, 2, 50))
        lines[at:at] = lines[at : at + count] * times
        return "".join(lines).encode(), f"duplicated {count} lines at line {at + 1} x{times}", injected
    if how == "truncate":
        at = rng.randrange(len(data))
        return data[:at], f"truncated at byte {at}", injected
    if how == "rrule":
        rule = rng.choice(GARBAGE_RRULES)
        at = _pick_line(rng, lines, "RRULE")
        if at is None:
            at = _pick_line(rng, lines, "DTSTART")
            if at is None:
                return data + b"RRULE:" + rule.encode() + b"\r\n", f"appended RRULE:{rule[:60]}", injected
            lines.insert(at + 1, f"RRULE:{rule}\r\n")
        else:
            lines[at] = f"RRULE:{rule}\r\n"
        return "".join(lines).encode(), f"RRULE:{rule[:80]}", injected
    if how == "dates":
        year = rng.choice(("0001", "9999", "0000", "1900", "2038"))
        prefix = rng.choice(("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE", "DTSTAMP", "RRULE"))
        changed = 0
        for i, line in enumerate(lines):
            if line.upper().startswith(prefix) and (changed == 0 or rng.random() < 0.5):
                lines[i] = re.sub(r"\b\d{4}(\d{4}(T\d{6}Z?)?)\b", year + r"\1", line)
                changed += 1
        return "".join(lines).encode(), f"{prefix} in year {year} ({changed} lines)", injected
    if how == "text":
        prefix = rng.choice(("SUMMARY", "ATTENDEE", "ORGANIZER", "DESCRIPTION", "LOCATION", "UID"))
        at = _pick_line(rng, lines, prefix)
        junk = _hostile(rng)
        if at is None:
            at = _pick_line(rng, lines, "DTSTART") or 0
            lines.insert(at + 1, f"{prefix}:{junk}\r\n")
        else:
            line = lines[at].rstrip("\r\n")
            cut = rng.randrange(len(line) + 1)
            lines[at] = line[:cut] + junk + line[cut:] + "\r\n"
        return "".join(lines).encode("utf-8", "surrogatepass"), f"{prefix}: {junk[:30]!r}...", injected
    if how == "nesting":
        depth = rng.choice((100, 1000, 20_000))
        name = rng.choice(("VEVENT", "VCALENDAR", "X-FUZZ", "VALARM"))
        balanced = rng.random() < 0.7
        block = f"BEGIN:{name}\r\n" * depth + (f"END:{name}\r\n" * depth if balanced else "")
        at = _pick_line(rng, lines, "BEGIN:VEVENT") or 1
        lines.insert(at, block)
        return "".join(lines).encode(), f"{depth} nested BEGIN:{name} (balanced={balanced})", injected
    if how == "tzid":
        zone = rng.choice(
            ("Mars/Olympus_Mons", "", "UTC+99", "../../../etc/passwd", "X" * 5000, "Europe/Berlin\x00")
        )
        new = [re.sub(r"TZID=[^:;]*", f"TZID={zone}", line) for line in lines]
        if rng.random() < 0.5:  # also drop the VTIMEZONEs
            joined = re.sub(r"BEGIN:VTIMEZONE.*?END:VTIMEZONE\r?\n", "", "".join(new), flags=re.S)
        else:
            joined = "".join(new)
        return joined.encode(), f"TZID={zone[:30]!r}", injected
    if how == "many":
        events = re.findall(r"BEGIN:VEVENT.*?END:VEVENT\r?\n", text, flags=re.S)
        if not events:
            return data + b"\x00", "appended NUL", injected
        event = rng.choice(events)
        count = rng.choice((500, 3000))
        copies = [re.sub(r"UID:[^\r\n]*", f"UID:fuzz-{i}@{DOMAIN}", event) for i in range(count)]
        joined = text.replace("END:VCALENDAR", "".join(copies) + "END:VCALENDAR", 1)
        return joined.encode(), f"{count} copies of one VEVENT with new UIDs", injected
    if how == "encoding":
        choice = rng.choice(("utf-16", "bom", "latin-1", "lf", "cr", "fold"))
        if choice == "utf-16":
            return text.encode("utf-16"), "re-encoded as UTF-16", injected
        if choice == "bom":
            return b"\xef\xbb\xbf" + data, "UTF-8 BOM", injected
        if choice == "latin-1":
            return (
                text.replace("SUMMARY:", "SUMMARY:Caf\xe9 ").encode("latin-1", "replace"),
                "latin-1",
                injected,
            )
        if choice == "lf":
            return text.replace("\r\n", "\n").encode(), "LF line ends", injected
        if choice == "cr":
            return text.replace("\r\n", "\r").encode(), "CR line ends", injected
        return re.sub(r"(.{7})", "\\1\r\n ", text).encode(), "folded every 7 characters", injected
    # attendee: add or swap a roster attendee into one event
    local = rng.choice(("maya", "omar", "priya", "lena", "sam", "zara", "nobody"))
    email = f"{local}@{DOMAIN}"
    injected.add(email)
    at = _pick_line(rng, lines, "ATTENDEE") or _pick_line(rng, lines, "ORGANIZER")
    line = f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{email}\r\n"
    if at is None:
        return data, "no attendee to change", injected
    if rng.random() < 0.5:
        lines.insert(at, line)
    else:
        lines[at] = line
    return "".join(lines).encode(), f"attendee {email} added or swapped in", injected


ROSTER_NAMES = (
    f"Eve\r\n{INJECTED_HEADER}: yes\r\nBcc: attacker@evil.test",
    "Eve\nMallory",
    "A\x00B",
    "\x1b[2J\x1b[31mRed",
    "\u202eevil\u202c",
    "=cmd|' /C calc'!A0",
    "X" * 100_000,
    "",
    " ",
    "Ünïcødé Ñame 😀",
)


def _roster_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _csv_line(row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(row)
    return out.getvalue()


def mutate_roster(rng: random.Random, text: str) -> tuple[bytes, Mutation]:
    rows = _roster_rows(text)
    header, body = rows[0], rows[1:]
    lines = text.splitlines(keepends=True)
    index = rng.randrange(len(body))
    row = body[index]
    person = row[0].lower()
    manager = row[2].lower()
    reports = {r[0].lower() for r in body if r[2].lower() == person}
    mutation = Mutation("roster", "", owner=person, named={person, manager, *reports}, exit2_ok=True)
    how = rng.choice(
        (
            "quote",
            "quote",
            "columns",
            "name",
            "name",
            "duplicate",
            "cadence",
            "cadence",
            "bom",
            "encoding",
            "manager",
            "chain",
            "delete",
            "long",
            "email",
            "flip",
        )
    )
    line_no = index + 1  # lines[0] is the header
    new_line: str | None = None
    if how == "quote":
        line = lines[line_no]
        cut = rng.randrange(len(line.rstrip("\n")) + 1)
        new_line = line[:cut] + '"' + line[cut:]
        mutation.what = f"unbalanced quote in line {line_no + 1} at column {cut}"
    elif how == "columns":
        if rng.random() < 0.5:
            new_line = _csv_line([*row, *["extra"] * rng.randint(1, 50)])
            mutation.what = f"extra columns in line {line_no + 1}"
        else:
            keep = rng.randrange(len(row))
            new_line = _csv_line(row[:keep])
            mutation.what = f"line {line_no + 1} cut to {keep} columns"
    elif how == "name":
        name = rng.choice(ROSTER_NAMES)
        raw = rng.random() < 0.3
        new_row = [row[0], name, *row[2:]]
        new_line = ",".join(new_row) + "\n" if raw else _csv_line(new_row)
        mutation.what = f"name {name[:40]!r} in line {line_no + 1} ({'unquoted' if raw else 'quoted'})"
    elif how == "duplicate":
        other = [*row]
        if rng.random() < 0.5:
            other[2] = rng.choice(body)[0]
        mutation.named.add(other[2].lower())
        new_line = lines[line_no] + _csv_line(other)
        mutation.what = f"line {line_no + 1} duplicated (manager {other[2] or '-'})"
    elif how == "cadence":
        value = rng.choice(
            ("1" + "0" * 30, "-1", "0", "1.5", "nan", "inf", "999999999", "1e308", "0x10", "٣")
        )
        new_line = _csv_line([*row[:3], value, *row[4:]])
        mutation.what = f"cadence_days {value!r} in line {line_no + 1}"
    elif how == "bom":
        mutation.owner, mutation.named = None, set()
        return b"\xef\xbb\xbf" + text.encode(), Mutation("roster", "UTF-8 BOM", exit2_ok=True)
    elif how == "encoding":
        choice = rng.choice(("utf-16", "latin-1", "crlf", "cr", "utf-32"))
        if choice == "latin-1":
            new_row = [row[0], row[1] + " Müller", *row[2:]]
            lines[line_no] = _csv_line(new_row)
            mutation.what = f"latin-1 file, a non-ASCII name in line {line_no + 1}"
            return "".join(lines).encode("latin-1"), mutation
        whole = Mutation("roster", f"whole file {choice}", exit2_ok=True)
        if choice == "crlf":
            return text.replace("\n", "\r\n").encode(), whole
        if choice == "cr":
            return text.replace("\n", "\r").encode(), whole
        return text.encode(choice), whole
    elif how == "manager":
        choice = rng.choice((person, *(reports or {person}), f"ghost@{DOMAIN}", "not an email", "x" * 5000))
        mutation.named.add(choice.lower())
        new_line = _csv_line([row[0], row[1], choice, *row[3:]])
        mutation.what = f"manager {choice[:40]!r} in line {line_no + 1}"
    elif how == "chain":
        depth = rng.choice((50, 500, 3000))
        chain = [f"deep{i}@{DOMAIN}" for i in range(depth)]
        mutation.named.update(chain)
        boss = person
        extra = []
        for email in chain:
            extra.append(_csv_line([email, f"Deep {email[:-10]}", boss, *[""] * (len(header) - 3)]))
            boss = email
        new_line = lines[line_no] + "".join(extra)
        mutation.what = f"a chain of {depth} reports below line {line_no + 1}"
    elif how == "delete":
        new_line = ""
        mutation.what = f"line {line_no + 1} deleted"
    elif how == "long":
        new_line = lines[line_no].rstrip("\n") + "," * rng.choice((1000, 100_000)) + "\n"
        mutation.what = f"line {line_no + 1} with a very long tail of commas"
    elif how == "email":
        choice = rng.choice((f" {person.upper()} ", person + "\x00", "", person.replace("@", "@@")))
        mutation.named.add(choice.strip().lower())
        new_line = _csv_line([choice, *row[1:]])
        mutation.what = f"email {choice!r} in line {line_no + 1}"
    else:
        flipped = bytearray(lines[line_no].encode())
        at = rng.randrange(len(flipped))
        flipped[at] ^= 1 << rng.randrange(8)
        new_line = flipped.decode("utf-8", "replace")
        mutation.what = f"bit flip in line {line_no + 1}"
    # every cell of the new line may be someone's email now (a bit flip makes sam@acme.dest)
    mutation.named |= {cell.strip().lower() for row in _roster_rows(new_line or "") for cell in row}
    lines[line_no] = new_line or ""
    return "".join(lines).encode("utf-8", "surrogatepass"), mutation


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_dumps(settings: dict[str, Any]) -> str:
    """Enough TOML for calsync's configs: top-level scalars, tables and arrays of tables."""
    out = [
        f"{_toml_key(k)} = {_toml_value(v)}" for k, v in settings.items() if not isinstance(v, dict | list)
    ]
    out += [
        f"{_toml_key(k)} = {_toml_value(v)}"
        for k, v in settings.items()
        if isinstance(v, list) and not (v and all(isinstance(t, dict) for t in v))
    ]
    for name, section in settings.items():
        if isinstance(section, dict):
            out.append(f"[{_toml_key(name)}]")
            out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in section.items()]
        elif isinstance(section, list) and section and all(isinstance(t, dict) for t in section):
            for table in section:
                out.append(f"[[{_toml_key(name)}]]")
                out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(out) + "\n"


HOSTILE_NUMBERS: tuple[Any, ...] = (
    10**100,
    2**63 - 1,
    -(2**63),
    -1,
    0,
    1.5,
    1e308,
    float("inf"),
    float("nan"),
    True,
    "14",
    [],
    {},
)
#: The tables whose settings do not change the report's pairs.
NO_PAIR_TABLES = ("agenda", "digest", "smtp", "state", "daemon")


def mutate_config(rng: random.Random, text: str) -> tuple[bytes, Mutation, dict[str, str]]:
    """A mutated config, what may change, and extra environment variables for the command."""
    settings = tomllib.loads(text)
    env: dict[str, str] = {}
    how = rng.choice(
        ("number", "number", "nesting", "type", "path", "secret", "secret", "text", "unknown", "zone")
    )
    table = "?"
    if how == "number":
        numeric = [
            (t, k)
            for t, s in settings.items()
            if isinstance(s, dict)
            for k, v in s.items()
            if isinstance(v, int) and not isinstance(v, bool)
        ] + [
            ("cadence", "default_days"),
            ("report", "lookback_days"),
            ("digest", "hour"),
            ("agenda", "lead_days"),
        ]
        table, key = rng.choice(numeric)
        value = rng.choice(HOSTILE_NUMBERS)
        settings.setdefault(table, {})[key] = value
        what = f"[{table}] {key} = {_toml_value(value)[:40]}"
        data = toml_dumps(settings)
    elif how == "nesting":
        depth = rng.choice((100, 1000, 10_000, 100_000))
        table = rng.choice(("report", "digest", "org"))
        arrays = rng.random() < 0.5
        value = "[" * depth + "]" * depth if arrays else "{a = " * depth + "1" + "}" * depth
        data = toml_dumps(settings).replace(f"[{table}]\n", f"[{table}]\nfuzz = {value}\n", 1)
        what = f"[{table}] a value nested {depth} deep"
    elif how == "type":
        choices: list[tuple[str, str, Any]] = [
            ("org", "domains", DOMAIN),
            ("org", "domains", [1, 2]),
            ("org", "timezone", 5),
            ("org", "roster", 42),
            ("org", "roster", ["org.csv"]),
            ("detect", "ignore_attendees", "x"),
            ("cadence", "default_days", "fourteen"),
            ("report", "lookahead_days", [90]),
            ("digest", "day", 3),
            ("digest", "delivery", True),
            ("agenda", "directory", {"a": 1}),
            ("org", "holidays", ["DE-BE", 7]),
        ]
        table, key, value = rng.choice(choices)
        if rng.random() < 0.2:
            settings[table] = rng.choice(("x", 5, [1]))
            what = f"[{table}] is not a table"
        else:
            settings.setdefault(table, {})[key] = value
            what = f"[{table}] {key} = {_toml_value(value)[:40]}"
        if rng.random() < 0.2:
            settings["sources"] = rng.choice(
                ({}, "calendars", [1], [{"type": "ics"}], [{"type": "ics", "path": 3}])
            )
            table, what = "sources", f"sources = {settings['sources']!r}"
        data = toml_dumps(settings)
    elif how == "path":
        long = rng.choice(
            (
                "a/" * 5000,
                "x" * 100_000,
                "/" + "d" * 4096,
                "org.csv\x00.txt",
                "~nobody/x",
                "/dev/zero",
                "/proc/self/mem",
                ".",
            )
        )
        table, key = rng.choice(
            (
                ("org", "roster"),
                ("state", "path"),
                ("agenda", "directory"),
                ("digest", "outbox"),
                ("sources", "path"),
            )
        )
        if table == "sources":
            settings["sources"][0]["path"] = long
        else:
            settings.setdefault(table, {})[key] = long
        what = f"[{table}] {key} = {long[:30]!r} ({len(long)} characters)"
        data = toml_dumps(settings)
    elif how == "secret":
        env[SECRET_VARIABLE] = CANARY
        table = rng.choice(("smtp", "sources"))
        value = rng.choice((CANARY, SECRET_VARIABLE, f"{CANARY} ", f"${SECRET_VARIABLE}"))
        if table == "smtp":
            settings["smtp"] = {"host": "127.0.0.1", "port": 1, "username": "u", "password_env": value}
            settings.setdefault("digest", {})["delivery"] = "smtp"
        else:
            settings["sources"].append(
                {
                    "type": "microsoft",
                    "name": "m365",
                    "tenant": "t",
                    "client_id": "c",
                    "client_secret_env": value,
                    "mailboxes": [f"maya@{DOMAIN}"],
                    "authority_host": "https://127.0.0.1:1",
                    "graph_endpoint": "https://127.0.0.1:1/v1.0",
                    "timeout_seconds": 1,
                }
            )
        what = f"[{table}] *_env = {value!r} (the secret is {CANARY!r})"
        data = toml_dumps(settings)
    elif how == "text":
        raw = toml_dumps(settings)
        choice = rng.choice(("flip", "truncate", "dupkey", "nul", "bom"))
        if choice == "flip":
            buf = bytearray(raw.encode())
            at = rng.randrange(len(buf))
            buf[at] ^= 1 << rng.randrange(8)
            data = buf.decode("utf-8", "replace")
        elif choice == "truncate":
            data = raw[: rng.randrange(len(raw))]
        elif choice == "dupkey":
            data = raw.replace("[cadence]\n", "[cadence]\ndefault_days = 1\ndefault_days = 2\n")
        elif choice == "nul":
            data = raw.replace("[report]", "[report]\x00")
        else:
            data = "\ufeff" + raw
        table, what = "*", f"TOML text: {choice}"
    elif how == "unknown":
        table = rng.choice(("report", "digest", "fuzz"))
        settings.setdefault(table, {})["no_such_key_" + "x" * rng.choice((1, 10_000))] = 1
        what = f"[{table}] an unknown key"
        data = toml_dumps(settings)
    else:
        zone = rng.choice(("Mars/Olympus", "", "../../etc/localtime", "UTC\x00", "X" * 10_000))
        table = "org"
        settings["org"]["timezone"] = zone
        what = f"[org] timezone = {zone[:30]!r}"
        data = toml_dumps(settings)
    mutation = Mutation("config", what, any_pair=table not in NO_PAIR_TABLES, exit2_ok=True)
    return data.encode("utf-8", "surrogatepass"), mutation, env


# ------------------------------------------------------------------------------------ provider events


def _hostile_time(rng: random.Random, provider: str) -> Any:
    zone = rng.choice(("Europe/Berlin", "Mars/Olympus", "", "W. Europe Standard Time", "X" * 1000))
    stamp = rng.choice(
        (
            "0001-01-01T00:00:00",
            "9999-12-31T23:59:59",
            "2026-02-30T10:00:00",
            "not a date",
            "2026-11-23T10:00:00" + "0" * 500,
            "",
        )
    )
    if provider == "google":
        if rng.random() < 0.3:
            return {"date": rng.choice(("0001-01-01", "9999-12-31", "2026-13-01", ""))}
        offset = rng.choice(("Z", "+02:00", "+99:00", ""))
        return {"dateTime": stamp + offset, "timeZone": zone}
    return {"dateTime": stamp + ".0000000", "timeZone": zone}


def mutate_google_event(rng: random.Random, event: dict[str, Any]) -> tuple[dict[str, Any], str, set[str]]:
    event = json.loads(json.dumps(event))
    injected: set[str] = set()
    how = rng.choice(
        ("summary", "attendees", "time", "time", "recurrence", "recurrence", "status", "organizer", "many")
    )
    if how == "summary":
        event["summary"] = _hostile(rng)
        what = f"summary {event['summary'][:30]!r}"
    elif how == "attendees":
        choice = rng.choice(("many", "control", "noemail", "dupe", "inject", "response"))
        attendees = event.setdefault("attendees", [])
        if choice == "many":
            attendees += [{"email": f"guest{i}@example.com"} for i in range(rng.choice((50, 5000)))]
        elif choice == "control":
            for a in attendees:
                a["email"] = a.get("email", "") + _hostile(rng)[:200]
                a["displayName"] = _hostile(rng)
        elif choice == "noemail":
            for a in attendees:
                a.pop("email", None)
        elif choice == "dupe":
            attendees += attendees * 20
        elif choice == "inject":
            email = f"{rng.choice(('maya', 'priya', 'sam'))}@{DOMAIN}"
            injected.add(email)
            attendees.append({"email": email, "responseStatus": "accepted"})
        else:
            for a in attendees:
                a["responseStatus"] = rng.choice(("bogus", "", "declined", "needsAction"))
        what = f"attendees: {choice}"
    elif how == "time":
        key = rng.choice(("start", "end", "originalStartTime"))
        event[key] = _hostile_time(rng, "google")
        what = f"{key} = {json.dumps(event[key])[:80]}"
    elif how == "recurrence":
        rules = [f"RRULE:{rng.choice(GARBAGE_RRULES)}"]
        if rng.random() < 0.3:
            rules.append(
                "EXDATE:" + rng.choice(("garbage", "00010101T000000Z", ",".join(["20261123T100000Z"] * 1000)))
            )
        event["recurrence"] = rules
        what = f"recurrence {rules[0][:70]}"
    elif how == "status":
        event["status"] = rng.choice(("tentative", "bogus", "", "cancelled"))
        event["eventType"] = rng.choice(("default", "outOfOffice", "focusTime", "workingLocation"))
        what = f"status {event['status']!r}, eventType {event['eventType']!r}"
    elif how == "organizer":
        event["organizer"] = rng.choice(
            ({}, {"email": _hostile(rng)[:500]}, {"email": f"ghost@{DOMAIN}", "self": True})
        )
        what = f"organizer {json.dumps(event['organizer'])[:60]}"
    else:
        event["_copies"] = rng.choice((200, 2000))
        what = f"{event['_copies']} copies with new ids"
    return event, what, injected


def mutate_graph_event(rng: random.Random, event: dict[str, Any]) -> tuple[dict[str, Any], str, set[str]]:
    """Top-level changes for FakeGraph.patch_event."""
    injected: set[str] = set()
    how = rng.choice(("subject", "attendees", "time", "time", "showAs", "organizer", "recurrence", "cancel"))
    changes: dict[str, Any] = {}
    if how == "subject":
        changes["subject"] = _hostile(rng)
    elif how == "attendees":
        attendees = json.loads(json.dumps(event.get("attendees", [])))
        choice = rng.choice(("many", "control", "noaddress", "inject", "response"))
        if choice == "many":
            attendees += [
                {"type": "required", "emailAddress": {"address": f"guest{i}@example.com", "name": "G"}}
                for i in range(rng.choice((50, 3000)))
            ]
        elif choice == "control":
            for a in attendees:
                a["emailAddress"] = {"address": _hostile(rng)[:300], "name": _hostile(rng)}
        elif choice == "noaddress":
            for a in attendees:
                a["emailAddress"] = {}
        elif choice == "inject":
            email = f"{rng.choice(('maya', 'priya', 'sam'))}@{DOMAIN}"
            injected.add(email)
            attendees.append({"type": "required", "emailAddress": {"address": email, "name": "X"}})
        else:
            for a in attendees:
                a["status"] = {"response": rng.choice(("bogus", "", "declined", "none"))}
        changes["attendees"] = attendees
    elif how == "time":
        key = rng.choice(("start", "end"))
        changes[key] = _hostile_time(rng, "graph")
    elif how == "showAs":
        changes["showAs"] = rng.choice(("oof", "bogus", "", "unknown", "workingElsewhere"))
    elif how == "organizer":
        changes["organizer"] = rng.choice(({}, {"emailAddress": {"address": _hostile(rng)[:300]}}))
    elif how == "recurrence":
        changes["recurrence"] = {
            "pattern": {
                "type": rng.choice(("daily", "weekly", "absoluteMonthly", "bogus")),
                "interval": rng.choice((0, 1, -1, 10**12)),
                "daysOfWeek": ["monday"],
                "dayOfMonth": rng.choice((1, 31, 0)),
                "firstDayOfWeek": "sunday",
            },
            "range": rng.choice(
                (
                    {"type": "noEnd", "startDate": "2026-01-05"},
                    {"type": "endDate", "startDate": "0001-01-01", "endDate": "9999-12-31"},
                    {"type": "numbered", "startDate": "2026-01-05", "numberOfOccurrences": 10**9},
                )
            ),
        }
    else:
        changes["isCancelled"] = rng.choice((True, "yes", None))
    return changes, f"{how}: {json.dumps(changes)[:90]}", injected


# ---------------------------------------------------------------------------------------------- running


@dataclass
class Command:
    name: str
    exit: int | None
    seconds: float
    rss_mb: float
    stdout: str
    stderr: str
    cpu: float = 0.0  # its user + system seconds: far below ``seconds`` when it waited (on a fake)


@dataclass
class Outcome:
    seed: int
    number: int
    kind: str
    what: str
    commands: list[Command] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: str | None = None  # the fake refused every mutation tried

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.commands)

    @property
    def rss_mb(self) -> float:
        return max((c.rss_mb for c in self.commands), default=0.0)

    def rerun(self) -> str:
        return f"python -m tests.fuzz --seed {self.seed} --case {self.number}"

    def describe(self) -> str:
        exits = ", ".join(
            f"{c.name} exit {c.exit} in {c.seconds:.1f}s (cpu {c.cpu:.1f}s) {c.rss_mb:.0f}MB"
            for c in self.commands
        )
        lines = [f"seed {self.seed} case {self.number} [{self.kind}] {self.what} ({exits})"]
        lines += [f"    {p}" for p in self.problems]
        lines.append(f"    re-run: {self.rerun()}")
        return "\n".join(lines)


def _limits() -> None:  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


POLL = 0.02  # seconds between two looks at a command's peak RSS


def _peak_rss_kb(pid: int) -> int:
    """The command's peak RSS so far (VmHWM), once it runs calsync.

    Not ``ru_maxrss`` from wait4: Linux carries the forking process's high-water mark into it at exec,
    so it would be this harness's size (which grows with the fakes it serves). VmHWM belongs to the
    new program's own memory and never goes down, so a look every :data:`POLL` seconds misses at most
    a peak in the command's very last moment."""
    try:
        if b"\0-m\0calsync\0" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return 0  # not exec'd yet: still a copy of this process
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def run_command(
    name: str, args: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> Command:
    """``python -m calsync ARGS`` with the limits, killed after ``timeout`` seconds; its own peak RSS."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
    # glibc reserves 64 MB of address space per thread arena: without a cap, the threads of a sync hit
    # RLIMIT_AS long before they use any memory
    environ.update(NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1", MALLOC_ARENA_MAX="2", **(env or {}))
    out_path, err_path = cwd / f".{name}.out", cwd / f".{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-m", "calsync", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=cwd,
            env=environ,
            preexec_fn=_limits,
            start_new_session=True,
        )
        peak_kb, timed_out = 0, False
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, _peak_rss_kb(child.pid))
            if not timed_out and time.monotonic() - start > timeout:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
            time.sleep(POLL)
        seconds = time.monotonic() - start
        child.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text("utf-8", "replace")
    stderr = err_path.read_text("utf-8", "replace")
    code = None if timed_out else child.returncode
    return Command(name, code, seconds, peak_kb / 1024, stdout, stderr, usage.ru_utime + usage.ru_stime)


def _pairs(report_json: str) -> dict[str, dict[str, Any]]:
    report = json.loads(report_json)
    return {json.dumps(sorted(p["people"])): p for p in report["pairs"]}


@dataclass
class Baselines:
    """The unmutated inputs and the pairs of their reports, per provider."""

    template: Path  # the demo directory
    pairs: dict[str, dict[str, dict[str, Any]]]  # "ics", "google", "graph" -> pairs by people
    calendars: dict[str, set[str]]  # ICS file name -> the roster emails named in it


def report_args(config: str) -> list[str]:
    return ["report", "-c", config, "--as-of", AS_OF.isoformat(), "--format", "json"]


@contextlib.contextmanager
def served(kind: str, case_dir: Path) -> Iterator[tuple[Any, str, list[str]]]:
    """A fresh fake (Google or Graph) holding the demo org, the config file's name, and its calendars."""
    from tests.demo_served import google_config, load_google_demo, load_graph_demo, microsoft_config
    from tests.fakes.google import FakeGoogle
    from tests.fakes.graph import FakeGraph

    if kind == "google":
        with FakeGoogle() as google:
            owners = load_google_demo(google, AS_OF)
            yield google, google_config(google, case_dir, owners, "org.csv").name, owners
        return
    with FakeGraph() as graph:
        mailboxes = load_graph_demo(graph, case_dir / "org.csv", AS_OF)
        config = microsoft_config(graph, case_dir, mailboxes, "org.csv", CLIENT_ID, GRAPH_SECRET)
        yield graph, config.name, mailboxes


def prepare(work: Path, timeout: float = 120) -> Baselines:
    """The demo, and the report of each provider on the unmutated inputs (each must be produced)."""
    from calsync.demo import write_demo

    template = work / "template"
    write_demo(template, AS_OF)
    calendars = {
        p.name: emails_in(p.read_text("utf-8", "replace")) for p in (template / "calendars").glob("*.ics")
    }
    pairs: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in ("ics", "google", "graph"):
        case_dir = work / f"baseline-{kind}"
        shutil.copytree(template, case_dir)
        with contextlib.ExitStack() as stack:
            if kind == "ics":
                config = "calsync.toml"
            else:
                _, config, _ = stack.enter_context(served(kind, case_dir))
            result = run_command("report", report_args(config), case_dir, timeout)
        if result.exit not in (0, 3):
            raise RuntimeError(f"the unmutated {kind} report failed (exit {result.exit}):\n{result.stderr}")
        pairs[kind] = _pairs(result.stdout)
        shutil.rmtree(case_dir, ignore_errors=True)
    return Baselines(template, pairs, calendars)


def case_kind(number: int) -> str:
    return KINDS[number % len(KINDS)]


def _check(
    outcome: Outcome,
    command: Command,
    mutation: Mutation | None,
    expected: dict[str, dict[str, Any]] | None,
    timeout: float,
) -> None:
    problems = outcome.problems
    name = command.name
    if command.exit is None:
        problems.append(f"{name}: no answer within {timeout:.0f}s (killed)")
    elif command.exit not in (0, 2, 3):
        problems.append(f"{name}: exit {command.exit}")
    if "Traceback (most recent call last)" in command.stderr:
        last = [line for line in command.stderr.strip().splitlines() if line.strip()][-1:]
        problems.append(f"{name}: Python traceback on stderr: {last[0][:300] if last else ''}")
    elif command.exit == 1:
        problems.append(f"{name}: internal error: {command.stderr.strip()[-300:]}")
    if command.rss_mb > MAX_RSS_MB:
        problems.append(f"{name}: peak RSS {command.rss_mb:.0f} MB (limit {MAX_RSS_MB} MB)")
    if "MemoryError" in command.stderr:
        problems.append(f"{name}: MemoryError under the {MEMORY_LIMIT >> 20} MB address-space limit")
    if CANARY in command.stdout or CANARY in command.stderr:
        problems.append(f"{name}: the secret {CANARY!r} is shown in its output")
    if command.exit == 2 and not command.stderr.strip():
        problems.append(f"{name}: exit 2 without a word on stderr")
    if mutation is None or expected is None or name != "report":
        return
    if command.exit == 2 and not mutation.exit2_ok:
        problems.append(
            f"report: exit 2, no report at all, though only {mutation.owner}'s calendar was mutated: "
            + command.stderr.strip()[-300:]
        )
    if command.exit not in (0, 3):
        return
    try:
        got = _pairs(command.stdout)
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(f"report: exit {command.exit} but stdout is not the JSON report ({exc})")
        return
    for key, pair in expected.items():
        if mutation.may_change(pair["people"]):
            continue
        if key not in got:
            problems.append(f"report: the pair {key} of unmutated inputs is gone")
        elif got[key] != pair:
            changed = sorted(k for k in pair.keys() | got[key].keys() if pair.get(k) != got[key].get(k))
            detail = "; ".join(f"{k}: {pair.get(k)!r} -> {got[key].get(k)!r}"[:200] for k in changed[:3])
            problems.append(f"report: the pair {key} of unmutated inputs changed: {detail}")
    for key, pair in got.items():
        if key not in expected and not mutation.may_change(pair["people"]):
            problems.append(f"report: a new pair {key} of unmutated inputs ({pair.get('status')})")


def _check_preview(outcome: Outcome, case_dir: Path) -> None:
    preview = case_dir / "preview.eml"
    if not preview.exists():
        return
    message = BytesParser(policy=policy.compat32).parsebytes(preview.read_bytes())
    names = {k.lower() for k in message}
    if INJECTED_HEADER.lower() in names or "bcc" in names:
        outcome.problems.append("digest --preview: a name in the roster injected a header into the message")
    for key, value in message.items():
        if CONTROL.search(
            str(value).replace("\r\n ", "").replace("\r\n\t", "").replace("\n ", "").replace("\n\t", "")
        ):
            outcome.problems.append(
                f"digest --preview: a control character in the {key} header: {str(value)[:80]!r}"
            )


def run_case(
    seed: int, number: int, base: Baselines, work: Path, timeout: float = CASE_TIMEOUT, keep: bool = False
) -> Outcome:
    rng = random.Random(f"{seed}:{number}")
    kind = case_kind(number)
    case_dir = work / f"case-{number}"
    shutil.rmtree(case_dir, ignore_errors=True)
    shutil.copytree(base.template, case_dir)
    outcome = Outcome(seed, number, kind, "")
    env: dict[str, str] = {}
    try:
        if kind in ("google", "graph"):
            _run_provider_case(rng, kind, outcome, base, case_dir, timeout)
        else:
            if kind == "ics":
                name = rng.choice(sorted(base.calendars))
                path = case_dir / "calendars" / name
                data, what, injected = mutate_ics(rng, path.read_bytes())
                path.write_bytes(data)
                injected |= emails_in(data.decode("utf-8", "replace"))  # a flip may make a roster email
                owner = name.removesuffix(".ics")
                owner = owner if "@" in owner else f"{owner}@{DOMAIN}"
                mutation = Mutation(
                    "ics", f"{name}: {what}", owner=owner, named={owner} | base.calendars[name] | injected
                )
            elif kind == "roster":
                path = case_dir / "org.csv"
                data, mutation = mutate_roster(rng, path.read_text())
                path.write_bytes(data)
            else:
                path = case_dir / "calsync.toml"
                data, mutation, env = mutate_config(rng, path.read_text())
                path.write_bytes(data)
            outcome.what = mutation.what
            report = run_command("report", report_args("calsync.toml"), case_dir, timeout, env)
            outcome.commands.append(report)
            _check(outcome, report, mutation, base.pairs["ics"], timeout)
            digest = rng.random()
            if digest < 0.4 or (kind == "roster" and "name" in mutation.what) or "chain" in mutation.what:
                args = ["digest", "-c", "calsync.toml", "--now", NOW]
                if rng.random() < 0.5 or "name" in mutation.what:
                    args += ["--preview", f"maya@{DOMAIN}", "-o", "preview.eml"]
                command = run_command("digest", args, case_dir, timeout, env)
                outcome.commands.append(command)
                _check(outcome, command, mutation, None, timeout)
                if "--preview" in args:
                    _check_preview(outcome, case_dir)
                elif CONTROL.search(command.stdout):
                    outcome.problems.append(
                        "digest: a raw control character in its listing (a terminal escape)"
                    )
    except Exception as exc:  # the harness's own failure is a failed case too, never a lost one
        outcome.problems.append(f"harness: {type(exc).__name__}: {exc}")
    if not outcome.problems:
        for command in outcome.commands:  # a long campaign keeps only the figures of a passed case
            command.stdout = command.stderr = ""
        if not keep:
            shutil.rmtree(case_dir, ignore_errors=True)
    return outcome


def _run_provider_case(
    rng: random.Random, kind: str, outcome: Outcome, base: Baselines, case_dir: Path, timeout: float
) -> None:
    with served(kind, case_dir) as (fake, config, owners):
        mutation = None
        for _attempt in range(8):
            owner = rng.choice(owners)
            events = fake.events(owner)
            if not events:
                continue
            event = rng.choice(events)
            named = {owner} | emails_in(json.dumps(event))
            try:
                if kind == "google":
                    changed, what, injected = mutate_google_event(rng, event)
                    injected |= emails_in(json.dumps(changed))
                    copies = changed.pop("_copies", 0)
                    if copies:
                        base_event = {k: v for k, v in changed.items() if k not in ("id", "etag", "iCalUID")}
                        fake.put_events(
                            owner, [{**base_event, "iCalUID": f"fuzz-{i}@{DOMAIN}"} for i in range(copies)]
                        )
                    else:
                        fake.put_event(owner, changed)
                else:
                    changes, what, injected = mutate_graph_event(rng, event)
                    fake.patch_event(owner, event["id"], changes)
                    injected |= emails_in(json.dumps(changes))
            except Exception as exc:  # the fake is not under test: it may refuse or choke on anything
                outcome.skipped = f"the fake refused: {type(exc).__name__}: {exc}"[:200]
                continue
            outcome.skipped = None
            mutation = Mutation(
                kind,
                f"{owner} event {event.get('iCalUID') or event.get('iCalUId')}: {what}",
                owner=owner,
                named=named | injected,
            )
            break
        if mutation is None:
            outcome.what = outcome.skipped or "no event to mutate"
            return
        outcome.what = mutation.what
        report = run_command("report", report_args(config), case_dir, timeout)
    outcome.commands.append(report)
    _check(outcome, report, mutation, base.pairs[kind], timeout)


# --------------------------------------------------------------------------------------------- campaign


@dataclass
class Summary:
    seed: int
    outcomes: list[Outcome]
    seconds: float
    interrupted: bool = False

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.problems]

    def text(self) -> str:
        kinds = Counter(o.kind for o in self.outcomes)
        lines = [f"calsync fuzz: seed {self.seed}, {len(self.outcomes)} cases in {self.seconds:.0f}s"]
        if self.interrupted:
            lines[0] += " (interrupted: the cases in flight were not counted)"
        for kind in KINDS:
            exits = Counter(
                f"{c.name}={c.exit if c.exit is not None else 'timeout'}"
                for o in self.outcomes
                if o.kind == kind
                for c in o.commands
            )
            skipped = sum(1 for o in self.outcomes if o.kind == kind and o.skipped)
            failed = sum(1 for o in self.outcomes if o.kind == kind and o.problems)
            lines.append(
                f"  {kind:7} {kinds[kind]:5} cases, {failed} failed, {skipped} refused by the fake; exits: "
                + ", ".join(f"{k}: {v}" for k, v in sorted(exits.items()))
            )
        commands = [(c, o) for o in self.outcomes for c in o.commands]
        if commands:
            rss, rss_case = max(((c.rss_mb, o) for c, o in commands), key=lambda t: t[0])
            slow, slow_case = max(((c.seconds, o) for c, o in commands), key=lambda t: t[0])
            lines.append(
                f"  max RSS {rss:.0f} MB: case {rss_case.number} [{rss_case.kind}] {rss_case.what[:100]}"
            )
            lines.append(
                f"  slowest {slow:.1f}s: case {slow_case.number} [{slow_case.kind}] {slow_case.what[:100]}"
            )
        lines.append(f"  {len(self.failures)} failing cases" + (":" if self.failures else ""))
        lines += [o.describe() for o in self.failures]
        return "\n".join(lines)


def outcome_to_json(outcome: Outcome) -> dict[str, Any]:
    return dataclasses.asdict(outcome)


def outcome_from_json(data: dict[str, Any]) -> Outcome:
    commands = [Command(**c) for c in data.get("commands", [])]
    return Outcome(**{**data, "commands": commands})


BASELINES = "baselines.json"
#: A worker restarts after this many cases: what the fakes leave behind cannot pile up
CASES_PER_WORKER = 200


def save_baselines(base: Baselines, work: Path) -> None:
    data = {
        "template": str(base.template),
        "pairs": base.pairs,
        "calendars": {k: sorted(v) for k, v in base.calendars.items()},
    }
    (work / BASELINES).write_text(json.dumps(data))


def load_baselines(work: Path) -> Baselines:
    data = json.loads((work / BASELINES).read_text())
    calendars = {k: set(v) for k, v in data["calendars"].items()}
    return Baselines(Path(data["template"]), data["pairs"], calendars)


def case_limit(timeout: float) -> float:
    """The longest a whole case may take: three commands and serving a fake; past it the case stalled."""
    return 4 * timeout + 60


class _Worker:
    """A ``python -m tests.fuzz.worker`` process that runs the cases it is sent, one at a time.

    A case's fake runs in this process, not in the harness: a fake that chokes on a mutated event (an
    expansion without end, say) costs that case, which is killed with its process group and reported,
    never the campaign."""

    def __init__(self, seed: int, work: Path, timeout: float, keep: bool) -> None:
        self.args = [sys.executable, "-m", "tests.fuzz.worker", str(seed), str(work), str(timeout)]
        self.args += ["--keep"] if keep else []
        self.work = work
        self.process: subprocess.Popen[str] | None = None
        self.served = 0
        self.closed = False
        self.lock = threading.Lock()

    def close(self) -> None:
        """Kill the worker (from another thread too): no further case starts one."""
        with self.lock:
            self.closed = True
        self.stop()

    def _start(self) -> subprocess.Popen[str] | None:
        with self.lock:
            if self.closed:
                return None
            if self.process is not None and self.process.poll() is None and self.served < CASES_PER_WORKER:
                return self.process
            self.stop()
            log = (self.work / f".worker-{id(self)}.log").open("a")
            self.process = subprocess.Popen(  # from the checkout's root, so that ``-m tests...`` resolves
                self.args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=Path(__file__).resolve().parents[2],
                start_new_session=True,
            )
            log.close()
            self.served = 0
            return self.process

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            for stream in (process.stdin, process.stdout):
                with contextlib.suppress(OSError, ValueError):
                    if stream is not None:
                        stream.close()

    def run(self, seed: int, number: int, limit: float) -> Outcome | None:
        """The case's outcome; None when the worker was closed meanwhile."""
        process = self._start()
        if process is None:
            return None
        assert process.stdin is not None and process.stdout is not None
        self.served += 1
        start = time.monotonic()
        died = False
        try:
            process.stdin.write(f"{number}\n")
            process.stdin.flush()
            ready, _, _ = select.select([process.stdout], [], [], limit)
            line = process.stdout.readline() if ready else ""
            died = bool(ready)  # readable but no line: the worker ended
        except (OSError, ValueError):  # ValueError: closed by close() from another thread
            line, died = "", True
        if line:
            return outcome_from_json(json.loads(line))
        if self.closed:
            return None
        self.stop()
        outcome = Outcome(seed, number, case_kind(number), "")
        if died:
            outcome.problems.append("harness: the case's worker died (see the .worker-*.log in the work dir)")
        else:
            outcome.problems.append(
                f"harness: the case stalled past {limit:.0f}s and was killed (each calsync command has "
                f"its own limit, so this is the fake or the harness: re-run it alone)"
            )
        outcome.commands.append(Command("case", None, time.monotonic() - start, 0.0, "", ""))
        return outcome


class Interrupted(Exception):
    """SIGTERM or SIGINT during a campaign: :func:`campaign` returns what it has."""


def campaign(
    seed: int,
    cases: Iterable[int],
    *,
    workers: int = 2,
    timeout: float = CASE_TIMEOUT,
    work: Path | None = None,
    keep: bool = False,
    progress: Callable[[Outcome], None] | None = None,
    deadline: float | None = None,
    limit: float | None = None,
) -> Summary:
    """Run ``cases`` in ``workers`` worker processes; after ``deadline`` seconds no further case is
        started, and on :class:`Interrupted` or ``KeyboardInterrupt`` the cases in flight are killed: either
        way the summary says how many were run. ``progress`` sees every outcome as it arrives. A case that
    runs past ``limit`` seconds (default :func:`case_limit`) is killed and fails as stalled."""
    start = time.monotonic()
    numbers: queue.Queue[int] = queue.Queue()
    for number in cases:
        numbers.put(number)
    results: queue.Queue[Outcome | None] = queue.Queue()
    stop = threading.Event()
    outcomes: list[Outcome] = []
    interrupted = False
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="calsync-fuzz-")))
        work.mkdir(parents=True, exist_ok=True)
        save_baselines(prepare(work), work)
        pool = [_Worker(seed, work, timeout, keep) for _ in range(max(1, workers))]

        def drain(worker: _Worker) -> None:
            try:
                while not stop.is_set():
                    if deadline is not None and time.monotonic() - start > deadline:
                        return
                    try:
                        number = numbers.get_nowait()
                    except queue.Empty:
                        return
                    outcome = worker.run(seed, number, limit or case_limit(timeout))
                    if outcome is not None and not stop.is_set():
                        results.put(outcome)
            finally:
                results.put(None)

        threads = [threading.Thread(target=drain, args=(w,), daemon=True) for w in pool]
        for thread in threads:
            thread.start()
        running = len(threads)
        try:
            while running:
                try:
                    got = results.get(timeout=0.5)
                except queue.Empty:
                    continue
                if got is None:
                    running -= 1
                    continue
                outcomes.append(got)
                if progress is not None:
                    progress(got)
        except (Interrupted, KeyboardInterrupt):
            interrupted = True
            stop.set()
        finally:
            for worker in pool:
                worker.close()
            for thread in threads:
                thread.join(timeout=5)
    outcomes.sort(key=lambda o: o.number)
    return Summary(seed, outcomes, time.monotonic() - start, interrupted)
