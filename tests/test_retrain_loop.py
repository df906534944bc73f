"""The review and retrain loop, end to end: a generated video is processed with media kept;
the review page is driven in headless Chromium (a crop relabelled to a new species with the
keyboard, another marked empty with a click); ``collect export`` reflects the decisions; the
tiny model is fine-tuned on the export with the new label; ``compare`` prints the table; the
agent hot-reloads the new model and counts the new label."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli import cli
from edge_agent.demo.scenes import Scene, crossing
from edge_agent.demo.sprites import ProceduralSprites
from edge_agent.demo.writers import write_sprite_dataset, write_video
from tests.helpers import browser

START = datetime(2026, 6, 1, 5, 0, tzinfo=UTC)
BASE = ("boar", "deer", "fox")  # the traps' model does not know hare yet

pytest.importorskip("tensorflow", reason="fine-tuning needs TensorFlow")
pytest.importorskip("flask", reason="the review page needs Flask (the review extra)")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra)")
pytestmark = browser.needs_chromium


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        result = connection.execute(sql).fetchall()
    connection.close()
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process(video: Path, db: Path, model: Path, config: Path, media: Path | None = None) -> str:
    args = ["process", str(video), "-c", str(config), "--db", str(db), "--model", str(model)]
    if media is not None:
        args += ["--media", str(media)]
    result = CliRunner().invoke(cli, [*args, "-q"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny int8 model of boar, deer and fox (no hare), and its training crops."""
    from trainer.run import train_and_export

    root = tmp_path_factory.mktemp("base")
    crops = root / "crops"
    write_sprite_dataset(crops, per_class=120, size=32, seed=0, sprites=ProceduralSprites(BASE))
    model = train_and_export(
        data=[crops],
        out=root / "model",
        arch="tiny",
        epochs=8,
        seed=0,
        max_quant_drop=100.0,
        use_cache=False,
    )
    return model, crops


def test_review_export_finetune_compare_and_reload(tmp_path, base_model):
    old, base_crops = base_model
    config = tmp_path / "trap.toml"
    config.write_text("[media]\nkeep_frames = true\nmin_free_mb = 0\n", encoding="utf-8")

    # 1. A trap sees a deer, then a hare (a species its model does not know); media kept.
    walks = crossing("deer", 0.5, 4.0, y=0.6, width=0.16, seed=3) + crossing(
        "hare", 6.0, 4.0, y=0.65, width=0.14, direction=-1, seed=4
    )
    scene = Scene(width=480, height=320, fps=10, duration_s=11, walks=walks, seed=2)
    video = tmp_path / "trap.avi"
    write_video(scene, video, event_gap_s=60, start_time=START)
    db, media = tmp_path / "trap.sqlite", tmp_path / "media"
    process(video, db, old, config, media)
    crops = rows(db, "SELECT id, time, label FROM media WHERE kind = 'crop' ORDER BY time, id")
    assert len(crops) >= 2, crops
    assert rows(db, "SELECT count(*) FROM media WHERE kind = 'frame'")[0][0] >= 1
    deer_id, hare_id = crops[0][0], crops[-1][0]  # the deer crosses first, the hare last

    # 2. A reviewer: the hare crop relabelled with the keyboard, the deer crop marked empty.
    port = free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-c", "from edge_agent.cli import main; main()", "review"),
            *("--db", str(db), "--media", str(media), "--port", str(port)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()  # type: ignore[union-attr]
                time.sleep(0.1)
        with playwright.sync_playwright() as driver:
            context = browser.launch(driver, tmp_path)
            try:
                page = context.new_page()
                page.goto(url, wait_until="load")
                total = len(crops)
                assert page.inner_text("#progress").startswith(f"{total} of {total} crops remain")
                # every crop's image loads (decoded by the browser: a real JPEG)
                widths = page.eval_on_selector_all(
                    "img.crop", "els => els.map(e => e.naturalWidth)"
                )
                assert len(widths) == total and all(w > 0 for w in widths)
                assert page.locator(f"#m{deer_id} img.frame").count() == 1  # frame context
                # keyboard: go to the hare crop, r, type the new label, Enter
                page.goto(f"{url}?at={hare_id}", wait_until="load")
                assert "current" in page.get_attribute(f"#m{hare_id}", "class")
                page.keyboard.press("r")
                page.keyboard.type("hare")
                with page.expect_navigation():
                    page.keyboard.press("Enter")
                # a click: the deer crop is not an animal after all
                with page.expect_navigation():
                    page.click(f"#m{deer_id} button.empty")
                assert page.inner_text("#progress").startswith(
                    f"{total - 2} of {total} crops remain"
                )
                assert page.inner_text(f"#m{hare_id} .reviewed") == "hare"
                assert page.inner_text(f"#m{deer_id} .reviewed") == "empty"
                page.screenshot(path=str(tmp_path / "review.png"))
            finally:
                context.close()
    finally:
        server.terminate()
        server.wait(10)
    reviewed = dict(rows(db, "SELECT id, reviewed_label FROM media WHERE kind = 'crop'"))
    assert reviewed[hare_id] == "hare" and reviewed[deer_id] == "empty"

    # 3. The export reflects the decisions.
    export = tmp_path / "reviewed"
    result = CliRunner().invoke(cli, ["collect", "export", "--db", str(db), "--out", str(export)])
    assert result.exit_code == 0, result.output
    assert [p.name.split("-")[0] for p in (export / "hare").iterdir()] == [f"m{hare_id}"]
    assert not list(export.rglob(f"m{deer_id}-*")) and not (export / "empty").exists()

    # 4. Fine-tune from the traps' model with the new label: the export, the base data, and
    #    more reviewed hare crops (from other traps).
    from trainer.run import train_and_export

    more = tmp_path / "more-hares"
    write_sprite_dataset(more, per_class=120, size=32, seed=5, sprites=ProceduralSprites(["hare"]))
    new = train_and_export(
        data=[export, base_crops, more],
        out=tmp_path / "new",
        arch="tiny",
        epochs=6,
        seed=0,
        max_quant_drop=100.0,
        use_cache=False,
        init_from=old / "model.keras",
    )

    # 5. compare prints the per-class table of both models on the same held-out crops.
    from trainer.cli import main as train_cli

    val = tmp_path / "val"
    write_sprite_dataset(val, per_class=30, size=32, seed=9)
    result = CliRunner().invoke(
        train_cli, ["compare", str(old), str(new), "--data", str(val), "--force", "-q"]
    )
    assert result.exit_code == 0, result.output
    table = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[3:7]}
    assert sorted(table) == ["boar", "deer", "fox", "hare"]
    assert table["hare"][:2] == ["30", "-"] and table["hare"][2].endswith("%")

    # 6. The agent hot-reloads the new model (copied over the running one) and counts hares.
    from edge_agent.config import settings_from_dict
    from edge_agent.service.daemon import Service
    from edge_agent.service.model import load_classifier
    from edge_agent.store.database import Store

    live = tmp_path / "live-model"
    live.mkdir()
    for name in ("model.tflite", "model.json"):
        shutil.copy(old / name, live / name)
    settings = settings_from_dict(
        {
            "source": {"uri": str(video)},
            "classifier": {"model_dir": str(live)},
            "storage": {"db_path": str(tmp_path / "service.sqlite")},
        },
        base_dir=tmp_path,
    )
    service = Service(
        settings,
        store=Store.open(settings.storage.db_path),
        classifier=load_classifier(live, settings.classifier),
        model_dir=live,
    )
    hares = tmp_path / "hares.avi"
    write_video(
        Scene(
            width=480,
            height=320,
            fps=10,
            duration_s=6,
            walks=crossing("hare", 0.5, 4.5, y=0.65, width=0.16, seed=2),
            seed=3,
        ),
        hares,
        event_gap_s=60,
        start_time=START,
    )
    try:
        assert "hare" not in service.classifier.labels
        for name in ("model.tflite", "model.json"):
            shutil.copy(new / name, live / name)
        assert service.reload_model() is True
        assert "hare" in service.classifier.labels
        # The running service, now on the new model, counts the hare: its own frame path
        # (the capture job calls _process per frame; shutdown closes the open events).
        from edge_agent.capture.factory import open_source

        with open_source(settings.source.model_copy(update={"uri": str(hares)})) as source:
            for timestamp, frame in source:
                service._process(timestamp, frame)
        service._close_pipeline()
    finally:
        service.store.close()
        service.classifier.close()
    labels = [
        label for (label,) in rows(tmp_path / "service.sqlite", "SELECT label FROM observations")
    ]
    assert "hare" in labels, labels
    # And `trapcount process` with the reloaded model folder counts it the same way.
    counted = tmp_path / "counted.sqlite"
    process(hares, counted, live, config)
    labels = [label for (label,) in rows(counted, "SELECT label FROM observations")]
    assert "hare" in labels, labels
