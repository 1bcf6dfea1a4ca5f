"""The digest's HTML part in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright for Python) at phone and desktop widths. The page must never scroll sideways, and no date or
status may wrap onto a second line.

Without /usr/bin/chromium or playwright these tests are skipped, unless CALSYNC_REQUIRE_BROWSER=1 (CI
sets it): then they fail."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from calsync.agenda import environment
from calsync.cli import main
from calsync.demo import email, write_demo
from calsync.detect import resolve
from calsync.digest.compose import Figures, compose, render
from calsync.model import CalendarData, Occurrence, Status
from calsync.org import Exclusion, Org, Person
from calsync.report import Policy, build_report
from tests.builders import AS_OF, at, clock, occ

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_ENV = "CALSYNC_REQUIRE_BROWSER"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTHS = (360, 390, 1000)
DEMO_LEADERS = ("maya", "omar", "priya", "lena", "diego")
DEMO_AS_OF = date(2026, 11, 21)


def skip_or_fail(why: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{why}, and {REQUIRE_ENV}=1 requires it")
    pytest.skip(f"{why} (set {REQUIRE_ENV}=1 to make this a failure)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


# -- the digests ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_digests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The HTML part of each demo leader's digest, as ``calsync digest --preview`` writes it (with the
    demo's planted unreadable file: exit code 3, and the digests carry their warning box)."""
    directory = tmp_path_factory.mktemp("digest-browser") / "demo"
    config, _ = write_demo(directory, DEMO_AS_OF)
    found = {}
    for leader in DEMO_LEADERS:
        target = directory / f"{leader}.html"
        out, err = io.StringIO(), io.StringIO()
        args = ["digest", "--config", str(config), "--now", f"{DEMO_AS_OF}T00:00"]
        code = main([*args, "--preview", email(leader), "-o", str(target)], out, err)
        assert code in (0, 3) and target.exists(), err.getvalue()
        found[leader] = target.read_text(encoding="utf-8")
    return found


D = "acme.test"
#: Names a narrow column must cope with: long ones, and one that is a single very long word.
LONG = [
    "Maximiliana Wolfeschlegelsteinhausenbergerdorff",
    "Bartholomew-Featherstonehaugh Cholmondeley-Marjoribanks",
    "Anneliese_Konstantinopoulou_Papadimitriou_Vandersteenhoven",
    "Jean-Baptiste Alexandre de la Rochefoucauld-Montmorency",
    "Xiomara Guadalupe Fernández de Córdoba y Sotomayor",
    "Oluwaseun <Ade> Adebayo-Okonkwo & Sons",
]


def e(local: str) -> str:
    return f"{local}@{D}"


def crowded_html() -> str:
    """A digest with very long names, several levels, many pairs in every status, and the changes
    since a previous digest under the figures."""
    leader = Person(e("lead"), "Alexandra Konstantinopoulou-Featherstonehaugh", None)
    people = [leader]
    occurrences: list[Occurrence] = []
    managers = [f"m{i}" for i in range(5)]
    for i, m in enumerate(managers):
        boss = e("lead") if i < 4 else e("m0")  # m4 reports to m0: m0's row is a whole part of the org
        people.append(Person(e(m), f"{LONG[i]} {i}", boss))
        occurrences += [occ(at(d), people=(e("lead"), e(m)), series=f"lead-{m}") for d in range(-84, -30, 7)]
        for j in range(12):
            r = f"{m}r{j}"
            excluded = Exclusion(e(r), "parental leave " * 4, AS_OF + timedelta(60)) if j == 11 else None
            people.append(Person(e(r), f"{LONG[(i + j) % len(LONG)]} {j}", e(m), exclusion=excluded))
            series = f"{m}-{r}"
            if j < 5:  # ok, weekly: double-digit weekly counts in the heatmap
                days = range(-84, 20, 7)
            elif j < 7:  # overdue, with cancelled and declined ones
                days = range(-84, -35, 7)
                occurrences.append(occ(at(-28), people=(e(m), e(r)), series=series, status=Status.CANCELLED))
                occurrences.append(occ(at(-21), people=(e(m), e(r)), series=series, declined=(e(r),)))
            elif j < 9:  # at risk: the next one far ahead, dates in the reason
                days = range(-10, 80, 35)
            else:  # no 1:1s at all
                days = range(0)
            occurrences += [occ(at(d), people=(e(m), e(r)), series=series) for d in days]
    # a direct report of the leader's on leave: the one exclusion whose reason the leader's digest gives
    # (those of the managers' reports read "excluded": DESIGN.md 3b)
    away = Exclusion(e("lr"), "parental leave " * 4, AS_OF + timedelta(60))
    people.append(Person(e("lr"), f"{LONG[3 % len(LONG)]} 12", e("lead"), exclusion=away))
    org = Org(people, [D])
    calendars = [CalendarData("cal", tuple(occurrences))]
    report = build_report(org, resolve(calendars), clock(), Policy(14, 3))
    previous = Figures(tracked=70, ok=9, overdue=31, no_series=13, at_risk=17, excluded=2)
    digest = compose(
        report,
        org,
        e("lead"),
        AS_OF,
        previous=previous,
        previous_period=AS_OF - timedelta(7),
        cadence_days=14,
        grace_days=3,
        skip_level_days=30,
    )
    return render(digest, environment()).html


@pytest.fixture(scope="module")
def digests(demo_digests: dict[str, str]) -> dict[str, str]:
    return {**demo_digests, "crowded": crowded_html()}


# -- in the browser ---------------------------------------------------------------------------------------

#: For each element of a class: how many lines its text takes (distinct tops of its text's line boxes).
LINES = """cls => Array.from(document.getElementsByClassName(cls)).map(el => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const tops = new Set(Array.from(range.getClientRects())
        .filter(r => r.width > 0 && r.height > 0).map(r => Math.round(r.top)));
    return {text: el.textContent, lines: tops.size};
})"""
#: The innermost elements whose box reaches past the right edge of the viewport.
STICKING_OUT = """() => {
    const out = el => el.getBoundingClientRect().right > window.innerWidth + 0.5;
    return Array.from(document.body.querySelectorAll('*'))
        .filter(el => out(el) && !Array.from(el.children).some(out))
        .map(el => el.tagName + ': ' + (el.textContent || '').trim().slice(0, 60));
}"""


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", [*DEMO_LEADERS, "crowded"])
def test_the_digest_fits_the_screen_with_dates_and_statuses_on_one_line(
    browser: Browser, digests: dict[str, str], name: str, width: int
) -> None:
    page = browser.new_page(viewport={"width": width, "height": 800})
    try:
        page.route("**/*", lambda route: route.abort())  # a digest loads nothing from anywhere
        page.set_content(digests[name])
        scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        sticking_out: list[str] = page.evaluate(STICKING_OUT)
        assert scroll_width <= inner_width, f"scrolls sideways at {width} px: {sticking_out[:5]}"
        assert not sticking_out
        for cls in ("date", "status"):
            shown: list[dict[str, Any]] = page.evaluate(LINES, cls)
            assert shown, f"no element of class {cls!r}"
            wrapped = [s["text"] for s in shown if s["lines"] != 1]
            assert not wrapped, f"{cls} on more than one line at {width} px: {wrapped}"
    finally:
        page.close()


def test_the_crowded_digest_escapes_every_name() -> None:
    html = crowded_html()
    assert "<Ade>" not in html and "& Sons" not in html
    assert "Oluwaseun &lt;Ade&gt; Adebayo-Okonkwo &amp; Sons" in html
    # also where a name is part of an exclusion's reason (with its date kept on one line): the reason
    # itself for the leader's own report, "excluded" for those further down
    assert "Oluwaseun &lt;Ade&gt; Adebayo-Okonkwo &amp; Sons 11: excluded" in html
    assert " 12: parental leave parental leave" in html
    assert '<span class="date" style="white-space:nowrap;">2027-01-20</span>' in html
