"""The HTML report's pictures, effort and print layout (issue 24): event thumbnails only of
images clear of people, trap-days from a known heartbeat series (or the footage without
heartbeats) and detections per 100 trap-nights, and every event on paper.

Real trap databases (tests/helpers/trap_databases.py), real JPEG crops and frames written
where the media keeper writes them, the page rendered by `trapcount report --html` and, for
print, laid out by Debian's headless Chromium."""

from __future__ import annotations

import base64
import io
import re
import sqlite3
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge_agent.cli import cli
from edge_agent.office.effort import FOOTAGE, HEARTBEATS, trap_effort
from edge_agent.office.html_report import render_html
from edge_agent.office.report_data import load, open_stores
from edge_agent.office.thumbnails import CAPPED, event_thumbnails
from edge_agent.store.database import Store
from tests.helpers import browser
from tests.helpers.trap_databases import MEADOW, Planned, build_trap_db, utc

pytest.importorskip("matplotlib", reason="--html needs matplotlib (the reports extra)")

# Heartbeats every 10 min from 4 h before the first event to 4 h after the last
# (2024-06-01 06:00 to 2024-06-03 14:00 UTC: 56 h), none from 02:00 to 10:00 on June 2:
# 48 h of running, 2.00 trap-days. The deer at 05:00 on June 2 is in the gap.
EFFORT_EVENTS = [
    Planned("2024-06-01T10:00:00", {"fox": 1}),
    Planned("2024-06-02T05:00:00", {"deer": 1}),
    Planned("2024-06-02T10:00:00", {"fox": 2, "deer": 1}),
    Planned("2024-06-03T10:00:00", {"boar": 1}),
]
GAP = ("2024-06-02T02:00:00", "2024-06-02T10:00:00")
# BGR colours of the kept images, to tell which one a thumbnail shows.
RED, GREEN, BLUE, MAGENTA, YELLOW = (
    (0, 0, 230),
    (0, 200, 0),
    (230, 0, 0),
    (230, 0, 230),
    (0, 230, 230),
)


class Cells(HTMLParser):
    """The text of each row of the table with the given id: {first cell: [cells]}."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.rows, self.cell = table_id, False, [], None

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "table":
            self.inside = dict(attrs).get("id") == self.table_id
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag == "td":
            self.cell = ""

    def handle_endtag(self, tag) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag == "td" and self.cell is not None:
            self.rows[-1].append(" ".join(self.cell.split()))
            self.cell = None

    def handle_data(self, data) -> None:
        if self.cell is not None:
            self.cell += data


def rows(html: str, table_id: str) -> list[list[str]]:
    parser = Cells(table_id)
    parser.feed(html)
    return [row for row in parser.rows if row]


def table(html: str, table_id: str) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in rows(html, table_id)}


def report_html(tmp_path: Path, *dbs: Path, media: Path | None = None) -> str:
    path = tmp_path / "report.html"
    args = ["report", *(f"--db={db}" for db in dbs), "--html", str(path)]
    if media is not None:
        args += ["--media", str(media)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return path.read_text("utf-8")


# -- effort -------------------------------------------------------------------------------


def test_trap_days_and_detection_rates_from_a_known_heartbeat_series(tmp_path):
    db = build_trap_db(
        tmp_path / "t.sqlite",
        MEADOW,
        EFFORT_EVENTS,
        heartbeat_every=timedelta(minutes=10),
        heartbeat_gap=GAP,
    )
    with open_stores([str(db)]) as stores:
        (effort,) = trap_effort(load(stores))
    assert effort.source == HEARTBEATS
    assert effort.seconds == 48 * 3600 and effort.trap_days == 2.0
    assert (effort.gaps, effort.gap_seconds, effort.outside) == (1, 8 * 3600, 1)
    html = report_html(tmp_path, db)
    assert table(html, "effort") == {
        "meadow": [
            "heartbeats",
            "2024-06-01 08:00 +02:00 → 2024-06-03 16:00 +02:00",
            "2.00",
            "1 (8.0 h)",
            "1",
        ]
    }
    # Events per 100 trap-days: fox 2, deer 2 (one in the gap still counts), boar 1.
    assert table(html, "rates") == {
        "boar": ["1", "50.0"],
        "deer": ["2", "100.0"],
        "fox": ["2", "100.0"],
    }
    assert "2.00 trap-days in all." in html
    assert '<div class="value">2.00</div><div class="name">trap-days of effort</div>' in html


def test_without_heartbeats_the_effort_is_the_footage_span_and_says_so(tmp_path):
    db = build_trap_db(tmp_path / "t.sqlite", MEADOW, EFFORT_EVENTS)
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM heartbeats")  # `trapcount process` writes none
    connection.close()
    with open_stores([str(db)]) as stores:
        (effort,) = trap_effort(load(stores))
    # From the first event's start to the last one's end (42.5 s after its start).
    assert effort.source == FOOTAGE
    assert effort.seconds == 2 * 86400 + 42.5
    html = report_html(tmp_path, db)
    source, _, days, gaps, outside = table(html, "effort")["meadow"]
    assert source == "footage (first to last event; no heartbeats)"
    assert (days, gaps, outside) == ("2.00", "none", "0")
    assert "Footage-based effort counts only from the first to the last event" in html
    assert table(html, "rates")["fox"] == ["2", "100.0"]


# -- thumbnails ---------------------------------------------------------------------------


def write_image(folder: Path, when: str, name: str, colour, size=(160, 120)) -> str:
    """A real JPEG of one colour (with some texture) in ``folder/<UTC day>/``; returns the
    path the trap recorded."""
    day = folder / when[:10]
    day.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(name))
    image = np.zeros((size[1], size[0], 3), np.uint8) + np.array(colour, np.uint8)
    noise = rng.integers(0, 20, image.shape, dtype=np.uint8)
    assert cv2.imwrite(str(day / name), cv2.add(image, noise))
    return f"/var/lib/trapcount/media/{when[:10]}/{name}"


@pytest.fixture
def kept(tmp_path):
    """A trap with four events and the media the keeper kept of them, in an office copy."""
    db = build_trap_db(
        tmp_path / "trap.sqlite",
        MEADOW,
        [
            Planned("2024-06-01T10:00:00", {"fox": 1}),  # 1: a clear crop and frame
            Planned("2024-06-01T11:00:00", {"fox": 1, "deer": 1}),  # 2: blurred; withheld
            Planned("2024-06-01T12:00:00", {"person": 1}),  # 3: a person
            Planned("2024-06-01T13:00:00", {"boar": 1, "hare": 1}),  # 4: reviewed; missing
        ],
    )
    media = tmp_path / "office-media"

    def add(event_id, when, kind, path, label, status="clear", **extra):
        store.add_media(
            deployment_id=1, event_id=event_id, time=utc(when), kind=kind, path=path,
            sha256="", bytes=0, label=label, confidence=0.7, disagreed=False,
            privacy_status=status, **extra,
        )  # fmt: skip

    with Store.open(db) as store:
        t = "2024-06-01T10:00:05"
        add(1, t, "crop", write_image(media, t, "e1-fox-crop.jpg", RED), "fox")
        add(1, t, "frame", write_image(media, t, "e1-fox-frame.jpg", GREEN, (640, 480)), "fox")
        t = "2024-06-01T11:00:05"
        add(2, t, "crop", write_image(media, t, "e2-fox-crop.jpg", BLUE), "fox", "blurred")
        add(2, t, "record", None, "deer", "suppressed")
        t = "2024-06-01T12:00:05"
        # A person's crop marked clear (it must never show, whatever its status says).
        add(3, t, "crop", write_image(media, t, "e3-person-crop.jpg", BLUE), "person")
        t = "2024-06-01T13:00:05"
        add(4, t, "crop", write_image(media, t, "e4-boar-crop.jpg", MAGENTA), "boar",
            reviewed_label="person")  # fmt: skip
        # Its frame: the same track, so a person's too.
        add(4, t, "frame", write_image(media, t, "e4-boar-frame.jpg", YELLOW), "boar")
        add(4, "2024-06-01T13:00:07", "crop", "/var/lib/trapcount/media/gone.jpg", "hare")
    return db, media


def thumbnails_of(html: str) -> list[tuple[str, Image.Image]]:
    found = re.findall(
        r'<img class="thumb" alt="([^"]*)" src="data:image/jpeg;base64,([^"]+)"', html
    )
    return [(alt, Image.open(io.BytesIO(base64.b64decode(data)))) for alt, data in found]


def colour_of(image: Image.Image) -> tuple[int, int, int]:
    """RGB mean."""
    return tuple(int(v) for v in np.asarray(image.convert("RGB")).reshape(-1, 3).mean(axis=0))


def test_thumbnails_only_of_clear_images_never_of_a_person(kept, tmp_path):
    db, media = kept
    html = report_html(tmp_path, db, media=media)
    (found,) = thumbnails_of(html)
    alt, image = found
    assert alt.startswith("fox at 2024-06-01 12:00:00")
    assert image.format == "JPEG" and max(image.size) <= 96
    red, green, blue = colour_of(image)
    assert red > 180 and green < 60 and blue < 60  # the fox crop, preferred to its frame
    # Per event row (start, label): the picture cell, which says why there is none.
    pictures = {(row[1][11:16], row[3]): row[0] for row in rows(html, "events")}
    assert pictures == {
        ("12:00", "fox"): "",  # the thumbnail
        ("13:00", "deer"): "no image: withheld by the privacy guard",  # a record, no file
        ("13:00", "fox"): "no image cleared of people",  # only a blurred crop
        ("14:00", "person"): "no image: a person",
        ("15:00", "boar"): "no image cleared of people",  # its crop reviewed as a person
        ("15:00", "hare"): "image file not found",  # not in the media folder
    }
    assert "1 thumbnail(s) of images the privacy guard found clear of people" in html
    # The page is one file: the only sources are data URIs.
    sources = re.findall(r'src="([^"]*)"', html)
    assert all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for s in sources)


def test_without_a_media_folder_the_page_says_how_to_get_pictures(kept, tmp_path):
    db, _ = kept
    html = report_html(tmp_path, db)
    assert '<img class="thumb"' not in html
    assert "No pictures: give --media DIR" in html


def test_the_number_of_thumbnails_is_capped_and_the_page_says_so(kept, tmp_path):
    db, media = kept
    with open_stores([str(db)]) as stores:
        data = load(stores)
        thumbs = event_thumbnails(stores, data, media, limit=0)
    html = render_html(data, thumbnails=thumbs)
    assert thumbnails_of(html) == []
    assert CAPPED in html
    assert "at most 0 are embedded, the latest events' first: 1 more are not" in unescape(html)


# -- print --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def busy_page(tmp_path_factory):
    """A page with more events than the old 500-row cap: 520 fox events, one a minute."""
    folder = tmp_path_factory.mktemp("busy")
    start = utc("2024-06-01T10:00:00")
    events = [
        Planned((start + timedelta(minutes=i)).isoformat()[:19], {"fox": 1 + i % 3}, seconds=20)
        for i in range(520)
    ]
    db = build_trap_db(folder / "busy.sqlite", MEADOW, events)
    report_html(folder, db)
    return folder / "report.html"


def test_the_page_lists_every_event(busy_page):
    html = busy_page.read_text("utf-8")
    assert len(table(html, "events")) == 520
    assert "@media print" in html


@browser.needs_chromium
def test_printed_every_event_is_on_paper_not_in_a_scroll_box(busy_page, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra)")
    visible = """() => {
        const box = document.querySelector('.scroll').getBoundingClientRect();
        const rows = [...document.querySelectorAll('#events tbody tr')];
        return rows.filter(r => {
            const b = r.getBoundingClientRect();
            return b.height > 0 && b.top >= box.top - 1 && b.bottom <= box.bottom + 1;
        }).length;
    }"""
    with playwright.sync_playwright() as driver:
        context = browser.launch(driver, tmp_path, viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.goto(busy_page.as_uri(), wait_until="load")
            on_screen = page.evaluate(visible)
            page.emulate_media(media="print")
            printed = page.evaluate(visible)
            overflow = page.eval_on_selector(".scroll", "e => getComputedStyle(e).overflowY")
            pdf = page.pdf(format="A4")
        finally:
            context.close()
    assert on_screen < 520  # on screen the events scroll inside their box
    assert printed == 520  # printed, every row is laid out in full
    assert overflow == "visible"
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages > 5, pages  # 520 rows run over many pages
