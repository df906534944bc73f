"""Scene changes: the camera was knocked or moved, or the light switched (day / infrared).

A background model assumes a fixed camera. When the whole view changes at once, every edge
of the new view differs from the learned background: the old model would report the new
scene's trunks and stones as still "animals" and hold them (``motion.hold_max_s``), keeping
one event open for the rest of the footage. :class:`SceneChangeDetector` watches the frames
the motion gate already has (grey, small) and tells it when to start afresh.

A change is **sudden**: from one frame to the next, some pixels changed in at least half
of the cells of a coarse grid (an animal, even a group walking past, changes the cells it
covers; a new view changes them all). It is **lasting**: for ``SETTLE_S`` (and at least
``SETTLE_FRAMES`` frames) the new view stays as it first appeared, and different from the
old one; an animal passing close to the lens moves on and cancels it. Then it is either

- a **cut** (camera moved, another recording spliced on): the structure of the view
  changed (low correlation between the old background and the new frames). The pipeline
  ends every track, closes the open event and relearns the background from scratch, so
  counts of the two views never mix; or
- a **light** change (the infrared lamp switched on, the sun came out): the same structure,
  brighter or darker. The background is relearned at once; tracks go on.

While a change is being judged the gate reports no boxes (as for a frame where more than
``motion.max_area`` changed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import cv2
import numpy as np

GRID = (8, 6)  # cells across, down
CELL_CHANGED = 0.02  # a cell changed when this fraction of its pixels did
SUDDEN = 0.5  # a change starts when this fraction of the cells changed at once
STILL = 0.25  # ...and lasts while fewer than this changed since it started
SETTLE_S = 0.5
SETTLE_FRAMES = 2  # frames after the first one
SAME_VIEW = 0.8  # correlation of old background and new frames: above, a light change
CUT = "cut"
LIGHT = "light"


def changed_cells(a: np.ndarray, b: np.ndarray, threshold: float) -> float:
    """The fraction of the grid's cells in which more than ``CELL_CHANGED`` of the pixels
    differ by more than ``threshold`` grey levels between ``a`` and ``b``."""
    changed = (cv2.absdiff(a, b) > threshold).astype(np.float32)
    per_cell = cv2.resize(changed, GRID, interpolation=cv2.INTER_AREA)
    return float(np.count_nonzero(per_cell > CELL_CHANGED)) / per_cell.size


def structure_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two grey images at a coarse scale (80 px wide):
    1 for the same view under other light, near 0 for an unrelated view."""
    size = (80, max(1, round(80 * a.shape[0] / a.shape[1])))
    x = cv2.resize(a.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    y = cv2.resize(b.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    x -= x.mean()
    y -= y.mean()
    spread = float(x.std() * y.std())
    if spread < 1.0:  # a flat view (lens covered, night without a lamp): only the light
        return 1.0
    return float((x * y).mean()) / spread


@dataclass
class _Candidate:
    started: datetime | None
    before: np.ndarray  # the last frame of the old view
    background: np.ndarray | None  # the old view's background, denoised
    after: list[np.ndarray] = field(default_factory=list)


class SceneChangeDetector:
    """Feed it each small grey frame; it says when a sudden lasting change was a cut or a
    light change (see the module docstring)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._previous: np.ndarray | None = None
        self._candidate: _Candidate | None = None

    @property
    def judging(self) -> bool:
        """Whether a change is being judged (the gate then reports no boxes)."""
        return self._candidate is not None

    def reset(self) -> None:
        self._previous = None
        self._candidate = None

    def update(
        self,
        small: np.ndarray,
        background: Callable[[], np.ndarray | None] | None,
        timestamp: datetime | None = None,
    ) -> str | None:
        """``CUT``, ``LIGHT`` or None for this frame. ``background``: gives the gate's
        background before this frame (asked only when a change starts); ``timestamp``: the
        frame's time (None: frames count alone)."""
        previous, self._previous = self._previous, small
        if previous is None or previous.shape != small.shape:
            self._candidate = None
            return None
        candidate = self._candidate
        if candidate is None:
            if changed_cells(previous, small, self.threshold) >= SUDDEN:
                old_view = background() if background is not None else None
                self._candidate = _Candidate(timestamp, previous, old_view, [small])
            return None
        if (
            changed_cells(candidate.after[0], small, self.threshold) >= STILL
            or changed_cells(candidate.before, small, self.threshold) < SUDDEN
        ):
            self._candidate = None  # it moved on, or the old view came back
            return None
        candidate.after.append(small)
        settled = len(candidate.after) > SETTLE_FRAMES and (
            timestamp is None
            or candidate.started is None
            or (timestamp - candidate.started).total_seconds() >= SETTLE_S
        )
        if not settled:
            return None
        self._candidate = None
        old = candidate.background if candidate.background is not None else candidate.before
        new = np.mean(candidate.after, axis=0)
        return LIGHT if structure_correlation(old, new) >= SAME_VIEW else CUT
