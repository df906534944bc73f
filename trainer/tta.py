"""Test-time augmentation baked into the exported model: ``flip`` classifies the crop and
its mirror image and averages their logits (as airbench does), inside the one ``.tflite``.

The trap's code does not change: the model takes one crop and returns one set of
probabilities; it costs twice the multiply-adds. The weights are stored once (both views
run the same tensors), so the file grows only by the extra ops. An animal seen from the
left is the same animal seen from the right, which is why training flips crops at random;
averaging both views at inference removes the network's leftover left-right bias.
Measured on the airbench width 44: +1.0 point float and int8 (docs/benchmarks.md).
"""

from __future__ import annotations

import keras
from keras import layers

TTA_MODES = ("none", "flip")


class UnknownTTAError(ValueError):
    pass


@keras.saving.register_keras_serializable(package="trapcount")
class Mirror(layers.Layer):
    """The image mirrored left-right (NHWC): TFLite's REVERSE_V2, which runs in int8."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=2)

    def compute_output_shape(self, input_shape):
        return input_shape


def views(mode: str) -> int:
    """Forward passes per crop: what the per-crop cost is multiplied by."""
    if mode not in TTA_MODES:
        raise UnknownTTAError(f"unknown test-time augmentation {mode!r}; choose one of none, flip")
    return 2 if mode == "flip" else 1


def classifier_head(logits_model, mode: str = "none", temperature: float | None = None):
    """The model the export converts: ``logits_model``'s logits (averaged over the crop and
    its mirror for ``flip``), divided by ``temperature`` when given, then a softmax."""
    views(mode)  # validates
    image = keras.Input(logits_model.input_shape[1:], name="image")
    logits = logits_model(image)
    if mode == "flip":
        logits = layers.Average(name="tta_mean")(
            [logits, logits_model(Mirror(name="mirror")(image))]
        )
    if temperature is not None:
        logits = layers.Rescaling(1.0 / temperature, name="temperature")(logits)
    outputs = layers.Activation("softmax", name="softmax")(logits)
    return keras.Model(image, outputs, name=f"{logits_model.name}_tta_{mode}")
