"""Report assembly: which pairs appear, their roles and cadence, and the renderings."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

from calsync.cadence import PairStatus
from calsync.detect import resolve
from calsync.model import CalendarData
from calsync.org import Exclusion, Org, Person
from calsync.report import PairReport, Policy, Report, build_report, render_csv, render_json, render_table
from tests.builders import at, clock, occ, series_copy

BOSS, ANN, BOB, CAT = "boss@acme.test", "ann@acme.test", "bob@acme.test", "cat@acme.test"
ORG = Org(
    [
        Person(BOSS, "Boss", None),
        Person(ANN, "Ann", BOSS, cadence_days=7),
        Person(BOB, "Bob", ANN),
        Person(CAT, "Cat", ANN),
    ],
    ["acme.test"],
)


def report_for(*occurrences, policy: Policy | None = None):
    calendar = CalendarData("cal-a", tuple(occurrences), (series_copy("cal-a"),))
    return build_report(ORG, resolve([calendar]), clock(), policy or Policy())


def by_people(report: Report) -> dict[tuple[str, str], PairReport]:
    return {p.people: p for p in report.pairs}


def test_every_direct_pair_appears_even_without_meetings():
    pairs = by_people(report_for())
    assert set(pairs) == {(ANN, BOSS), (ANN, BOB), (ANN, CAT)}
    assert {str(p.status) for p in pairs.values()} == {"no-series"}
    assert pairs[(ANN, BOB)].manager == ANN and pairs[(ANN, BOB)].report == BOB


def test_roster_cadence_of_the_report_applies_to_direct_pairs():
    pairs = by_people(report_for())
    assert pairs[(ANN, BOSS)].assessment.cadence_days == 7  # Ann's own cadence_days, as Boss's report
    assert pairs[(ANN, BOB)].assessment.cadence_days == 14


def test_non_direct_pairs_appear_only_with_a_one_on_one_in_the_windows():
    peer_recent = occ(at(-10), people=(BOB, CAT), series="peer")
    pairs = by_people(report_for(peer_recent))
    assert pairs[(BOB, CAT)].status == "untracked" and pairs[(BOB, CAT)].relationship == "peer"
    # 95 days ago lies in the sync margin, outside the 90-day look-back: the pair is not reported
    peer_old = occ(at(-95), people=(BOB, CAT), series="peer")
    assert (BOB, CAT) not in by_people(report_for(peer_old))


def test_skip_level_tracked_only_with_skip_level_days():
    meeting = occ(at(-40), people=(BOSS, BOB), series="skip")
    untracked = by_people(report_for(meeting))[(BOB, BOSS)]
    assert (untracked.status, untracked.assessment.cadence_days) == ("untracked", None)
    assert (
        untracked.assessment.reasons[0]
        == "skip-level 1:1s are tracked only when cadence.skip_level_days is set"
    )
    tracked = by_people(report_for(meeting, policy=Policy(skip_level_days=30)))[(BOB, BOSS)]
    assert (tracked.status, tracked.assessment.cadence_days) == ("overdue", 30)
    assert (tracked.manager, tracked.report) == (BOSS, BOB)


def test_series_listed_once_with_its_schedule_and_moved_in_occurrences_count():
    # s2's only occurrence was due before the window and moved into it: it counts, and so does s2.
    moved_in = occ(at(-89), rid=at(-92), series="s2")
    report = report_for(moved_in, occ(at(-82)), occ(at(-75)))
    pair = by_people(report)[(ANN, BOB)]
    assert [s.id for s in pair.series] == ["s2", "s1"]
    assert pair.series[1].scheduled_cadence_days == 7
    assert pair.assessment.states.held == (at(-89).date(), at(-82).date(), at(-75).date())


def test_renderings_agree():
    report = report_for(occ(at(-3)), occ(at(4)), occ(at(-10), people=(BOB, CAT), series="peer"))
    data = json.loads(render_json(report))
    assert [p["people"] for p in data["pairs"]] == sorted(p["people"] for p in data["pairs"])
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert [(r["person_a"], r["person_b"], r["status"]) for r in rows] == [
        (p["people"][0], p["people"][1], p["status"]) for p in data["pairs"]
    ]
    table = render_table(report)
    assert table.index("no-series") < table.index("\nok ")  # worst first
    assert "Bob" in table and "peer" not in table  # untracked hidden by default
    assert "untracked (peer)" in render_table(report, show_untracked=True)


def test_an_excluded_person_s_pairs_are_shown_as_excluded_not_flagged():
    people = [*ORG.people.values()]
    bob_on_leave = Person(BOB, "Bob", ANN, exclusion=Exclusion(BOB, "parental leave", date(2027, 1, 31)))
    org = Org([p for p in people if p.email != BOB] + [bob_on_leave], ["acme.test"])
    config_exclusion = Exclusion(ANN, "sabbatical", None, source="config")
    report = build_report(org, resolve([]), clock(), Policy(exclusions=(config_exclusion,)))
    pairs = by_people(report)
    # Ann is excluded in the config: her pairs with Boss and with her reports; Bob's roster entry is
    # not needed to exclude (Ann, Bob), the config's is found first
    assert pairs[(ANN, BOSS)].excluded == config_exclusion
    assert pairs[(ANN, BOB)].excluded == config_exclusion
    assert str(pairs[(ANN, BOB)].status) == "no-series"  # the assessment itself is unchanged
    assert report.count(PairStatus.NO_SERIES) == 0 and report.excluded_count == 3
    data = json.loads(render_json(report))
    assert data["pairs"][0]["excluded"] == {
        "person": ANN,
        "reason": "sabbatical",
        "until": None,
        "source": "config",
    }
    table = render_table(report)
    assert "\nexcluded " in table and "Ann: sabbatical (excluded in the config)" in table
    assert "0 no-series" in table and "3 excluded" in table
    row = next(csv.DictReader(io.StringIO(render_csv(report))))
    assert row["excluded"] == "Ann: sabbatical (excluded in the config)"


def test_an_exclusion_ends_after_its_last_day():
    people = [p for p in ORG.people.values() if p.email != BOB]
    ended = Person(BOB, "Bob", ANN, exclusion=Exclusion(BOB, "leave", clock().as_of_date - timedelta(days=1)))
    report = build_report(Org([*people, ended], ["acme.test"]), resolve([]), clock(), Policy())
    assert by_people(report)[(ANN, BOB)].excluded is None
    assert by_people(report)[(ANN, BOB)].shown_status == "no-series"
    # an untracked pair is never "excluded": it is not flagged in the first place
    peer = Exclusion(CAT, "leave")
    calendar = CalendarData("cal-a", (occ(at(-3), people=(BOB, CAT)),), (series_copy("cal-a"),))
    report = build_report(ORG, resolve([calendar]), clock(), Policy(exclusions=(peer,)))
    assert by_people(report)[(BOB, CAT)].excluded is None
    assert by_people(report)[(ANN, CAT)].excluded == peer


def words(text: str) -> str:
    return " ".join(text.split())


def test_the_table_fits_a_given_width_and_is_left_alone_without_one():
    meetings = (occ(at(-3)), occ(at(4)), occ(at(-40), people=(ANN, BOSS), series="s2"))
    report = report_for(*meetings, occ(at(-10), people=(BOB, CAT), series="peer"))
    plain = render_table(report)
    assert plain == render_table(report, width=None)
    assert max(len(line) for line in plain.splitlines()) > 100  # one line per pair, however long
    reasons = [p.assessment.reasons[0] for p in report.pairs if str(p.status) != "untracked"]
    for width in (60, 80, 100, 140):
        fitted = render_table(report, width=width)
        assert max(len(line) for line in fitted.splitlines()) <= width, (width, fitted)
        assert all(words(reason) in words(fitted) for reason in reasons)  # wrapped, not cut
    wide = render_table(report, width=140).splitlines()
    header = next(line for line in wide if line.startswith("STATUS"))
    assert header.endswith("WHY")  # wide enough: the WHY column wraps within itself
    column = header.index("WHY")
    continued = [line for line in wide if line.startswith(" " * column) and line.strip()]
    assert continued and all(line[column] != " " for line in continued)
    narrow = render_table(report, width=80).splitlines()
    assert next(line for line in narrow if line.startswith("STATUS")).rstrip().endswith("NEXT")
    assert any(line.startswith("    (1 held, 0 cancelled, 0 declined) ") for line in narrow)
