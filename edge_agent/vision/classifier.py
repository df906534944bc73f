"""The model: crops in, labels and confidences out.

A model is a colour network and, optionally, a grey companion of the same labels for grey
crops (the manifest's ``grey`` section): each crop of a batch goes to the companion when its
channels are equal within ``max_spread`` (an infrared night frame), else to the colour
network, so a crop costs one network's pass either way (times the views baked into that
network: the shipped companion has two). The trainer evaluates its int8 model through
this very class, so the accuracy in the manifest is the accuracy the Pi gets.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_agent.labels import OTHER, UNKNOWN
from edge_agent.manifest import Manifest, model_paths, read_manifest
from edge_agent.vision.illumination import pixel_spreads
from edge_agent.vision.interpreter import Network, load_interpreter_class

__all__ = [
    "Classifier",
    "Prediction",
    "crop_spread",
    "crop_square",
    "load_interpreter_class",
    "square_box",
    "to_rgb_input",
]


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


def crop_spread(images: np.ndarray) -> np.ndarray:
    """Per image of (N, H, W, 3): the mean |R-G|, |G-B|, |B-R| in grey levels (0 for a grey
    image), the measure ``edge_agent.vision.illumination`` calls a frame infrared by."""
    return pixel_spreads(images).reshape(len(images), -1).mean(axis=1) / 3.0


class Classifier:
    """An int8 (or float) TFLite image classifier checked against its manifest, with the
    manifest's grey companion when it names one.

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
        options = {"num_threads": num_threads, "max_batch": max_batch, "backend": backend}
        self._colour = Network(self.tflite_path, self.manifest.sha256, self.manifest, **options)
        self.backend = self._colour.backend
        companion = self.manifest.grey_companion
        self._grey: Network | None = None
        self.grey_max_spread = 0.0
        if companion is not None:
            # Loaded now, not at the first night: a missing or wrong companion refuses the
            # model at start-up (or at a reload, keeping the old one), never at 2 a.m.
            path = companion.path(self.manifest_path.parent)
            self._grey = Network(path, companion.sha256, self.manifest, **options)
            self.grey_max_spread = companion.max_spread
        self.confidence_threshold = confidence_threshold
        self.max_batch = max_batch
        # Labels the site cannot see (``classifier.not_at_site``); names this model does not
        # have change nothing (``service.model.load_classifier`` says so when a user set them).
        self.not_at_site = frozenset(not_at_site) & frozenset(self.labels)
        self._lock = threading.Lock()
        self._closed = False

    # -- properties -------------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels

    @property
    def input_size(self) -> tuple[int, int]:
        return self.manifest.input_size

    @property
    def sha256(self) -> str:
        """The model's identity (``Manifest.identity``): the .tflite's sha256, or that of
        both networks' hashes for a model with a grey companion."""
        return self.manifest.identity

    @property
    def has_grey_companion(self) -> bool:
        return self._grey is not None

    # -- inference --------------------------------------------------------------------

    def grey_crops(self, images: np.ndarray) -> np.ndarray:
        """Which of (N, H, W, 3) crops the grey companion classifies (all False without
        one)."""
        if self._grey is None:
            return np.zeros(len(images), bool)
        return crop_spread(images) < self.grey_max_spread

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
        grey = self.grey_crops(images)
        with self._lock:
            if not grey.any():
                return self._colour.predict(images)
            assert self._grey is not None
            if grey.all():
                return self._grey.predict(images)
            probs = np.empty((len(images), len(self.labels)), np.float32)
            probs[grey] = self._grey.predict(images[grey])
            probs[~grey] = self._colour.predict(images[~grey])
            return probs

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
        self._colour.close()
        if self._grey is not None:
            self._grey.close()

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
