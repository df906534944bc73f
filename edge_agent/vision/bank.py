"""Empty views of each camera, to find an animal that never moves within its burst.

A camera trap's burst compares its photos with their per-pixel median (``bursts``): that
finds what moved, but an animal that stands still in every photo of the burst is part of
the median and vanishes. What finds it is an empty view of the same camera under the same
light: a photo of that camera in which nothing was found (PIR triggers on wind and sun
give plenty). The bank keeps such views and, for a new burst, gives the median of the
stored views of the same camera as its reference.

A camera is recognised by its view, not by a name a photo may not carry (EXIF is often
stripped): the same image size and illumination (``vision.illumination``), and most of the
view the same (``view_similarity``: the share of a coarse grid's cells that look alike
once the exposure is matched; an animal covers a few cells, another camera differs in
most). On the real photos of ``../shared/data/field-dev``, photos of one camera match in
all cells; photos of different cameras in at most 57% (two savanna views), most under
30%. Views are small grey images at the motion gate's resolution, so a bank of
``CAPACITY`` views costs well under 10 MB.

The bank can be saved and loaded (an ``.npz`` file): the service keeps one across runs
(``motion.background_bank``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

SAME_VIEW = 0.7  # view_similarity of two views of one camera, animals aside
PER_CAMERA = 8  # empty views kept per camera and light (the newest)
CAPACITY = 256  # views in all (the oldest go first)
REFERENCE_VIEWS = 5  # the reference is the median of at most this many matching views


@dataclass
class View:
    image: np.ndarray  # grey, at motion resolution
    illumination: str


class BackgroundBank:
    """Empty views of the cameras seen so far; see the module docstring."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.views: list[View] = []
        self.changed = False
        if path is not None and path.exists():
            self.load(path)

    def matching(self, small: np.ndarray, illumination: str) -> list[tuple[float, int]]:
        """``(correlation, index)`` of the stored views of this camera and light, best
        first."""
        found = []
        for index, view in enumerate(self.views):
            if view.illumination != illumination or view.image.shape != small.shape:
                continue
            score = view_similarity(view.image, small)
            if score >= SAME_VIEW:
                found.append((score, index))
        return sorted(found, reverse=True)

    def reference(self, small: np.ndarray, illumination: str) -> np.ndarray | None:
        """An empty view of the camera that took ``small`` (grey, motion resolution), under
        the same light, with ``small``'s brightness and contrast; None when the bank has
        none."""
        found = self.matching(small, illumination)[:REFERENCE_VIEWS]
        if not found:
            return None
        stack = np.stack([self.views[index].image for _, index in found])
        return match_exposure(np.median(stack, axis=0), small)

    def add(self, small: np.ndarray, illumination: str) -> None:
        """Keep ``small`` as an empty view of its camera (the oldest of that camera, or of
        all, makes room)."""
        same = [index for _, index in self.matching(small, illumination)]
        if len(same) >= PER_CAMERA:
            del self.views[min(same)]  # views are kept oldest first
        self.views.append(View(small.copy(), illumination))
        if len(self.views) > CAPACITY:
            del self.views[0]
        self.changed = True

    # -- on disk ----------------------------------------------------------------------

    def save(self, path: Path | None = None) -> None:
        """Write the bank (atomically: a half-written bank is never read back)."""
        path = path or self.path
        if path is None or not self.changed:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"view{i:04d}": view.image for i, view in enumerate(self.views)}
        lights = np.array([view.illumination for view in self.views])
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as handle:
            np.savez_compressed(handle, illumination=lights, **arrays)
        tmp.replace(path)
        self.changed = False

    def load(self, path: Path) -> None:
        """Read a saved bank; an unreadable one is logged and left empty (it refills)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                lights = [str(value) for value in data["illumination"]]
                names = sorted(name for name in data.files if name.startswith("view"))
                self.views = [
                    View(data[name], light) for name, light in zip(names, lights, strict=True)
                ]
        except (OSError, ValueError, KeyError) as exc:
            log.warning("background bank %s not read (%s); starting an empty one", path, exc)
            self.views = []


def match_exposure(reference: np.ndarray, small: np.ndarray) -> np.ndarray:
    """``reference`` with ``small``'s mean and spread: photos of one camera taken hours
    apart differ in exposure, which would otherwise show as change everywhere."""
    reference = reference.astype(np.float32)
    spread = float(reference.std())
    scale = float(small.std()) / spread if spread > 1.0 else 1.0
    adjusted = (reference - float(reference.mean())) * scale + float(small.mean())
    return np.clip(adjusted, 0, 255).astype(np.uint8)


# view_similarity: a cell looks alike when its mean absolute difference is under this many
# grey levels (sensor noise averages out over a cell; an animal or another view does not).
_CELL_ALIKE = 12.0
_GRID = (16, 12)


def view_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The share (0-1) of a 16x12 grid's cells in which grey images ``a`` and ``b`` (the
    same size) look alike, ``a``'s exposure matched to ``b``'s first."""
    diff = cv2.absdiff(match_exposure(a, b), b).astype(np.float32)
    cells = cv2.resize(diff, _GRID, interpolation=cv2.INTER_AREA)
    return float(np.count_nonzero(cells < _CELL_ALIKE)) / cells.size
