"""The review page through a real browser (Debian's Chromium, driven by Playwright) against
the real server (``trapcount review``, waitress): cards by event with the box drawn on the
full frame, local times with the trap's zone, records without an image, filters and pages,
the keyboard; a whole event relabelled (with a count) and another confirmed on the page,
after which the JSON report, the CSV export and the Camtrap DP export (validated) carry
the reviewer's counts, and ``--counts machine`` the machine's."""

from __future__ import annotations

import csv
import json
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.config import TrapSettings
from edge_agent.counting.events import ClosedEvent, LabelObservation
from edge_agent.store.database import Store
from tests.helpers import browser
from tests.helpers.media import run_trapcount, start_trapcount, stop, wait_for, write_config

pytest.importorskip("flask", reason="the review page is the 'review' extra")
pytest.importorskip("waitress", reason="the review page is the 'review' extra")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra)")
pytestmark = browser.needs_chromium

T0 = datetime(2026, 5, 1, 4, 0, tzinfo=UTC)  # 06:00 in Zurich (CEST)
TRAP = TrapSettings(id="meadow", timezone="Europe/Zurich", latitude=47.1, longitude=8.2)
FRAME_W, FRAME_H = 320, 240
HARES = 24  # more events than a page holds


def jpeg(path: Path, image: np.ndarray) -> tuple[str, int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return str(path), path.stat().st_size


@pytest.fixture
def trap(tmp_path):
    """A trap database with kept media as the agent keeps it: a deer event (two tracks,
    MaxN 2, both crops with their frame and box), a fox event (one crop and frame), a deer
    seen only as a record (its images withheld), and hare events the next day."""
    media = tmp_path / "media"
    db = tmp_path / "trap.sqlite"
    ids: dict[str, int] = {}
    with Store.open(db) as store:
        dep = store.ensure_deployment(TRAP, now=T0 - timedelta(days=1))

        def event(minutes: float, label: str, max_n: int, tracks: int) -> int:
            start = T0 + timedelta(minutes=minutes)
            closed = ClosedEvent(
                start=start,
                end=start + timedelta(seconds=20),
                frames=200,
                observations=(LabelObservation(label, max_n, 30, 0.81, tracks),),
                model_sha256=None,
            )
            return store.write_event(closed, dep, now=start + timedelta(minutes=1))

        def keep(event_id: int, label: str, when: datetime, box, frame: bool, kind="crop"):
            x, y, w, h = box
            image = np.full((FRAME_H, FRAME_W, 3), 90, np.uint8)
            cv2.rectangle(image, (x, y), (x + w, y + h), (40, 60, 200), -1)
            fields = {
                "deployment_id": dep,
                "event_id": event_id,
                "time": when,
                "sha256": "0" * 64,
                "label": label,
                "confidence": 0.81,
                "disagreed": False,
                "box_x": x,
                "box_y": y,
                "box_w": w,
                "box_h": h,
            }
            day = media / f"{when:%Y-%m-%d}"
            if kind == "record":
                return store.add_media(
                    **fields, kind="record", path=None, bytes=0, privacy_status="suppressed"
                )
            path, size = jpeg(day / f"{label}-{when:%H%M%S}-crop.jpg", image[y : y + h, x : x + w])
            crop = store.add_media(
                **fields, kind="crop", path=path, bytes=size, privacy_status="clear"
            )
            if frame:
                path, size = jpeg(day / f"{label}-{when:%H%M%S}-frame.jpg", image)
                store.add_media(
                    **fields, kind="frame", path=path, bytes=size, privacy_status="clear"
                )
            return crop

        ids["deer"] = event(0, "deer", 2, 2)
        ids["deer_a"] = keep(ids["deer"], "deer", T0 + timedelta(seconds=3), (40, 60, 80, 50), True)
        ids["deer_b"] = keep(
            ids["deer"], "deer", T0 + timedelta(seconds=4), (200, 100, 60, 90), True
        )
        ids["fox"] = event(30, "fox", 1, 1)
        ids["fox_crop"] = keep(
            ids["fox"], "fox", T0 + timedelta(minutes=30, seconds=2), (120, 80, 40, 30), True
        )
        ids["record"] = event(60, "deer", 1, 1)
        ids["record_row"] = keep(
            ids["record"], "deer", T0 + timedelta(minutes=60), (10, 10, 50, 50), False, "record"
        )
        for i in range(HARES):
            e = event(24 * 60 + 10 * i, "hare", 1, 1)
            keep(e, "hare", T0 + timedelta(days=1, minutes=10 * i), (5, 5, 30, 30), False)
        store.rollup(minutes=15)
    return db, media, ids


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def report(db: Path, tmp_path: Path, *extra: str) -> dict:
    result = run_trapcount("report", "--db", str(db), "--format", "json", *extra, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_relabel_an_event_on_the_page_and_the_reports_and_exports_follow(trap, tmp_path):
    db, media, ids = trap
    before = report(db, tmp_path)
    assert before["totals"] == {"deer": 3, "fox": 1, "hare": HARES}
    port = free_port()
    log = tmp_path / "review.log"
    server = start_trapcount(
        "review", "--db", str(db), "--media", str(media), "--port", str(port),
        "--reviewer", "Ana Muster", cwd=tmp_path, log=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: port_open(port), 60, "the review server", server)
        with playwright.sync_playwright() as driver:
            context = browser.launch(driver, tmp_path)
            try:
                page = context.new_page()
                page.goto(f"{url}?sort=time&per=10", wait_until="load")
                crops = 2 + 1 + 1 + HARES
                assert page.inner_text("#progress").startswith(
                    f"{crops} of {crops} crops remain to be reviewed"
                )
                assert "reviewing as Ana Muster" in page.inner_text("header.top")
                # cards by event: both deer crops in one card, the trap's local time and zone
                deer = page.locator(f"#e{ids['deer']}")
                assert deer.locator(".item").count() == 2
                when = deer.locator(".when").inner_text()
                assert when.startswith("2026-05-01 06:00:00") and "CEST" in when
                assert "UTC+02:00" in when and "Europe/Zurich" in when
                assert "machine: deer ×2" in deer.locator(".counts").inner_text()
                # the box is drawn on the full frame where the crop was cut
                frame = page.locator(f"#m{ids['deer_b']} img.frame")
                box = page.locator(f"#m{ids['deer_b']} .frame-wrap .box")
                assert box.is_visible()
                f, b = frame.bounding_box(), box.bounding_box()
                scale = f["width"] / FRAME_W
                assert abs(b["x"] - f["x"] - 200 * scale) <= 3
                assert abs(b["y"] - f["y"] - 100 * scale) <= 3
                assert abs(b["width"] - 60 * scale) <= 4 and abs(b["height"] - 90 * scale) <= 4
                # the record of a withheld track: listed, no image
                record = page.locator(f"#m{ids['record_row']}")
                assert "no image (privacy)" in record.inner_text()
                assert record.locator("img").count() == 0
                # pages: 3 + 24 events at 10 a page; ] and [ move between them
                assert "page 1 of 3" in page.inner_text("#pager-top")
                with page.expect_navigation():
                    page.keyboard.press("]")
                assert "page 2 of 3" in page.inner_text("#pager-top")
                assert page.locator(f"#e{ids['deer']}").count() == 0
                with page.expect_navigation():
                    page.keyboard.press("[")
                # filters: a label
                page.fill("#filters input[name=label]", "fox")
                with page.expect_navigation():
                    page.click("#apply")
                assert page.locator("section.card").count() == 1
                assert page.locator(f"#e{ids['fox']}").count() == 1
                with page.expect_navigation():
                    page.click("#clear")

                # relabel the deer event on the page, with the reviewer's own count
                page.goto(f"{url}?sort=time&per=10", wait_until="load")
                deer = page.locator(f"#e{ids['deer']}")
                deer.locator("input.ev-label").fill("Red Deer")
                deer.locator("input.ev-count").fill("3")
                with page.expect_navigation():
                    deer.locator("button.ev-relabel").click()
                deer = page.locator(f"#e{ids['deer']}")
                counts = deer.locator(".counts").inner_text()
                assert "red_deer ×3" in counts and "by Ana Muster" in counts
                assert "reviewed" in deer.get_attribute("class")
                assert page.inner_text(f"#m{ids['deer_a']} .reviewed") == "red_deer"
                page.screenshot(path=str(tmp_path / "review-event.png"))
                # the keyboard: the fox event confirmed whole with C
                page.goto(f"{url}?sort=time&per=10&at={ids['fox_crop']}", wait_until="load")
                assert "current" in page.get_attribute(f"#m{ids['fox_crop']}", "class")
                with page.expect_navigation():
                    page.keyboard.press("Shift+C")
                assert "fox ×1" in page.locator(f"#e{ids['fox']} .counts").inner_text()
                assert page.inner_text("#progress").startswith(f"{crops - 3} of {crops}")
                # unreviewed: the two decided events are gone from the list
                page.goto(f"{url}?status=unreviewed&sort=time", wait_until="load")
                assert page.locator(f"#e{ids['deer']}").count() == 0
                assert page.locator(f"#e{ids['record']}").count() == 1
                page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
            finally:
                context.close()
    finally:
        stop(server)
    logged = log.read_text(encoding="utf-8")
    assert re.search(r'"POST /event HTTP/1\.1" 302', logged), logged

    # The JSON report: the reviewer's counts, marked; the machine's on request.
    after = report(db, tmp_path)
    assert after["totals"] == {"deer": 1, "fox": 1, "hare": HARES, "red_deer": 3}
    assert after["reviewed_events"] == 2
    red = next(e for e in after["events"] if e["id"] == ids["deer"])
    assert red["label"] == "red_deer" and red["max_n"] == 3
    assert red["counted_by"] == "reviewer" and red["machine"] == {"deer": 2}
    assert red["reviewed_by"] == "Ana Muster" and red["count_from_reviewer"] is True
    assert re.fullmatch(r"\d{4}-.*\+0[12]:00", red["reviewed_at"])  # Zurich, now
    record = next(e for e in after["events"] if e["id"] == ids["record"])
    assert record["counted_by"] == "machine"
    machine = report(db, tmp_path, "--counts", "machine")
    assert machine["totals"] == before["totals"] and machine["counts_from"] == "machine"
    # the roll-up followed the review
    assert sum(c["count"] for c in after["counts"] if c["label"] == "red_deer") == 3

    # The CSV export.
    sheets = tmp_path / "sheets"
    result = run_trapcount("export", "csv", "--db", str(db), "--out", str(sheets), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(sheets / "events.csv", newline="", encoding="utf-8") as handle:
        events = {int(r["id"]): r for r in csv.DictReader(handle)}
    assert (events[ids["deer"]]["label"], events[ids["deer"]]["max_n"]) == ("red_deer", "3")
    assert events[ids["deer"]]["counted_by"] == "reviewer"
    assert events[ids["deer"]]["machine"] == "deer:2"
    assert events[ids["fox"]]["reviewed_by"] == "Ana Muster"
    with open(sheets / "counts.csv", newline="", encoding="utf-8") as handle:
        per_day = {(r["day"], r["label"]): r["count"] for r in csv.DictReader(handle)}
    assert per_day[("2026-05-01", "red_deer")] == "3" and per_day[("2026-05-01", "deer")] == "1"

    # The Camtrap DP export, validated against the official schemas.
    pytest.importorskip("frictionless", reason="Camtrap DP validation needs frictionless")
    config = write_config(
        tmp_path / "trap.toml",
        {
            "trap": {"id": "meadow", "timezone": "Europe/Zurich", "latitude": 47.1,
                     "longitude": 8.2},
            "export.taxa": {"red_deer": "Cervus elaphus"},
        },
    )  # fmt: skip
    package = tmp_path / "package"
    result = run_trapcount(
        "export", "camtrap-dp", "--db", str(db), "--config", str(config),
        "--out", str(package), "--validate", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid Camtrap DP 1.0.2" in result.stdout
    with open(package / "observations.csv", newline="", encoding="utf-8") as handle:
        observations = {r["eventID"]: r for r in csv.DictReader(handle)}
    red = observations[f"meadow-e{ids['deer']}"]
    assert red["scientificName"] == "Cervus elaphus" and red["count"] == "3"
    assert red["classificationMethod"] == "human" and red["classifiedBy"] == "Ana Muster"
    assert red["classificationProbability"] == ""
    assert re.fullmatch(r"\d{4}-.*\+0[12]:00", red["classificationTimestamp"])
    assert "machine_label:deer | machine_count:2" in red["observationTags"]
    untouched = observations[f"meadow-e{ids['record']}"]
    assert untouched["classificationMethod"] == "machine"
    assert untouched["classificationProbability"] == "0.8100"
