"""``trapcount doctor``: a table of checks and a non-zero exit when one fails."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.config import Settings
from edge_agent.service.doctor import (
    FAIL,
    OK,
    WARN,
    check_clock,
    check_disk,
    check_speed,
    speed_verdict,
)
from tests.helpers.media import (
    copy_model,
    crossings_video,
    run_trapcount,
    tiny_model_dir,
    write_config,
)
from tests.helpers.schema import HEAD

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "default"


@pytest.fixture(scope="module")
def model(request):
    return tiny_model_dir(request.config)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("doctor")
    return crossings_video(folder / "clip.mp4", [("fox", 1, 1.0, 3.0)], duration_s=5.0)


def table(stdout: str) -> dict[str, tuple[str, str]]:
    lines = stdout.strip().splitlines()
    assert lines[0].split() == ["check", "status", "detail"]
    rows = {}
    for line in lines[2:]:
        name, status, detail = line.split(maxsplit=2)
        rows[name] = (status, detail)
    return rows


def test_a_healthy_trap_passes(tmp_path, model, clip):
    config = write_config(
        tmp_path / "trap.toml",
        {
            "source": {"uri": str(clip.path)},
            "classifier": {"model_dir": str(model)},
            "storage": {"db_path": "data/trap.sqlite", "min_free_mb": 1},
        },
    )
    result = run_trapcount("doctor", "--config", config, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = table(result.stdout)
    assert list(rows) == ["source", "model", "speed", "database", "disk", "clock"]
    assert rows["speed"][0] == OK and "ms a colour crop here (1 thread)" in rows["speed"][1]
    assert all(status in (OK, WARN) for status, _ in rows.values())
    assert rows["source"] == (OK, f"video {clip.path}: 320x240 frame read")
    assert rows["model"][0] == OK and "4 labels" in rows["model"][1]
    assert rows["database"][0] == OK and f"writable, schema {HEAD}" in rows["database"][1]
    assert (tmp_path / "data" / "trap.sqlite").stat().st_mode & 0o077 == 0


def test_failures_are_listed_and_exit_1(tmp_path, model):
    broken = copy_model(model, tmp_path / "model")
    with open(broken / "model.tflite", "ab") as handle:
        handle.write(b"x")
    config = write_config(
        tmp_path / "trap.toml",
        {
            "source": {"uri": "missing.mp4", "kind": "video"},
            "classifier": {"model_dir": "model"},
            "storage": {"db_path": "trap.sqlite", "min_free_mb": 10_000_000},
        },
    )
    (tmp_path / "trap.sqlite").write_text("not a database " * 200)
    result = run_trapcount("doctor", "--config", config, cwd=tmp_path)
    assert result.returncode == 1
    rows = table(result.stdout)
    assert rows["source"] == (FAIL, f"video file not found: {tmp_path / 'missing.mp4'}")
    assert rows["model"][0] == FAIL and "does not match its manifest" in rows["model"][1]
    assert rows["database"][0] == FAIL and "trap.sqlite" in rows["database"][1]
    assert rows["disk"][0] == FAIL and "storage.min_free_mb = 10000000" in rows["disk"][1]
    assert "speed" not in rows  # the model that did not load is not timed as well
    assert result.stderr.strip().endswith("Error: failed: source, model, database, disk")
    assert "Traceback" not in result.stderr


def test_a_world_readable_database_is_a_warning(tmp_path, model, clip):
    db = tmp_path / "open.sqlite"
    db.touch()
    os.chmod(db, 0o644)
    config = write_config(
        tmp_path / "trap.toml",
        {
            "source": {"uri": str(clip.path)},
            "classifier": {"model_dir": str(model)},
            "storage": {"db_path": "open.sqlite", "min_free_mb": 1},
        },
    )
    result = run_trapcount("doctor", "--config", config, cwd=tmp_path)
    assert result.returncode == 0
    status, detail = table(result.stdout)["database"]
    assert status == WARN and "readable by others (0o644); chmod 600" in detail


def test_clock_checks():
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert check_clock(None, now=datetime(1970, 1, 1, 0, 1, tzinfo=UTC)).status == FAIL
    backwards = check_clock(now + timedelta(hours=3), now=now)
    assert backwards.status == FAIL and "went backwards" in backwards.detail
    assert check_clock(now - timedelta(minutes=1), now=now).status in (OK, WARN)


def test_disk_check_thresholds(tmp_path):
    assert check_disk(tmp_path / "nested" / "trap.sqlite", 0).status == OK
    assert check_disk(tmp_path, 10**9).status == FAIL


def test_speed_times_each_network_of_the_shipped_pair():
    check = check_speed(SHIPPED, Settings())
    assert check.status in (OK, WARN)  # a slow machine may be over the budget
    assert "ms a colour crop, " in check.detail and "ms a grey crop here" in check.detail
    assert "2 animals at 10 fps, classify_every 4" in check.detail


def test_speed_warns_over_the_budget_and_names_the_setting_that_helps():
    """The Pi Zero 2 W estimates of the shipped pair (docs/benchmarks.md): two animals at
    10 fps, each crop every fourth frame, are 5 grey crops a second at 84.3 ms: 42%."""
    zero = {"colour": 42.2, "grey": 84.3}
    check = speed_verdict(zero, Settings())
    assert check.status == WARN
    assert "42.1% of a core, over the 25% budget: raise tracking.classify_every" in check.detail
    every_eighth = Settings.model_validate({"tracking": {"classify_every": 8}})
    assert speed_verdict(zero, every_eighth).status == OK
    at_30_fps = Settings.model_validate({"source": {"fps": 30}, "tracking": {"classify_every": 8}})
    assert speed_verdict(zero, at_30_fps).status == WARN  # three times the crops a second
