"""calsync.org: the org chart (DESIGN.md section 3, "Org" and "Relationship of a pair") and the roster."""

from __future__ import annotations

from datetime import date

import pytest

from calsync.model import Problem
from calsync.org import (
    Exclusion,
    Org,
    Person,
    Relationship,
    RosterError,
    load_roster,
    nothing_to_check,
    parse_roster,
)

DOMAINS = ("acme.test",)

# ceo
# ├── ann (vp)
# │   ├── bob
# │   └── cat
# └── dan
#     └── eve
TREE = [
    Person("ceo@acme.test", "Chief", None),
    Person("ann@acme.test", "Ann", "ceo@acme.test"),
    Person("bob@acme.test", "Bob", "ann@acme.test", cadence_days=7),
    Person("cat@acme.test", "Cat", "ann@acme.test"),
    Person("dan@acme.test", "Dan", "ceo@acme.test"),
    Person("eve@acme.test", "Eve", "dan@acme.test", timezone="Asia/Tokyo"),
]


@pytest.fixture
def org() -> Org:
    return Org(TREE, DOMAINS)


def parse(text: str, domains: tuple[str, ...] = DOMAINS) -> tuple[Org, list[str]]:
    found, problems = parse_roster(text, domains, "org.csv")
    assert all(isinstance(p, Problem) and p.source == "org.csv" for p in problems)
    return found, [p.message for p in problems]


def managers(org: Org) -> dict[str, str | None]:
    return {email: person.manager for email, person in org.people.items()}


# -- relationships ----------------------------------------------------------------------------------


def test_direct_in_both_directions(org):
    assert org.relationship("ann@acme.test", "bob@acme.test") is Relationship.DIRECT
    assert org.relationship("bob@acme.test", "ann@acme.test") is Relationship.DIRECT
    assert org.manager_and_report("ann@acme.test", "bob@acme.test") == ("ann@acme.test", "bob@acme.test")
    assert org.manager_and_report("bob@acme.test", "ann@acme.test") == ("ann@acme.test", "bob@acme.test")


def test_skip_level_in_both_directions(org):
    assert org.relationship("ceo@acme.test", "bob@acme.test") is Relationship.SKIP_LEVEL
    assert org.relationship("eve@acme.test", "ceo@acme.test") is Relationship.SKIP_LEVEL
    assert org.manager_and_report("bob@acme.test", "ceo@acme.test") == ("ceo@acme.test", "bob@acme.test")
    assert org.manager_and_report("ceo@acme.test", "eve@acme.test") == ("ceo@acme.test", "eve@acme.test")


def test_peers_share_a_manager(org):
    assert org.relationship("bob@acme.test", "cat@acme.test") is Relationship.PEER
    assert org.relationship("ann@acme.test", "dan@acme.test") is Relationship.PEER
    assert org.manager_and_report("bob@acme.test", "cat@acme.test") is None


def test_other_pairs(org):
    # cousins, aunt/nephew (ann is eve's manager's peer), and people outside the roster
    assert org.relationship("bob@acme.test", "eve@acme.test") is Relationship.OTHER
    assert org.relationship("ann@acme.test", "eve@acme.test") is Relationship.OTHER
    assert org.relationship("bob@acme.test", "stranger@acme.test") is Relationship.OTHER
    assert org.manager_and_report("ann@acme.test", "eve@acme.test") is None


def test_two_people_without_managers_are_not_peers():
    org = Org([Person("a@acme.test", "A", None), Person("b@acme.test", "B", None)], DOMAINS)
    assert org.relationship("a@acme.test", "b@acme.test") is Relationship.OTHER
    # nor are two unknown people
    assert org.relationship("x@acme.test", "y@acme.test") is Relationship.OTHER


def test_same_person_is_other(org):
    assert org.relationship("bob@acme.test", "BOB@acme.test") is Relationship.OTHER
    assert org.manager_and_report("bob@acme.test", "bob@acme.test") is None


def test_relationships_ignore_case(org):
    assert org.relationship("Ann@ACME.test", "BOB@acme.TEST") is Relationship.DIRECT
    assert org.manager_and_report("CEO@acme.test", "Bob@Acme.Test") == ("ceo@acme.test", "bob@acme.test")


def test_direct_pairs_and_reports(org):
    assert org.direct_pairs() == [
        ("ann@acme.test", "bob@acme.test"),
        ("ann@acme.test", "cat@acme.test"),
        ("ceo@acme.test", "ann@acme.test"),
        ("ceo@acme.test", "dan@acme.test"),
        ("dan@acme.test", "eve@acme.test"),
    ]
    assert org.reports_of("ANN@acme.test") == ["bob@acme.test", "cat@acme.test"]
    assert org.reports_of("bob@acme.test") == []
    assert org.manager_of("Bob@acme.test") == "ann@acme.test"
    assert org.manager_of("ceo@acme.test") is None
    assert org.manager_of("nobody@acme.test") is None


def test_is_member_by_exact_domain_case_insensitive():
    org = Org([], ["Acme.Test", "example.test"])
    assert org.domains == ("acme.test", "example.test")
    assert org.is_member("someone@acme.test")
    assert org.is_member("Someone@ACME.TEST")
    assert org.is_member("x@example.test")
    assert not org.is_member("x@eu.acme.test")  # no subdomain matching
    assert not org.is_member("x@acme.test.evil")
    assert not org.is_member("x@notacme.test")
    assert not org.is_member("acme.test")
    assert not org.is_member("@acme.test")


def test_membership_does_not_need_the_roster(org):
    assert org.person("new.hire@acme.test") is None
    assert org.is_member("new.hire@acme.test")


def test_names_fall_back_to_the_email(org):
    assert org.name("BOB@acme.test") == "Bob"
    assert org.name("stranger@acme.test") == "stranger@acme.test"


def test_person_lookup_and_cadence(org):
    assert org.person("Eve@acme.test") == TREE[5]
    assert org.cadence_days_of("bob@acme.test") == 7
    assert org.cadence_days_of("cat@acme.test") is None
    assert org.cadence_days_of("nobody@acme.test") is None


# -- roster parsing ----------------------------------------------------------------------------------


def test_parse_a_clean_roster():
    text = (
        "email,name,manager_email,cadence_days,timezone\n"
        "ceo@acme.test,Chief,,,\n"
        "Ann@Acme.Test, Ann Lee ,CEO@acme.test,7,Europe/Berlin\n"
        "bob@acme.test,,ann@acme.test,,\n"
    )
    org, problems = parse(text)
    assert problems == []
    assert list(org.people) == ["ceo@acme.test", "ann@acme.test", "bob@acme.test"]
    assert org.person("ann@acme.test") == Person(
        "ann@acme.test", "Ann Lee", "ceo@acme.test", cadence_days=7, timezone="Europe/Berlin"
    )
    assert org.person("bob@acme.test") == Person("bob@acme.test", "bob@acme.test", "ann@acme.test")
    assert org.name("bob@acme.test") == "bob@acme.test"
    assert org.direct_pairs() == [("ann@acme.test", "bob@acme.test"), ("ceo@acme.test", "ann@acme.test")]
    assert org.domains == DOMAINS


def test_optional_columns_may_be_absent():
    org, problems = parse("email,name,manager_email\nann@acme.test,Ann,\nbob@acme.test,Bob,ann@acme.test\n")
    assert problems == []
    assert org.person("bob@acme.test") == Person("bob@acme.test", "Bob", "ann@acme.test", None, None)


def test_columns_in_any_order_and_case_and_extra_columns_ignored():
    text = (
        " Manager_Email ,TimeZone,team, EMAIL ,Name,CADENCE_DAYS\n"
        ",UTC,exec,ann@acme.test,Ann,\n"
        "ann@acme.test,,eng,bob@acme.test,Bob,21\n"
    )
    org, problems = parse(text)
    assert problems == []
    assert org.person("ann@acme.test") == Person("ann@acme.test", "Ann", None, None, "UTC")
    assert org.person("bob@acme.test") == Person("bob@acme.test", "Bob", "ann@acme.test", 21, None)


def test_bom_comments_blank_lines_and_crlf():
    text = (
        "\ufeff# exported from HR on 2026-11-01\r\n"
        "email,name,manager_email\r\n"
        "\r\n"
        "ann@acme.test,Ann,\r\n"
        "  # bob@acme.test,Bob,ann@acme.test\r\n"
        ",,\r\n"
        "cat@acme.test,Cat,ann@acme.test\r\n"
        "cat@acme.test,Cat again,\r\n"
    )
    org, problems = parse(text)
    assert sorted(org.people) == ["ann@acme.test", "cat@acme.test"]
    assert problems == ["line 8: duplicate of line 7 (cat@acme.test); this row is ignored"]


def test_quoted_fields_and_short_rows():
    text = (
        'email,name,manager_email,cadence_days\n"ann@acme.test","Lee, Ann"\nbob@acme.test,Bob,ann@acme.test\n'
    )
    org, problems = parse(text)
    assert problems == []
    assert org.person("ann@acme.test") == Person("ann@acme.test", "Lee, Ann", None)
    assert org.manager_of("bob@acme.test") == "ann@acme.test"


def test_missing_or_invalid_email_skips_the_row():
    text = (
        "email,name,manager_email\n"
        "ann@acme.test,Ann,\n"
        ",Nobody,ann@acme.test\n"
        "bob,Bob,ann@acme.test\n"
        "a@b@acme.test,Two Ats,ann@acme.test\n"
        "cat@acme.test,Cat,ann@acme.test\n"
    )
    org, problems = parse(text)
    assert sorted(org.people) == ["ann@acme.test", "cat@acme.test"]
    assert problems == [
        "line 3: no email; this row is ignored",
        'line 4: email "bob" is not an email address (expected local@domain); this row is ignored',
        'line 5: email "a@b@acme.test" is not an email address (expected local@domain); this row is ignored',
    ]


def test_duplicate_email_keeps_the_first_row():
    text = (
        "email,name,manager_email\n"
        "ann@acme.test,Ann,\n"
        "bob@acme.test,Bob,ann@acme.test\n"
        "cat@acme.test,Cat,ann@acme.test\n"
        "BOB@acme.test,Bobby,cat@acme.test\n"
    )
    org, problems = parse(text)
    assert problems == ["line 5: duplicate of line 3 (bob@acme.test); this row is ignored"]
    assert org.person("bob@acme.test") == Person("bob@acme.test", "Bob", "ann@acme.test")
    assert len(org.people) == 3


def test_manager_email_that_is_not_an_email():
    org, problems = parse("email,name,manager_email\nann@acme.test,Ann,\nbob@acme.test,Bob,Ann Lee\n")
    assert problems == [
        'line 3: manager_email "Ann Lee" is not an email address; bob@acme.test is read as having no manager'
    ]
    assert org.person("bob@acme.test") == Person("bob@acme.test", "Bob", None)


def test_unknown_manager_is_dropped_and_explained():
    text = "email,name,manager_email\nann@acme.test,Ann,\nbob@acme.test,Bob,anne@acme.test\n"
    org, problems = parse(text)
    assert len(problems) == 1
    assert problems[0].startswith("line 3: unknown manager anne@acme.test (manager_email of bob@acme.test)")
    assert "add anne@acme.test to the roster or fix the typo" in problems[0]
    assert org.person("bob@acme.test") == Person("bob@acme.test", "Bob", None)
    assert org.direct_pairs() == []


def test_a_manager_listed_after_their_report_is_found():
    org, problems = parse("email,name,manager_email\nbob@acme.test,Bob,ann@acme.test\nann@acme.test,Ann,\n")
    assert problems == []
    assert org.direct_pairs() == [("ann@acme.test", "bob@acme.test")]


@pytest.mark.parametrize("value", ["abc", "0", "-3", "2.5", "1e3", "٣"])
def test_bad_cadence_days_is_ignored(value):
    org, problems = parse(f"email,name,manager_email,cadence_days\nann@acme.test,Ann,,{value}\n")
    assert problems == [
        f'line 2: cadence_days "{value}" is not a whole number from 1 to 3660; '
        "the default cadence is used for ann@acme.test"
    ]
    assert org.person("ann@acme.test") == Person("ann@acme.test", "Ann", None, None)


def test_bad_timezone_is_ignored():
    text = (
        "email,name,manager_email,timezone\nann@acme.test,Ann,,Mars/Base\nbob@acme.test,Bob,,europe/paris\n"
    )
    org, problems = parse(text)
    assert problems[0].startswith('line 2: timezone: unknown IANA time zone "Mars/Base"')
    assert problems[0].endswith("; ignored for ann@acme.test")
    assert problems[1].startswith('line 3: timezone: unknown IANA time zone "europe/paris"')
    assert 'did you mean "Europe/Paris"?' in problems[1]
    assert org.person("ann@acme.test") == Person("ann@acme.test", "Ann", None)
    assert org.person("bob@acme.test") == Person("bob@acme.test", "Bob", None)


def test_own_manager_link_is_dropped():
    org, problems = parse("email,name,manager_email\nann@acme.test,Ann,ANN@acme.test\n")
    assert problems == ["line 2: ann@acme.test is listed as their own manager; the manager link is dropped"]
    assert org.person("ann@acme.test") == Person("ann@acme.test", "Ann", None)


def test_management_cycle_drops_the_link_of_the_last_row():
    text = (
        "email,name,manager_email\n"
        "a@acme.test,A,b@acme.test\n"
        "b@acme.test,B,c@acme.test\n"
        "c@acme.test,C,a@acme.test\n"
        "d@acme.test,D,c@acme.test\n"
    )
    org, problems = parse(text)
    assert problems == [
        "line 4: management cycle: a@acme.test -> b@acme.test -> c@acme.test -> a@acme.test; "
        "dropped the manager link of c@acme.test (line 4) to break it: fix manager_email in the roster"
    ]
    assert sorted(org.people) == ["a@acme.test", "b@acme.test", "c@acme.test", "d@acme.test"]
    assert managers(org) == {
        "a@acme.test": "b@acme.test",
        "b@acme.test": "c@acme.test",
        "c@acme.test": None,
        "d@acme.test": "c@acme.test",
    }


def test_cycle_is_named_from_the_dropped_link_whatever_the_row_order():
    # rows: c (line 2) -> a, a (line 3) -> b, b (line 4) -> c: b's row is last, so b's link is dropped
    text = (
        "email,name,manager_email\n"
        "c@acme.test,C,a@acme.test\n"
        "a@acme.test,A,b@acme.test\n"
        "b@acme.test,B,c@acme.test\n"
    )
    org, problems = parse(text)
    assert problems == [
        "line 4: management cycle: c@acme.test -> a@acme.test -> b@acme.test -> c@acme.test; "
        "dropped the manager link of b@acme.test (line 4) to break it: fix manager_email in the roster"
    ]
    assert managers(org) == {"c@acme.test": "a@acme.test", "a@acme.test": "b@acme.test", "b@acme.test": None}
    assert org.relationship("a@acme.test", "c@acme.test") is Relationship.DIRECT


def test_two_cycles_are_each_reported_once_and_broken_once():
    text = (
        "email,name,manager_email\n"
        "x@acme.test,X,\n"
        "a@acme.test,A,b@acme.test\n"
        "p@acme.test,P,q@acme.test\n"
        "b@acme.test,B,a@acme.test\n"
        "q@acme.test,Q,p@acme.test\n"
        "y@acme.test,Y,foo\n"
    )
    org, problems = parse(text)
    assert problems == [
        'line 7: manager_email "foo" is not an email address; y@acme.test is read as having no manager',
        "line 5: management cycle: a@acme.test -> b@acme.test -> a@acme.test; "
        "dropped the manager link of b@acme.test (line 5) to break it: fix manager_email in the roster",
        "line 6: management cycle: p@acme.test -> q@acme.test -> p@acme.test; "
        "dropped the manager link of q@acme.test (line 6) to break it: fix manager_email in the roster",
    ]
    assert len(org.people) == 6
    assert org.direct_pairs() == [("b@acme.test", "a@acme.test"), ("q@acme.test", "p@acme.test")]


def test_people_outside_the_domains_are_kept_and_reported():
    text = "email,name,manager_email\nann@acme.test,Ann,\nzed@partner.test,Zed,ann@acme.test\n"
    org, problems = parse(text)
    assert problems == [
        "line 3: zed@partner.test is outside the org's domains (acme.test); "
        "kept in the roster, but treated as external in meetings"
    ]
    assert org.person("zed@partner.test") == Person("zed@partner.test", "Zed", "ann@acme.test")
    assert not org.is_member("zed@partner.test")
    assert org.direct_pairs() == [("ann@acme.test", "zed@partner.test")]


def test_problems_come_in_line_order():
    text = (
        "email,name,manager_email,cadence_days\n"
        "bob@acme.test,Bob,nobody@acme.test,0\n"  # unknown manager (found late) + bad cadence
        "bob@acme.test,Bob,,\n"
        ",,,\n"
        "bad,,,\n"
    )
    _, problems = parse(text)
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 2", "line 3", "line 5"]
    assert "cadence_days" in problems[0]
    assert "unknown manager" in problems[1]


def test_parsing_is_deterministic():
    text = "email,name,manager_email\n" + "".join(
        f"p{i}@acme.test,P{i},p{(i + 1) % 5}@acme.test\n" for i in range(5)
    )
    first = parse(text)
    second = parse(text)
    assert first[1] == second[1]
    assert managers(first[0]) == managers(second[0])
    assert len(first[1]) == 1
    assert "dropped the manager link of p4@acme.test (line 6)" in first[1][0]


def test_missing_required_columns_is_a_roster_error():
    with pytest.raises(RosterError) as info:
        parse_roster("email,full name,manager\nann@acme.test,Ann,\n", DOMAINS, "org.csv")
    message = str(info.value)
    assert message.startswith("org.csv: line 1: the header lacks the required column(s) name, manager_email")
    assert "email,name,manager_email" in message


def test_header_after_comments_is_found_and_its_line_named():
    with pytest.raises(
        RosterError, match=r"org.csv: line 3: the header lacks the required column\(s\) email"
    ):
        parse_roster("# HR export\n\nmail,name,manager_email\n", DOMAINS, "org.csv")


def test_empty_roster_is_a_roster_error():
    with pytest.raises(RosterError, match=r"org\.csv: the roster is empty"):
        parse_roster("\ufeff\n# nothing here\n", DOMAINS, "org.csv")


def test_header_only_roster_is_an_empty_org():
    org, problems = parse("email,name,manager_email\n")
    assert problems == []
    assert len(org.people) == 0
    assert org.direct_pairs() == []


def test_load_roster_reads_the_file_and_labels_problems_with_its_name(tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes(b"\xef\xbb\xbfemail,name,manager_email\nann@acme.test,Ann,\nann@acme.test,Ann,\n")
    org, problems = load_roster(path, ["ACME.test"])
    assert list(org.people) == ["ann@acme.test"]
    assert problems == [
        Problem("people.csv", "line 3: duplicate of line 2 (ann@acme.test); this row is ignored")
    ]
    _, problems = load_roster(path, DOMAINS, label="conf/people.csv")
    assert problems[0].source == "conf/people.csv"


def test_load_roster_that_is_not_utf8_is_read_with_a_problem(tmp_path):
    path = tmp_path / "org.csv"
    path.write_bytes(b"email,name,manager_email\nann@acme.test,J\xf6rg,\n")
    org, problems = load_roster(path, DOMAINS)
    assert org.name("ann@acme.test") == "J\ufffdrg"
    assert len(problems) == 1
    assert problems[0].message.startswith("line 2: not valid UTF-8")


def test_unreadable_roster_is_a_roster_error(tmp_path):
    with pytest.raises(RosterError) as info:
        load_roster(tmp_path / "missing.csv", DOMAINS)
    assert str(info.value).startswith("missing.csv: cannot read the roster (No such file or directory)")
    assert "[org] roster" in str(info.value)


def test_exclude_columns_give_an_exclusion():
    text = (
        "email,name,manager_email,exclude,exclude_until\n"
        "ann@acme.test,Ann,,,\n"
        "bob@acme.test,Bob,ann@acme.test,parental leave,2027-01-31\n"
        "cat@acme.test,Cat,ann@acme.test,yes,\n"
        "dan@acme.test,Dan,ann@acme.test,notice period,31/01/2027\n"
    )
    org, problems = parse(text)
    bob, cat, dan = (org.person(f"{n}@acme.test") for n in ("bob", "cat", "dan"))
    assert bob is not None and bob.exclusion == Exclusion(
        "bob@acme.test", "parental leave", date(2027, 1, 31)
    )
    assert cat is not None and cat.exclusion == Exclusion("cat@acme.test", "excluded", None)
    # a bad end date is reported; the person stays excluded (no end) rather than flagged by surprise
    assert dan is not None and dan.exclusion == Exclusion("dan@acme.test", "notice period", None)
    assert problems == [
        'line 5: exclude_until "31/01/2027" is not a date like 2027-01-31; dan@acme.test is excluded '
        "with no end date until it is fixed"
    ]
    assert org.person("ann@acme.test").exclusion is None  # type: ignore[union-attr]
    assert bob.exclusion.active(date(2027, 1, 31)) and not bob.exclusion.active(date(2027, 2, 1))


def test_an_org_without_a_manager_report_pair_is_a_problem_of_the_roster():
    assert nothing_to_check(Org(TREE, DOMAINS), "org.csv") is None
    empty = nothing_to_check(Org([], DOMAINS), "org.csv")
    assert empty == Problem(
        "org.csv",
        "the roster lists no one: no 1:1 can be checked; add one row per person under the header "
        "(email,name,manager_email)",
    )
    alone = nothing_to_check(Org([Person("ann@acme.test", "Ann", None)], DOMAINS), "org.csv", skipped=True)
    assert alone is not None and alone.message.startswith(
        "the one person in the roster has no manager (see the other problems of the roster): "
        "there is no manager/report pair to check"
    )
    chart = nothing_to_check(Org([], DOMAINS), "microsoft-graph", chart=True)
    assert chart is not None and chart.message.startswith("the org chart lists no one")


@pytest.mark.parametrize(("separator", "found"), [(";", "3 semicolons"), ("\t", "3 tabs")])
def test_a_roster_separated_by_semicolons_or_tabs_is_told_to_use_commas(separator, found):
    header = separator.join(["email", "name", "manager_email", "cadence_days"])
    row = separator.join(["ann@acme.test", "Ann", "", ""])
    with pytest.raises(RosterError) as info:
        parse_roster(f"{header}\n{row}\n", DOMAINS, "org.csv")
    assert str(info.value) == (
        f"org.csv: line 1: the header has no commas but {found}: calsync reads comma-separated CSV; "
        'save the roster with commas as separators (in a spreadsheet: "CSV UTF-8 (comma delimited)")'
    )
