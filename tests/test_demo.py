"""`make demo`: the shipped model counts the sample video it makes like the truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.cli import main as trapcount
from edge_agent.demo import sample as demo
from edge_agent.service.model import default_model_dir
from edge_agent.vision.classifier import Classifier


def test_the_shipped_model_matches_its_manifest() -> None:
    with Classifier(default_model_dir()) as classifier:
        # CIFAR-10's ten, "empty" and "other" (learned from real trap frames).
        assert len(classifier.labels) == 12
        assert {"empty", "other"} <= set(classifier.labels)
        assert classifier.manifest.accuracy["int8"] >= 0.80


def test_the_demo_counts_the_sample_video_like_the_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "what the scene generator put in the video" in printed

    with pytest.raises(SystemExit) as done:
        trapcount(["report", "--db", str(tmp_path / "demo.sqlite"), "--format", "json"])
    assert done.value.code in (None, 0)
    report = json.loads(capsys.readouterr().out)
    truth = demo.sample_scene().truth(demo.EVENT_GAP_S)
    assert len({event["id"] for event in report["events"]}) == len(truth.events)
    assert report["totals"] == truth.totals


def test_the_readme_flow_from_the_demo_to_a_camtrap_dp_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make demo`, then the README's export command on what it wrote."""
    assert demo.main(["--out", str(tmp_path)]) == 0
    capsys.readouterr()
    package = tmp_path / "package"
    with pytest.raises(SystemExit) as done:
        trapcount(
            [
                "export",
                "camtrap-dp",
                "--db",
                str(tmp_path / "demo.sqlite"),
                "--config",
                str(tmp_path / "demo.toml"),
                "--out",
                str(package),
                "--validate",
            ]
        )
    assert done.value.code in (None, 0), capsys.readouterr().err
    assert "valid Camtrap DP 1.0.2" in capsys.readouterr().out
    deployments = (package / "deployments.csv").read_text(encoding="utf-8")
    assert "demo-trap" in deployments and "47.3769" in deployments
