"""The digest core: schedule, scope, figures, heatmap, rendering and the message (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from zoneinfo import ZoneInfo

from calsync.agenda import environment
from calsync.detect import resolve
from calsync.digest.compose import (
    Figures,
    build_message,
    compose,
    due_period,
    leaders,
    message_id,
    next_due,
    render,
    subtree,
)
from calsync.digest.headers import mailbox
from calsync.model import CalendarData, Occurrence, Problem
from calsync.org import Exclusion, Org, Person
from calsync.report import Policy, build_report
from tests.builders import AS_OF, at, clock, occ

D = "acme.test"
BERLIN = ZoneInfo("Europe/Berlin")


def e(local: str) -> str:
    return f"{local}@{D}"


# vp -> m1, m2; m1 -> r1, r2; m2 -> r3, r4. Elsewhere: top -> r9.
PEOPLE = [
    Person(e("vp"), "Vera Vice", None),
    Person(e("m1"), "Mia One", e("vp")),
    Person(e("m2"), "Max Two", e("vp")),
    Person(e("r1"), "Rita Roe", e("m1")),
    Person(e("r2"), "Rob <script>alert(1)</script>", e("m1")),
    Person(e("r3"), "Rae Ray", e("m2")),
    Person(
        e("r4"), "Ron Rex", e("m2"), exclusion=Exclusion(e("r4"), "parental leave", AS_OF + timedelta(30))
    ),
    Person(e("top"), "Tom Top", None),
    Person(e("r9"), "Rex Nine", e("top")),
]
ORG = Org(PEOPLE, [D])
SECRET_TITLE = "Rita <> Mia: salary talk"


def weekly(a: str, b: str, days: range, series: str, title: str = "1:1") -> list[Occurrence]:
    return [occ(at(d), people=(e(a), e(b)), series=series, title=title) for d in days]


def occurrences() -> list[Occurrence]:
    return [
        *weekly("vp", "m1", range(-84, 20, 7), "vp-m1"),  # ok, weekly
        *weekly("vp", "m2", range(-84, -30, 7), "vp-m2"),  # overdue: stopped 35 days ago, nothing ahead
        *weekly("m1", "r1", range(-84, 20, 14), "m1-r1", SECRET_TITLE),  # ok, biweekly
        # m1 / r2: nothing at all -> no-series
        *weekly("m2", "r3", range(-10, 20, 28), "m2-r3"),  # at-risk: every 4 weeks
        *weekly("m2", "r4", range(-84, -40, 7), "m2-r4"),  # overdue, but r4 is excluded
        *weekly("top", "r9", range(-84, -40, 7), "top-r9"),  # overdue, outside vp's org
    ]


def report(errors: tuple[Problem, ...] = ()):
    calendars = [CalendarData("cal", tuple(occurrences()))]
    return build_report(ORG, resolve(calendars), clock(), Policy(14, 3), errors)


def digest_of(leader: str, **kw):
    return compose(report(), ORG, e(leader), AS_OF, cadence_days=14, grace_days=3, **kw)


def test_due_period_is_the_latest_due_time_at_or_before_now() -> None:
    monday = date(2026, 11, 16)
    assert due_period(datetime(2026, 11, 16, 8, 0, tzinfo=BERLIN), 0, 8, BERLIN) == monday
    assert due_period(datetime(2026, 11, 16, 7, 59, tzinfo=BERLIN), 0, 8, BERLIN) == monday - timedelta(7)
    assert due_period(datetime(2026, 11, 22, 23, 0, tzinfo=BERLIN), 0, 8, BERLIN) == monday
    # 07:30 UTC on Monday is 08:30 in Berlin: in the org's time zone, the new period has begun
    assert due_period(datetime(2026, 11, 16, 7, 30, tzinfo=UTC), 0, 8, BERLIN) == monday
    assert due_period(datetime(2026, 11, 21, 12, 0, tzinfo=BERLIN), 4, 17, BERLIN) == date(2026, 11, 20)
    assert next_due(datetime(2026, 11, 18, tzinfo=BERLIN), 0, 8, BERLIN) == datetime(
        2026, 11, 23, 8, tzinfo=BERLIN
    )
    # across the end of summer time the due hour stays 08:00 local
    assert next_due(datetime(2026, 10, 21, tzinfo=BERLIN), 0, 8, BERLIN).utcoffset() == timedelta(hours=1)


def test_leaders_are_everyone_with_reports_unless_listed() -> None:
    assert leaders(ORG) == [e("m1"), e("m2"), e("top"), e("vp")]
    assert leaders(ORG, [e("vp")]) == [e("vp")]
    # level by level, each level by name: Max before Mia, then Max's Rae and Ron, Mia's Rita and Rob
    assert subtree(ORG, e("vp")) == [e("m2"), e("m1"), e("r3"), e("r4"), e("r1"), e("r2")]
    assert subtree(ORG, e("r1")) == []


def test_a_leader_sees_their_whole_subtree_and_nothing_else() -> None:
    d = digest_of("vp")
    assert [s.manager for s in d.sections] == [e("vp"), e("m2"), e("m1")]
    assert [s.level for s in d.sections] == [0, 1, 1]
    shown = {p.report for s in d.sections for p in (*s.attention, *s.excluded)}
    assert shown == {e("m2"), e("r2"), e("r3"), e("r4")}
    assert e("r9") not in shown and all(s.manager != e("top") for s in d.sections)
    assert d.figures == Figures(tracked=5, ok=2, overdue=1, no_series=1, at_risk=1, excluded=1)
    assert d.figures.share_ok == 40
    assert (d.people, d.managers) == (6, 3)


def test_a_manager_sees_only_their_team() -> None:
    d = digest_of("m2")
    assert [s.manager for s in d.sections] == [e("m2")]
    assert d.figures == Figures(tracked=1, ok=0, overdue=0, no_series=0, at_risk=1, excluded=1)
    (section,) = d.sections
    assert [p.report for p in section.attention] == [e("r3")]
    assert [p.status for p in section.excluded] == ["excluded"]
    assert "parental leave" in section.excluded[0].reason


def test_pairs_that_need_attention_carry_their_dates_counts_and_reason() -> None:
    d = digest_of("vp")
    own = d.sections[0]
    assert own.tracked == 2 and own.ok == 1
    (m2,) = own.attention
    assert (m2.report, m2.status, m2.days_since_last, m2.next_scheduled) == (e("m2"), "overdue", 35, None)
    assert m2.reason.startswith("no 1:1 held for 35 days")
    mia = d.sections[2]
    assert [(p.report, p.status) for p in mia.attention] == [(e("r2"), "no-series")]


def test_the_heatmap_counts_the_1_1s_held_each_week() -> None:
    d = digest_of("vp")
    weeks = d.heatmap.weeks
    assert len(weeks) == 12 and weeks[-1] == AS_OF - timedelta(7) and weeks[0] == AS_OF - timedelta(84)
    rows = {r.label: r.counts for r in d.heatmap.rows}
    assert rows["Vera Vice"] == (2,) * 8 + (1,) * 4  # vp-m2: the last one held 35 days ago
    assert rows["Mia One"] == (1, 0) * 6
    assert rows["Max Two"] == (1,) * 7 + (0, 0, 0, 1, 0)  # r4 until 42 days ago, r3 10 days ago
    assert d.heatmap.total.counts == tuple(map(sum, zip(*rows.values(), strict=True)))
    assert [r.label for r in d.heatmap.rows] == ["Vera Vice", "Max Two", "Mia One"]
    # a week without a 1:1 is grey, the busiest green
    assert d.heatmap.rows[1].shades[7] == "#f1f1f1" and d.heatmap.rows[0].shades[0] != "#f1f1f1"


# top -> mid -> low -> worker: two levels of managers below the top; top -> solo, who manages no one.
DEEP = Org(
    [
        Person(e("top"), "Tess Top", None),
        Person(e("mid"), "Una Under", e("top")),
        Person(e("low"), "Val Deep", e("mid")),
        Person(e("worker"), "Wes Worker", e("low")),
        Person(e("solo"), "Xia Solo", e("top")),
    ],
    [D],
)


def deep_digest(leader: str):
    pairs = [("top", "mid"), ("top", "solo"), ("mid", "low"), ("low", "worker")]
    occurrences = [o for a, b in pairs for o in weekly(a, b, range(-84, 0, 7), f"{a}-{b}")]
    rep = build_report(DEEP, resolve([CalendarData("cal", tuple(occurrences))]), clock(), Policy(14, 3))
    return compose(rep, DEEP, e(leader), AS_OF, cadence_days=14, grace_days=3)


def test_without_managers_below_the_heatmap_is_the_total_row_alone() -> None:
    # Max manages no managers: his own row would repeat the total row, so it is left out
    d = digest_of("m2")
    assert d.heatmap.rows == ()
    assert d.heatmap.total.label == "All 1:1s"
    assert d.heatmap.total.counts == (1,) * 7 + (0, 0, 0, 1, 0)
    out = render(d, environment())
    heat = out.text.split("== 1:1s held per week")[1].split("--")[0]
    assert [line.split()[0:2] for line in heat.splitlines()[2:] if line.strip()] == [["All", "1:1s"]]
    assert "Max Two" not in heat
    html_heat = out.html[out.html.index("1:1s held per week") :]
    assert ">All 1:1s</td>" in html_heat and ">Max Two</td>" not in html_heat
    assert "A row counts" not in out.html and "whole part of the org" not in out.html
    # the same with deeper levels: Val manages Wes only
    assert deep_digest("low").heatmap.rows == ()


def test_the_note_on_whole_parts_of_the_org_shows_only_with_such_a_row() -> None:
    top = deep_digest("top")
    assert [(r.label, r.org) for r in top.heatmap.rows] == [("Tess Top", False), ("Una Under's org", True)]
    html = render(top, environment()).html
    assert "A row counts the 1:1s a manager held with their reports" in html
    assert "a row such as &ldquo;Una Under&#39;s org&rdquo; counts a whole part of the org" in html
    # Una's direct report Val manages only Wes: a row of Val's own 1:1s, no whole part of the org
    mid = deep_digest("mid")
    assert [(r.label, r.org) for r in mid.heatmap.rows] == [("Una Under", False), ("Val Deep", False)]
    html = render(mid, environment()).html
    assert "A row counts the 1:1s a manager held with their reports." in html
    assert "whole part of the org" not in html and "&#39;s org&rdquo;" not in html
    # the demo-like org above: Vera's two managers have no managers below them
    assert "whole part of the org" not in render(digest_of("vp"), environment()).html


def test_the_heatmap_s_month_headings_span_their_weeks() -> None:
    weeks = digest_of("vp").heatmap.weeks  # 29 Aug ... 14 Nov 2026
    assert digest_of("vp").heatmap.months == (
        (weeks[0], 1),  # 29 Aug
        (weeks[1], 4),  # 5 ... 26 Sep
        (weeks[5], 5),  # 3 ... 31 Oct
        (weeks[10], 2),  # 7, 14 Nov
    )
    html = render(digest_of("vp"), environment()).html
    assert '<td class="date" colspan="4" align="center"' in html and ">Sep</td>" in html


def test_changes_since_the_previous_digest() -> None:
    before = Figures(tracked=4, ok=3, overdue=0, no_series=1, at_risk=0, excluded=1)
    d = digest_of("vp", previous=before, previous_period=AS_OF - timedelta(7))
    assert d.changes["overdue"] == "+1" and d.changes["ok"] == "-1" and d.changes["excluded"] == "±0"
    assert d.changes["share_ok"] == "-35 pts"
    assert digest_of("vp").changes == {}
    assert Figures.from_json(before.to_json()) == before
    assert Figures.from_json({"tracked": "4"}) is None and Figures.from_json(None) is None


def test_rendering_escapes_names_and_never_shows_titles() -> None:
    d = digest_of("m1")
    out = render(d, environment())
    assert "<script>" not in out.html and "Rob &lt;script&gt;alert(1)&lt;/script&gt;" in out.html
    assert "Rob <script>alert(1)</script>" in out.text  # plain text: shown as written, never rendered
    for part in (out.html, out.text, out.subject):
        assert "salary" not in part and "1:1 number" not in part
    assert "Rita Roe" not in out.html and "No 1:1s" in out.html  # Rita's 1:1s are ok
    assert "because you lead 2 people" in out.text
    assert out.subject == "1:1s in Mia One's org, week of 21 Nov 2026: 1 without 1:1s"


def test_an_unreadable_calendar_is_announced_in_the_digest() -> None:
    unread = (Problem("google: m2@acme.test", "403", unread=True), Problem("x.ics", "bad event"))
    d = compose(report(unread), ORG, e("vp"), AS_OF, cadence_days=14, grace_days=3)
    assert d.unread == 1
    assert "1 calendar or source could not be read" in render(d, environment()).text
    assert "could not be read" not in render(digest_of("vp"), environment()).text


def test_the_message_is_multipart_with_a_stable_message_id() -> None:
    d = digest_of("m1")
    when = datetime(2026, 11, 21, 8, tzinfo=UTC)
    msg = build_message(
        d, render(d, environment()), sender=mailbox("Digests <calsync@acme.test>"), reply_to=None, when=when
    )
    parsed = message_from_bytes(bytes(msg), policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["To"].addresses[0].addr_spec == e("m1")
    assert parsed["Message-ID"] == message_id(e("m1"), AS_OF, mailbox("calsync@acme.test"))
    assert parsed["Message-ID"] != message_id(e("m1"), AS_OF + timedelta(7), mailbox("calsync@acme.test"))
    assert parsed["Auto-Submitted"] == "auto-generated" and parsed["Reply-To"] is None


def test_a_name_cannot_inject_headers() -> None:
    # the name of a leader from an org chart (or any input not cleaned when read): a line break, ESC
    people = [
        Person(e("boss"), "Evil\r\nBcc: everyone@acme.test\x1b[2J", None),
        Person(e("x"), "X\x07", e("boss")),
    ]
    org = Org(people, [D])
    rep = build_report(org, resolve([]), clock(), Policy(14, 3))
    d = compose(rep, org, e("boss"), AS_OF, cadence_days=14, grace_days=3)
    assert d.leader_name == "Evil\\r\\nBcc: everyone@acme.test\\x1b[2J"
    msg = build_message(
        d, render(d, environment()), sender=mailbox("c@acme.test"), reply_to=None, when=datetime.now(UTC)
    )
    raw = bytes(msg)  # used to raise ValueError: Header values may not contain linefeed
    assert b"\nBcc:" not in raw and b"\x1b" not in raw and b"\x07" not in raw
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None
    (to,) = parsed["To"].addresses
    assert (to.display_name, to.addr_spec) == (d.leader_name, e("boss"))
    assert d.leader_name in parsed["Subject"]
    for part in parsed.iter_parts():
        assert "\x1b" not in part.get_content() and "\x07" not in part.get_content()


def test_an_org_s_own_templates_override_calsync_s_and_are_autoescaped(tmp_path) -> None:
    (tmp_path / "digest.html.j2").write_text("<p>Team of {{ d.leader_name }}: {{ d.figures.tracked }}</p>")
    (tmp_path / "digest.txt.j2").write_text("Team of {{ d.leader_name }}")
    people = [Person(e("boss"), "<b>Boss</b>", None), Person(e("x"), "X", e("boss"))]
    org = Org(people, [D])
    rep = build_report(org, resolve([]), clock(), Policy(14, 3))
    out = render(compose(rep, org, e("boss"), AS_OF, cadence_days=14, grace_days=3), environment(tmp_path))
    assert out.html == "<p>Team of &lt;b&gt;Boss&lt;/b&gt;: 1</p>"
    assert out.text == "Team of <b>Boss</b>"


def test_an_exclusions_reason_reaches_only_the_excluded_persons_own_manager() -> None:
    # Ron (r4) is excluded for parental leave; his manager is Max (m2); Vera (vp) leads Max.
    own = digest_of("m2")
    above = digest_of("vp")
    (line,) = own.sections[0].excluded
    assert "parental leave" in line.reason
    (vera_sees,) = [p for s in above.sections for p in s.excluded]
    assert vera_sees.reason == "Ron Rex: excluded" and vera_sees.status == "excluded"
    env = environment(None)
    for part in (render(above, env).text, render(above, env).html):
        assert "parental leave" not in part
    assert "parental leave" in render(own, env).text


def test_absence_titles_never_reach_a_digest_and_excused_cancellations_are_not_counted() -> None:
    from calsync.model import Absence, Status
    from calsync.report import Fairness

    block = Absence(
        e("r1"),
        datetime(2026, 11, 9, tzinfo=UTC),
        datetime(2026, 11, 14, tzinfo=UTC),
        all_day=True,
        calendar="Surgery at St Mary's",  # where a careless source might put a title: never shown
    )
    cancelled = occ(at(-9), people=(e("m1"), e("r1")), series="m1-r1", status=Status.CANCELLED)
    calendars = [CalendarData("cal", (*occurrences(), cancelled))]
    rep = build_report(ORG, resolve(calendars), clock(), Policy(14, 3), fairness=Fairness((block,)))
    pair = next(p for p in rep.pairs if p.people == (e("m1"), e("r1")))
    assert pair.assessment.states.excused == (AS_OF - timedelta(9),)
    d = compose(rep, ORG, e("vp"), AS_OF, cadence_days=14, grace_days=3)
    env = environment(None)
    text, html = render(d, env).text, render(d, env).html
    assert "Surgery" not in text + html and "St Mary" not in text + html
    lines = [p for s in d.sections for p in s.attention if p.report == e("r1")]
    assert all(p.cancelled == 0 for p in lines)


def test_pairs_that_could_not_be_checked_are_shown_apart_and_not_flagged() -> None:
    from calsync.report import Coverage, Fairness

    problem = Problem("workspace: m1@acme.test", "HTTP 403", unread=True, owner=e("m1"))
    calendars = [CalendarData("cal", tuple(occurrences()))]
    coverage = Coverage.of(calendars, [problem])
    rep = build_report(
        ORG, resolve(calendars), clock(), Policy(14, 3), (problem,), Fairness(coverage=coverage)
    )
    d = compose(rep, ORG, e("vp"), AS_OF, cadence_days=14, grace_days=3)
    assert d.figures.unknown == 1  # Rob (r2) had no 1:1 in any calendar read: not "no 1:1s"
    assert d.figures.no_series == 0
    text = render(d, environment(None)).text
    assert "Could not be checked: not flagged" in text and "Not checked:   1" in text
    assert "1 could not be checked" in render(d, environment(None)).subject
