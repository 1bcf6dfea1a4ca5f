"""The demo org served by the Graph fake, read through real msal and requests: the same report as ICS,
then delta sync after each kind of change, faults, and an org split between Google and Microsoft."""

from __future__ import annotations

import csv
import json
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calsync.config import MicrosoftSourceConfig, load_config
from calsync.demo import CONFIG as DEMO_CONFIG
from calsync.demo import demo_calendars, write_demo
from calsync.detect import Ignored
from calsync.org import RosterError
from calsync.pipeline import make_clock, run_report, sync_window
from calsync.report import report_to_json
from calsync.sources.base import Window
from calsync.sources.microsoft import (
    KEEP_RULE,
    PARTS,
    GraphClient,
    MicrosoftSource,
    _links,
    _listed,
    _parts,
    graph_client,
    keep_rule,
)
from calsync.sources.retry import RetryPolicy
from calsync.store import StateStore
from tests.demo_rules import demo_rules
from tests.demo_served import load_graph_demo, microsoft_config
from tests.demo_served import microsoft_toml as served_microsoft_toml
from tests.fakes.google import FakeGoogle
from tests.fakes.google_events import load_calendar
from tests.fakes.graph import FakeGraph
from tests.integration.cli import run_calsync

AS_OF = date(2026, 11, 21)
DELTA = "/calendarView/delta"
EVENTS = "/events/"
CLIENT_ID = "5e1f0c2a-calsync-test"
SECRET = "correct horse battery staple"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    with FakeGraph() as graph:
        yield graph


def demo_org(
    tmp_path: Path, fake: FakeGraph, owners: list[str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The demo's calendars in the fake's mailboxes, and the ICS report to compare with."""
    ics_config, _ = write_demo(tmp_path / "demo", AS_OF)
    expected = report_to_json(run_report(load_config(ics_config), AS_OF))
    return expected, load_graph_demo(fake, tmp_path / "demo" / "org.csv", AS_OF, owners)


def microsoft_toml(fake: FakeGraph, mailboxes: list[str], *, name: str = "m365", extra: str = "") -> str:
    return served_microsoft_toml(fake, mailboxes, CLIENT_ID, name=name, extra=extra)


def setup(tmp_path: Path, fake: FakeGraph) -> tuple[Path, dict[str, Any], list[str]]:
    expected, mailboxes = demo_org(tmp_path, fake)
    config = microsoft_config(fake, tmp_path, mailboxes, "demo/org.csv", CLIENT_ID, SECRET)
    return config, expected, mailboxes


def absentees(tmp_path: Path, mailboxes: list[str]) -> set[str]:
    """The people in the demo roster's manager -> report lines whose mailboxes are not read: their
    out-of-office is asked for through getSchedule (DESIGN.md 3b)."""
    with (tmp_path / "demo" / "org.csv").open() as roster:
        lines = [
            (row["email"], row["manager_email"]) for row in csv.DictReader(roster) if row["manager_email"]
        ]
    return {person for line in lines for person in line} - set(mailboxes)


def without_rule_text(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pairs with each series' rule reduced to its frequency and interval.

    Graph describes a series by a pattern, written back as the RRULE it means: the same schedule as the
    ICS file's, spelled with its BYDAY and WKST (``FREQ=WEEKLY;BYDAY=MO;WKST=SU`` for ``FREQ=WEEKLY``)
    and an UNTIL at the end of the pattern's last day. Everything else must be equal.
    """

    def rule(text: str) -> str:
        parts = dict(part.split("=", 1) for part in text.split(";"))
        return f"FREQ={parts['FREQ']};INTERVAL={parts.get('INTERVAL', '1')}"

    return [
        {
            **pair,
            "series": [
                {**s, "recurrence": rule(s["recurrence"]) if s["recurrence"] else None}
                for s in pair["series"]
            ],
        }
        for pair in pairs
    ]


def report(config: Path) -> dict[str, Any]:
    return report_to_json(run_report(load_config(config), AS_OF))


def graph_gets(fake: FakeGraph, part: str) -> list[Any]:
    return [r for r in fake.requests if r.method == "GET" and part in r.path]


def test_microsoft_source_gives_the_ics_report_then_one_request_per_mailbox(
    tmp_path: Path, fake: FakeGraph
) -> None:
    config, expected, mailboxes = setup(tmp_path, fake)
    result = run_calsync(
        "report", "-c", str(config), "--as-of", AS_OF.isoformat(), "--format", "json", timeout=300
    )
    assert result.returncode == 0, result.stderr
    first = json.loads(result.stdout)
    assert first["errors"] == []
    assert without_rule_text(first["pairs"]) == without_rule_text(expected["pairs"])
    assert {r.mailbox for r in graph_gets(fake, DELTA)} == set(mailboxes)
    assert max(fake.max_in_flight.values()) <= 4

    fake.reset_log()
    second = report(config)
    assert second["pairs"] == first["pairs"]
    # nothing changed: one request per mailbox, a $batch of the delta rounds of the span's parts; and
    # one more, the free/busy of the people in a 1:1 line whose mailboxes are not read (the new report)
    sent = [r.path for r in fake.requests if not r.batch and r.path.startswith("/v1.0/")]
    assert sent == ["/v1.0/$batch"] * (len(mailboxes) + 1)
    asked = [r.body for r in fake.requests if r.batch and r.path.endswith("/calendar/getSchedule")]
    assert asked and {a for body in asked for a in body["schedules"]} == absentees(tmp_path, mailboxes)
    rounds = graph_gets(fake, DELTA)
    assert len(rounds) == PARTS * len(mailboxes) and all("$deltatoken" in r.query for r in rounds)
    assert {r.mailbox for r in rounds} == set(mailboxes)


def master_id(fake: FakeGraph, mailbox: str, uid: str) -> str:
    return next(
        str(e["id"])
        for e in fake.events(mailbox)
        if e.get("iCalUId") == uid and e.get("type") == "seriesMaster"
    )


def test_delta_sync_after_each_kind_of_change(tmp_path: Path, fake: FakeGraph) -> None:
    config, _expected, mailboxes = setup(tmp_path, fake)
    before = {tuple(p["people"]): p for p in report(config)["pairs"]}
    stamp = datetime(2026, 11, 21, 9, tzinfo=UTC)

    def each(uid: str, owners: tuple[str, ...], change: Any) -> None:
        for owner in owners:
            mailbox = f"{owner}@acme.test"
            change(mailbox, master_id(fake, mailbox, uid))

    # a cancelled occurrence: Maya / Omar on 16 Nov vanishes (as when the organizer deletes it)
    each(
        "maya-omar@acme.test",
        ("maya", "omar"),
        lambda m, i: fake.cancel_occurrence(
            m, i, datetime(2026, 11, 16, 9, tzinfo=NEW_YORK), last_modified=stamp
        ),
    )
    # a moved occurrence: Diego / Ava from 26 Oct 10:00 to 27 Oct 11:00 (New York; the three Mondays
    # after it were cancelled while Ava was away)
    moved = {
        "start": {"dateTime": "2026-10-27T11:00:00", "timeZone": "America/New_York"},
        "end": {"dateTime": "2026-10-27T11:30:00", "timeZone": "America/New_York"},
        "lastModifiedDateTime": "2026-11-21T09:00:00Z",
    }
    each(
        "diego-ava@acme.test",
        ("diego", "ava"),
        lambda m, i: fake.put_exception(m, i, datetime(2026, 10, 26, 10, tzinfo=NEW_YORK), moved),
    )
    # a declined occurrence: Chloe declines 18 Nov (her own answer, and what Diego's copy shows)
    chloe = fake.events("diego@acme.test")
    dc = next(
        e for e in chloe if e.get("iCalUId") == "diego-chloe@acme.test" and e.get("type") == "seriesMaster"
    )
    declined_attendees = [
        {**a, "status": {"response": "declined", "time": "2026-11-17T08:00:00Z"}}
        if a["emailAddress"]["address"] == "chloe@acme.test"
        else a
        for a in dc["attendees"]
    ]
    for mailbox, own in (("diego@acme.test", "organizer"), ("chloe@acme.test", "declined")):
        fake.put_exception(
            mailbox,
            master_id(fake, mailbox, "diego-chloe@acme.test"),
            datetime(2026, 11, 18, 9, tzinfo=BERLIN),
            {
                "attendees": declined_attendees,
                "responseStatus": {"response": own, "time": "2026-11-17T08:00:00Z"},
                "lastModifiedDateTime": "2026-11-21T09:00:00Z",
            },
        )
    # a new series: Priya and Ethan start weekly 1:1s
    for mailbox, own in (("priya@acme.test", "organizer"), ("ethan@acme.test", "accepted")):
        fake.put_event(
            mailbox,
            {
                "type": "seriesMaster",
                "iCalUId": "priya-ethan-new@acme.test",
                "subject": "Priya / Ethan",
                "start": {"dateTime": "2026-11-02T10:00:00", "timeZone": "W. Europe Standard Time"},
                "end": {"dateTime": "2026-11-02T10:30:00", "timeZone": "W. Europe Standard Time"},
                "originalStartTimeZone": "W. Europe Standard Time",
                "recurrence": {
                    "pattern": {
                        "type": "weekly",
                        "interval": 1,
                        "daysOfWeek": ["monday"],
                        "firstDayOfWeek": "sunday",
                    },
                    "range": {
                        "type": "noEnd",
                        "startDate": "2026-11-02",
                        "recurrenceTimeZone": "W. Europe Standard Time",
                    },
                },
                "organizer": {"emailAddress": {"address": "priya@acme.test", "name": "Priya Raman"}},
                "attendees": [
                    {
                        "type": "required",
                        "status": {"response": "accepted"},
                        "emailAddress": {"address": "ethan@acme.test"},
                    },
                ],
                "responseStatus": {"response": own},
                "lastModifiedDateTime": "2026-11-01T09:00:00Z",
            },
        )
    # a deleted series: Ava / Ethan
    each("ava-ethan@acme.test", ("ava", "ethan"), fake.delete_event)

    # an attendee added, so it is no longer a 1:1: Omar / Sam's skip-level gets Lena too
    def add_lena(mailbox: str, ident: str) -> None:
        master = next(e for e in fake.events(mailbox) if e["id"] == ident)
        lena = {
            "type": "required",
            "status": {"response": "accepted"},
            "emailAddress": {"address": "lena@acme.test"},
        }
        fake.patch_event(mailbox, ident, {"attendees": [*master["attendees"], lena]})

    each("omar-sam@acme.test", ("omar", "sam"), add_lena)

    fake.reset_log()
    result = report(config)
    assert result["errors"] == []
    after = {tuple(p["people"]): p for p in result["pairs"]}
    assert {r.mailbox for r in graph_gets(fake, DELTA)} == set(mailboxes)
    assert len(graph_gets(fake, DELTA)) == PARTS * len(mailboxes)  # one delta call per part
    # masters are fetched only for the series that changed: 4 changed series in 2 mailboxes each
    # (the deleted one has nothing left to fetch), and the new one in 2
    assert len(graph_gets(fake, EVENTS)) == 10

    maya_omar = after[("maya@acme.test", "omar@acme.test")]
    assert "2026-11-16" in maya_omar["cancelled"] and "2026-11-16" not in maya_omar["held"]
    ava = after[("ava@acme.test", "diego@acme.test")]
    assert "2026-10-27" in ava["held"] and "2026-10-26" not in ava["held"]
    chloe_pair = after[("chloe@acme.test", "diego@acme.test")]
    assert chloe_pair["declined"] == ["2026-11-18"] and chloe_pair["last_held"] == "2026-11-11"
    ethan = after[("ethan@acme.test", "priya@acme.test")]
    assert (ethan["status"], ethan["held"], ethan["next_scheduled"]) == (
        "ok",
        ["2026-11-02", "2026-11-09", "2026-11-16"],
        "2026-11-23",
    )
    assert ("ava@acme.test", "ethan@acme.test") in before and (
        "ava@acme.test",
        "ethan@acme.test",
    ) not in after
    assert before[("omar@acme.test", "sam@acme.test")]["status"] == "ok"
    assert ("omar@acme.test", "sam@acme.test") not in after  # three people: no longer a 1:1


def test_expired_delta_tokens_and_faults_end_in_the_same_report(tmp_path: Path, fake: FakeGraph) -> None:
    config, expected, mailboxes = setup(tmp_path, fake)
    report(config)
    fake.expire_delta_tokens()
    fake.fail_next(429, 2, retry_after=1, path_contains=DELTA)
    fake.fail_next(503, 1, path_contains=DELTA)
    fake.fail_next(502, 1, path_contains=EVENTS)
    fake.drop_next(1, path_contains=DELTA)
    fake.slow_next(1, 5.0, path_contains=DELTA)  # longer than the client's timeout
    fake.expire_access_tokens()
    config.write_text(config.read_text().replace("timeout_seconds = 10", "timeout_seconds = 2"))
    fake.reset_log()
    again = report(config)
    assert again["errors"] == []
    assert without_rule_text(again["pairs"]) == without_rule_text(expected["pairs"])
    statuses = [r.status for r in graph_gets(fake, DELTA)]
    # every delta token expired: each mailbox was told so, and read in full again
    assert {r.mailbox for r in graph_gets(fake, DELTA) if r.status == 410} == set(mailboxes)
    assert {429, 503} <= set(statuses)
    assert max(fake.max_in_flight.values()) <= 4


def test_retry_after_is_honoured_with_a_fake_clock(tmp_path: Path, fake: FakeGraph) -> None:
    config, _expected, mailboxes = setup(tmp_path, fake)
    loaded = load_config(config)
    source_config = loaded.sources[0]
    assert isinstance(source_config, MicrosoftSourceConfig)
    slept: list[float] = []  # the span in one part: the faults below meet one view
    client = graph_client(
        source_config, retry=RetryPolicy(attempts=6, sleep=slept.append, jitter=lambda: 0.5)
    )
    fake.fail_next(429, 3, retry_after=7, path_contains=DELTA)
    fake.fail_next(503, 1, retry_after=2, path_contains=DELTA)
    fake.fail_next(500, 1, path_contains=DELTA)
    store = StateStore(tmp_path / "state.json")
    try:
        source = MicrosoftSource("m365", mailboxes[:1], client, store, default_tz=BERLIN, parallel=1, parts=1)
        result = source.fetch(sync_window(make_clock(loaded, AS_OF)))
    finally:
        store.close()
    assert result.problems == [] and len(result.calendars) == 1
    # three 429s (the first inside the $batch of the first read) and a 503, each after its Retry-After;
    # then a 500 after a jittered backoff: the 4th attempt of the delta sent on its own (0.5 x 2^3)
    assert slept == [7.0, 7.0, 7.0, 2.0, 4.0]


def test_a_burst_longer_than_the_retries_is_reported_never_an_empty_calendar(
    tmp_path: Path, fake: FakeGraph
) -> None:
    config, _expected, _mailboxes = setup(tmp_path, fake)
    loaded = load_config(config)
    source_config = loaded.sources[0]
    assert isinstance(source_config, MicrosoftSourceConfig)
    client = graph_client(source_config, retry=RetryPolicy(attempts=3, sleep=lambda s: None))
    # one for each call of the first read's $batch (each part of the view and the series masters), and
    # three for the first part sent alone
    fake.fail_next(429, PARTS + 1 + 3, retry_after=30, path_contains="/users/maya@acme.test/")
    store = StateStore(tmp_path / "state.json")
    try:
        source = MicrosoftSource(
            "m365", ["maya@acme.test", "omar@acme.test"], client, store, default_tz=BERLIN
        )
        result = source.fetch(sync_window(make_clock(loaded, AS_OF)))
    finally:
        store.close()
    assert [c.calendar for c in result.calendars] == ["omar@acme.test"]
    assert [p.source for p in result.problems] == ["m365: maya@acme.test"]
    assert "gave up after 3 attempts" in result.problems[0].message


def test_mailboxes_without_access_are_reported_and_the_rest_synced(tmp_path: Path, fake: FakeGraph) -> None:
    config, expected, mailboxes = setup(tmp_path, fake)
    fake.restrict(CLIENT_ID, set(mailboxes) - {"grace@acme.test"})  # RBAC for Applications scope
    fake.add_user("nobox@acme.test", "No Mailbox", mailbox=False)
    config.write_text(
        config.read_text().replace(
            '"hugo@acme.test"', '"hugo@acme.test", "nobox@acme.test", "ghost@acme.test"'
        )
    )
    result = report(config)
    errors = {e["source"]: e["message"] for e in result["errors"]}
    assert set(errors) == {"m365: grace@acme.test", "m365: nobox@acme.test", "m365: ghost@acme.test"}
    assert "Exchange RBAC scope" in errors["m365: grace@acme.test"]
    assert "no such mailbox" in errors["m365: ghost@acme.test"]
    pairs = {tuple(p["people"]): p for p in result["pairs"]}
    assert without_rule_text([pairs[("lena@acme.test", "sam@acme.test")]]) == without_rule_text(
        [p for p in expected["pairs"] if p["people"] == ["lena@acme.test", "sam@acme.test"]]
    )

    fake.set_roles(CLIENT_ID, ())  # admin consent withdrawn: every mailbox says so, nothing is empty
    withdrawn = report(config)
    # DESIGN.md 3b: a mailbox that cannot be read now is judged from calsync's stored reading of it, and
    # its pairs' reasons say so; the free/busy of the new report, asked through them, is refused too
    assert [(p["people"], p["status"]) for p in withdrawn["pairs"]] == [
        (p["people"], p["status"]) for p in result["pairs"]
    ]
    assert all(
        any("could not be read now" in r for r in p["reasons"])
        for p in withdrawn["pairs"]
        if p["status"] != "untracked"
    )
    assert {e["source"] for e in withdrawn["errors"]} == (
        {f"m365: {m}" for m in mailboxes}
        | {"m365: nobox@acme.test", "m365: ghost@acme.test"}
        | {f"m365: {a} (out of office)" for a in absentees(tmp_path, mailboxes)}
    )
    assert all("admin consent" in e["message"] for e in withdrawn["errors"] if "ghost" not in e["source"])
    # without a stored reading, no pair is no-series: every pair in the roster is unknown
    config.write_text(config.read_text().replace("state/calsync.json", "state/fresh.json"))
    fresh = report(config)
    assert fresh["pairs"] and all(p["status"] == "unknown" for p in fresh["pairs"])


def test_a_wrong_secret_is_one_clear_problem_and_exit_code_3(tmp_path: Path, fake: FakeGraph) -> None:
    config, _, _ = setup(tmp_path, fake)
    (tmp_path / "secret.txt").write_text("wrong\n")
    result = run_calsync("report", "-c", str(config), "--as-of", AS_OF.isoformat(), timeout=120)
    assert result.returncode == 3, result.stderr
    assert "invalid_client" in result.stderr and "Certificates & secrets" in result.stderr
    assert "wrong" not in result.stderr and "Traceback" not in result.stderr


def test_a_certificate_signs_in_as_the_app(tmp_path: Path, fake: FakeGraph) -> None:
    config, expected, _ = setup(tmp_path, fake)
    key_pem, cert_pem, _ = fake.make_certificate()
    fake.add_app("calsync-cert-app", certificate_pem=cert_pem)
    (tmp_path / "app.pem").write_bytes(key_pem + cert_pem)
    config.write_text(
        config.read_text()
        .replace('client_secret_file = "secret.txt"', 'certificate_file = "app.pem"')
        .replace(CLIENT_ID, "calsync-cert-app")
    )
    assert without_rule_text(report(config)["pairs"]) == without_rule_text(expected["pairs"])


def test_the_org_chart_from_microsoft_graph(tmp_path: Path, fake: FakeGraph) -> None:
    config, expected, _ = setup(tmp_path, fake)
    fake.add_user("gone@acme.test", "Left Last Year", manager="maya@acme.test", enabled=False)
    config.write_text(config.read_text().replace('roster = "demo/org.csv"', 'roster = "microsoft-graph"'))
    result = report(config)
    assert len(graph_gets(fake, "/v1.0/users")) >= 1
    shape = {
        (tuple(p["people"]), p["relationship"], p["manager"], p["report"], p["status"])
        for p in result["pairs"]
    }
    # the org chart has no roster "since": Zara, who joined days ago, is not known to be new (and has no
    # 1:1 yet), so her pair is no-series, not at-risk; every other pair is as the roster's
    zara = ("priya@acme.test", "zara@acme.test")
    assert shape == {
        (tuple(p["people"]), p["relationship"], p["manager"], p["report"], p["status"])
        if tuple(p["people"]) != zara
        else (zara, "direct", "priya@acme.test", "zara@acme.test", "no-series")
        for p in expected["pairs"]
    }
    assert next(p for p in expected["pairs"] if tuple(p["people"]) == zara)["status"] == "at-risk"
    assert not any("gone@acme.test" in p["people"] for p in result["pairs"])

    fake.set_roles(CLIENT_ID, ("Calendars.Read",))  # no User.Read.All
    with pytest.raises(RosterError, match=r"User\.Read\.All"):
        report(config)


def test_an_org_split_between_google_and_microsoft_gets_one_report(tmp_path: Path, fake: FakeGraph) -> None:
    on_microsoft = ["maya", "omar", "lena", "sam", "yuki", "noah", "priya"]
    expected, mailboxes = demo_org(tmp_path, fake, owners=on_microsoft)
    fake.add_app(CLIENT_ID, secret=SECRET)
    (tmp_path / "secret.txt").write_text(SECRET)
    with FakeGoogle() as google:
        calendars = []
        for owner, specs in sorted(demo_calendars(AS_OF).items()):
            if owner in on_microsoft:
                continue
            calendar = f"{owner}@acme.test"
            calendars.append(calendar)
            load_calendar(google, calendar, specs, "Europe/Berlin")
        # both directories know everyone, as the tenant does (demo_org): each source is asked for the
        # out-of-office of the people in a 1:1 line whose calendars it does not read, and finds it empty
        # where the other source holds their calendars
        for person in absentees(tmp_path, [*mailboxes, *calendars]) | set(mailboxes):
            load_calendar(google, person, [], "Europe/Berlin")
        (tmp_path / "sa.json").write_text(json.dumps(google.service_account_info()))
        config = tmp_path / "mixed.toml"
        config.write_text(
            demo_rules()
            + f"""[[sources]]
type = "google"
name = "workspace"
service_account_key = "sa.json"
calendars = {json.dumps(calendars)}
endpoint = "{google.calendar_endpoint}"
ca_bundle = "{google.ca_path}"
"""
            + microsoft_toml(fake, mailboxes)
        )
        result = report(config)
        assert result["errors"] == []
        assert without_rule_text(result["pairs"]) == without_rule_text(expected["pairs"])
        assert len(calendars) + len(mailboxes) == len(demo_calendars(AS_OF))


def test_state_file_is_private_and_a_run_past_the_span_reads_again(tmp_path: Path, fake: FakeGraph) -> None:
    config, _expected, mailboxes = setup(tmp_path, fake)
    report(config)
    state = tmp_path / "state" / "calsync.json"
    assert state.stat().st_mode & 0o777 == 0o600
    fake.reset_log()
    later = AS_OF + timedelta(days=40)  # the window now ends past the span the delta covered
    report_to_json(run_report(load_config(config), later))
    initial = [r for r in graph_gets(fake, DELTA) if "startDateTime" in r.query]
    assert {r.mailbox for r in initial} == set(mailboxes)


def test_a_failing_sign_in_service_is_a_problem_of_the_source_not_a_crash(
    tmp_path: Path, fake: FakeGraph
) -> None:
    config, _expected, _mailboxes = setup(tmp_path, fake)
    fake.fail_next(503, 1, path_contains="/oauth2/v2.0/token")
    result = report(config)
    assert [e["source"] for e in result["errors"]] == ["m365"]
    assert "sign-in service" in result["errors"][0]["message"]
    again = report(config)  # the next run signs in and reads everything
    assert again["errors"] == []


def test_a_refused_token_is_replaced_once_for_all_mailboxes(tmp_path: Path, fake: FakeGraph) -> None:
    config, _expected, mailboxes = setup(tmp_path, fake)
    loaded = load_config(config)
    source_config = loaded.sources[0]
    assert isinstance(source_config, MicrosoftSourceConfig)
    client = graph_client(source_config)
    window = sync_window(make_clock(loaded, AS_OF))
    store = StateStore(tmp_path / "state.json")
    try:
        # four mailboxes at a time (the default is now 8): at most four requests in flight get a 401
        source = MicrosoftSource("m365", mailboxes, client, store, default_tz=BERLIN, parallel=4)
        assert source.fetch(window).problems == []
        fake.expire_access_tokens()  # the token msal still holds is now refused
        fake.reset_log()
        result = source.fetch(window)
    finally:
        store.close()
    assert result.problems == [] and len(result.calendars) == len(mailboxes)
    assert 1 <= sum(1 for r in fake.requests if r.status == 401) <= 4  # the requests in flight at the time
    assert sum(1 for r in fake.requests if r.path.endswith("/token")) == 1  # one new token for all of them


def one_mailbox(tmp_path: Path, fake: FakeGraph) -> tuple[GraphClient, Window, StateStore]:
    """The demo org in the fake, for syncing a mailbox by hand: a Graph client, the window, a store."""
    config, _expected, _mailboxes = setup(tmp_path, fake)
    loaded = load_config(config)
    source_config = loaded.sources[0]
    assert isinstance(source_config, MicrosoftSourceConfig)
    return (
        graph_client(source_config),
        sync_window(make_clock(loaded, AS_OF)),
        StateStore(tmp_path / "state.json"),
    )


def test_an_instance_moved_across_the_parts_of_the_span_is_kept_either_way(
    tmp_path: Path, fake: FakeGraph
) -> None:
    client, window, store = one_mailbox(tmp_path, fake)
    mailbox = "maya@acme.test"
    try:
        source = MicrosoftSource("m365", [mailbox], client, store, default_tz=BERLIN)
        state = source.sync(mailbox, None, window)
        first, second = _parts(_listed(state), PARTS)[:2]
        assert len(_links(state.cursor)) == PARTS

        def at(day: datetime) -> dict[str, Any]:
            return {
                "start": {"dateTime": day.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "end": {
                    "dateTime": (day + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"),
                    "timeZone": "UTC",
                },
            }

        before, after = first.end - timedelta(days=3, hours=-9), second.start + timedelta(days=3, hours=9)
        event = fake.put_event(
            mailbox,
            {
                "subject": "Maya / Omar, moved around",
                **at(before),
                "organizer": {"emailAddress": {"address": mailbox}},
                "attendees": [{"emailAddress": {"address": "omar@acme.test"}, "type": "required"}],
            },
        )
        for moved_to in (before, after, before):  # put in the first part, then to the second and back
            fake.patch_event(mailbox, event["id"], at(moved_to))
            fake.reset_log()
            state = source.sync(mailbox, state, window)
            assert [r.path for r in fake.requests if not r.batch and "/v1.0/" in r.path] == ["/v1.0/$batch"]
            kept = state.events.get(event["id"])
            assert kept is not None, f"lost when moved to {moved_to}"
            assert kept["start"]["dateTime"].startswith(moved_to.strftime("%Y-%m-%dT%H:%M:%S"))
    finally:
        store.close()


def test_a_state_read_in_one_part_goes_on_with_its_one_link(tmp_path: Path, fake: FakeGraph) -> None:
    """A state written before the span was read in parts (or with ``parts=1``) is not read again."""
    client, window, store = one_mailbox(tmp_path, fake)
    mailbox = "maya@acme.test"
    try:
        old = MicrosoftSource("m365", [mailbox], client, store, default_tz=BERLIN, parts=1)
        state = old.sync(mailbox, None, window)
        assert state.cursor is not None and not state.cursor.startswith("[")
        fake.reset_log()
        state = MicrosoftSource("m365", [mailbox], client, store, default_tz=BERLIN).sync(
            mailbox, state, window
        )
        sent = [r for r in fake.requests if "/v1.0/" in r.path]
        assert [(r.path, "$deltatoken" in r.query, r.batch) for r in sent] == [
            (f"/v1.0/users/{mailbox}/calendarView/delta", True, False)
        ]
        assert len(_links(state.cursor)) == 1
    finally:
        store.close()


def test_a_state_kept_under_another_ignore_list_is_read_in_full_once(tmp_path: Path, fake: FakeGraph) -> None:
    """Maya's 1:1s with Priya are organised by her assistant: kept only when the assistant does not
    count. What a state dropped depends on whom it ignored, so a new list reads the mailbox in full."""
    client, window, store = one_mailbox(tmp_path, fake)
    mailbox, uid = "maya@acme.test", "maya-priya@acme.test"
    ignored = Ignored(tomllib.loads(DEMO_CONFIG)["detect"]["ignore_attendees"])

    def kept(state: Any) -> bool:
        return any(m.get("iCalUId") == uid for m in state.extra["masters"].values())

    def full_read() -> bool:
        views = graph_gets(fake, DELTA)
        return bool(views) and all("startDateTime" in r.query for r in views)

    try:
        nobody = MicrosoftSource("m365", [mailbox], client, store, default_tz=BERLIN)
        assistant = MicrosoftSource("m365", [mailbox], client, store, default_tz=BERLIN, ignored=ignored)
        state = nobody.sync(mailbox, None, window)
        assert not kept(state) and state.extra["kept"] == KEEP_RULE  # a meeting of three
        for source, keeps in ((assistant, True), (assistant, True), (nobody, False)):
            fake.reset_log()
            was = state.extra["kept"]
            state = source.sync(mailbox, state, window)
            assert full_read() == (was != source.kept)  # once per change of the list, then incremental
            assert kept(state) == keeps and state.extra["kept"] == source.kept
        assert assistant.kept == keep_rule(ignored) != KEEP_RULE
    finally:
        store.close()
