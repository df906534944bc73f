"""What a localiser gives the pipeline: per frame, candidate boxes, each with where it came
from and how sure that source is.

A **localiser** (``Localiser``) takes frames in time order and returns ``Located`` frames:
the motion gate returns each frame at once; the burst localiser holds the photos of a
burst until it is complete and then returns them all. The pipeline runs whatever localiser
it is given (``localiser.localiser_for`` picks it from the config) and never asks which.
A new way of finding animals (a background bank for stills, a detector's boxes) is a new
localiser, not a change to the pipeline. A localiser whose boxes are whole objects (a
detector's: two overlapping boxes are two animals) says so with ``join_fragments = False``;
without it the tracker joins a box lying mostly inside a tracked animal to it, as motion
splits one animal into pieces.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from edge_agent.config import TrackingSettings
from edge_agent.vision.geometry import Box

# A photo with nothing to compare it with: a single photo of a camera with no empty view.
NO_REFERENCE = "no reference"


@dataclass(frozen=True)
class Candidate:
    """Something that may be an animal: its box, the localiser that found it (``motion``,
    ``burst``, ``megadetector``...) and that localiser's confidence (1.0 when it has no
    measure). A detector also says what it is (``category``: animal, person or vehicle)
    and gives its own box normalised to the frame (``bbox``: x, y, w, h from the top-left
    corner), which is stored as it came rather than rounded to pixels and back."""

    box: Box
    source: str
    score: float = 1.0
    category: str | None = None
    bbox: tuple[float, float, float, float] | None = None


@dataclass
class Located:
    """One frame with its candidates. ``new_view``: the camera's view changed just before
    this frame (knocked, moved, another recording): whatever was tracked is gone."""

    timestamp: datetime
    frame: np.ndarray
    candidates: list[Candidate] = field(default_factory=list)
    new_view: bool = False
    # Why nothing could be looked for in this frame (``NO_REFERENCE``), else None: such a
    # frame is reported as unprocessed, never as a frame with nothing in it.
    unprocessed: str | None = None
    # The photo it is, relative to the folder read (``FrameSource.current_file``); None
    # for a clip or a camera.
    file: str | None = None

    @property
    def boxes(self) -> list[Box]:
        return [candidate.box for candidate in self.candidates]


class Localiser(Protocol):
    """Frames in, ``Located`` frames out (see the module docstring)."""

    def locate(
        self, timestamp: datetime, frame: np.ndarray, hold: Sequence[Box], file: str | None = None
    ) -> Iterable[Located]:
        """Take one frame (UTC timestamps, in order); return the frames now located, to be
        stepped through in order before the next call (an iterator may read its frames
        back one at a time: ``bursts``). ``hold``: boxes of animals being counted, whose
        background must not be learned. ``file``: the photo it is (``Located.file``),
        passed on with it."""
        ...

    def flush(self) -> Iterable[Located]:
        """The input ended: locate what is still held back."""
        ...

    def track_rules(self, tracking: TrackingSettings) -> tuple[TrackingSettings, float]:
        """The tracker settings and the travel a counted track needs (in box sizes) for
        what this localiser finds (photos seconds apart are tracked differently)."""
        ...

    def stillness(self, box: Box) -> tuple[float, float, float] | None:
        """(changed, solid, steady) in ``box`` in the last located frame, or None when the
        localiser cannot tell (``motion.MotionGate.stillness``)."""
        ...

    def is_ghost(self, box: Box) -> bool:
        """Whether ``box`` holds a ghost: background revealed where an absorbed object left."""
        ...
