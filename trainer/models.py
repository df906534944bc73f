"""Model factory: ``make_model(arch, input_shape, num_classes)``.

Every model takes raw RGB pixels 0-255 (float32) and does its own normalization, so the
int8 TFLite model takes uint8 pixels straight from the camera crop. Architectures:

``seed``
    The original Keras CIFAR-10 recipe (../shared/seed/), layer for layer: Conv2D 32 3x3
    same + ReLU, MaxPool 2, Dropout 0.25, Flatten, Dense 512 + ReLU, Dropout 0.5, Dense N +
    softmax. The only addition is ``Rescaling(1/255)`` at the input, which the recipe did
    on the numpy arrays. 4.2 M parameters, almost all in the 8192 -> 512 Dense.
``resnet``
    A ResNet-9 in the style of Myrtle.ai / airbench (prep conv, three stages that each end
    in a max-pool, residual blocks after stages 1 and 3, global max-pool, linear head),
    every convolution conv -> BatchNorm -> ReLU without bias so BN folds into the conv when
    converted to TFLite. ``width`` is the prep-layer channel count (stages are 2x, 4x, 8x).
    The logits are scaled by a fixed 0.125 before the softmax (as Myrtle.ai did): at the
    high learning rates of a short one-cycle schedule it trains steadier and ends higher.
    Why this shape for a 2-core CPU: most work happens at 16x16 and below, depth is 8
    convolutions, and the cost is 92,160 * width^2 MACs per image: width 16 is 24 M MACs
    (fewer than ResNet-20's 41 M, with 0.4 M parameters), width 64 is the original 0.38 G.
``airbench``
    Keller Jordan's airbench94 network (github.com/KellerJordan/cifar10-airbench), rebuilt
    in Keras at a width a Pi can afford: a frozen 2x2 patch-whitening convolution (its
    filters are the eigenvectors of the training patches' covariance, +/-, set by
    :func:`init_whitening` before training), then three conv groups (conv -> max-pool ->
    BN -> GELU -> conv -> BN -> GELU) of ``width``, ``4 * width``, ``4 * width`` channels,
    a global max-pool and a bias-free linear head scaled by 1/9. Its BatchNorms have no
    scale and a bias trained at 64x the learning rate (:class:`ScaledBias`), and the group
    convolutions start as partial identities (Dirac init). With width 64 it is the
    original (0.15 G MACs, 94% in 10 epochs on a GPU); the default width 32 is 40 M MACs.
``tiny``
    Two strided convolutions and a linear head (about 1.5 k parameters): trains in seconds,
    for tests and smoke runs. No BatchNorm, because its moving statistics would not settle
    in the handful of steps a test trains for.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

# The arch names are the recipes' (trainer.recipe); make_model builds a network for each.
from trainer.recipe import ARCHS, UnknownArchError


def _normalize(inputs):
    return layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)


def seed_model(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    x = _normalize(inputs)
    x = layers.Conv2D(32, (3, 3), padding="same", name="conv2d")(x)
    x = layers.Activation("relu", name="conv2d_relu")(x)
    x = layers.MaxPooling2D(pool_size=(2, 2), name="max_pooling2d")(x)
    x = layers.Dropout(0.25, name="dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(512, name="dense")(x)
    x = layers.Activation("relu", name="dense_relu")(x)
    x = layers.Dropout(0.5, name="dropout_1")(x)
    x = layers.Dense(num_classes, name="head")(x)
    outputs = layers.Activation("softmax", name="softmax")(x)
    return keras.Model(inputs, outputs, name="seed")


def _conv_bn_relu(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _stage(x, filters: int, residual: bool, name: str):
    x = _conv_bn_relu(x, filters, name)
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    if residual:
        shortcut = x
        x = _conv_bn_relu(x, filters, f"{name}_res1")
        x = _conv_bn_relu(x, filters, f"{name}_res2")
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def resnet_model(
    input_shape: tuple[int, int, int],
    num_classes: int,
    width: int = 16,
    logit_scale: float = 0.125,
) -> keras.Model:
    if width < 1:
        raise ValueError("width must be at least 1")
    inputs = keras.Input(shape=input_shape, name="image")
    x = _normalize(inputs)
    x = _conv_bn_relu(x, width, "prep")
    x = _stage(x, 2 * width, residual=True, name="stage1")
    x = _stage(x, 4 * width, residual=False, name="stage2")
    x = _stage(x, 8 * width, residual=True, name="stage3")
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dense(num_classes, name="head")(x)
    if logit_scale != 1.0:
        # Myrtle.ai's fixed 0.125 logit scale: tempers the head at high learning rates.
        x = layers.Rescaling(logit_scale, name="logit_scale")(x)
    outputs = layers.Activation("softmax", name="softmax")(x)
    return keras.Model(inputs, outputs, name="resnet")


@keras.saving.register_keras_serializable(package="trapcount")
class ScaledBias(layers.Layer):
    """``x + scale * bias``, per channel: plain SGD then moves the effective bias at
    ``scale**2`` times the learning rate (airbench's 64x BatchNorm-bias rate is scale 8),
    without a per-variable learning rate, which Keras optimizers do not have. The TFLite
    converter folds the constant product, so the exported model is unchanged by it."""

    def __init__(self, scale: float = 8.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = float(scale)

    def build(self, input_shape) -> None:
        self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")

    def call(self, inputs):
        return inputs + self.scale * self.bias

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}


WHITEN_KERNEL = 2


def _airbench_bn_gelu(x, name: str):
    # BN without scale (GELU follows, and the next conv has weight decay) and momentum 0.4
    # (Keras' convention for PyTorch's 0.6): the running statistics track a fast schedule.
    x = layers.BatchNormalization(
        momentum=0.4, epsilon=1e-5, center=False, scale=False, name=f"{name}_bn"
    )(x)
    x = ScaledBias(8.0, name=f"{name}_bias")(x)
    return layers.Activation("gelu", name=f"{name}_gelu")(x)


def _airbench_group(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    x = _airbench_bn_gelu(x, f"{name}_1")
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(x)
    return _airbench_bn_gelu(x, f"{name}_2")


def airbench_model(
    input_shape: tuple[int, int, int], num_classes: int, width: int = 32
) -> keras.Model:
    if width < 1:
        raise ValueError("width must be at least 1")
    channels = input_shape[-1]
    inputs = keras.Input(shape=input_shape, name="image")
    x = _normalize(inputs)
    x = layers.Conv2D(
        2 * channels * WHITEN_KERNEL**2,
        WHITEN_KERNEL,
        padding="valid",
        use_bias=True,
        trainable=False,  # fixed whitening, set from the data by init_whitening()
        name="whiten",
    )(x)
    x = layers.Activation("gelu", name="whiten_gelu")(x)
    x = _airbench_group(x, width, "group1")
    x = _airbench_group(x, 4 * width, "group2")
    x = _airbench_group(x, 4 * width, "group3")
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dense(num_classes, use_bias=False, name="head")(x)
    x = layers.Rescaling(1.0 / 9.0, name="logit_scale")(x)
    outputs = layers.Activation("softmax", name="softmax")(x)
    model = keras.Model(inputs, outputs, name="airbench")
    _dirac_init(model)
    return model


def _dirac_init(model: keras.Model) -> None:
    """Start each group convolution as an identity on its first ``in`` output channels
    (PyTorch's ``dirac_``), as airbench does: early training sees a shallower network."""
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D) and layer.name.startswith("group"):
            kernel = keras.ops.convert_to_numpy(layer.kernel).copy()
            k_h, k_w, c_in, c_out = kernel.shape
            n = min(c_in, c_out)
            kernel[..., :n] = 0.0
            kernel[k_h // 2, k_w // 2, np.arange(n), np.arange(n)] = 1.0
            layer.kernel.assign(kernel)


def int8_grid_step(kernel: np.ndarray) -> np.ndarray:
    """The step of the grid the TFLite converter quantizes ``kernel`` on, per output channel
    (last axis): symmetric, max|w| / 127 (1 for an all-zero channel, which stays zero)."""
    flat = np.asarray(kernel, dtype=np.float64).reshape(-1, np.shape(kernel)[-1])
    step = np.abs(flat).max(axis=0) / 127.0
    return np.where(step > 0, step, 1.0)


def snap_to_int8_grid(kernel: np.ndarray) -> np.ndarray:
    """``kernel`` rounded to its :func:`int8_grid_step` grid. Scaling the kernel by a
    constant (the converter folds the input's 1/255 into it) keeps it on its grid."""
    kernel = np.asarray(kernel, dtype=np.float64)
    flat = kernel.reshape(-1, kernel.shape[-1])
    step = int8_grid_step(kernel)
    return (np.round(flat / step) * step).reshape(kernel.shape).astype(np.float32)


def init_whitening(
    model: keras.Model, images: np.ndarray, *, max_images: int = 5000, eps: float = 3e-5
) -> bool:
    """Set the ``whiten`` layer of ``model`` (if it has one) from ``images`` (N, H, W, C
    uint8): filters are the covariance eigenvectors of the k x k patches scaled by
    1/sqrt(eigenvalue + eps), each also negated (GELU keeps both signs), rounded to their
    int8 grid (:func:`snap_to_int8_grid`), with a bias that centres the patches. ``eps``
    is airbench's 5e-4 converted from its normalized pixels to our 0-1 pixels (std about
    0.25, so variance / 16). Returns whether it did."""
    try:
        layer = model.get_layer("whiten")
    except ValueError:
        return False
    k = layer.kernel_size[0]
    sample = np.asarray(images[:max_images], dtype=np.float32) / 255.0
    windows = np.lib.stride_tricks.sliding_window_view(sample, (k, k), axis=(1, 2))
    # windows: (n, h', w', c, k, k) -> patches flattened in the kernel's (k, k, c) order
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, k * k * sample.shape[-1])
    patches = patches.astype(np.float64)
    mean = patches.mean(axis=0)
    cov = np.cov(patches - mean, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    scaled = eigenvectors / np.sqrt(np.clip(eigenvalues, 0.0, None) + eps)
    # On the int8 grid from the start, so the network trains with the weights the Pi runs:
    # rounding them after training leaks brightness into the low-variance channels.
    filters = snap_to_int8_grid(np.concatenate([scaled, -scaled], axis=1))
    kernel = filters.reshape(k, k, sample.shape[-1], filters.shape[1])
    bias = -(mean @ filters)
    layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return True


def tiny_model(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    x = _normalize(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv1")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(num_classes, name="head")(x)
    outputs = layers.Activation("softmax", name="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny")


def make_model(
    arch: str,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    width: int | None = None,
) -> keras.Model:
    """Build an uncompiled model. Input: raw RGB 0-255 float; output: softmax probabilities.

    ``width`` applies to ``resnet`` (channels of its first layer; default 16) and
    ``airbench`` (channels of its first group; default 32).
    """
    if num_classes < 2:
        raise ValueError("a classifier needs at least 2 classes")
    input_shape = tuple(int(v) for v in input_shape)
    if arch == "seed":
        return seed_model(input_shape, num_classes)
    if arch == "resnet":
        return resnet_model(input_shape, num_classes, width=width or 16)
    if arch == "airbench":
        return airbench_model(input_shape, num_classes, width=width or 32)
    if arch == "tiny":
        return tiny_model(input_shape, num_classes)
    raise UnknownArchError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")


def replace_head(
    model: keras.Model,
    new_labels: list[str],
    old_labels: list[str] | None = None,
) -> keras.Model:
    """Swap the final Dense + softmax for one with ``len(new_labels)`` outputs.

    Rows of labels the old model knew are copied over, so a model that learnt ``fox`` still
    knows it after ``badger`` is added; new labels start from a fresh initialisation.
    """
    head = _last_dense(model)
    features = head.input
    dense = layers.Dense(len(new_labels), use_bias=head.use_bias, name=f"head_{len(new_labels)}")
    logits = dense(features)
    scales = [layer for layer in model.layers if layer.name == "logit_scale"]
    if scales:  # keep resnet's fixed logit scale
        logits = layers.Rescaling(scales[0].scale, name="logit_scale")(logits)
    outputs = layers.Activation("softmax", name="softmax_out")(logits)
    new_model = keras.Model(model.inputs, outputs, name=model.name)
    if old_labels:
        new_weights = [w.copy() for w in dense.get_weights()]  # kernel (and bias)
        old_weights = head.get_weights()
        for i, label in enumerate(new_labels):
            if label in old_labels:
                j = old_labels.index(label)
                for new, old in zip(new_weights, old_weights, strict=True):
                    new[..., i] = old[..., j]
        dense.set_weights(new_weights)
    return new_model


def _last_dense(model: keras.Model) -> layers.Dense:
    for layer in reversed(model.layers):
        if isinstance(layer, layers.Dense):
            return layer
    raise ValueError(f"model {model.name!r} has no Dense head to replace")


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass (convolutions and dense layers)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D) and not isinstance(layer, layers.DepthwiseConv2D):
            _, out_h, out_w, out_c = layer.output.shape
            k_h, k_w = layer.kernel_size
            in_c = layer.input.shape[-1]
            total += out_h * out_w * k_h * k_w * (in_c // layer.groups) * out_c
        elif isinstance(layer, layers.DepthwiseConv2D):
            _, out_h, out_w, out_c = layer.output.shape
            k_h, k_w = layer.kernel_size
            total += out_h * out_w * k_h * k_w * out_c
        elif isinstance(layer, layers.Dense):
            total += int(layer.input.shape[-1]) * int(layer.units)
    return int(total)
