"""The airbench arch: data-set whitening, Dirac init, 64x bias rate, Lookahead, int8 export."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from edge_agent.vision.classifier import Classifier
from tests.trainer.conftest import CLASSES, synthetic_image
from trainer import cli
from trainer.callbacks import Lookahead
from trainer.data import make_tf_dataset, training_steps
from trainer.models import ScaledBias, count_macs, init_whitening, make_model, replace_head
from trainer.recipe import hparams_for
from trainer.run import train_and_export
from trainer.run_folder import saved_network_arch


def sample_images(count: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([synthetic_image(CLASSES[i % 3], rng) for i in range(count)])


def whitened_patches(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The whitening convolution's output (before its GELU), one row per patch."""
    probe = keras.Model(model.input, model.get_layer("whiten").output)
    out = keras.ops.convert_to_numpy(probe(images.astype(np.float32), training=False))
    return out.reshape(-1, out.shape[-1]).astype(np.float64)


def test_whitening_decorrelates_the_training_patches():
    model = make_model("airbench", (32, 32, 3), 3, width=4)
    images = sample_images()
    assert init_whitening(model, images)
    patches = whitened_patches(model, images)
    assert patches.shape[1] == 24  # 2 x 2 x 3 patch dimensions, each + and -
    positive, negative = patches[:, :12], patches[:, 12:]
    assert np.allclose(negative, -positive, atol=1e-4)
    assert np.abs(positive.mean(axis=0)).max() < 1e-3  # the bias centres the patches
    cov = np.cov(positive, rowvar=False)
    # decorrelated, with unit variance, to within the int8 grid the kernel is rounded to
    # (a step is 1/127 of each filter's largest weight; exact whitening leaves < 1e-3)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 0.03
    assert np.all(np.diag(cov) > 0.97) and np.all(np.diag(cov) < 1.03)
    # and it stays fixed: nothing in it is trained
    assert not model.get_layer("whiten").trainable_weights


def test_init_whitening_leaves_models_without_it_alone():
    model = make_model("resnet", (32, 32, 3), 3, width=4)
    before = [w.copy() for w in model.get_weights()]
    assert not init_whitening(model, sample_images(20))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_group_convolutions_start_as_partial_identities():
    model = make_model("airbench", (32, 32, 3), 3, width=4)
    kernel = keras.ops.convert_to_numpy(model.get_layer("group2_conv1").kernel)
    assert kernel.shape == (3, 3, 4, 16)
    identity = np.zeros((3, 3, 4, 4), np.float32)
    identity[1, 1, range(4), range(4)] = 1.0
    assert np.array_equal(kernel[..., :4], identity)
    assert np.abs(kernel[..., 4:]).sum() > 0  # the other filters keep their random start


def test_airbench_shape_and_cost():
    model = make_model("airbench", (32, 32, 3), 10, width=8)
    # whiten 31x31x24 (2x2x3), group1 31x31 conv 24->8 then 15x15 8->8, group2 15x15
    # 8->32 then 7x7 32->32, group3 7x7 32->32 then 3x3 32->32, head 32->10
    expected = (
        31 * 31 * 4 * 3 * 24
        + 31 * 31 * 9 * 24 * 8
        + 15 * 15 * 9 * 8 * 8
        + 15 * 15 * 9 * 8 * 32
        + 7 * 7 * 9 * 32 * 32
        + 7 * 7 * 9 * 32 * 32
        + 3 * 3 * 9 * 32 * 32
        + 32 * 10
    )
    assert count_macs(model) == expected
    assert not model.get_layer("head").use_bias
    assert model.get_layer("logit_scale").scale == pytest.approx(1 / 9)


def test_scaled_bias_moves_at_scale_squared_the_learning_rate():
    def one_step(layer) -> float:
        inputs = keras.Input((4,))
        model = keras.Model(inputs, layer(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        before = keras.ops.convert_to_numpy(model(np.zeros((1, 4), np.float32)))
        model.train_on_batch(np.zeros((8, 4), np.float32), np.ones((8, 4), np.float32))
        after = keras.ops.convert_to_numpy(model(np.zeros((1, 4), np.float32)))
        return float((after - before).mean())

    plain = one_step(ScaledBias(1.0))
    scaled = one_step(ScaledBias(8.0))
    assert plain > 0
    assert scaled == pytest.approx(64 * plain, rel=1e-4)


def test_airbench_model_survives_save_and_load(tmp_path: Path):
    model = make_model("airbench", (32, 32, 3), 3, width=4)
    init_whitening(model, sample_images(50))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    x = sample_images(8, seed=3).astype(np.float32)
    assert np.allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0), atol=1e-5)
    swapped = replace_head(loaded, ["a", "b", "c", "d"], ["a", "b", "c"])
    old = model.get_layer("head").get_weights()[0]
    new = swapped.get_layer("head_4").get_weights()
    assert len(new) == 1 and np.array_equal(new[0][:, :3], old)  # bias-free head kept so


def test_lookahead_pulls_the_weights_back_and_ends_on_its_average():
    def fit(callbacks) -> list[np.ndarray]:
        keras.utils.set_random_seed(0)
        model = make_model("tiny", (32, 32, 3), 3)
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")
        x = sample_images(64).astype(np.float32)
        y = keras.utils.to_categorical(np.arange(64) % 3, 3)
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
        return model.get_weights()

    lookahead = Lookahead(total_steps=16, every=5, base=0.9, power=1.0)
    smoothed = fit([lookahead])
    plain = fit([])
    assert all(np.array_equal(w, a) for w, a in zip(smoothed, lookahead.average, strict=True))
    assert max(np.abs(s - p).max() for s, p in zip(smoothed, plain, strict=True)) > 1e-4


def test_lookahead_average_survives_a_resume(tmp_path: Path):
    keras.utils.set_random_seed(0)
    model = make_model("tiny", (32, 32, 3), 3)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")
    x = sample_images(64).astype(np.float32)
    y = keras.utils.to_categorical(np.arange(64) % 3, 3)
    state = tmp_path / "lookahead.npz"
    first = Lookahead(total_steps=32, every=2, base=0.9, power=1.0, state_path=state)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[first])
    assert state.is_file()

    resumed = Lookahead(32, every=2, base=0.9, power=1.0, state_path=state, initial_epoch=2)
    model.set_weights([w + 1.0 for w in model.get_weights()])  # the checkpoint's weights differ
    resumed.set_model(model)
    resumed.on_train_begin()
    assert all(np.array_equal(a, b) for a, b in zip(resumed.average, first.average, strict=True))
    # a state from another epoch is not taken: the average starts from the model
    stale = Lookahead(32, state_path=state, initial_epoch=1)
    stale.set_model(model)
    stale.on_train_begin()
    assert all(
        np.array_equal(a, w) for a, w in zip(stale.average, model.get_weights(), strict=True)
    )


def test_translate_sets_the_crop_offset():
    images = sample_images(16)
    labels = np.arange(16) % 3
    dataset = make_tf_dataset(
        images, labels, 3, 16, training=True, augment=True, seed=0, translate=0
    )
    batch, _ = next(iter(dataset))
    for out in np.asarray(batch):
        # with no translation every augmented image is one of the inputs, maybe mirrored
        assert any(np.array_equal(out, img) or np.array_equal(out, img[:, ::-1]) for img in images)


def test_cutout_blanks_one_square_per_image_with_the_batch_mean():
    values = np.arange(16, dtype=np.uint8) * 10 + 5  # flat grey images, each its own shade
    images = np.broadcast_to(values[:, None, None, None], (16, 32, 32, 3)).copy()
    labels = np.arange(16) % 3
    dataset = make_tf_dataset(
        images, labels, 3, 16, training=True, augment=True, seed=0, translate=0, cutout=8
    )
    batch, _ = next(iter(dataset))
    batch = np.asarray(batch)
    mean = float(images.mean())
    seen = {float(v) for v in values}
    for out in batch:
        shade = float(out[0, 0, 0]) if float(out[0, 0, 0]) in seen else float(out[-1, -1, 0])
        changed = np.argwhere(np.any(out != shade, axis=-1))
        assert 0 < len(changed) <= 64  # a square of side 8, clipped at the border
        height, width = changed.max(axis=0) - changed.min(axis=0) + 1
        assert height <= 8 and width <= 8 and len(changed) == height * width
        assert np.allclose(out[tuple(changed.T)], mean)
    val = make_tf_dataset(images, labels, 3, 16, training=False, augment=False, cutout=8, seed=0)
    assert np.array_equal(np.asarray(next(iter(val))[0]), images)  # validation is never cut


def test_training_drops_the_short_last_batch_but_validation_keeps_it():
    images = sample_images(70)
    labels = np.arange(70) % 3
    train = make_tf_dataset(images, labels, 3, 32, training=True, augment=False, seed=0)
    val = make_tf_dataset(images, labels, 3, 32, training=False, augment=False, seed=0)
    assert [len(x) for x, _ in train] == [32, 32]
    assert [len(x) for x, _ in val] == [32, 32, 6]
    assert training_steps(70, 32) == 2 and training_steps(70, 32, training=False) == 3
    small = make_tf_dataset(images[:20], labels[:20], 3, 32, training=True, augment=False, seed=0)
    assert [len(x) for x, _ in small] == [20]  # fewer images than a batch: still one step
    assert training_steps(20, 32) == 1


def test_airbench_recipe_defaults():
    hp = hparams_for("airbench")
    assert (hp.batch_size, hp.lr, hp.momentum, hp.label_smoothing) == (1024, 1.5, 0.85, 0.2)
    assert (hp.translate, hp.lookahead, hp.width, hp.warmup_start) == (4, True, 44, 0.2)
    assert (hp.epochs, hp.cutout, hp.tta) == (70, 12, "none")


def test_airbench_trains_exports_int8_and_runs_on_the_edge(class_folders: Path, tmp_path: Path):
    out = train_and_export(
        data=[class_folders],
        out=tmp_path / "airbench",
        arch="airbench",
        width=4,
        epochs=4,
        batch_size=32,
        lr=0.1,
        max_quant_drop=5.0,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["float_accuracy"] >= 0.8
    assert metrics["int8_accuracy"] >= metrics["float_accuracy"] - 0.05
    config = json.loads((out / "config.json").read_text())
    hparams = config["hparams"]
    assert hparams["lookahead"] and (hparams["translate"], hparams["cutout"]) == (4, 12)
    rng = np.random.default_rng(42)
    fresh = np.stack([synthetic_image(label, rng) for label in CLASSES for _ in range(10)])
    with Classifier(out) as classifier:
        predicted = [p.top_label for p in classifier.classify(fresh)]
    truth = [label for label in CLASSES for _ in range(10)]
    assert np.mean(np.array(predicted) == np.array(truth)) >= 0.8

    # Fine-tuning it the retraining way, from the CLI without --arch: the small-data
    # resnet recipe, said in the log; the manifest still says what the network is.
    tuned = tmp_path / "tuned"
    result = CliRunner().invoke(
        cli.main,
        ["train", "--data", str(class_folders), "--init-from", str(out / "model.keras"),
         "--epochs", "2", "--batch-size", "32", "--max-quant-drop", "5", "--out", str(tuned)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "fine-tuning a airbench network with the resnet recipe" in result.stderr
    manifest = json.loads((tuned / "model.json").read_text())
    assert manifest["arch"] == "airbench"
    assert manifest["training"]["recipe"] == "resnet" and manifest["training"]["width"] is None
    assert json.loads((tuned / "metrics.json").read_text())["int8_accuracy"] >= 0.8


def test_saved_network_arch_reads_the_archive_without_keras(tmp_path: Path):
    model = make_model("tiny", (32, 32, 3), 3)
    model.save(tmp_path / "tiny.keras")
    assert saved_network_arch(tmp_path / "tiny.keras") == "tiny"
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    assert saved_network_arch(tmp_path / "broken.keras") is None
    assert saved_network_arch(tmp_path / "missing.keras") is None
