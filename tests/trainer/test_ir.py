"""Infrared: the IR-like look in the training pipeline (``--ir``), the teacher seeing colour
while the student sees grey, and the grey gap measured by ``evaluate --grey`` and the
export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge_agent.manifest import read_manifest
from edge_agent.vision.classifier import Classifier
from tests.trainer.conftest import CLASSES, QUANT_DROP_ANY, synthetic_image
from trainer.cli import main
from trainer.data import load_datasets, make_tf_dataset, stratified_split
from trainer.looks import grey_images
from trainer.run import train_and_export


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def colour_images(n: int, seed: int = 0) -> np.ndarray:
    """Synthetic crops whose channels always differ (the per-channel noise sees to it)."""
    rng = np.random.default_rng(seed)
    return np.stack([synthetic_image(CLASSES[i % 3], rng) for i in range(n)])


def is_grey(crops: np.ndarray) -> np.ndarray:
    """Per crop: R = G = B everywhere."""
    return np.all((crops[..., 0] == crops[..., 1]) & (crops[..., 1] == crops[..., 2]), axis=(1, 2))


def epoch_of(ds) -> tuple[np.ndarray, np.ndarray]:
    parts = [(x.numpy(), y.numpy()) for x, y in ds]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# -- the look ---------------------------------------------------------------------------------


def test_grey_images_are_601_luma_in_three_equal_channels():
    pixels = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 90]]]], np.uint8)
    grey = grey_images(pixels)
    assert grey.dtype == np.uint8 and grey.shape == pixels.shape
    # round(0.299 R + 0.587 G + 0.114 B): 76.2, 149.7, 29.1, 130.6
    assert grey[0, 0, :, 0].tolist() == [76, 150, 29, 131]
    assert is_grey(grey).all()
    images = colour_images(20)
    assert np.array_equal(grey_images(images), grey_images(images))  # no randomness
    assert np.array_equal(grey_images(grey_images(images)), grey_images(images))


def test_a_share_ir_of_the_training_crops_become_grey():
    import keras

    keras.utils.set_random_seed(0)
    images = colour_images(640)
    labels = np.zeros(640, np.int32)
    ds = make_tf_dataset(
        images, labels, 3, 64, training=True, augment=True, cutout=8, seed=0, ir=0.3
    )
    crops = np.concatenate([epoch_of(ds)[0] for _ in range(2)])  # 1,280 crops
    grey = is_grey(crops)
    # Binomial(1280, 0.3): standard deviation 0.0128; 4 of them either side.
    assert abs(grey.mean() - 0.3) < 0.052, grey.mean()
    ir_crops = crops[grey]
    assert np.array_equal(ir_crops, np.round(ir_crops))  # whole grey levels, as a camera's
    assert ir_crops.min() >= 0 and ir_crops.max() <= 255
    assert ir_crops.dtype == np.float32  # the model input stays float RGB, 3 channels
    assert ir_crops.shape[1:] == (32, 32, 3)


def test_an_ir_crop_is_its_own_crop_in_grey_with_random_contrast_gamma_and_noise():
    images = colour_images(96, seed=1)
    # Each image its own class: the one-hot target says which source a crop came from.
    index = np.arange(len(images), dtype=np.int32)
    ds = make_tf_dataset(
        images, index, len(images), 32, training=True, augment=False, seed=0, ir=1.0
    )
    crops, targets = epoch_of(ds)
    sources = grey_images(images[targets.argmax(axis=1)]).astype(np.float32)
    assert is_grey(crops).all()
    same_scene = [
        np.corrcoef(crop[..., 0].ravel(), source[..., 0].ravel())[0, 1]
        for crop, source in zip(crops, sources, strict=True)
    ]
    assert min(same_scene) > 0.5  # the same picture...
    assert not np.array_equal(crops, sources)  # ...but not the plain luma
    spread_ratio = crops[..., 0].std(axis=(1, 2)) / sources[..., 0].std(axis=(1, 2))
    brightness = crops[..., 0].mean(axis=(1, 2)) - sources[..., 0].mean(axis=(1, 2))
    assert spread_ratio.min() < 0.7 and spread_ratio.max() > 1.0  # contrast both ways
    assert brightness.min() < -10 and brightness.max() > 5  # gamma darkens and brightens


def test_grey_one_makes_every_crop_grey_the_ir_look_on_its_share_plain_luma_on_the_rest():
    """--ir 0.5 --grey 1, a grey companion's training: every crop grey; about half are the
    plain luma of their source (what evaluate --grey measures), the rest the IR look."""
    import keras

    keras.utils.set_random_seed(0)
    images = colour_images(400, seed=2)
    index = np.arange(len(images), dtype=np.int32)
    ds = make_tf_dataset(
        images, index, len(images), 50, training=True, augment=False, seed=0, ir=0.5, grey=1.0
    )
    crops, targets = epoch_of(ds)
    assert is_grey(crops).all()
    plain = grey_images(images[targets.argmax(axis=1)]).astype(np.float32)
    # Within a level: TensorFlow's and NumPy's float sums may round a .5 apart.
    share = (np.abs(crops - plain).max(axis=(1, 2, 3)) <= 1).mean()
    # Binomial(400, 0.5): standard deviation 0.025; 4 of them either side (an IR crop
    # equal to its plain luma would need contrast 1, gamma 1 and no noise at once).
    assert abs(share - 0.5) < 0.1, share
    # --grey alone: a share of plain grey crops, the rest in colour as they were.
    ds = make_tf_dataset(
        images, index, len(images), 50, training=True, augment=False, seed=0, grey=0.25
    )
    crops, targets = epoch_of(ds)
    sources = images[targets.argmax(axis=1)].astype(np.float32)
    grey = is_grey(crops)
    assert abs(grey.mean() - 0.25) < 0.09, grey.mean()
    assert np.abs(crops[grey] - grey_images(sources[grey].astype(np.uint8))).max() <= 1
    assert np.array_equal(crops[~grey], sources[~grey])


def test_ir_zero_leaves_the_pipeline_as_it_was():
    """With ir 0 the pipeline holds no op of the IR look (the same graph as without the
    argument) and, without augmentation, gives the images bit for bit."""
    images = colour_images(64)
    labels = np.zeros(64, np.int32)
    kwargs = dict(training=True, augment=True, cutout=8, seed=0)

    def ops(ds) -> list[str]:
        import tensorflow as tf

        graph = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())
        nodes = [n.op for f in graph.library.function for n in f.node_def]
        return sorted(nodes + [n.op for n in graph.node])

    plain = ops(make_tf_dataset(images, labels, 3, 16, **kwargs))
    assert ops(make_tf_dataset(images, labels, 3, 16, **kwargs, ir=0.0)) == plain
    with_ir = ops(make_tf_dataset(images, labels, 3, 16, **kwargs, ir=0.5))
    assert "Pow" in with_ir and "Pow" not in plain

    index = np.arange(64, dtype=np.int32)
    ds = make_tf_dataset(images, index, 64, 16, training=True, augment=False, seed=0, ir=0.0)
    crops, targets = epoch_of(ds)
    assert np.array_equal(crops, images[targets.argmax(axis=1)].astype(np.float32))


def test_the_teacher_sees_the_colour_crop_and_the_student_the_ir_one():
    import tensorflow as tf

    def colour_detector(batch, training=False):
        """A teacher that says class 0 for a colour crop, class 1 for a grey one."""
        spread = tf.reduce_max(batch, axis=-1) - tf.reduce_min(batch, axis=-1)
        grey = tf.cast(tf.reduce_max(spread, axis=[1, 2]) == 0, tf.int32)
        return tf.one_hot(grey, 3)

    images = colour_images(128)
    labels = np.full(128, 2, np.int32)
    ds = make_tf_dataset(
        images, labels, 3, 32, training=True, augment=True, cutout=8, seed=0, ir=1.0,
        soft_targets=colour_detector, soft_weight=0.6, label_smoothing=0.0,
    )  # fmt: skip
    crops, targets = epoch_of(ds)
    assert is_grey(crops).all()
    assert np.allclose(targets, [0.6, 0.0, 0.4])  # the teacher saw colour, every time
    grey_teacher = colour_detector(tf.constant(crops)).numpy()
    assert np.allclose(grey_teacher, [0, 1, 0])  # what it would have said on the student's


# -- the command line and the run folder ----------------------------------------------------


def test_ir_is_an_option_recorded_in_the_config_and_the_manifest(
    cifar_batches: Path, tmp_path: Path
):
    assert "--ir" in invoke("train", "--help").output
    out = tmp_path / "ir-run"
    result = invoke(
        "train", "--data", cifar_batches, "--arch", "tiny", "--epochs", "2", "--ir", "0.5",
        "--out", out, *QUANT_DROP_ANY,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "infrared-like look on 50% of the training crops" in result.stderr
    assert json.loads((out / "config.json").read_text())["hparams"]["ir"] == 0.5
    manifest = read_manifest(out)
    assert manifest.training["ir"] == 0.5
    assert 0.0 <= manifest.accuracy["int8_grey"] <= 1.0
    assert 0.0 <= manifest.accuracy["float_grey"] <= 1.0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["grey"]["int8_accuracy"] == manifest.accuracy["int8_grey"]
    assert "int8  grey" in result.stdout and "gap" in result.stdout

    refused = invoke("train", "--data", cifar_batches, "--arch", "tiny", "--ir", "1.5")
    assert refused.exit_code == 2
    assert "ir (the share of infrared-like crops) must be in [0, 1]" in refused.stderr


def test_a_run_from_before_ir_resumes_without_it(class_tar: Path, tmp_path: Path):
    out = tmp_path / "old-run"
    train_and_export(data=[class_tar], out=out, arch="tiny", epochs=2, stop_after=1, seed=1)
    config = json.loads((out / "config.json").read_text())
    del config["hparams"]["ir"]  # config.json as runs wrote it before the field existed
    (out / "config.json").write_text(json.dumps(config))
    train_and_export(data=None, out=out, resume=True)
    assert json.loads((out / "config.json").read_text())["status"] == "finished"
    assert read_manifest(out).training["ir"] == 0.0


def test_evaluate_grey_prints_colour_grey_and_the_gap(
    tiny_run: Path, class_folders: Path, class_tar: Path, tmp_path: Path
):
    data = ["--data", class_folders, "--data", class_tar]
    plain = invoke("evaluate", tiny_run, *data)
    assert plain.exit_code == 0, plain.output
    assert "grey" not in plain.stdout  # evaluate as it was without the flag

    result = invoke("evaluate", tiny_run, *data, "--grey", "--out", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:4] == plain.stdout.splitlines()[:4]  # model, data, float, int8 in colour
    assert lines[4] == "grey      ITU-R BT.601 luma, rounded, in all three channels"
    assert lines[5].startswith("float grey ") and "points)" in lines[5]
    assert lines[6].startswith("int8  grey ") and "points)" in lines[6]
    assert all("  grey " in line for line in lines[7:])  # per-class recall, both looks
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    grey = report["grey"]
    assert grey["int8_gap_points"] == round(
        100 * (report["int8_accuracy"] - grey["int8_accuracy"]), 2
    )
    assert f"int8  grey {100 * grey['int8_accuracy']:.2f}%" in lines[6]

    # The same figure as the export measured, and as the trap's classifier gives by hand.
    manifest = read_manifest(tiny_run)
    assert grey["int8_accuracy"] == manifest.accuracy["int8_grey"]
    data_set = load_datasets([class_folders, class_tar])
    val = stratified_split(data_set, 0.2, 0).val
    with Classifier(tiny_run) as classifier:
        predicted = classifier.predict_proba(grey_images(val.images)).argmax(axis=1)
    assert grey["int8_accuracy"] == pytest.approx(np.mean(predicted == val.labels), abs=1e-4)
