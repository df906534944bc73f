"""Test-time augmentation baked into the exported model (``--tta flip``)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from edge_agent.classifier import Classifier
from edge_agent.manifest import read_manifest
from tests.trainer.test_airbench import sample_images
from tests.trainer.test_int8_graph import predict, trained_looking_airbench
from trainer import calibrate
from trainer.cli import main
from trainer.train import hparams_for
from trainer.tta import UnknownTTAError, classifier_head, views


def test_flip_averages_the_logits_of_the_crop_and_its_mirror():
    model = trained_looking_airbench()
    logits = calibrate.logit_model(model)
    images = sample_images(8, seed=4)
    mirrored = images[:, :, ::-1, :]
    head = classifier_head(logits, "flip", temperature=0.5)

    mean = 0.5 * (predict(logits, images) + predict(logits, mirrored))
    # (logit_model steps over the temperature layer, as it does for a calibrated model)
    assert np.allclose(predict(calibrate.logit_model(head), images), mean, atol=1e-4)
    probabilities = predict(head, images)
    assert np.allclose(probabilities, predict(head, mirrored), atol=1e-5)  # mirror-blind
    assert np.allclose(probabilities, calibrate.softmax(mean / 0.5), atol=1e-5)
    # and the plain head is the model itself
    assert np.allclose(predict(classifier_head(logits), images), predict(model, images), atol=1e-5)


def test_views_and_unknown_modes():
    assert (views("none"), views("flip")) == (1, 2)
    with pytest.raises(UnknownTTAError, match="rotate"):
        views("rotate")
    with pytest.raises(ValueError, match="test-time augmentation 'rotate'"):
        hparams_for("tiny", tta="rotate")


def test_export_with_flip_runs_on_the_edge_and_is_mirror_blind(
    tiny_run: Path, class_folders: Path, class_tar: Path, tmp_path: Path
):
    out = tmp_path / "flip"
    result = CliRunner().invoke(
        main,
        [
            "export",
            str(tiny_run / "model.keras"),
            "--data",
            str(class_folders),
            "--data",
            str(class_tar),
            "--out",
            str(out),
            "--tta",
            "flip",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest.tta == "flip" and read_manifest(tiny_run).tta == "none"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tta"] == {"mode": "flip", "views": 2}

    images = sample_images(40, seed=9)
    classifier = Classifier(out)
    plain = classifier.predict_proba(images)
    mirrored = classifier.predict_proba(images[:, :, ::-1, :])
    classifier.close()
    # int8: the two branches are quantized separately, so equal up to rounding
    assert np.abs(plain - mirrored).max() <= 0.05
    assert np.mean(plain.argmax(axis=1) == mirrored.argmax(axis=1)) >= 0.95
    # the float accuracy recorded is the two-view model's, as `evaluate` measures it
    float_model = classifier_head(
        calibrate.logit_model(keras.models.load_model(tiny_run / "model.keras")), "flip"
    )
    assert float_model.count_params() == keras.models.load_model(out / "model.keras").count_params()
