"""`trapcount report --html`: a self-contained page, checked in a real headless Chromium
(Debian's /usr/bin/chromium driven by Playwright): every chart decodes, the totals table
is the database's, and a screenshot is kept in the test's tmp dir."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter

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
