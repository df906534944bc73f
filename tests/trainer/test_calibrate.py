"""Temperature scaling: the fit recovers a known temperature, the exported int8 model carries
it, and small validation splits are left alone."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from edge_agent.manifest import read_manifest
from edge_agent.vision.classifier import Classifier
from tests.trainer.conftest import CLASSES
from trainer import calibrate
from trainer.data import load_datasets, stratified_split
from trainer.export import export_model
from trainer.run_folder import load_keras_model


def sampled_labels(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Labels drawn from softmax(logits): a perfectly calibrated model's world."""
    probs = calibrate.softmax(logits)
    cumulative = probs.cumsum(axis=1)
    draws = rng.random((len(probs), 1))
    return np.minimum((draws > cumulative).sum(axis=1), probs.shape[1] - 1)


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fit_recovers_the_temperature_the_labels_were_drawn_at(true_temperature: float):
    rng = np.random.default_rng(0)
    raw = rng.normal(0.0, 3.0, size=(20000, 10))
    labels = sampled_labels(raw / true_temperature, rng)
    fitted = calibrate.fit_temperature(raw, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    at_fit = calibrate.negative_log_likelihood(raw, labels, fitted)
    assert at_fit <= calibrate.negative_log_likelihood(raw, labels, 1.1 * fitted)
    assert at_fit <= calibrate.negative_log_likelihood(raw, labels, 0.9 * fitted)


def test_expected_calibration_error_tells_calibrated_from_underconfident():
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 3.0, size=(20000, 10))
    labels = sampled_labels(logits, rng)
    assert calibrate.expected_calibration_error(calibrate.softmax(logits), labels) < 0.02
    # the same model reporting flattened probabilities (what label smoothing does)
    flat = calibrate.softmax(logits / 2.0)
    assert calibrate.expected_calibration_error(flat, labels) > 0.1
    with pytest.raises(ValueError, match="no images"):
        calibrate.fit_temperature(np.zeros((0, 3)), np.zeros(0, np.int64))


def test_with_temperature_divides_the_logits_once(tiny_run: Path):
    model = load_keras_model(tiny_run / "model.keras")
    images = np.random.default_rng(2).integers(0, 256, (8, 32, 32, 3)).astype(np.float32)
    logits = keras.ops.convert_to_numpy(calibrate.logit_model(model)(images))
    scaled = calibrate.with_temperature(model, 0.25)
    expected = calibrate.softmax(logits / 0.25)
    assert np.allclose(keras.ops.convert_to_numpy(scaled(images)), expected, atol=1e-5)
    # calibrating again replaces the temperature instead of stacking a second one
    again = calibrate.with_temperature(scaled, 2.0)
    assert [layer.name for layer in again.layers].count("temperature") == 1
    assert np.allclose(
        keras.ops.convert_to_numpy(again(images)), calibrate.softmax(logits / 2.0), atol=1e-5
    )
    with pytest.raises(ValueError, match="softmax"):
        calibrate.logit_model(calibrate.logit_model(model))


def test_export_bakes_the_fitted_temperature_into_the_int8_model(
    tiny_run: Path, class_folders: Path, tmp_path: Path
):
    # the shared tiny run has 72 validation images: too few, so it was left as trained
    assert read_manifest(tiny_run).confidence["method"] == "none"

    model = load_keras_model(tiny_run / "model.keras")
    split = stratified_split(load_datasets([class_folders], (32, 32)), 0.2, 0)
    out = tmp_path / "calibrated"
    export_model(
        model,
        train=split.train,
        val=split.val,
        out=out,
        arch="tiny",
        training={"val_split": 0.2, "split_seed": 0},
        max_quant_drop=5.0,
        min_temperature_images=10,
    )
    confidence = read_manifest(out).confidence
    assert confidence["method"] == "temperature" and confidence["n"] == len(split.val)
    temperature = confidence["temperature"]
    # two epochs on a few hundred images leave the tiny model unsure: it gets sharpened
    assert calibrate.TEMPERATURE_RANGE[0] <= temperature < 0.8
    assert confidence["ece_float_after"] <= confidence["ece_float_before"]
    assert json.loads((out / "metrics.json").read_text())["confidence"] == confidence

    # model.keras stays as trained; the .tflite answers like the model with the temperature
    kept = load_keras_model(out / "model.keras")
    assert "temperature" not in [layer.name for layer in kept.layers]
    images = split.val.images[:32]
    expected = keras.ops.convert_to_numpy(
        calibrate.with_temperature(kept, temperature)(images.astype(np.float32))
    )
    with Classifier(out) as classifier:
        assert classifier.labels == list(CLASSES)
        int8 = classifier.predict_proba(images)
    assert np.mean(np.argmax(int8, axis=1) == np.argmax(expected, axis=1)) >= 0.9
    assert np.abs(int8 - expected).mean() < 0.03
