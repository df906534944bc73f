"""Test-time augmentation baked into the exported model, inside the one ``.tflite``:

- ``flip`` classifies the crop and its mirror image and averages their logits (2 views);
- ``flip-shift`` is airbench's level-2 TTA (Jordan 2024): half the weight on that mirrored
  pair, half on the mirrored pairs of the crop shifted one pixel up-left and one pixel
  down-right, the uncovered border filled by reflection (6 views).

The trap's code does not change: the model takes one crop and returns one set of
probabilities; it costs ``views(mode)`` times the multiply-adds. The weights are stored
once (every view runs the same tensors), so the file grows only by the extra ops. An
animal seen from the left is the same animal seen from the right, and a crop box is never
placed to the pixel, which is why training flips and shifts crops at random; averaging
those views at inference removes what is left of the network's bias for one of them.
Measured on airbench width 44 (docs/benchmarks.md): ``flip`` +0.7 to +1.0 point int8,
``flip-shift`` another +0.3 float, +0.4 int8 on the shipped model.
"""

from __future__ import annotations

import keras
from keras import layers

VIEWS = {"none": 1, "flip": 2, "flip-shift": 6}
TTA_MODES = tuple(VIEWS)
# Airbench's two shifts, (rows, columns) the content moves: down-right and up-left.
SHIFTS = ((1, 1), (-1, -1))


class UnknownTTAError(ValueError):
    pass


@keras.saving.register_keras_serializable(package="trapcount")
class Mirror(layers.Layer):
    """The image mirrored left-right (NHWC): TFLite's REVERSE_V2, which runs in int8."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=2)

    def compute_output_shape(self, input_shape):
        return input_shape


def shifted(images, dy: int, dx: int):
    """``images`` (NHWC) with their content moved ``dy`` rows down and ``dx`` columns right,
    at most one pixel each way, the uncovered edge filled by reflection, as
    ``np.pad(..., mode="reflect")`` would: slices and a concatenation, which TFLite runs in
    int8 with the input's own scale."""
    if abs(dy) > 1 or abs(dx) > 1:
        raise ValueError(f"a shift moves at most one pixel each way, not ({dy}, {dx})")

    def moved(x, d: int, axis: int):
        def part(start: int, stop: int | None):  # x[start:stop] along ``axis``
            index = [slice(None)] * 4
            index[axis] = slice(start, stop)
            return x[tuple(index)]

        if d > 0:  # the last row goes; row 1 is reflected into the uncovered first place
            return keras.ops.concatenate([part(1, 2), part(0, -1)], axis=axis)
        if d < 0:
            return keras.ops.concatenate([part(1, None), part(-2, -1)], axis=axis)
        return x

    return moved(moved(images, dy, 1), dx, 2)


@keras.saving.register_keras_serializable(package="trapcount")
class ShiftedViews(layers.Layer):
    """The six views of ``flip-shift`` stacked along the batch axis, view by view: the
    crop, its mirror, then each of ``SHIFTS`` and its mirror. One pass of the network over
    the stack replaces six copies of it in the graph, so the .tflite stays the network's
    size (six copies added 114 KB of op and tensor records and took it over 1 MB)."""

    def call(self, inputs):
        stacked = []
        for dy, dx in ((0, 0), *SHIFTS):
            view = shifted(inputs, dy, dx)  # (0, 0): the crop itself
            stacked += [view, keras.ops.flip(view, axis=2)]
        return keras.ops.concatenate(stacked, axis=0)

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[1:])


@keras.saving.register_keras_serializable(package="trapcount")
class ShiftedViewsMean(layers.Layer):
    """The logits of each crop from those of its stacked views: airbench's weights, half on
    the crop and its mirror, half on the four shifted views."""

    def call(self, inputs):
        per_view = keras.ops.reshape(inputs, (VIEWS["flip-shift"], -1, inputs.shape[-1]))
        crop = keras.ops.mean(per_view[:2], axis=0)
        moved = keras.ops.mean(per_view[2:], axis=0)
        return 0.5 * (crop + moved)

    def compute_output_shape(self, input_shape):
        return (None, input_shape[-1])


def views(mode: str) -> int:
    """Forward passes per crop: what the per-crop cost is multiplied by."""
    if mode not in VIEWS:
        raise UnknownTTAError(
            f"unknown test-time augmentation {mode!r}; choose one of {', '.join(TTA_MODES)}"
        )
    return VIEWS[mode]


def classifier_head(logits_model, mode: str = "none", temperature: float | None = None):
    """The model the export converts: ``logits_model``'s logits (averaged over the views of
    ``mode``, see the module doc), divided by ``temperature`` when given, then a softmax."""
    views(mode)  # validates
    image = keras.Input(logits_model.input_shape[1:], name="image")
    if mode == "none":
        logits = logits_model(image)
    elif mode == "flip":
        logits = layers.Average(name="tta_mean")(
            [logits_model(image), logits_model(Mirror(name="mirror")(image))]
        )
    else:
        stacked = logits_model(ShiftedViews(name="views")(image))
        logits = ShiftedViewsMean(name="tta_mean")(stacked)
    if temperature is not None:
        logits = layers.Rescaling(1.0 / temperature, name="temperature")(logits)
    outputs = layers.Activation("softmax", name="softmax")(logits)
    return keras.Model(image, outputs, name=f"{logits_model.name}_tta_{mode}")
