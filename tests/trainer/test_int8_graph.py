"""The graph rewrites done before int8 conversion: pooled BatchNorm folding and the
whitening kernel snapped to its int8 grid."""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

import keras
import numpy as np
from keras import layers

from edge_agent.vision.classifier import load_interpreter_class
from tests.trainer.test_airbench import sample_images
from trainer.export import convert_int8
from trainer.int8_graph import fold_pooled_batchnorm, int8_ready, snap_whitening
from trainer.models import ScaledBias, init_whitening, make_model, snap_to_int8_grid


def trained_looking_airbench(seed: int = 0) -> keras.Model:
    """A width-4 airbench whose BatchNorm statistics and biases are far from their
    initial values, as after training, so a wrong fold would show."""
    rng = np.random.default_rng(seed)
    model = make_model("airbench", (32, 32, 3), 3, width=4)
    init_whitening(model, sample_images(100))
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 2, channels).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.2, 5, channels).astype(np.float32))
        elif isinstance(layer, ScaledBias):
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype(np.float32))
        elif isinstance(layer, layers.Conv2D) and layer.name.startswith("group"):
            layer.kernel.assign(rng.normal(0, 0.2, layer.kernel.shape).astype(np.float32))
    return model


def predict(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(images.astype(np.float32), training=False))


def int8_op_counts(model: keras.Model, calibration: np.ndarray) -> collections.Counter:
    interpreter_class, _ = load_interpreter_class()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(convert_int8(model, calibration))
        interpreter = interpreter_class(model_path=str(path))
        interpreter.allocate_tensors()
        return collections.Counter(op["op_name"] for op in interpreter._get_ops_details())


def test_snap_puts_each_output_channel_on_its_int8_step():
    rng = np.random.default_rng(1)
    kernel = rng.normal(0, 1, (2, 2, 3, 8)).astype(np.float32) * rng.uniform(0.01, 50, 8)
    snapped = snap_to_int8_grid(kernel)
    step = np.abs(kernel).reshape(-1, 8).max(axis=0) / 127
    levels = snapped.reshape(-1, 8) / step
    assert np.allclose(levels, np.round(levels), atol=1e-3)
    assert np.allclose(np.abs(snapped).reshape(-1, 8).max(axis=0), 127 * step)  # max kept
    assert np.all(np.abs(snapped - kernel).reshape(-1, 8) <= step / 2 + 1e-6)
    assert not np.array_equal(snapped, kernel)
    # the converter folds the input's 1/255 into the kernel: that stays on its grid
    folded = snapped / 255
    levels = folded.reshape(-1, 8) / (np.abs(folded).reshape(-1, 8).max(axis=0) / 127)
    assert np.allclose(levels, np.round(levels), atol=1e-3)


def test_init_whitening_sets_a_kernel_already_on_its_grid():
    model = make_model("airbench", (32, 32, 3), 3, width=4)
    init_whitening(model, sample_images(100))
    kernel = model.get_layer("whiten").get_weights()[0]
    assert np.allclose(snap_to_int8_grid(kernel), kernel, rtol=1e-6, atol=0)
    assert snap_whitening(model, sample_images(20)) < 1e-3  # nothing left to snap (in steps)


def test_fold_keeps_the_function_and_drops_the_pooled_batchnorms():
    model = trained_looking_airbench()
    before = [w.copy() for w in model.get_weights()]
    images = sample_images(16, seed=5)
    folded, count = fold_pooled_batchnorm(model)
    assert count == 3  # one per group: conv1 -> max-pool -> BatchNorm -> bias
    assert np.allclose(predict(folded, images), predict(model, images), atol=1e-5)
    kinds = collections.Counter(type(layer).__name__ for layer in folded.layers)
    assert kinds["BatchNormalization"] == 3  # the ones right after a conv: TFLite folds them
    assert kinds["ScaledBias"] == 3
    assert all(folded.get_layer(f"group{g}_conv1").use_bias for g in (1, 2, 3))
    # the trained model (saved as model.keras) is not touched
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_a_batchnorm_that_flips_a_sign_is_not_moved_across_the_max_pool():
    inputs = keras.Input((8, 8, 2))
    x = layers.Conv2D(2, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, layers.GlobalAveragePooling2D()(x))
    model.get_layer("bn").gamma.assign(np.array([1.5, -0.5], np.float32))
    images = np.random.default_rng(0).normal(size=(4, 8, 8, 2))
    folded, count = fold_pooled_batchnorm(model)
    assert count == 0  # max(-x) is not -max(x)
    assert np.allclose(predict(folded, images), predict(model, images), atol=1e-6)


def test_snapping_keeps_the_mean_patch_and_leaves_the_original():
    model = trained_looking_airbench()
    whiten = model.get_layer("whiten")
    kernel, bias = whiten.get_weights()
    rng = np.random.default_rng(2)
    whiten.set_weights([kernel * rng.uniform(0.9, 1.1, kernel.shape).astype(np.float32), bias])
    original = [w.copy() for w in whiten.get_weights()]
    images = sample_images(64, seed=3)

    ready, report = int8_ready(model, images)
    assert report.folded_batchnorms == 3 and report.whitening_snapped
    assert 0 < report.whitening_max_step <= 0.5 + 1e-6
    new_kernel = ready.get_layer("whiten").get_weights()[0]
    assert np.allclose(snap_to_int8_grid(new_kernel), new_kernel, rtol=1e-6, atol=0)
    probe_old = keras.Model(model.input, whiten.output)
    probe_new = keras.Model(ready.input, ready.get_layer("whiten").output)
    mean_old = predict(probe_old, images).mean(axis=(0, 1, 2))
    mean_new = predict(probe_new, images).mean(axis=(0, 1, 2))
    assert np.allclose(mean_new, mean_old, atol=1e-4)  # the bias absorbed the mean leak
    assert all(np.array_equal(a, b) for a, b in zip(original, whiten.get_weights(), strict=True))


def test_the_rewritten_graph_converts_to_fewer_int8_ops():
    model = trained_looking_airbench()
    calibration = sample_images(32, seed=7)
    ready, _ = int8_ready(model, calibration)
    plain = int8_op_counts(model, calibration)
    rewritten = int8_op_counts(ready, calibration)
    assert plain["MUL"] == 3 and plain["ADD"] == 3  # the pooled BatchNorms and their biases
    assert rewritten["MUL"] == 0 and rewritten["ADD"] == 0
    assert rewritten["CONV_2D"] == plain["CONV_2D"] == 7
