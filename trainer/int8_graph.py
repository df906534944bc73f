"""Rewrites that let a trained Keras model lose less when it is converted to int8.

The exporter converts a rewritten *copy*; ``model.keras`` stays as trained, for
fine-tuning. Each rewrite leaves the float function the same, or changes it only by the
rounding that the int8 model would do anyway:

``fold_pooled_batchnorm``
    airbench runs conv -> max-pool -> BatchNorm -> bias. The converter folds a BatchNorm
    only into a convolution right before it, so these became a separate int8 multiply and
    add, each with its own rounding and a pass over the activations. A per-channel map
    ``a * x + c`` with ``a > 0`` commutes with a max-pool, so ``a`` and ``c`` go into the
    convolution's kernel and bias instead.
``snap_whitening``
    airbench's frozen first convolution whitens 2x2 patches: its filters for the
    low-variance directions are large, nearly cancelling differences of neighbouring
    pixels. Rounding those weights to int8 breaks the cancellation, and the leak is
    proportional to the brightness of the patch (pixels are 0-255). Snapping the kernel to
    the int8 grid here, and moving the bias so that the mean patch maps where it did,
    takes the brightness-proportional part out. Models trained since the whitening was set
    on the grid (:func:`trainer.models.init_whitening`) are unchanged by it.

Measured on the airbench width 44 shipped on 2026-11-27 (benchmarks/bench_int8_graph.py,
docs/benchmarks.md): int8 86.96% as converted before, 86.99% with the fold alone, 87.31%
with both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from trainer.models import ScaledBias, int8_grid_step, snap_to_int8_grid

log = logging.getLogger(__name__)

WHITEN_LAYER = "whiten"


class _Folded(layers.Layer):
    """Stands in for a layer whose work moved into its neighbour. Accepts the keyword
    arguments (``training``, ``mask``) that a BatchNormalization was called with."""

    def call(self, inputs, **kwargs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


@dataclass
class Int8GraphReport:
    folded_batchnorms: int = 0
    whitening_snapped: bool = False
    whitening_max_step: float = 0.0  # largest kernel change, in int8 steps of its channel

    def describe(self) -> str:
        parts = [f"{self.folded_batchnorms} pooled BatchNorm(s) folded into their convolutions"]
        if self.whitening_snapped:
            parts.append(
                f"whitening kernel snapped to its int8 grid "
                f"(largest change {self.whitening_max_step:.2f} of a step)"
            )
        return "; ".join(parts)


def _producer(tensor):
    return tensor._keras_history.operation


def _single_use(layer) -> bool:
    return len(layer._inbound_nodes) == 1 and len(layer._outbound_nodes) == 1


def _pooled_batchnorm_folds(model) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """conv name -> (per-channel scale, per-channel shift, names of the layers absorbed)."""
    folds = {}
    for bn in model.layers:
        if not isinstance(bn, layers.BatchNormalization) or bn.axis not in (-1, 3):
            continue
        pool = _producer(bn.input)
        if not isinstance(pool, layers.MaxPooling2D) or not _single_use(pool):
            continue
        conv = _producer(pool.input)
        if (
            not isinstance(conv, layers.Conv2D)
            or conv.get_config()["activation"] != "linear"
            or not _single_use(conv)
            or not _single_use(bn)
        ):
            continue
        mean = keras.ops.convert_to_numpy(bn.moving_mean)
        variance = keras.ops.convert_to_numpy(bn.moving_variance)
        gamma = keras.ops.convert_to_numpy(bn.gamma) if bn.scale else 1.0
        beta = keras.ops.convert_to_numpy(bn.beta) if bn.center else 0.0
        scale = gamma / np.sqrt(variance + bn.epsilon)
        if np.any(scale <= 0):
            continue  # a max-pool commutes only with increasing maps
        shift = beta - mean * scale
        absorbed = [bn.name]
        user = bn._outbound_nodes[0].operation
        if isinstance(user, ScaledBias) and _single_use(user):
            shift = shift + user.scale * keras.ops.convert_to_numpy(user.bias)
            absorbed.append(user.name)
        folds[conv.name] = (scale, shift, absorbed)
    return folds


def fold_pooled_batchnorm(model) -> tuple[keras.Model, int]:
    """A copy of ``model`` (its own weights) with each conv -> max-pool -> BatchNorm
    [-> ScaledBias] folded into the convolution; returns it and how many were folded."""
    folds = _pooled_batchnorm_folds(model)
    absorbed = {name for _, _, names in folds.values() for name in names}
    pairs = []

    def clone(layer):
        if layer.name in absorbed:
            return _Folded(name=layer.name)
        config = layer.get_config()
        if layer.name in folds:
            config["use_bias"] = True
        new = layer.__class__.from_config(config)
        pairs.append((layer, new))
        return new

    copy = keras.models.clone_model(model, clone_function=clone)
    for old, new in pairs:
        weights = old.get_weights()
        if old.name in folds:
            scale, shift, _ = folds[old.name]
            bias = weights[1] * scale if old.use_bias else 0.0
            weights = [weights[0] * scale, (bias + shift).astype(np.float32)]
        new.set_weights([np.asarray(w, dtype=np.float32) for w in weights])
    return copy, len(folds)


def _mean_input_patch(model, layer, images: np.ndarray) -> np.ndarray | None:
    """Mean of the (k, k, c) input patches ``layer`` sees on ``images``, flattened in
    kernel order; None for strides, dilations or padding this does not model."""
    config = layer.get_config()
    if (
        config["padding"] != "valid"
        or tuple(config["strides"]) != (1, 1)
        or tuple(config["dilation_rate"]) != (1, 1)
    ):
        return None
    k_h, k_w = layer.kernel_size
    inputs = keras.Model(model.input, layer.input).predict(
        np.asarray(images, dtype=np.float32), batch_size=256, verbose=0
    )
    windows = np.lib.stride_tricks.sliding_window_view(inputs, (k_h, k_w), axis=(1, 2))
    # (n, h', w', c, k_h, k_w) -> mean over images and positions, in (k_h, k_w, c) order
    return windows.mean(axis=(0, 1, 2)).transpose(1, 2, 0).reshape(-1)


def snap_whitening(model, images: np.ndarray) -> float | None:
    """Round ``model``'s whitening kernel (in place) to the per-channel int8 grid the
    converter will use, moving the bias so the mean input patch of ``images`` keeps its
    output. Returns the largest change in grid steps, or None if there is nothing to do."""
    try:
        layer = model.get_layer(WHITEN_LAYER)
    except ValueError:
        return None
    if not isinstance(layer, layers.Conv2D) or not layer.use_bias:
        return None
    mean_patch = _mean_input_patch(model, layer, images)
    if mean_patch is None:
        return None
    kernel, bias = layer.get_weights()
    snapped = snap_to_int8_grid(kernel)
    flat_change = (kernel - snapped).reshape(-1, kernel.shape[-1])
    max_step = float((np.abs(flat_change) / int8_grid_step(kernel)).max())
    layer.set_weights([snapped, (bias + mean_patch @ flat_change).astype(np.float32)])
    return max_step


def int8_ready(model, images: np.ndarray) -> tuple[keras.Model, Int8GraphReport]:
    """The copy of ``model`` to hand the int8 converter: pooled BatchNorms folded, the
    whitening snapped to its grid (``images``: a few hundred training images, for the
    mean patch). ``model`` itself is not changed."""
    copy, folded = fold_pooled_batchnorm(model)
    report = Int8GraphReport(folded_batchnorms=folded)
    max_step = snap_whitening(copy, images)
    if max_step is not None:
        report.whitening_snapped = True
        report.whitening_max_step = max_step
    log.info("int8 graph: %s", report.describe())
    return copy, report
