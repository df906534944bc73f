"""`trapcount report --html`: a self-contained page, checked in a real headless Chromium
(Debian's /usr/bin/chromium driven by Playwright): every chart decodes, the totals table
is the database's, and a screenshot is kept in the test's tmp dir."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from edge_agent.cli import cli
from tests.helpers import browser
from tests.helpers.trap_databases import TRUTH, build_two_traps

pytest.importorskip("matplotlib", reason="--html needs matplotlib (the reports extra)")


@pytest.fixture(scope="module")
def traps(tmp_path_factory):
    return build_two_traps(tmp_path_factory.mktemp("traps"))


@pytest.fixture(scope="module")
def page(traps, tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "report.html"
    result = CliRunner().invoke(
        cli, ["report", "--db", str(traps[0]), "--db", str(traps[1]), "--html", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # --html alone prints no table
    assert result.stderr == f"wrote {path}: 8 events\n"
    return path


def database_totals(paths) -> dict[str, tuple[int, int]]:
    """{label: (events, sum of MaxN)} straight from the SQLite files, without trapcount."""
    totals: Counter[tuple[str, str]] = Counter()
    for path in paths:
        with sqlite3.connect(path) as db:
            query = "SELECT label, count(*), sum(max_n) FROM observations GROUP BY label"
            for label, events, count in db.execute(query):
                totals[(label, "events")] += events
                totals[(label, "count")] += count
        db.close()
    labels = sorted({label for label, _ in totals})
    return {label: (totals[(label, "events")], totals[(label, "count")]) for label in labels}


def test_the_page_is_self_contained(page):
    html = page.read_text("utf-8")
    assert "<script" not in html
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"url\(|@import|https?://", html.split("<body>")[0])
    assert html.count("<img") == 3  # per day, hour of day, free disk


def test_an_empty_range_still_makes_a_page(traps, tmp_path):
    path = tmp_path / "empty.html"
    result = CliRunner().invoke(
        cli, ["report", "--db", str(traps[0]), "--since", "2030-01-01", "--html", str(path)]
    )
    assert result.exit_code == 0, result.output
    html = path.read_text("utf-8")
    assert "No events in this period." in html and "<img" not in html


@browser.needs_chromium
def test_the_page_in_headless_chromium(page, traps, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra)")
    requested: list[str] = []
    with playwright.sync_playwright() as driver:
        context = browser.launch(driver, tmp_path, viewport={"width": 1280, "height": 900})
        try:
            browser_page = context.new_page()
            browser_page.on("request", lambda request: requested.append(request.url))
            browser_page.goto(page.as_uri(), wait_until="load")
            images = browser_page.eval_on_selector_all(
                "img",
                "imgs => imgs.map(i => ({alt: i.alt, ok: i.complete, w: i.naturalWidth, "
                "h: i.naturalHeight, shown: i.getBoundingClientRect().width}))",
            )
            totals = browser_page.eval_on_selector_all(
                "#totals tbody tr",
                "rows => rows.map(r => [r.dataset.label, "
                "r.querySelector('td.events').textContent, "
                "r.querySelector('td.count').textContent])",
            )
            per_deployment = browser_page.inner_text("#per-deployment")
            page_width = browser_page.evaluate("document.documentElement.scrollWidth")
            screenshot = tmp_path / "report.png"
            browser_page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()

    assert len(images) == 3
    for image in images:
        assert image["ok"] and image["w"] > 0 and image["h"] > 0, image
        assert image["shown"] > 600, image  # drawn wide, not a broken-image icon
    assert {alt["alt"] for alt in images} == {
        "counts per day per label",
        "activity by hour of day per label",
        "free disk over time",
    }
    assert {label: (int(e), int(c)) for label, e, c in totals} == database_totals(traps)
    assert {label: int(c) for label, _, c in totals} == TRUTH["combined"]
    assert "meadow" in per_deployment and "canyon" in per_deployment
    assert page_width <= 1280  # nothing sticks out sideways
    assert all(url.startswith(("file:", "data:")) for url in requested), requested
    assert screenshot.stat().st_size > 50_000


HOSTILE_TRAP = "<script>alert(1)</script>"
HOSTILE_LABEL = '"><img src=x onerror=alert(2)>'
HOSTILE_PLACE = "<b>Meadow</b> & co"


def test_values_from_the_database_are_escaped(traps, tmp_path, monkeypatch):
    """A trap id, label or place name holding markup (a tampered or foreign database) is
    shown as text: no script, no extra image, no broken attribute. The page is rendered
    from another working directory: its templates come from the package."""
    tampered = tmp_path / "tampered.sqlite"
    tampered.write_bytes(traps[0].read_bytes())
    with sqlite3.connect(tampered) as db:
        db.execute(
            "UPDATE deployments SET trap_id = ?, location_name = ?", (HOSTILE_TRAP, HOSTILE_PLACE)
        )
        db.execute("UPDATE observations SET label = ? WHERE label = 'fox'", (HOSTILE_LABEL,))
    db.close()
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "hostile.html"
    result = CliRunner().invoke(
        cli, ["report", "--db", str(tampered), "--db", str(traps[1]), "--html", str(path)]
    )
    assert result.exit_code == 0, result.output
    html = path.read_text("utf-8")
    assert "<script" not in html and "<img src=x" not in html and "<b>Meadow" not in html
    assert html.count("<img") == 3  # the charts only
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # title, deployment, health
    assert "<title>Wildlife counts: &lt;script&gt;alert(1)&lt;/script&gt;, canyon</title>" in html
    assert '<td class="deployment">&lt;script&gt;alert(1)&lt;/script&gt;</td>' in html
    tags = Tags()
    tags.feed(html)
    assert {name for name, _ in tags.found} <= PAGE_TAGS
    assert not any(key.startswith("on") for _, attrs in tags.found for key, _ in attrs)
    labels = {value for _, attrs in tags.found for key, value in attrs if key == "data-label"}
    assert HOSTILE_LABEL in labels  # the whole label, inside its attribute


# Every element the report uses: a value that became markup would add another.
PAGE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "div", "h1", "h2", "p",
    "main", "section", "table", "thead", "tbody", "tr", "th", "td", "span", "b", "img",
    "code", "br", "small", "ul", "li", "footer",
}  # fmt: skip


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.found.append((tag, attrs))
