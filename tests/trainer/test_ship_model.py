"""scripts/ship_model.py: a finished run becomes a shippable model folder."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from edge_agent.vision.classifier import Classifier

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ship_model.py"


def load_script():
    spec = importlib.util.spec_from_file_location("ship_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_machine_paths_become_relative_to_the_repository():
    ship_model = load_script()
    root = ship_model.ROOT
    data = {
        "datasets": [str(root.parent / "shared" / "data" / "x.tar.gz"), "cifar10"],
        "command": [str(root / ".venv" / "bin" / "trapcount-train"), "train"],
        "other": "/elsewhere/y",
    }
    assert ship_model.relative_paths(data, root) == {
        "datasets": ["../shared/data/x.tar.gz", "cifar10"],
        "command": [".venv/bin/trapcount-train", "train"],
        "other": "/elsewhere/y",
    }


def test_ship_copies_a_run_that_the_trap_loads(tiny_run: Path, tmp_path: Path):
    ship_model = load_script()
    dest = tmp_path / "shipped"
    ship_model.ship(tiny_run, dest)
    for name in ("model.tflite", "model.json", "metrics.json", "config.json", "model.keras"):
        assert (dest / name).is_file()
    assert (dest / "curve.png").read_bytes() == (tiny_run / "curve.png").read_bytes()
    # a run exported before the trainer drew curves gets one drawn from its history
    old_run = tmp_path / "old-run"
    shutil.copytree(tiny_run, old_run)
    (old_run / "curve.png").unlink()
    ship_model.ship(old_run, tmp_path / "shipped-old")
    assert (tmp_path / "shipped-old" / "curve.png").stat().st_size > 1000
    assert (dest / "model.tflite").read_bytes() == (tiny_run / "model.tflite").read_bytes()
    assert json.loads((dest / "model.json").read_text())["labels"]
    with Classifier(dest) as classifier:
        assert classifier.labels == json.loads((tiny_run / "model.json").read_text())["labels"]


def test_ship_refuses_an_unfinished_run(tmp_path: Path):
    ship_model = load_script()
    with pytest.raises(SystemExit, match="not a finished, exported run"):
        ship_model.ship(tmp_path, tmp_path / "dest")
