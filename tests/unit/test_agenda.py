"""calsync.agenda: composing one occurrence's agenda (pure), its rotation and its carried-over items."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from calsync.agenda import AgendaInput, Kind, Person, compose, environment, kind_of, open_items, plan
from calsync.model import Occurrence, Participant, Response, Status

MAYA = Person("maya@acme.test", "Maya Chen")
OMAR = Person("omar@acme.test", "Omar Haddad")


def agenda_input(**changes: object) -> AgendaInput:
    values: dict[str, object] = {
        "manager": MAYA,
        "report": OMAR,
        "start": datetime(2026, 11, 24, 9, tzinfo=ZoneInfo("America/New_York")),
        "title": "Maya / Omar 1:1",
        "number": 5,
        "cadence_days": 7,
    }
    values.update(changes)
    return AgendaInput(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cadence_days", "careers"),
    [(7, [8, 16, 24]), (14, [4, 8, 12, 16, 20, 24]), (28, [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24])],
)
def test_the_career_session_comes_about_every_two_months(cadence_days, careers):
    kinds = {n: kind_of(n, cadence_days) for n in range(1, 25)}
    assert kinds[1] is Kind.FIRST
    assert [n for n, kind in kinds.items() if kind is Kind.CAREER] == careers


def test_the_rotation_is_configurable():
    assert [n for n in range(1, 13) if kind_of(n, 7, career_every_weeks=4) is Kind.CAREER] == [4, 8, 12]


def test_a_regular_agenda_puts_the_report_first_and_opens_with_a_check_in():
    agenda = compose(agenda_input(growth_theme="Leading the on-call rotation"))
    assert agenda.kind is Kind.REGULAR
    md = agenda.markdown
    assert md.startswith("# Maya / Omar 1:1: Omar Haddad and Maya Chen\n")
    assert md.index("## Check-in") < md.index("## Omar Haddad's topics") < md.index("## Maya Chen's topics")
    assert "## Feedback, both ways" in md and "## Growth theme: Leading the on-call rotation" in md
    assert "Tuesday 24 November 2026, 09:00" in md
    assert "<h2>Omar Haddad's topics</h2>" in agenda.html


def test_first_and_career_agendas_differ_from_the_regular_one():
    first = compose(agenda_input(number=1))
    assert first.kind is Kind.FIRST and "## How we will work together" in first.markdown
    assert "## Omar Haddad's topics" not in first.markdown
    career = compose(agenda_input(number=8))
    assert career.kind is Kind.CAREER and "## Career and long-term development" in career.markdown


def test_everything_from_a_calendar_is_escaped_in_both_formats():
    agenda = compose(
        agenda_input(
            title="<script>alert(1)</script>",
            report=Person("omar@acme.test", 'Omar "<b>" & Co'),
            carried_items=["fix <img src=x onerror=alert(1)>"],
        )
    )
    for text in (agenda.html, agenda.markdown):
        assert "<script>" not in text and "<img" not in text and "<b>" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Omar &#34;&lt;b&gt;&#34; &amp; Co" in agenda.html


def test_open_items_carry_over_until_ticked_without_piling_up_escapes():
    first = compose(agenda_input(carried_items=["Share the Q4 plan", "Ask about a < b & c"]))
    # a human ticks one item and adds another between the meetings
    edited = (
        first.markdown.replace("- [ ] Share the Q4 plan", "- [x] Share the Q4 plan")
        + "- [ ] Book the offsite\n"
    )
    carried = open_items(edited)
    assert carried == ["Ask about a < b & c", "Book the offsite"]
    second = compose(agenda_input(number=6, carried_items=carried))
    assert open_items(second.markdown) == carried  # the same text again, not escaped twice
    assert "- [ ] Ask about a &lt; b &amp; c" in second.markdown
    assert open_items("- [X] done\n* [ ] star bullet\n  - [ ] indented\n- [ ] indented\n") == [
        "star bullet",
        "indented",
    ]


def test_an_org_may_override_a_template(tmp_path: Path):
    (tmp_path / "agenda.md.j2").write_text("Our own agenda for {{ report.name }} ({{ title }})\n")
    agenda = compose(agenda_input(title="<i>1:1</i>"), environment(tmp_path))
    assert agenda.markdown == "Our own agenda for Omar Haddad (&lt;i&gt;1:1&lt;/i&gt;)\n"
    assert agenda.html.startswith("<!DOCTYPE html>")  # the other template is still calsync's


BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 21, 0, tzinfo=BERLIN)


def occurrence(
    day: int,
    *,
    hour: int = 10,
    status: str = "confirmed",
    declined: bool = False,
    moved_to: int | None = None,
):
    original = datetime(2026, 11, day, hour, tzinfo=BERLIN)
    start = original if moved_to is None else datetime(2026, 11, moved_to, hour, tzinfo=BERLIN)
    return Occurrence(
        calendar="maya@acme.test",
        series_id="maya-omar@acme.test",
        recurrence_id=original,
        start=start,
        end=start.replace(minute=30),
        timezone="Europe/Berlin",
        title="Maya / Omar 1:1",
        organizer="maya@acme.test",
        participants=(
            Participant("maya@acme.test", response=Response.ACCEPTED),
            Participant("omar@acme.test", response=Response.DECLINED if declined else Response.ACCEPTED),
        ),
        status=Status(status),
        recurrence="FREQ=WEEKLY",
    )


PAIR = ("maya@acme.test", "omar@acme.test")


def test_only_upcoming_direct_occurrences_within_the_lead_time_are_due_an_agenda():
    occurrences = [occurrence(d) for d in (2, 9, 16, 22, 23, 29)]
    plans = plan({PAIR: occurrences}, [PAIR], NOW, lead_days=2)
    assert [p.occurrence.start.day for p in plans] == [
        22
    ]  # the 23rd 10:00 is past 2 days from 00:00 on the 21st
    assert plans[0].number == 4 and plans[0].kind is Kind.REGULAR and plans[0].cadence_days == 7
    assert plans[0].key == "maya-omar@acme.test|2026-11-22T09:00:00+00:00"
    assert [p.occurrence.start.day for p in plan({PAIR: occurrences}, [PAIR], NOW, lead_days=3)] == [22, 23]
    assert plan({PAIR: occurrences}, [], NOW) == []  # not a direct pair: no agenda


def test_cancelled_and_declined_meetings_do_not_count_and_a_moved_one_keeps_its_key():
    occurrences = [
        occurrence(2, status="cancelled"),
        occurrence(9, declined=True),
        occurrence(16, moved_to=21),  # moved from the 16th into the lead window
        occurrence(22, status="cancelled"),
    ]
    plans = plan({PAIR: occurrences}, [PAIR], NOW, lead_days=2)
    assert [(p.occurrence.start.day, p.number, p.kind) for p in plans] == [(21, 1, Kind.FIRST)]
    assert plans[0].key.startswith("maya-omar@acme.test|2026-11-16T09:00:00")  # its original start


# -- links in event bodies, rolling sections, what is read back (pure) -----------------------------------

from calsync.agenda import (  # noqa: E402
    LINK_START,
    growth_theme,
    has_link,
    latest_section,
    prepend_html,
    with_html_link,
    with_text_link,
)

TEAMS = (
    "<div>________________________________________________________________________________</div>\r\n"
    '<div><b>Microsoft Teams meeting</b></div><a href="https://teams.microsoft.com/l/meetup-join/x">'
    "Join the meeting now</a>\r\n"
)
EXCHANGE_BODY = (
    '<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n</head>\r\n'
    f"<body>\r\n<p>Let's talk about Q1 &amp; hiring.</p>\r\n{TEAMS}</body>\r\n</html>\r\n"
)


def test_the_link_section_goes_first_in_the_body_and_keeps_every_other_byte():
    url = "https://contoso-my.sharepoint.com/personal/maya/Documents/a.md?x=1&y=2"
    linked = with_html_link(EXCHANGE_BODY, url)
    head, _, rest = EXCHANGE_BODY.partition("<body>")
    assert linked.startswith(head + "<body>" + LINK_START)
    assert linked.endswith(rest)  # the organizer's words and the Teams block, byte for byte
    assert has_link(linked, url) and not has_link(EXCHANGE_BODY, url)
    assert 'href="https://contoso-my.sharepoint.com/personal/maya/Documents/a.md?x=1&amp;y=2"' in linked
    # a new link replaces calsync's section, and only it
    moved = with_html_link(linked, "https://example.test/b")
    assert moved.count(LINK_START) == 1 and moved.endswith(rest) and not has_link(moved, url)
    assert with_html_link(moved, "https://example.test/b") == moved


def test_a_text_description_gets_one_line_at_its_end():
    text = "Agenda lives below.\n\nBring your notes"
    linked = with_text_link(text, "https://agendas.test/a.html")
    assert linked.startswith(text) and linked.endswith("1:1 agenda (calsync): https://agendas.test/a.html")
    assert has_link(linked, "https://agendas.test/a.html")
    assert with_text_link(linked, "https://agendas.test/b.html").count("(calsync)") == 1
    assert (
        with_text_link("", "https://agendas.test/a.html")
        == "1:1 agenda (calsync): https://agendas.test/a.html"
    )


def test_the_growth_theme_is_read_back_but_not_the_placeholder():
    assert growth_theme("## Growth theme\nGrowth theme: (choose one together)\n") is None
    assert growth_theme("Growth theme: Public &lt;speaking&gt;\n") == "Public <speaking>"
    assert growth_theme("## Growth theme: Delegation\n- progress?") == "Delegation"
    assert growth_theme("* Growth theme: Mentoring") == "Mentoring"  # Google's plain-text export


def test_latest_section_is_the_top_one_of_a_rolling_document():
    newest = "# T: O and M\n\nMonday · 1:1 number 5\n\n## Action items\n- [ ] new\n"
    older = "# T: O and M\n\nMonday · 1:1 number 4\n\n## Action items\n- [ ] old\n"
    doc = f"{newest}\n---\n\n{older}"
    assert open_items(latest_section(doc)) == ["new"]
    assert latest_section(older) == older
    assert open_items(latest_section(older)) == ["old"]


def test_a_new_section_goes_on_top_of_the_body():
    document = "<html><head><style>p{}</style></head><body class='c'><p>old &amp; kept</p></body></html>"
    section = compose(agenda_input()).html
    merged = prepend_html(document, section, "abc")
    assert merged.startswith("<html><head><style>p{}</style></head><body class='c'>")
    assert merged.endswith("<p>old &amp; kept</p></body></html>")
    assert "<!-- calsync:section abc -->" in merged and merged.count("<body") == 1
    assert merged.index("1:1 number 5") < merged.index("old &amp; kept")
