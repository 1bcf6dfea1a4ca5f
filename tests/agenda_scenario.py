"""The 1:1 every agenda test runs through: Maya (manager) and Omar (report), weekly on Mondays at 10:00
in Berlin from 2026-11-02, with a title that tries to inject a script; Zoe is Maya's other report."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from calsync.demo import Attendee, EventSpec
from calsync.pipeline import AgendaRun
from calsync.publish.runner import Outcome

BERLIN = ZoneInfo("Europe/Berlin")
MAYA, OMAR, ZOE = "maya@acme.test", "omar@acme.test", "zoe@acme.test"
TITLE = "Maya <script>alert(1)</script> Omar"
FIRST = datetime(2026, 11, 2, 10, tzinfo=BERLIN)  # a Monday; weekly from here
UID = "maya-omar@acme.test"
ROSTER = (
    f"email,name,manager_email\n{MAYA},Maya Chen,\n{OMAR},Omar <b>Haddad</b>,{MAYA}\n{ZOE},Zoe Park,{MAYA}\n"
)
ORG = '[org]\ndomains = ["acme.test"]\nroster = "org.csv"\ntimezone = "Europe/Berlin"\n'


def series() -> EventSpec:
    return EventSpec(
        uid=UID,
        summary=TITLE,
        start=FIRST,
        organizer=MAYA,
        attendees=[Attendee(MAYA, "Maya Chen"), Attendee(OMAR, "Omar Haddad")],
        rrule={"FREQ": "WEEKLY"},
    )


def week(n: int) -> datetime:
    """The original start of the series' n-th occurrence (0: 2026-11-02)."""
    return FIRST + timedelta(weeks=n)


def before(n: int) -> datetime:
    """The day before the n-th occurrence, at noon: within the two days' lead time."""
    return week(n) - timedelta(hours=22)


def only(run: AgendaRun) -> Outcome:
    """The one outcome of a pass that met no problem."""
    assert not run.problems, run.problems
    assert len(run.outcomes) == 1, run.outcomes
    return run.outcomes[0]


def number_of(text: str) -> int:
    """The "1:1 number N" of an agenda's (newest) section."""
    return int(text.split("1:1 number ")[1].split()[0])
