"""LiteRT interpreter wrapper: crops in, labels and confidences out.

The interpreter comes from ``ai_edge_litert`` (LiteRT, the successor of tflite-runtime),
else ``tflite_runtime`` (its last release, 2.14, still common on older Pi images), else
``tensorflow.lite`` (a trainer machine). The trainer evaluates its int8 model through this
very class, so the accuracy in the manifest is the accuracy the Pi gets.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.labels import OTHER, UNKNOWN
from edge_agent.manifest import (
    Manifest,
    ModelContractError,
    model_paths,
    read_manifest,
    verify_hash,
)

# (module, attribute path) in order of preference.
_BACKENDS: dict[str, tuple[str, str]] = {
    "ai_edge_litert": ("ai_edge_litert.interpreter", "Interpreter"),
    "tflite_runtime": ("tflite_runtime.interpreter", "Interpreter"),
    "tensorflow": ("tensorflow.lite", "Interpreter"),
}


def load_interpreter_class(preferred: str | None = None) -> tuple[Any, str]:
    """Return (Interpreter class, backend name).

    ``preferred`` (or the TRAPCOUNT_TFLITE_BACKEND environment variable) forces one backend,
    which benchmarks use to compare them.
    """
    preferred = preferred or os.environ.get("TRAPCOUNT_TFLITE_BACKEND") or None
    names = [preferred] if preferred else list(_BACKENDS)
    errors = []
    for name in names:
        if name not in _BACKENDS:
            raise ModelContractError(
                f"unknown TFLite backend {name!r}; choose one of {', '.join(_BACKENDS)}"
            )
        module_name, attr = _BACKENDS[name]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        return getattr(module, attr), name
    raise ModelContractError(
        "no TFLite interpreter available; install trapcount[edge] (ai-edge-litert) or "
        "trapcount[edge-legacy] (tflite-runtime)"
    )


@dataclass(frozen=True)
class Prediction:
    """One crop's result. ``label`` is ``unknown`` below the confidence threshold;
    ``top_label`` is the model's best guess regardless."""

    label: str
    confidence: float
    top_label: str


def square_box(
    box: tuple[int, int, int, int], frame_shape: tuple[int, ...], margin: float = 0.1
) -> tuple[int, int, int, int]:
    """Grow an (x, y, w, h) box to a square around its centre, with a margin.

    The square may extend past the frame; ``crop_square`` pads what lies outside, so the
    animal is never squashed out of its aspect ratio.
    """
    x, y, w, h = box
    side = max(w, h) * (1.0 + margin)
    side = max(side, 1.0)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = round(cx - side / 2.0)
    y0 = round(cy - side / 2.0)
    s = round(side)
    return x0, y0, s, s


def crop_square(
    frame_bgr: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]
) -> np.ndarray:
    """Cut the square around ``box`` out of a BGR frame; return RGB uint8 at ``size`` (h, w)."""
    fh, fw = frame_bgr.shape[:2]
    x0, y0, s, _ = square_box(box, frame_bgr.shape)
    x1, y1 = x0 + s, y0 + s
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"box {box} lies outside the {fw}x{fh} frame")
    crop = frame_bgr[cy0:cy1, cx0:cx1]
    pad = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if any(pad):
        crop = cv2.copyMakeBorder(crop, *pad, borderType=cv2.BORDER_REPLICATE)
    height, width = size
    interpolation = cv2.INTER_AREA if crop.shape[0] > height else cv2.INTER_LINEAR
    crop = cv2.resize(crop, (width, height), interpolation=interpolation)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)


def to_rgb_input(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Any grey/RGB/RGBA uint8 image -> RGB uint8 at ``size`` (h, w), aspect not preserved."""
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    elif image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    height, width = size
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image, dtype=np.uint8)


class Classifier:
    """An int8 (or float) TFLite image classifier checked against its manifest.

    Usable as a context manager; ``close()`` is safe to call twice.
    """

    def __init__(
        self,
        model: Path | str,
        *,
        num_threads: int = 1,
        confidence_threshold: float = 0.0,
        max_batch: int = 16,
        backend: str | None = None,
        not_at_site: Collection[str] = (),
    ) -> None:
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ValueError("confidence_threshold must be within [0, 1]")
        if num_threads < 1 or max_batch < 1:
            raise ValueError("num_threads and max_batch must be at least 1")
        self.tflite_path, self.manifest_path = model_paths(model)
        self.manifest: Manifest = read_manifest(model)
        verify_hash(self.manifest, self.tflite_path)
        interpreter_class, self.backend = load_interpreter_class(backend)
        try:
            self._interpreter = interpreter_class(
                model_path=str(self.tflite_path), num_threads=num_threads
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelContractError(f"cannot load {self.tflite_path}: {exc}") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._check_against_manifest()
        self.confidence_threshold = confidence_threshold
        self.max_batch = max_batch
        # Labels the site cannot see (``classifier.not_at_site``); names this model does not
        # have change nothing (``service.model.load_classifier`` says so when a user set them).
        self.not_at_site = frozenset(not_at_site) & frozenset(self.labels)
        signature = self._input.get("shape_signature", self._input["shape"])
        self._dynamic_batch = int(signature[0]) == -1
        self._batch = int(self._input["shape"][0])
        self._lock = threading.Lock()
        self._closed = False

    # -- contract ---------------------------------------------------------------------

    def _check_against_manifest(self) -> None:
        m = self.manifest
        in_shape = [int(v) for v in self._input["shape"]]
        out_shape = [int(v) for v in self._output["shape"]]
        if len(in_shape) != 4 or in_shape[1:] != [int(v) for v in m.input.shape[1:]]:
            raise ModelContractError(
                f"{self.tflite_path}: input shape {in_shape[1:]} != manifest "
                f"{list(m.input.shape[1:])}"
            )
        if in_shape[3] != 3:
            raise ModelContractError(f"{self.tflite_path}: input must have 3 channels (RGB)")
        if np.dtype(self._input["dtype"]).name != m.input.dtype:
            raise ModelContractError(
                f"{self.tflite_path}: input dtype {np.dtype(self._input['dtype']).name} != "
                f"manifest {m.input.dtype}"
            )
        if out_shape[-1] != len(m.labels):
            raise ModelContractError(
                f"{self.tflite_path}: {out_shape[-1]} outputs but the manifest lists "
                f"{len(m.labels)} labels"
            )

    # -- properties -------------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels

    @property
    def input_size(self) -> tuple[int, int]:
        return self.manifest.input_size

    @property
    def sha256(self) -> str:
        return self.manifest.sha256

    # -- inference --------------------------------------------------------------------

    def _quantize(self, images: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self._input["dtype"])
        if dtype.kind == "f":
            return images.astype(dtype)
        scale, zero_point = self._input["quantization"]
        if scale == 0:
            return images.astype(dtype)
        info = np.iinfo(dtype)
        q = np.round(images.astype(np.float32) / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(dtype)

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        if np.dtype(self._output["dtype"]).kind == "f":
            return raw.astype(np.float32)
        scale, zero_point = self._output["quantization"]
        return (raw.astype(np.float32) - zero_point) * scale

    def _run(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        if self._dynamic_batch and n != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [n, *batch.shape[1:]])
            self._interpreter.allocate_tensors()
            self._batch = n
        self._interpreter.set_tensor(self._input["index"], batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output["index"]).copy()

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """RGB uint8 images (N, H, W, 3) at the input size -> probabilities (N, classes)."""
        if self._closed:
            raise RuntimeError("classifier is closed")
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        expected = (*self.input_size, 3)
        if images.shape[1:] != expected:
            raise ValueError(f"images must be (N, {expected}), got {images.shape}")
        if images.shape[0] == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        chunk = self.max_batch if self._dynamic_batch else self._batch
        outputs = []
        with self._lock:
            for start in range(0, images.shape[0], chunk):
                part = self._quantize(images[start : start + chunk])
                outputs.append(self._dequantize(self._run(part)))
        return np.concatenate(outputs, axis=0).reshape(images.shape[0], -1)

    def classify(self, images: np.ndarray) -> list[Prediction]:
        probs = self.predict_proba(images)
        results = []
        for row in probs:
            best = int(np.argmax(row))
            confidence = float(row[best])
            top = self.labels[best]
            # A model's "other" class is an animal of a species it does not name: unknown.
            # So is a label the site cannot see (``not_at_site``: a trap on the ground sees
            # no airplane; on real trap crops such a name is a misread animal).
            sure = (
                confidence >= self.confidence_threshold
                and top != OTHER
                and top not in self.not_at_site
            )
            label = top if sure else UNKNOWN
            results.append(Prediction(label=label, confidence=confidence, top_label=top))
        return results

    def classify_crops(
        self, frame_bgr: np.ndarray, boxes: list[tuple[int, int, int, int]]
    ) -> list[Prediction]:
        """Classify the square crops around ``boxes`` of one BGR frame, in one batch."""
        if not boxes:
            return []
        crops = np.stack([crop_square(frame_bgr, box, self.input_size) for box in boxes])
        return self.classify(crops)

    # -- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        self._closed = True
        self._interpreter = None

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
