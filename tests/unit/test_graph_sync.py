"""The pure parts of the Microsoft source: merging delta rounds, the listed span, what a mailbox's state
keeps, the free/busy requests and their answers, the org chart CSV, and where the app's credential
comes from."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from calsync.config import MicrosoftSourceConfig
from calsync.detect import NOBODY, Ignored
from calsync.sources.base import Window
from calsync.sources.microsoft import (
    BATCH_LIMIT,
    KEEP_RULE,
    PER_MAILBOX,
    _batches,
    _covers,
    _cursor,
    _drop_ignored,
    _keep_possible,
    _links,
    _merge,
    _parts,
    _spans,
    _take_schedules,
    graph_roster_csv,
    keep_rule,
    own_block,
    possible,
)
from calsync.sources.microsoft_auth import AuthError, client_credential
from calsync.store import CalendarState


def test_merge_applies_changes_and_removals_and_names_the_series_touched():
    events = {
        "a": {"id": "a", "type": "occurrence", "seriesMasterId": "M1"},
        "b": {"id": "b", "type": "singleInstance"},
        "c": {"id": "c", "type": "occurrence", "seriesMasterId": "M2"},
    }
    changed = _merge(
        events,
        [
            {"id": "b", "@removed": {"reason": "deleted"}},
            {"id": "c", "@removed": {"reason": "deleted"}},
            {"id": "d", "type": "exception", "seriesMasterId": "M3", "subject": "moved"},
            {"id": "e", "type": "singleInstance"},
            {"@removed": {"reason": "deleted"}},  # no id: nothing to do
        ],
    )
    assert sorted(events) == ["a", "d", "e"]
    assert changed == {"M2", "M3"}


def _at(ident: str, start: str, end: str) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "singleInstance",
        "start": {"dateTime": start, "timeZone": "UTC"},
        "end": {"dateTime": end, "timeZone": "UTC"},
    }


def test_a_part_removes_only_what_is_stored_at_times_it_covers():
    first = Window(datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    second = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))
    events = {
        # moved into the second part, whose round was applied first: the first part's removal is stale
        "moved": _at("moved", "2026-12-01T09:00:00.0000000", "2026-12-01T09:30:00.0000000"),
        "gone": _at("gone", "2026-10-01T09:00:00.0000000", "2026-10-01T09:30:00.0000000"),
        # across the cut: both parts list it, either part's removal counts
        "across": _at("across", "2026-10-31T23:30:00.0000000", "2026-11-01T00:30:00.0000000"),
        "unreadable": {"id": "unreadable", "type": "singleInstance"},
    }
    removed = [{"id": key, "@removed": {"reason": "deleted"}} for key in events]
    _merge(events, removed, first)
    assert sorted(events) == ["moved"]
    _merge(events, removed, second)
    assert events == {}


def test_the_span_is_cut_into_parts_of_whole_days_and_their_links_kept_in_one_cursor():
    span = Window(datetime(2026, 8, 16, tzinfo=UTC), datetime(2027, 3, 26, tzinfo=UTC))
    first, second = _parts(span, 2)
    assert (first.start, first.end, second.end) == (span.start, datetime(2026, 12, 5, tzinfo=UTC), span.end)
    assert second.start == first.end
    short = Window(span.start, span.start + (datetime(2026, 8, 17, tzinfo=UTC) - span.start))
    assert _parts(short, 2) == [short]  # one day is not cut
    assert _links(_cursor(["https://g/a?$deltatoken=1", "https://g/b?$deltatoken=2"])) == [
        "https://g/a?$deltatoken=1",
        "https://g/b?$deltatoken=2",
    ]
    assert _cursor(["https://g/a"]) == "https://g/a" and _links("https://g/a") == ["https://g/a"]
    # a cursor that cannot be read means a full read, not a crash
    assert _links(None) == _links("") == _links("[not json") == _links("[]") == _links('["", 3]') == []


def _state(start: str, end: str) -> CalendarState:
    return CalendarState("ann@acme.test", "link", "UTC", {}, {"listed": [start, end], "masters": {}})


def test_the_delta_span_must_cover_the_window():
    state = _state("2026-08-01T00:00:00Z", "2026-12-31T00:00:00Z")
    inside = Window(datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    later = Window(datetime(2026, 9, 1, tzinfo=UTC), datetime(2027, 1, 5, tzinfo=UTC))
    earlier = Window(datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert _covers(state, inside)
    assert not _covers(state, later) and not _covers(state, earlier)
    assert not _covers(CalendarState("x", "link"), inside)  # an older state without a span


def _person(address: str) -> dict[str, Any]:
    return {"emailAddress": {"address": address}, "type": "required"}


def test_keeping_what_could_be_a_1on1_says_whether_it_dropped_anything():
    """A drop changes the state (a new revision, see CalendarState.revision) even when no delta item
    came: the reading must not be the one kept from before."""
    pair = [_person("ann@acme.test"), _person("bob@acme.test")]
    masters = {"m1": {"attendees": pair}, "m2": {"attendees": [*pair, _person("cat@acme.test")]}}
    events: dict[str, dict[str, Any]] = {
        "i1": {"seriesMasterId": "m1"},
        "i2": {"seriesMasterId": "m2"},
        "s1": {"attendees": pair},
        "s2": {"isAllDay": True, "attendees": pair},
    }
    state = CalendarState("ann@acme.test", "link", "UTC", events, {"masters": masters})
    assert _keep_possible(state)
    assert (
        sorted(state.events) == ["i1", "s1"] and list(masters) == ["m1"] and state.extra["ignored"] == ["m2"]
    )
    assert not _keep_possible(state)  # nothing more to drop


def _by(organizer: str | None, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"attendees": [], **fields}
    if organizer is not None:
        event["organizer"] = {"emailAddress": {"address": organizer}}
    return event


def test_the_owners_out_of_office_is_kept_though_one_person_or_all_day():
    owner = "ann@acme.test"
    assert own_block(_by("ANN@acme.test", showAs="oof"), owner)
    assert own_block(_by(None, showAs="oof", isAllDay=True), owner)  # no organizer: the owner's
    assert not own_block(_by("bob@acme.test", showAs="oof"), owner)  # an invitation to Bob's block
    assert not own_block(_by(owner, showAs="busy"), owner) and not own_block(_by(owner), owner)
    masters = {
        "oof": _by(owner, showAs="oof"),
        "theirs": _by("bob@acme.test", showAs="oof", attendees=[_person(owner), _person("cat@acme.test")]),
        "gym": _by(owner, showAs="busy"),
    }
    events: dict[str, dict[str, Any]] = {
        "o1": {"seriesMasterId": "oof"},  # a stub: its master decides
        "t1": {"seriesMasterId": "theirs"},
        "g1": {"seriesMasterId": "gym"},
        "away": _by(owner, showAs="oof", isAllDay=True),
        "dentist": _by(owner, showAs="busy"),
        "invited": _by("bob@acme.test", showAs="oof", attendees=[_person(owner), _person("cat@acme.test")]),
    }
    state = CalendarState(owner, "link", "UTC", events, {"masters": masters})
    assert _keep_possible(state)
    assert sorted(state.events) == ["away", "o1"] and list(masters) == ["oof"]
    assert state.extra["ignored"] == ["gym", "theirs"]
    # an exception of an ignored series that became the owner's block stays (its master is judged anew)
    state.events["g2"] = {"seriesMasterId": "gym", **_by(owner, showAs="oof")}
    state.events["g3"] = {"seriesMasterId": "gym", **_by(owner, showAs="busy")}
    assert _drop_ignored(state) == set() and "g2" in state.events and "g3" not in state.events


EA, BOT = "kim.ea@acme.test", "notes@notetaker.example"
IGNORED = Ignored([EA, "*@notetaker.example"])


def test_people_who_do_not_count_are_not_counted_when_deciding_what_could_be_a_1on1():
    """An assistant who organises the 1:1s and a note-taking bot do not make a meeting of three, as
    the core does not count them (DESIGN.md 3b): their 1:1s are kept."""
    pair = [_person("ann@acme.test"), _person("bob@acme.test")]
    by_ea = _by(EA, attendees=[_person(EA), *pair])
    by_ea_unlisted = _by(EA, attendees=pair)  # Graph often does not list the organizer
    with_bot = _by("ann@acme.test", attendees=[*pair, _person(BOT)])
    for event in (by_ea, by_ea_unlisted, with_bot):
        assert not possible(event) and possible(event, IGNORED)
    # the rest of the rule stands: three people who count, one who counts, all day
    three = _by(EA, attendees=[*pair, _person("cat@acme.test")])
    alone = _by(EA, attendees=[_person("ann@acme.test"), _person(BOT)])
    assert not possible(three, IGNORED) and not possible(alone, IGNORED)
    assert not possible({**with_bot, "isAllDay": True}, IGNORED)
    assert possible(_by(None, attendees=[*pair, _person("ANN@acme.test")]), IGNORED)  # one Ann

    masters = {"ea": by_ea, "team": three}
    events: dict[str, dict[str, Any]] = {
        "e1": {"seriesMasterId": "ea"},
        "t1": {"seriesMasterId": "team"},
        "bot": with_bot,
    }
    state = CalendarState("ann@acme.test", "link", "UTC", events, {"masters": masters})
    assert _keep_possible(state, IGNORED)
    assert sorted(state.events) == ["bot", "e1"] and list(masters) == ["ea"]
    assert state.extra["ignored"] == ["team"]
    # an exception of an ignored series that, the bot not counted, is now two people stays
    state.events["t2"] = {"seriesMasterId": "team", **with_bot}
    state.events["t3"] = {"seriesMasterId": "team", **three}
    assert _drop_ignored(state, IGNORED) == set() and "t2" in state.events and "t3" not in state.events
    # ignoring nobody, the assistant's series and the bot's meeting go
    assert _keep_possible(state) and sorted(state.events) == [] and state.extra["ignored"] == ["ea", "team"]


def test_the_ignore_list_is_part_of_what_a_state_is_kept_by():
    # ignoring nobody, the states kept before ignore lists existed stay good
    assert keep_rule() == keep_rule(NOBODY) == keep_rule(Ignored()) == keep_rule(Ignored([" "])) == KEEP_RULE
    marked = keep_rule(IGNORED)
    assert marked.startswith(KEEP_RULE) and marked != KEEP_RULE
    # the same people however written; any change to them is another rule
    assert keep_rule(Ignored(["*@NoteTaker.example", "KIM.EA@acme.test"])) == marked
    assert keep_rule(Ignored([EA])) != marked
    assert keep_rule(Ignored([EA, "*@notetaker.example", "bo@acme.test"])) != marked
    assert keep_rule(Ignored([EA, "notes@notetaker.example"])) != marked  # an address, not the domain
    assert EA not in marked and "notetaker" not in marked  # a hash, not the addresses

    def bots(email: str) -> bool:
        return email.startswith("bot")

    assert keep_rule(bots) not in (KEEP_RULE, marked) and keep_rule(bots) == keep_rule(bots)


def test_the_window_is_asked_for_in_spans_and_batches_spread_over_the_mailboxes():
    window = Window(datetime(2026, 8, 16, tzinfo=UTC), datetime(2027, 2, 26, tzinfo=UTC))  # 194 days
    spans = _spans(window, 61)
    assert [(s.end - s.start).days for s in spans] == [61, 61, 61, 11]
    assert spans[0].start == window.start and spans[-1].end == window.end
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    assert _spans(Window(window.start, window.start), 61) == []
    groups = [[f"p{i}@acme.test"] for i in range(10)]
    calls = [(group, span) for span in spans for group in groups]  # 40 requests
    one = list(_batches(calls, ["ann@acme.test"]))
    assert [len(b) for b in one] == [PER_MAILBOX] * 10  # at most 4 through one mailbox at once
    many = list(_batches(calls, [f"m{i}@acme.test" for i in range(6)]))
    assert [len(b) for b in many] == [BATCH_LIMIT, BATCH_LIMIT]
    for batch in many:
        through = [asker for _group, _span, asker in batch]
        assert max(through.count(a) for a in through) <= PER_MAILBOX
    assert [(g, s) for b in many for g, s, _asker in b] == calls  # every request once, in order


def _item(status: str, start: str, end: str) -> dict[str, Any]:
    return {
        "status": status,
        "start": {"dateTime": start, "timeZone": "UTC"},
        "end": {"dateTime": end, "timeZone": "UTC"},
    }


def test_a_free_busy_answer_gives_each_persons_out_of_office_or_why_not():
    people = ["ann@acme.test", "bob@acme.test", "cat@acme.test", "dan@acme.test", "eve@acme.test"]
    blocks: dict[str, set[tuple[datetime, datetime]]] = {p: set() for p in people}
    failed: dict[str, str] = {}
    away = _item("oof", "2026-10-14T06:00:00.0000000", "2026-10-20T16:00:00.0000000")
    answer = {
        "value": [
            {
                "scheduleId": "Ann@Acme.test",
                "scheduleItems": [away, _item("busy", "2026-10-01T08:00:00", "2026-10-01T09:00:00")],
            },
            {
                "scheduleId": "bob@acme.test",
                "scheduleItems": [_item("Oof", "2026-11-01T00:00:00", "2026-11-02T00:00:00")],
            },
            {
                "scheduleId": "cat@acme.test",
                "error": {
                    "message": "Unable to resolve e-mail address cat@acme.test",
                    "responseCode": "5009",
                },
            },
            {"scheduleId": "dan@acme.test", "scheduleItems": None},  # seen for an unknown address too
        ]
    }
    _take_schedules(answer, people, blocks, failed)
    _take_schedules(answer, people, blocks, failed)  # the next span answers a long block again
    assert blocks["ann@acme.test"] == {
        (datetime(2026, 10, 14, 6, tzinfo=UTC), datetime(2026, 10, 20, 16, tzinfo=UTC))
    }
    assert len(blocks["bob@acme.test"]) == 1 and blocks["dan@acme.test"] == set()
    assert failed["cat@acme.test"] == "Unable to resolve e-mail address cat@acme.test (response code 5009)"
    assert failed["eve@acme.test"] == "Graph's free/busy answer does not include them"
    assert set(failed) == {"cat@acme.test", "eve@acme.test"}
    broken: dict[str, str] = {}
    _take_schedules(
        {"value": [{"scheduleId": "ann@acme.test", "scheduleItems": [{"status": "oof"}]}]},
        people[:1],
        blocks,
        broken,
    )
    assert "cannot be read" in broken["ann@acme.test"]
    _take_schedules({}, people[:1], blocks, broken)
    nothing: dict[str, str] = {}
    _take_schedules({"error": "?"}, people[:2], blocks, nothing)
    assert set(nothing) == set(people[:2]) and "no list of schedules" in nothing["bob@acme.test"]


def test_org_chart_csv_keeps_enabled_users_with_an_address_and_their_managers():
    csv_text = graph_roster_csv(
        [
            {"displayName": "Maya", "mail": "maya@acme.test", "accountEnabled": True},
            {
                "displayName": "Omar, Jr.",
                "mail": None,
                "userPrincipalName": "omar@acme.test",
                "manager": {"mail": "maya@acme.test"},
            },
            {"displayName": "Gone", "mail": "gone@acme.test", "accountEnabled": False},
            {"displayName": "Room", "mail": None, "userPrincipalName": None},
        ]
    )
    assert csv_text.splitlines() == [
        "email,name,manager_email",
        "maya@acme.test,Maya,",
        'omar@acme.test,"Omar, Jr.",maya@acme.test',
    ]


def _config(tmp_path: Path, **kwargs: object) -> MicrosoftSourceConfig:
    return MicrosoftSourceConfig(name="m", tenant="t", client_id="c", **kwargs)  # type: ignore[arg-type]


def test_the_secret_comes_from_an_environment_variable_or_a_file(tmp_path):
    env = {"M365": "  s3cret\n"}
    assert client_credential(_config(tmp_path, client_secret_env="M365"), env.get) == "s3cret"
    with pytest.raises(AuthError, match=r"M365_OTHER .* is not set"):
        client_credential(_config(tmp_path, client_secret_env="M365_OTHER"), env.get)
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    assert client_credential(_config(tmp_path, client_secret_file=secret)) == "from-file"
    secret.write_text("\n")
    with pytest.raises(AuthError, match="is empty"):
        client_credential(_config(tmp_path, client_secret_file=secret))


def test_a_certificate_file_needs_the_key_and_the_certificate(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    leaf = ca.issue_cert("calsync.test")
    pem = tmp_path / "app.pem"
    pem.write_bytes(leaf.private_key_pem.bytes() + leaf.cert_chain_pems[0].bytes())
    credential = client_credential(_config(tmp_path, certificate_file=pem))
    assert isinstance(credential, dict)
    assert (
        credential["private_key"].startswith("-----BEGIN") and "PRIVATE KEY-----" in credential["private_key"]
    )
    assert "CERTIFICATE" not in credential["private_key"]
    assert credential["public_certificate"].startswith("-----BEGIN CERTIFICATE-----")
    pem.write_bytes(leaf.cert_chain_pems[0].bytes())
    with pytest.raises(AuthError, match="both the private key and the certificate"):
        client_credential(_config(tmp_path, certificate_file=pem))
