"""People and faces: what may be written to disk, and who is counted as a person.

Two decisions, kept apart (``../docs/architecture.md``):

- **The write gate** is high-recall: any face or body evidence in a track's box, from any of
  OpenCV's own detectors (Haar frontal faces, default and alt2, profile faces, the upper- and
  full-body cascades, the HOG people detector; ``cv2.data``, nothing downloaded), means no
  image of that track is written (``drop``) or it is written with faces and bodies blurred
  (``blur``). A track that only tripped the gate keeps its animal label and is flagged
  ``privacy_suppressed``: no image, but a record a reviewer can relabel.
- **The count label** ``person`` is high-precision, because a false person is a wrong count
  and a false accusation of trespass (``counting.pipeline.is_person``): faces in two checks
  of the track, one of them strong: the precise frontal-face cascade (alt2) in an upright
  box (taller than wide, not cut by the frame's edge). Measured on real animal
  crops (``benchmarks/bench_privacy.py``), the default face cascade fires on one in five;
  alt2 on one in twenty, with the same recall on faces.

**Tracks** are checked by :meth:`PrivacyGuard.look` on their box in the frame, at most
``privacy.max_checks_per_track`` times (the pipeline decides when: a larger box, or a
second later), so the cost is per track, not per frame.

**Before any image is written**, :meth:`PrivacyGuard.prepare` looks again with every
detector and, by ``privacy.mode``: ``drop`` returns nothing for an image with a person or
face; ``blur`` pixelates and blurs every region found (and the regions a caller knows show a
person) and runs every detector on the result: when any still fires (a blurred body keeps a
body-shaped blob), the regions are filled flat with their mean colour, and failing that the
whole image; ``off`` writes it unchecked (status ``unchecked``, never public).

Privacy status of a written image: ``clear`` (checked, nobody found), ``blurred`` or
``unchecked``. Only ``clear`` media is public in exports.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.config import PrivacySettings
from edge_agent.vision.geometry import Box, at_edge

log = logging.getLogger(__name__)

PERSON = "person"
CLEAR, BLURRED, UNCHECKED = "clear", "blurred", "unchecked"
# HOG's detection window is 64x128: regions are upscaled so that they are at least this tall.
HOG_MIN_HEIGHT = 160
# The face check of an image before writing looks at it upscaled to at least this size too.
FACE_CHECK_MIN_SIDE = 240
# A track's region is looked at this size, scaled up or down: its short side LOOK_SIDE, its
# long side at most LOOK_MAX_SIDE. The cascades' cost grows with the area and the number of
# scales searched (a close animal's box on a 1600 px photo would cost seconds on a Pi), and
# a face is a share of the body's width: the synthetic walker's face is a sixth of its box
# (found from about 35 px; the cascades' own window is 20).
LOOK_SIDE = 240
LOOK_MAX_SIDE = 600
# In a box taller than wide (standing) a face is in the upper part: only that is searched.
FACE_SHARE_UPRIGHT = 0.6


# Haar cascades shipped in the opencv-python(-headless) 4.x wheel (cv2.data.haarcascades).
FACE = "haarcascade_frontalface_default.xml"
PRECISE_FACE = "haarcascade_frontalface_alt2.xml"  # as many faces, far fewer animals
PROFILE_FACE = "haarcascade_profileface.xml"
UPPER_BODY = "haarcascade_upperbody.xml"
FULL_BODY = "haarcascade_fullbody.xml"
# A person stands: a box at least this much taller than wide (animals are long).
UPRIGHT = 1.2


def cascade_path(name: str) -> str:
    """Where OpenCV's wheel keeps the Haar cascade ``name`` (``cv2.data``)."""
    return cv2.data.haarcascades + name


def face_cascade(name: str = FACE) -> cv2.CascadeClassifier:
    path = cascade_path(name)
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"cannot load the cascade {path}")
    return cascade


class Cascade:
    """A Haar cascade that holds no search buffers between searches.

    A ``cv2.CascadeClassifier`` keeps the buffers of the largest image it searched for as
    long as it lives: 6-11 MiB each after a 240 x 600 region, kept for the whole run
    (``docs/benchmarks.md``, "Peak memory"). This one keeps the cascade's parsed file and
    builds a classifier from it for each search (:meth:`classifier`, 1-4 ms; ``find_faces``
    builds one per call), which frees its buffers when the search is done; the detections
    are the same.
    """

    def __init__(self, name: str) -> None:
        self.path = cascade_path(name)
        self._storage = cv2.FileStorage(self.path, cv2.FILE_STORAGE_READ)
        self._node = self._storage.getFirstTopLevelNode()
        self.classifier()  # fail at start-up, not at the first search

    def classifier(self) -> cv2.CascadeClassifier:
        """A classifier of its own, for one search."""
        classifier = cv2.CascadeClassifier()
        if self._node is None or self._node.empty() or not classifier.read(self._node):
            raise RuntimeError(f"cannot load the cascade {self.path}")
        return classifier


def find_faces(
    cascade: cv2.CascadeClassifier | Cascade,
    image_bgr: np.ndarray,
    min_face_px: int = 20,
    *,
    upscale: bool = True,
) -> list[Box]:
    """Faces in ``image_bgr``, looked for at its size and, when small and ``upscale``,
    upscaled too (boxes in the image's own coordinates)."""
    grey = image_bgr if image_bgr.ndim == 2 else cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    detector = cascade.classifier() if isinstance(cascade, Cascade) else cascade
    faces: list[Box] = []
    scales = [1.0]
    short = min(grey.shape[:2])
    if upscale and 0 < short < FACE_CHECK_MIN_SIDE:
        scales.append(FACE_CHECK_MIN_SIDE / short)
    for scale in scales:
        img = grey if scale == 1.0 else cv2.resize(grey, None, fx=scale, fy=scale)
        found = detector.detectMultiScale(
            img, scaleFactor=1.1, minNeighbors=4, minSize=(min_face_px, min_face_px)
        )
        faces += [tuple(round(float(v) / scale) for v in box) for box in found]  # type: ignore[misc]
    return faces


@dataclass(frozen=True)
class Evidence:
    """What one check of a track's box found."""

    face: bool  # a frontal face by the precise cascade (alt2)
    any_face: bool  # a face by any face cascade
    body: bool  # a body: HOG people, upper- or full-body cascade
    upright: bool  # the box is taller than wide

    @property
    def any(self) -> bool:
        """The write gate: anything like a person at all."""
        return self.any_face or self.body

    @property
    def strong(self) -> bool:
        """A face the precise cascade found in an upright box (a person stands; a body
        detector is no substitute: HOG and the body cascades fire on dogs and horses)."""
        return self.face and self.upright


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
        self._faces = Cascade(FACE)
        self._precise_faces = Cascade(PRECISE_FACE)
        self._profiles = Cascade(PROFILE_FACE)
        self._bodies = [Cascade(UPPER_BODY), Cascade(FULL_BODY)]
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.checks = 0

    # -- detection ---------------------------------------------------------------------

    def faces(self, image_bgr: np.ndarray, *, upscale: bool = True) -> list[Box]:
        """Faces by every face cascade (the write gate's)."""
        size = self.settings.min_face_px
        return [
            *find_faces(self._faces, image_bgr, size, upscale=upscale),
            *find_faces(self._precise_faces, image_bgr, size, upscale=upscale),
            *find_faces(self._profiles, image_bgr, size, upscale=upscale),
        ]

    def find(
        self, cascade: cv2.CascadeClassifier, region: np.ndarray, min_px: int | None = None
    ) -> list[Box]:
        """One cascade on a region ``look`` checks (no upscaling: it has its size)."""
        size = self.settings.min_face_px if min_px is None else min_px
        return find_faces(cascade, region, size, upscale=False)

    def precise_faces(self, image_bgr: np.ndarray, *, upscale: bool = True) -> list[Box]:
        return find_faces(
            self._precise_faces, image_bgr, self.settings.min_face_px, upscale=upscale
        )

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

    def cascade_bodies(self, image_bgr: np.ndarray) -> list[Box]:
        """Upper and full bodies by the Haar cascades (no minimum size beyond theirs)."""
        found: list[Box] = []
        for cascade in self._bodies:
            found += find_faces(cascade, image_bgr, min_face_px=24)
        return found

    def regions(self, image_bgr: np.ndarray) -> list[Box]:
        """Every face and person any detector finds in ``image_bgr``."""
        return self.faces(image_bgr) + self.bodies(image_bgr) + self.cascade_bodies(image_bgr)

    def look(self, frame_bgr: np.ndarray, box: Box) -> Evidence:
        """Check the region of ``box`` (with a margin) for a face or a body."""
        self.checks += 1
        region = self.region(frame_bgr, box)
        if region.size == 0:
            return Evidence(False, False, False, False)
        head = self.face_area(region)
        face = bool(self.precise_faces(head, upscale=False))
        # Not the profile cascade: it costs a third of a check and fired on none of the
        # crops of bench_privacy; every image is checked with it before it is written.
        any_face = face or bool(self.find(self._faces, head))
        body = bool(self.bodies(region)) or bool(self.cascade_bodies(region))
        return Evidence(face, any_face, body, is_upright(box, frame_bgr.shape))

    @staticmethod
    def face_area(region: np.ndarray) -> np.ndarray:
        """Where ``look`` searches a region for faces: the upper part of a standing one."""
        h, w = region.shape[:2]
        return region[: max(1, round(h * FACE_SHARE_UPRIGHT))] if h > w else region

    @staticmethod
    def region(frame_bgr: np.ndarray, box: Box) -> np.ndarray:
        """What ``look`` checks: ``box`` with a margin, scaled to ``LOOK_SIDE``."""
        region = _cut(frame_bgr, box, margin=0.15)
        if region.size == 0:
            return region
        short, long = sorted(region.shape[:2])
        scale = min(LOOK_SIDE / short, LOOK_MAX_SIDE / long)
        if scale != 1.0:
            smaller = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            region = cv2.resize(region, None, fx=scale, fy=scale, interpolation=smaller)
        return region

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
        # What is written is checked with every detector. A blurred body can still show a
        # body-shaped blob the HOG detector finds: then each region is filled flat with its
        # mean colour, and failing that the whole image.
        for hide in (blur_regions, fill_regions):
            hidden = hide(image_bgr, regions)
            if not self.regions(hidden):
                return Prepared(hidden, BLURRED, len(regions))
        hidden = fill_regions(image_bgr, [(0, 0, w, h)])
        if self.regions(hidden):  # cannot happen with a flat image; never write it
            return Prepared(None, PERSON, len(regions))
        return Prepared(hidden, BLURRED, len(regions))


def is_upright(box: Box, frame_shape: tuple[int, ...]) -> bool:
    """A box taller than wide by ``UPRIGHT``, not cut by the frame's edge (an animal walking
    in or out shows as a tall sliver there)."""
    _x, _y, w, h = box
    fh, fw = frame_shape[:2]
    return not at_edge(box, (fw, fh), margin=0) and h >= UPRIGHT * w


def _cut(frame: np.ndarray, box: Box, margin: float) -> np.ndarray:
    x, y, w, h = box
    mx, my = int(w * margin), int(h * margin)
    fh, fw = frame.shape[:2]
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(fw, x + w + mx), min(fh, y + h + my)
    return frame[y0:y1, x0:x1]


def fill_regions(image_bgr: np.ndarray, regions: list[Box], margin: float = 0.25) -> np.ndarray:
    """A copy of ``image_bgr`` with each region (grown by ``margin``) filled with its mean
    colour: no shape left inside it for any detector."""
    out = image_bgr.copy()
    fh, fw = out.shape[:2]
    for x, y, w, h in regions:
        mx, my = int(w * margin), int(h * margin)
        x0, y0 = max(0, x - mx), max(0, y - my)
        x1, y1 = min(fw, x + w + mx), min(fh, y + h + my)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = out[y0:y1, x0:x1].reshape(-1, out.shape[2]).mean(axis=0)
    return out


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
