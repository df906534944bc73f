"""People and faces: who is a person, and what may be written to disk.

Two OpenCV 4.x detectors that need no download: the Haar frontal-face cascade
(``cv2.data.haarcascades``) and the HOG people detector
(``cv2.HOGDescriptor_getDefaultPeopleDetector``). A region is a person when either fires:
a face (at the distances of a camera trap the cascade needs about ``min_face_px``) or a
body (HOG needs a person at least 64x128 px: smaller regions are upscaled first).

- **Tracks** are checked by :meth:`PrivacyGuard.is_person` on their box in the frame, at
  most ``max_checks_per_track`` times, each on a larger box than the last (the pipeline
  does this), so the cost is per track, not per frame. A person track is labelled and
  counted as ``person`` whatever the classifier said.
- **Before any image is written**, :meth:`PrivacyGuard.prepare` looks again (faces and
  people) and, by ``privacy.mode``: ``drop`` returns nothing for an image with a person or
  face; ``blur`` pixelates and blurs every detected region (the whole image for a person
  track's crop) and checks that the cascade finds no face any more, blurring the whole image
  when it still does; ``off`` writes it unchecked (status ``unchecked``, never public).

Privacy status of a written image: ``clear`` (checked, nobody found), ``blurred`` or
``unchecked``. Only ``clear`` media is public in exports.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.config import PrivacySettings
from edge_agent.vision.geometry import Box

log = logging.getLogger(__name__)

PERSON = "person"
CLEAR, BLURRED, UNCHECKED = "clear", "blurred", "unchecked"
# HOG's detection window is 64x128: regions are upscaled so that they are at least this tall.
HOG_MIN_HEIGHT = 160
# The face check of an image before writing looks at it upscaled to at least this size too.
FACE_CHECK_MIN_SIDE = 240


def face_cascade() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"cannot load the face cascade {path}")
    return cascade


def find_faces(
    cascade: cv2.CascadeClassifier, image_bgr: np.ndarray, min_face_px: int = 20
) -> list[Box]:
    """Faces in ``image_bgr``, looked for at its size and, when small, upscaled (boxes in the
    image's own coordinates)."""
    grey = image_bgr if image_bgr.ndim == 2 else cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    faces: list[Box] = []
    scales = [1.0]
    short = min(grey.shape[:2])
    if 0 < short < FACE_CHECK_MIN_SIDE:
        scales.append(FACE_CHECK_MIN_SIDE / short)
    for scale in scales:
        img = grey if scale == 1.0 else cv2.resize(grey, None, fx=scale, fy=scale)
        found = cascade.detectMultiScale(
            img, scaleFactor=1.1, minNeighbors=4, minSize=(min_face_px, min_face_px)
        )
        faces += [tuple(round(float(v) / scale) for v in box) for box in found]  # type: ignore[misc]
    return faces


@dataclass
class Prepared:
    """What may be written: ``image`` (None: nothing) and its privacy status."""

    image: np.ndarray | None
    status: str
    regions: int = 0


class PrivacyGuard:
    """Person checks of tracks and images; see the module docstring."""

    def __init__(self, settings: PrivacySettings | None = None) -> None:
        self.settings = settings or PrivacySettings()
        self.mode = self.settings.mode
        self._faces = face_cascade()
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.checks = 0

    # -- detection ---------------------------------------------------------------------

    def faces(self, image_bgr: np.ndarray) -> list[Box]:
        return find_faces(self._faces, image_bgr, self.settings.min_face_px)

    def bodies(self, image_bgr: np.ndarray) -> list[Box]:
        """HOG people in ``image_bgr`` (upscaled when shorter than HOG's window needs)."""
        h, w = image_bgr.shape[:2]
        if h < 8 or w < 8:
            return []
        scale = max(1.0, HOG_MIN_HEIGHT / h, 80 / w)
        img = image_bgr if scale == 1.0 else cv2.resize(image_bgr, None, fx=scale, fy=scale)
        found, weights = self._hog.detectMultiScale(img, winStride=(8, 8), padding=(8, 8))
        return [
            tuple(round(float(v) / scale) for v in box)  # type: ignore[misc]
            for box, weight in zip(found, np.ravel(weights), strict=False)
            if weight > 0.5
        ]

    def regions(self, image_bgr: np.ndarray) -> list[Box]:
        """Every face and person found in ``image_bgr``."""
        return self.faces(image_bgr) + self.bodies(image_bgr)

    def is_person(self, frame_bgr: np.ndarray, box: Box) -> bool:
        """Whether the region of ``box`` (with a margin) shows a face or a person."""
        self.checks += 1
        region = _cut(frame_bgr, box, margin=0.15)
        if region.size == 0:
            return False
        return bool(self.faces(region)) or bool(self.bodies(region))

    # -- before writing ----------------------------------------------------------------

    def prepare(self, image_bgr: np.ndarray, *, person: list[Box] | None = None) -> Prepared:
        """Check ``image_bgr`` for faces and people before it is written. ``person``: regions
        known to show a person (a person track's box), blurred or dropped like found ones."""
        if self.mode == "off":
            return Prepared(image_bgr, UNCHECKED)
        regions = list(person or []) + self.regions(image_bgr)
        if not regions:
            return Prepared(image_bgr, CLEAR)
        if self.mode == "drop":
            return Prepared(None, PERSON, len(regions))
        h, w = image_bgr.shape[:2]
        blurred = blur_regions(image_bgr, regions)
        if self.faces(blurred):
            blurred = blur_regions(image_bgr, [(0, 0, w, h)])
            if self.faces(blurred):  # cannot happen with a uniform image; never write it
                return Prepared(None, PERSON, len(regions))
        return Prepared(blurred, BLURRED, len(regions))


def _cut(frame: np.ndarray, box: Box, margin: float) -> np.ndarray:
    x, y, w, h = box
    mx, my = int(w * margin), int(h * margin)
    fh, fw = frame.shape[:2]
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(fw, x + w + mx), min(fh, y + h + my)
    return frame[y0:y1, x0:x1]


def blur_regions(image_bgr: np.ndarray, regions: list[Box], margin: float = 0.25) -> np.ndarray:
    """A copy of ``image_bgr`` with each region (grown by ``margin``) pixelated to about 6x6
    blocks and blurred: no likeness survives, and no face detector finds one."""
    out = image_bgr.copy()
    fh, fw = out.shape[:2]
    for x, y, w, h in regions:
        mx, my = int(w * margin), int(h * margin)
        x0, y0 = max(0, x - mx), max(0, y - my)
        x1, y1 = min(fw, x + w + mx), min(fh, y + h + my)
        if x1 <= x0 or y1 <= y0:
            continue
        patch = out[y0:y1, x0:x1]
        small = cv2.resize(patch, (6, 6), interpolation=cv2.INTER_AREA)
        coarse = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        k = max(3, (min(x1 - x0, y1 - y0) // 3) | 1)
        out[y0:y1, x0:x1] = cv2.GaussianBlur(coarse, (k, k), 0)
    return out
