"""Test-time augmentation baked into the exported model (``--tta flip``, ``flip-shift``)."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from edge_agent.manifest import read_manifest
from edge_agent.vision.classifier import Classifier, load_interpreter_class
from edge_agent.vision.operations import multiply_adds
from tests.trainer.test_airbench import sample_images
from tests.trainer.test_int8_graph import predict, trained_looking_airbench
from trainer import calibrate, recipe
from trainer.cli import main
from trainer.models import count_macs
from trainer.recipe import hparams_for
from trainer.tta import TTA_MODES, UnknownTTAError, classifier_head, shifted, views


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


def op_counts(model_folder: Path) -> collections.Counter:
    interpreter_class, _ = load_interpreter_class()
    interpreter = interpreter_class(model_path=str(model_folder / "model.tflite"))
    interpreter.allocate_tensors()
    return collections.Counter(op["op_name"] for op in interpreter._get_ops_details())


def reflect_shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The reference: content moved (dy, dx) pixels, the border filled by np.pad reflect."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    h, w = images.shape[1:3]
    return padded[:, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w, :]


@pytest.mark.parametrize("dy, dx", [(1, 1), (-1, -1), (1, -1), (-1, 1), (0, 1), (-1, 0)])
def test_a_shift_moves_the_content_and_reflects_the_border(dy: int, dx: int):
    images = np.random.default_rng(3).integers(0, 256, (2, 7, 5, 3)).astype(np.float32)
    moved = keras.ops.convert_to_numpy(shifted(images, dy, dx))
    assert np.array_equal(moved, reflect_shifted(images, dy, dx))
    if (dy, dx) == (1, 1):  # spelled out once: old pixel (0, 0) is now at (1, 1)
        assert np.array_equal(moved[:, 1, 1], images[:, 0, 0])
        assert np.array_equal(moved[:, 0, 0], images[:, 1, 1])  # the reflected corner
    with pytest.raises(ValueError, match="one pixel"):
        shifted(images, 2, 0)


def test_flip_shift_weights_the_six_views_as_airbench_does():
    model = trained_looking_airbench()
    logits = calibrate.logit_model(model)
    images = sample_images(8, seed=5)

    def both(crops: np.ndarray) -> np.ndarray:  # a crop and its mirror, logits averaged
        return 0.5 * (predict(logits, crops) + predict(logits, crops[:, :, ::-1, :]))

    moved = [both(reflect_shifted(images, 1, 1)), both(reflect_shifted(images, -1, -1))]
    expected = 0.5 * both(images) + 0.25 * (moved[0] + moved[1])
    head = classifier_head(logits, "flip-shift", temperature=0.5)
    assert np.allclose(predict(calibrate.logit_model(head), images), expected, atol=1e-4)
    assert np.allclose(predict(head, images), calibrate.softmax(expected / 0.5), atol=1e-5)
    # one crop alone gets the same answer as in a batch: views never mix across crops
    assert np.allclose(predict(head, images[3:4]), predict(head, images)[3:4], atol=1e-5)
    # and it is not the flip average: the shifted views count
    assert not np.allclose(predict(calibrate.logit_model(head), images), both(images), atol=1e-3)


def test_views_and_unknown_modes():
    assert (views("none"), views("flip"), views("flip-shift")) == (1, 2, 6)
    assert recipe.TTA_MODES == TTA_MODES  # the recipe's list, kept Keras-free, is the real one
    with pytest.raises(UnknownTTAError, match="rotate"):
        views("rotate")
    with pytest.raises(ValueError, match="test-time augmentation 'rotate'"):
        hparams_for("tiny", tta="rotate")
    # a teacher's softmax is averaged over its mirror at most (load_teacher)
    with pytest.raises(ValueError, match="teacher test-time augmentation 'flip-shift'"):
        hparams_for("tiny", teacher_tta="flip-shift")


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
    # Counted on the file the trap runs: the network twice, as trained and on the mirror.
    plain_macs = count_macs(keras.models.load_model(tiny_run / "model.keras"))
    assert multiply_adds(tiny_run / "model.tflite") == plain_macs
    assert multiply_adds(out / "model.tflite") == 2 * plain_macs

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


def test_export_with_flip_shift_runs_on_the_edge_in_one_copy_of_the_network(
    tiny_run: Path, class_folders: Path, class_tar: Path, tmp_path: Path
):
    out = tmp_path / "flip-shift"
    data = ["--data", str(class_folders), "--data", str(class_tar)]
    args = ["export", str(tiny_run / "model.keras"), *data]
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--tta", "flip-shift"])
    assert result.exit_code == 0, result.output
    assert read_manifest(out).tta == "flip-shift"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tta"] == {"mode": "flip-shift", "views": 6}
    # One copy of the network on a batch of six: six times the multiply-adds of one view.
    plain_macs = count_macs(keras.models.load_model(tiny_run / "model.keras"))
    assert multiply_adds(out / "model.tflite") == 6 * plain_macs
    # The six views run as one stacked batch through one copy of the network, so the file
    # holds the network's convolutions once, not six copies of the graph's records.
    convolutions = [op_counts(folder)["CONV_2D"] for folder in (tiny_run, out)]
    assert convolutions[0] >= 1 and convolutions[1] == convolutions[0]

    images = sample_images(40, seed=11)
    float_head = classifier_head(
        calibrate.logit_model(keras.models.load_model(tiny_run / "model.keras")), "flip-shift"
    )
    with Classifier(out) as classifier:
        int8 = classifier.predict_proba(images)
        one_by_one = np.concatenate([classifier.predict_proba(images[i : i + 1]) for i in (0, 7)])
    assert np.allclose(one_by_one, int8[[0, 7]], atol=1e-6)
    # the int8 model ranks like the float six-view model it was converted from (its logits
    # are divided by the fitted temperature, which keeps the ranking)
    same = np.mean(int8.argmax(axis=1) == predict(float_head, images).argmax(axis=1))
    assert same >= 0.9
