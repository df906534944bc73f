"""Confidence calibration by temperature scaling (Guo et al. 2017, "On Calibration of
Modern Neural Networks").

Label smoothing, Lookahead and a fixed logit scale leave our networks under-confident: the
airbench candidate said 70% on average on validation crops it got 87% right, and the
shipped ResNet-9 76% on crops it got 86% right. The trap thresholds per-crop confidence
(``confidence_threshold``), so without calibration the same threshold means something
different for every model a fleet is updated to. One temperature T, fitted on the held-out
validation logits by minimum negative log-likelihood, divides the logits before the softmax
of the exported model: the top label never changes, only how sure the model says it is.
"""

from __future__ import annotations

import numpy as np

# Fewer held-out images than this and the fit follows the few mistakes (or, with none, sharpens
# without limit): the export leaves such models as trained.
MIN_CALIBRATION_IMAGES = 500
TEMPERATURE_RANGE = (0.05, 20.0)
ECE_BINS = 15


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(logits))


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    log_p = log_softmax(np.asarray(logits, np.float64) / temperature)
    return float(-log_p[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in TEMPERATURE_RANGE minimizing the NLL of ``softmax(logits / T)``: a log-spaced
    grid, then a golden-section search between the best point's neighbours (the NLL is
    convex in 1/T, so the bracket holds the minimum)."""
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels, np.int64)
    if len(logits) == 0:
        raise ValueError("cannot fit a temperature on no images")
    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    grid = np.linspace(low, high, 121)
    losses = [negative_log_likelihood(logits, labels, np.exp(t)) for t in grid]
    best = int(np.argmin(losses))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if negative_log_likelihood(logits, labels, np.exp(c)) <= negative_log_likelihood(
            logits, labels, np.exp(d)
        ):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins, weighted
    by the share of images in each (0: says 70% exactly when right 70% of the time)."""
    probabilities = np.asarray(probabilities, np.float64)
    if len(probabilities) == 0:
        return float("nan")
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            error += in_bin.mean() * abs(confidence[in_bin].mean() - right[in_bin].mean())
    return float(error)


def logit_model(model):
    """The Keras model up to the input of its final softmax (every trapcount arch ends in
    one); a ``temperature`` layer from an earlier calibration is stepped over."""
    # Keras only here: evaluate and compare import this module and run int8 models alone.
    import keras

    last = model.layers[-1]
    if not (
        isinstance(last, keras.layers.Activation) and last.get_config()["activation"] == "softmax"
    ):
        raise ValueError(f"model {model.name!r} does not end in a softmax; cannot calibrate it")
    tensor = last.input
    producer = tensor._keras_history.operation
    if getattr(producer, "name", "") == "temperature":
        tensor = producer.input
    return keras.Model(model.input, tensor, name=f"{model.name}_logits")


def with_temperature(model, temperature: float):
    """``model`` with its logits divided by ``temperature`` before the softmax (a Rescaling
    layer: TFLite folds it into the int8 graph as one multiply)."""
    import keras  # only here, as in logit_model

    logits = logit_model(model)
    scaled = keras.layers.Rescaling(1.0 / temperature, name="temperature")(logits.output)
    outputs = keras.layers.Activation("softmax", name="softmax")(scaled)
    return keras.Model(model.input, outputs, name=model.name)
