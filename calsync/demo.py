"""``calsync demo``: a fictional org whose calendars exercise every status and edge case.

Everything is dated relative to the as-of date, so the same date always gives the same files and a
report made on that date shows the same statuses whatever the date is. The scenarios (one per direct
pair, plus peer, skip-level and cross-team pairs) are listed in :data:`SCENARIOS` and in docs/demo.md. Its
1:1s fall on weekdays, as a real org's do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar

from calsync.config import WEEKDAYS

DOMAIN = "acme.test"
ORG_TZ = "Europe/Berlin"
BERLIN = ZoneInfo(ORG_TZ)
NEW_YORK = ZoneInfo("America/New_York")

# email local part, name, manager local part, cadence_days, timezone
PEOPLE: tuple[tuple[str, str, str, str, str], ...] = (
    ("maya", "Maya Chen", "", "", "America/New_York"),
    ("omar", "Omar Haddad", "maya", "", "America/New_York"),
    ("priya", "Priya Raman", "maya", "", "Europe/Berlin"),
    ("lena", "Lena Fischer", "omar", "", "Europe/Berlin"),
    ("diego", "Diego Alvarez", "omar", "", "America/New_York"),
    ("sam", "Sam Okafor", "lena", "", "Europe/Berlin"),
    ("yuki", "Yuki Tanaka", "lena", "", "Europe/Berlin"),
    ("noah", "Noah Berg", "lena", "7", "Europe/Berlin"),
    ("ava", "Ava Rossi", "diego", "", "America/New_York"),
    ("ben", "Ben Carter", "diego", "", "America/New_York"),
    ("chloe", "Chloe Martin", "diego", "", "America/New_York"),
    ("ethan", "Ethan Brooks", "priya", "", "Europe/Berlin"),
    ("fatima", "Fatima Noor", "priya", "", "Europe/Berlin"),
    ("grace", "Grace Liu", "priya", "", "Europe/Berlin"),
    ("hugo", "Hugo Lambert", "priya", "", "Europe/Berlin"),
    ("iris", "Iris Novak", "priya", "", "Europe/Berlin"),
    ("zara", "Zara Ahmed", "priya", "", "Europe/Berlin"),
)
#: Who joined recently (email local part, days before the as-of date): the roster's ``since``.
NEW: tuple[tuple[str, int], ...] = (("zara", 5),)
#: Maya's executive assistant, who schedules Maya's 1:1s with Priya (not in the roster), and the
#: note-taking bot invited to Diego's 1:1s with Chloe: people who do not count ([detect]).
ASSISTANT = f"kim.ea@{DOMAIN}"
NOTE_BOT = "notes@notetaker.example"
#: Public holidays: the org's (Berlin), and the New York office's in the roster's ``holidays`` column.
ORG_HOLIDAYS = "DE-BE"
NEW_YORK_HOLIDAYS = "US-NY"
#: Who the demo roster excludes (email local part, reason, last day as days after the as-of date).
EXCLUDED: tuple[tuple[str, str, int], ...] = (("iris", "parental leave", 60),)

#: What the demo shows, pair by pair: (manager, report or peer, expected status, what it demonstrates).
SCENARIOS: tuple[tuple[str, str, str, str], ...] = (
    (
        "maya",
        "omar",
        "ok",
        "weekly in America/New_York with a VTIMEZONE (across DST when in the window); an extra 1:1 on a "
        "New York public holiday (the roster's holidays column) that Omar declined is excused",
    ),
    (
        "maya",
        "priya",
        "ok",
        "weekly, scheduled by Maya's assistant (an ignored attendee: still a 1:1); one occurrence moved "
        "to the next day, one removed by EXDATE",
    ),
    ("omar", "lena", "overdue", "the weekly series ended 40 days ago and nothing replaced it"),
    ("omar", "diego", "overdue", "a new biweekly series whose two past occurrences were both cancelled"),
    (
        "lena",
        "sam",
        "ok",
        "Outlook-style Windows TZID without VTIMEZONE, a room, and a stale copy "
        "in Sam's file that still lacks Lena's later cancellation (counted once, stays cancelled)",
    ),
    ("lena", "yuki", "at-risk", "every 4 weeks: the schedule itself is slower than the 14-day cadence"),
    ("lena", "noah", "at-risk", "new hire (roster cadence 7): the first 1:1 is scheduled, none held yet"),
    (
        "diego",
        "ava",
        "ok",
        "weekly; Ava was out of office for three weeks: the 1:1s cancelled then are excused and the days "
        "away not counted, so the pair is not overdue; Ava declined one occurrence earlier",
    ),
    ("diego", "ben", "at-risk", "held until last week, but the series ended: nothing scheduled ahead"),
    (
        "diego",
        "chloe",
        "ok",
        "weekly in floating time with a note-taking bot invited (ignored), a month of cancellations "
        "earlier: a closed gap",
    ),
    ("priya", "ethan", "no-series", "no 1:1 at all; an all-day 'offsite' and a 3-person '1:1' don't count"),
    (
        "priya",
        "fatima",
        "ok",
        "one-off 1:1s in UTC instead of a series; a wholly cancelled one-off ignored",
    ),
    (
        "priya",
        "grace",
        "no-series",
        "the series was cancelled as a whole; Grace's 1:1 with a customer (external) is ignored",
    ),
    ("priya", "hugo", "overdue", "biweekly, but Hugo declined every occurrence for the last 7 weeks"),
    (
        "priya",
        "iris",
        "overdue",
        "the weekly series stopped 45 days ago when Iris went on parental leave: the roster excludes "
        "her until her return, so the pair shows as excluded, not flagged",
    ),
    (
        "priya",
        "zara",
        "at-risk",
        "joined 5 days ago (the roster's since): no 1:1 yet, but too new to be flagged as having none",
    ),
    ("sam", "yuki", "untracked", "peer 1:1 (same manager): reported, not tracked"),
    ("omar", "sam", "ok", "skip-level, every 4 weeks: tracked because the demo sets skip_level_days = 30"),
    ("ava", "ethan", "untracked", "cross-team 1:1 (relationship 'other'): reported, not tracked"),
)

CONFIG = f"""\
# calsync demo config: a fictional org. `calsync config example` prints every key.
[org]
domains = ["{DOMAIN}"]
roster = "org.csv"
timezone = "{ORG_TZ}"
# Berlin's public holidays for everyone; the New York office's people have theirs in the roster.
holidays = "{ORG_HOLIDAYS}"

[detect]
# Maya's assistant schedules her 1:1s, and a note-taking bot joins Diego's: neither makes a 1:1 a
# meeting of three.
ignore_attendees = ["{ASSISTANT}", "*@{NOTE_BOT.partition("@")[2]}"]

[cadence]
default_days = 14
grace_days = 3
skip_level_days = 30

[report]
lookback_days = 90
lookahead_days = 90

[[sources]]
type = "ics"
path = "calendars"
name = "demo calendars"

[agenda]
# The demo writes its agendas as local files (an ICS source's calendars are only read: no event is
# written). A real org would serve this directory at base_url, or use Google Docs / OneDrive.
directory = "agendas"
base_url = "https://agendas.{DOMAIN}/"
lead_days = 3  # a demo made on a Saturday still shows Monday's agendas
"""


def digest_config(as_of: date) -> str:
    """The demo's [digest]: due on the as-of date's weekday at 00:00, so that its digests are made as
    of the same date as the demo's report; written as .eml files, not sent."""
    return f"""
[digest]
# The demo writes the leaders' digests as .eml files into outbox/ instead of sending them; a real org
# sets delivery = "smtp" (the default) and an [smtp] section. The demo's digests are due on the
# weekday of its as-of date; the default is monday at 8.
delivery = "outbox"
outbox = "outbox"
from = "1:1 digests <calsync@{DOMAIN}>"
day = "{WEEKDAYS[as_of.weekday()]}"
hour = 0
# A broken export is planted: send the digests anyway, with a warning, instead of waiting for it to be
# fixed.
when_incomplete = "send"
"""


#: The planted broken file: the cut-off export of someone who has left (not in the roster), named after
#: its owner as calsync asks, so that calsync knows whose calendar could not be read.
BROKEN_FILE = f"leo@{DOMAIN}.ics"
BROKEN_ICS = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//a tool that crashed mid-export//EN
BEGIN:VEVENT
UID:truncated-1@acme.test
DTSTART;TZID=Europe/Berlin:2026-13-45T99:00
SUMMARY:this export was cut off
"""


def email(local: str) -> str:
    return local if "@" in local else f"{local}@{DOMAIN}"


# -- a small ICS builder on top of icalendar (also used by the tests and benchmarks) ----------------


@dataclass
class Attendee:
    email: str
    name: str | None = None
    partstat: str = "ACCEPTED"
    cutype: str = "INDIVIDUAL"


@dataclass
class EventSpec:
    """One VEVENT: a one-off, a recurring master (``rrule``) or an override (``recurrence_id``)."""

    uid: str
    summary: str
    start: datetime | date
    duration: timedelta = timedelta(minutes=30)
    organizer: str | None = None
    attendees: Sequence[Attendee] = ()
    rrule: dict[str, Any] | None = None
    exdates: Sequence[datetime] = ()
    rdates: Sequence[datetime] = ()
    recurrence_id: datetime | None = None
    status: str | None = None
    sequence: int = 0
    last_modified: datetime | None = None
    tzid: str | None = None  # write naive times with this TZID (e.g. a Windows zone name)
    floating: bool = False  # write naive times without TZID
    extra: dict[str, str] = field(default_factory=dict)


def _add_time(event: icalendar.Event, name: str, value: datetime | date, spec: EventSpec) -> None:
    if isinstance(value, datetime) and (spec.tzid or spec.floating):
        naive = value.replace(tzinfo=None)
        if spec.tzid:
            event.add(name, naive, parameters={"TZID": spec.tzid})
        else:
            event.add(name, naive)
    else:
        event.add(name, value)


def override(series: EventSpec, recurrence_id: datetime, **changes: Any) -> EventSpec:
    """An override (RECURRENCE-ID) of one occurrence of ``series``: by default the same meeting at its
    original time; ``changes`` move, cancel, decline or re-version it."""
    fields: dict[str, Any] = {"start": recurrence_id, "rrule": None, "exdates": (), "rdates": ()}
    return replace(series, recurrence_id=recurrence_id, **(fields | changes))


def ics_event(spec: EventSpec) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", spec.uid)
    event.add("dtstamp", datetime(2026, 1, 1, tzinfo=UTC))
    event.add("summary", spec.summary)
    _add_time(event, "dtstart", spec.start, spec)
    if isinstance(spec.start, datetime):
        _add_time(event, "dtend", spec.start + spec.duration, spec)
    else:
        event.add("dtend", spec.start + max(timedelta(days=1), spec.duration))
    if spec.recurrence_id is not None:
        _add_time(event, "recurrence-id", spec.recurrence_id, spec)
    if spec.rrule:
        event.add("rrule", spec.rrule)
    for exdate in spec.exdates:
        _add_time(event, "exdate", exdate, spec)
    for rdate in spec.rdates:
        _add_time(event, "rdate", rdate, spec)
    if spec.status:
        event.add("status", spec.status)
    event.add("sequence", spec.sequence)
    if spec.last_modified is not None:
        event.add("last-modified", spec.last_modified)
    if spec.organizer:
        organizer = icalendar.vCalAddress(f"mailto:{spec.organizer}")
        event.add("organizer", organizer)
    for attendee in spec.attendees:
        address = icalendar.vCalAddress(f"mailto:{attendee.email}")
        address.params["PARTSTAT"] = attendee.partstat
        address.params["CUTYPE"] = attendee.cutype
        if attendee.name:
            address.params["CN"] = attendee.name
        event.add("attendee", address)
    for key, value in spec.extra.items():
        event.add(key, value)
    return event


def ics_calendar(
    specs: Iterable[EventSpec], *, with_timezones: bool = True, name: str | None = None
) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//calsync//demo//EN")
    calendar.add("version", "2.0")
    if name:
        calendar.add("x-wr-calname", name)
    for spec in specs:
        calendar.add_component(ics_event(spec))
    if with_timezones:
        calendar.add_missing_timezones()
        # icalendar adds them in set order, which varies between processes: sort for stable files.
        zones = sorted(calendar.walk("VTIMEZONE"), key=lambda tz: str(tz.get("TZID", "")))
        events = [c for c in calendar.subcomponents if c.name != "VTIMEZONE"]
        calendar.subcomponents[:] = [*zones, *events]
    data: bytes = calendar.to_ical()
    return data


# -- the demo org ------------------------------------------------------------------------------------


def _at(day: date, hour: int, tz: tzinfo, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=tz)


def _pair(a: str, b: str, partstat_b: str = "ACCEPTED") -> list[Attendee]:
    names = {local: name for local, name, *_ in PEOPLE}
    return [
        Attendee(email(a), names.get(a), "ACCEPTED"),
        Attendee(email(b), names.get(b), partstat_b),
    ]


def demo_calendars(as_of: date) -> dict[str, list[EventSpec]]:
    """The demo's events, by the calendar (file stem) they are written to."""
    cal: dict[str, list[EventSpec]] = {}
    first_names = {local: name.split()[0] for local, name, *_ in PEOPLE}

    def day(offset: int) -> date:
        """``offset`` days from the as-of date, moved off a weekend as a real org would meet: a Saturday
        to the Friday before, a Sunday to the Monday after. Offsets a whole number of weeks apart move
        alike, so an EXDATE or override ``7 * k`` days after a series' start stays on an occurrence."""
        when = as_of + timedelta(days=offset)
        return when + timedelta(days={5: -1, 6: 1}.get(when.weekday(), 0))

    def day_after(when: date) -> date:
        """The next weekday after ``when``."""
        when += timedelta(days=1)
        while when.weekday() >= 5:
            when += timedelta(days=1)
        return when

    def modified(offset: int, hour: int) -> datetime:
        return datetime.combine(day(offset), time(hour), tzinfo=UTC)

    def put(spec: EventSpec, *owners: str) -> EventSpec:
        for owner in owners:
            cal.setdefault(owner, []).append(spec)
        return spec

    def weekly(a: str, b: str, first: date, hour: int, tz: tzinfo, **kw: Any) -> EventSpec:
        """a's series with b (weekly unless ``rrule`` says otherwise), filed nowhere yet."""
        return EventSpec(
            uid=kw.pop("uid", f"{a}-{b}@{DOMAIN}"),
            summary=kw.pop("summary", f"{first_names.get(a, a)} / {first_names.get(b, b)} 1:1"),
            start=_at(first, hour, tz),
            organizer=kw.pop("organizer", email(a)),
            attendees=kw.pop("attendees", _pair(a, b)),
            rrule=kw.pop("rrule", {"freq": "weekly"}),
            **kw,
        )

    def series(a: str, b: str, first: date, hour: int, tz: tzinfo, **kw: Any) -> EventSpec:
        """The same, filed in both people's calendars."""
        return put(weekly(a, b, first, hour, tz, **kw), a, b)

    def one_off(uid: str, a: str, b: str, start: date | datetime, summary: str, **kw: Any) -> EventSpec:
        spec = EventSpec(uid=f"{uid}@{DOMAIN}", summary=summary, start=start, organizer=email(a), **kw)
        return put(spec if spec.attendees else replace(spec, attendees=_pair(a, b)), a, b)

    # maya / omar: ok, weekly in New York with a VTIMEZONE; an extra 1:1 on a New York public holiday
    # that Omar declined: excused (a holiday of the New York office's, in the roster).
    series("maya", "omar", day(-124), 9, NEW_YORK)
    holiday = _recent_holiday(as_of)
    if holiday is not None:
        one_off(
            "mo-holiday",
            "maya",
            "omar",
            _at(holiday, 14, NEW_YORK),
            "Maya / Omar catch-up",
            attendees=_pair("maya", "omar", "DECLINED"),
        )

    # maya / priya: ok; scheduled by Maya's assistant; one moved occurrence, one EXDATE.
    assistant = Attendee(ASSISTANT, "Kim Park (EA to Maya)")
    mp = series(
        "maya",
        "priya",
        day(-117),
        16,
        BERLIN,
        exdates=[_at(day(-12), 16, BERLIN)],
        sequence=1,
        organizer=ASSISTANT,
        attendees=[assistant, *_pair("maya", "priya")],
    )
    moved = override(
        mp,
        _at(day(-26), 16, BERLIN),
        summary="Maya / Priya 1:1 (moved)",
        start=_at(day_after(day(-26)), 11, BERLIN),
        sequence=2,
    )
    put(moved, "maya", "priya")

    # omar / lena: overdue, the series ended 40 days ago.
    series(
        "omar",
        "lena",
        day(-180),
        14,
        BERLIN,
        rrule={"freq": "weekly", "until": _at(day(-40), 23, BERLIN).astimezone(UTC)},
    )

    # priya / iris: weekly until Iris's parental leave began 45 days ago; excluded in the roster.
    series(
        "priya",
        "iris",
        day(-150),
        15,
        BERLIN,
        rrule={"freq": "weekly", "until": _at(day(-45), 23, BERLIN).astimezone(UTC)},
    )

    # omar / diego: overdue, a new biweekly series whose two past occurrences were both cancelled.
    od = series(
        "omar",
        "diego",
        day(-27),
        11,
        NEW_YORK,
        rrule={"freq": "weekly", "interval": 2},
        exdates=[_at(day(-27), 11, NEW_YORK)],
        sequence=1,
    )
    put(override(od, _at(day(-13), 11, NEW_YORK), status="CANCELLED", sequence=2), "omar", "diego")

    # lena / sam: ok; Windows TZID without VTIMEZONE, a room, and a stale copy in Sam's file.
    room = Attendee(f"room-spree@{DOMAIN}", "Room Spree", "ACCEPTED", "ROOM")
    ls: dict[str, Any] = {"tzid": "W. Europe Standard Time", "attendees": [*_pair("lena", "sam"), room]}
    put(
        weekly(
            "lena",
            "sam",
            day(-110),
            10,
            BERLIN,
            sequence=3,
            last_modified=modified(-15, 8),
            exdates=[_at(day(-12), 10, BERLIN)],
            **ls,
        ),
        "lena",
    )
    put(weekly("lena", "sam", day(-110), 10, BERLIN, sequence=2, last_modified=modified(-60, 8), **ls), "sam")

    # lena / yuki: at-risk, every 4 weeks (slower than the cadence).
    series("lena", "yuki", day(-10 - 28 * 3), 15, BERLIN, rrule={"freq": "weekly", "interval": 4})

    # lena / noah: at-risk, new hire, the first 1:1 is in 3 days.
    series("lena", "noah", day(3), 13, BERLIN)

    # diego / ava: ok, although the last one held was 27 days ago: Ava was out of office (an Outlook
    # OOF block in her calendar) for three weeks, and the three 1:1s in them were cancelled. She
    # declined one earlier. Weekly on the weekday after the as-of date, like Fatima's next one-off and
    # Omar's and Diego's first: the demo's agendas always hold a regular 1:1, a career session and a
    # first one.
    da = series(
        "diego",
        "ava",
        day(-97),
        10,
        NEW_YORK,
        exdates=[_at(day(offset), 10, NEW_YORK) for offset in (-20, -13, -6)],
        sequence=1,
    )
    declined = override(
        da,
        _at(day(-48), 10, NEW_YORK),
        attendees=_pair("diego", "ava", "DECLINED"),
        last_modified=modified(-48, 12),
    )
    put(declined, "diego", "ava")
    leave = EventSpec(
        uid=f"ava-ooo@{DOMAIN}",
        summary="Ava away: family matters",  # never shown: calsync keeps only the dates
        start=as_of - timedelta(days=24),
        duration=timedelta(days=22),  # up to, not including, the day 2 days before the as-of date
        organizer=email("ava"),
        extra={"X-MICROSOFT-CDO-BUSYSTATUS": "OOF"},
    )
    put(leave, "ava")

    # diego / ben: at-risk, the series ended last week.
    series(
        "diego",
        "ben",
        day(-85),
        15,
        NEW_YORK,
        rrule={"freq": "weekly", "until": _at(day(-6), 23, NEW_YORK).astimezone(UTC)},
    )

    # diego / chloe: ok, floating time, a note-taking bot invited, five cancellations in a row earlier
    # (a closed gap).
    series(
        "diego",
        "chloe",
        day(-80),
        9,
        BERLIN,
        floating=True,
        exdates=[_at(day(-80 + 7 * k), 9, BERLIN) for k in range(3, 8)],
        attendees=[*_pair("diego", "chloe"), Attendee(NOTE_BOT, "Notetaker")],
    )

    # priya / ethan: no-series; an all-day event and a 3-person "1:1" do not count.
    one_off("offsite-pe", "priya", "ethan", day(-20), "Priya <> Ethan offsite")
    three = one_off(
        "three-pe",
        "priya",
        "ethan",
        _at(day(-9), 10, BERLIN),
        "1:1 Priya / Ethan (+Hugo)",
        attendees=[*_pair("priya", "ethan"), Attendee(email("hugo"), "Hugo Lambert")],
    )
    put(three, "hugo")

    # priya / fatima: ok via one-off 1:1s in UTC; a wholly cancelled one-off is ignored.
    for offset in (-40, -27, -13, 1):
        one_off(f"pf-{offset}", "fatima", "priya", modified(offset, 12), "Fatima <> Priya")
    one_off("pf-cancelled", "fatima", "priya", modified(-6, 12), "Fatima <> Priya", status="CANCELLED")

    # priya / grace: no-series, the series was cancelled as a whole; an external 1:1 is ignored.
    series("priya", "grace", day(-60), 11, BERLIN, status="CANCELLED", sequence=4)
    customer = [Attendee(email("grace"), "Grace Liu"), Attendee("buyer@client.example", "Buyer")]
    put(
        weekly(
            "grace",
            "buyer@client.example",
            day(-30),
            17,
            BERLIN,
            uid=f"grace-customer@{DOMAIN}",
            summary="Grace / Client sync",
            attendees=customer,
        ),
        "grace",
    )

    # priya / hugo: overdue, Hugo declined every occurrence for the last 7 weeks.
    ph = series("priya", "hugo", day(-105), 9, BERLIN, rrule={"freq": "weekly", "interval": 2})
    for offset in range(-105, 0, 14):
        if offset >= -49:
            declined = override(
                ph,
                _at(day(offset), 9, BERLIN),
                attendees=_pair("priya", "hugo", "DECLINED"),
                last_modified=modified(offset - 2, 9),
            )
            put(declined, "priya", "hugo")

    # sam / yuki: peer; omar / sam: skip-level every 4 weeks; ava / ethan: cross-team.
    series("sam", "yuki", day(-60), 12, BERLIN)
    series("omar", "sam", day(-6 - 28 * 2), 16, BERLIN, rrule={"freq": "weekly", "interval": 4})
    series("ava", "ethan", day(-45), 17, BERLIN, rrule={"freq": "weekly", "interval": 3})
    return cal


def _recent_holiday(as_of: date) -> date | None:
    """The latest public holiday of the New York office (:data:`NEW_YORK_HOLIDAYS`) on a weekday
    between 80 and 3 days before ``as_of``, if any (there is one in any such window): where the demo
    puts a 1:1 declined on a holiday."""
    from calsync.absence import holiday_dates

    first, last = as_of - timedelta(days=80), as_of - timedelta(days=3)
    years = tuple(range(first.year, last.year + 1))
    found = [d for d in holiday_dates(NEW_YORK_HOLIDAYS, years) if first <= d <= last and d.weekday() < 5]
    return max(found, default=None)


def roster_csv(as_of: date) -> str:
    lines = ["email,name,manager_email,cadence_days,timezone,exclude,exclude_until,holidays,since"]
    excluded = {local: (reason, as_of + timedelta(days=days)) for local, reason, days in EXCLUDED}
    joined = {local: as_of - timedelta(days=days) for local, days in NEW}
    for local, name, manager, cadence, tz in PEOPLE:
        reason, until = excluded.get(local, ("", None))
        row = [email(local), name, email(manager) if manager else "", cadence, tz, reason]
        holidays = NEW_YORK_HOLIDAYS if tz == "America/New_York" else ""
        since = joined.get(local)
        row += [until.isoformat() if until else "", holidays, since.isoformat() if since else ""]
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def demo_today() -> date:
    return datetime.now(BERLIN).date()


DEMO_STATE = "calsync-state.json"
#: The demo's list of the files it wrote (relative path -> sha256 of what it wrote, None for calsync's
#: own state files, which later commands on the demo's config change): what makes a directory a demo
#: directory, and all that a later demo run may remove.
MANIFEST = ".calsync-demo"
#: calsync's own files beside the state: removed on a re-run whatever their content.
_STATE_FILES = (DEMO_STATE, f"{DEMO_STATE}.lock", f"{DEMO_STATE}.previous")


class DemoDirectoryError(Exception):
    """The demo would delete or overwrite something it did not write; str() says what to do."""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    return {p.relative_to(directory).as_posix(): p for p in directory.rglob("*") if p.is_file()}


def _read_manifest(directory: Path) -> dict[str, str | None] | None:
    """The files an earlier demo wrote into ``directory``; None if it is not a demo directory."""
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return None
    return {str(k): v if isinstance(v, str) else None for k, v in files.items()}


def _is_state(name: str) -> bool:
    return name in _STATE_FILES or name.startswith(f"{DEMO_STATE}.corrupt-")


@contextlib.contextmanager
def demo_directory(directory: Path, *, force: bool = False) -> Iterator[None]:
    """Make ``directory`` ready for a demo, and list what the demo wrote into it when the block ends.

    The demo never deletes or overwrites what it did not write itself: a directory that is neither
    empty nor a demo directory (one holding :data:`MANIFEST`) is refused, unless ``force``, and then
    only the demo's own paths are written. On a re-run, the files the earlier demo wrote and nobody
    changed since are removed, so that the demo starts afresh; a file someone changed is kept, and if
    the demo would have to write over it, the directory is refused (again unless ``force``).
    Raises :class:`DemoDirectoryError`; the block's own OSErrors go through."""
    manifest = _read_manifest(directory)
    present = _files(directory)
    paths = _demo_paths()
    ours = {
        name
        for name, path in present.items()
        if manifest is not None
        and name in manifest
        and (_is_state(name) or (manifest[name] is not None and _digest(path) == manifest[name]))
    }
    if not force:
        if manifest is None and present:
            shown = sorted({name.split("/")[0] for name in present})
            raise DemoDirectoryError(
                f"{directory} is not empty ({', '.join(shown[:5])}{', ...' if len(shown) > 5 else ''}) and "
                "is not a directory an earlier `calsync demo` wrote: the demo writes only into an empty "
                f"directory or its own. Choose a new one (calsync demo {directory / 'calsync-demo'}), or "
                "add --force to write into this one anyway: the demo's own files (calsync.toml, org.csv, "
                f"calendars/*.ics of its people, {DEMO_STATE}) replace any of the same name, and nothing "
                "else is touched"
            )
        conflicts = sorted(name for name in paths if name in present and name not in ours)
        if conflicts:
            raise DemoDirectoryError(
                f"{directory}: {', '.join(conflicts[:5])}{' and more' if len(conflicts) > 5 else ''} "
                "changed since the demo wrote them, and a new demo would write over them. Move them "
                "away, choose a new directory, or add --force to replace them"
            )
    for name in sorted(ours):
        present.pop(name).unlink(missing_ok=True)
    if force:
        for name in paths:
            if _is_state(name) and name in present:
                present.pop(name).unlink(missing_ok=True)  # the demo starts from no state
    before = {name: _digest(path) for name, path in present.items()}
    kept = {name: h for name, h in (manifest or {}).items() if name in present and name != MANIFEST}
    try:
        yield
    finally:
        written: dict[str, str | None] = dict(kept)
        for name, path in _files(directory).items():
            if name == MANIFEST:
                continue
            digest = _digest(path)
            if before.get(name) != digest:
                written[name] = None if _is_state(name) else digest
        if directory.is_dir():  # else the block failed before writing anything
            (directory / MANIFEST).write_text(
                json.dumps({"calsync-demo": 1, "files": dict(sorted(written.items()))}, indent=1) + "\n",
                encoding="utf-8",
            )


def _demo_paths() -> list[str]:
    """Where the demo writes whatever the date (the agendas and digests it writes have names of their
    own, which no earlier file of someone else's is likely to have: the backends never overwrite)."""
    owners = sorted(demo_calendars(date(2026, 1, 1)))
    return [
        "calsync.toml",
        "org.csv",
        *(f"calendars/{o}.ics" for o in owners),
        f"calendars/{BROKEN_FILE}",
        *_STATE_FILES,
    ]


def write_files(directory: Path, as_of: date) -> Path:
    """Write the demo org (calendars, roster, config) into ``directory``; returns the config's path."""
    calendars_dir = directory / "calendars"
    calendars_dir.mkdir(parents=True, exist_ok=True)
    for owner, specs in sorted(demo_calendars(as_of).items()):
        with_tz = owner != "sam"  # Sam's export has no VTIMEZONE for the Windows zone name
        (calendars_dir / f"{owner}.ics").write_bytes(ics_calendar(specs, with_timezones=with_tz, name=owner))
    (calendars_dir / BROKEN_FILE).write_text(BROKEN_ICS, encoding="utf-8")
    (directory / "org.csv").write_text(roster_csv(as_of), encoding="utf-8")
    config = directory / "calsync.toml"
    config.write_text(CONFIG + digest_config(as_of), encoding="utf-8")
    return config


def write_demo(directory: Path, as_of: date | None = None, *, force: bool = False) -> tuple[Path, date]:
    """Write the demo org into ``directory`` (see :func:`demo_directory`); returns the config's path and
    the as-of date used."""
    as_of = as_of or demo_today()
    with demo_directory(directory, force=force):
        config = write_files(directory, as_of)
    return config, as_of
