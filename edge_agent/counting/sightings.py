"""The boxes behind a count: each track's box on the frames it was seen in, kept on the
track (``Track.sightings``) for the store's ``detections`` table (``store.writes``) and
``trapcount export megadetector``.

``note`` runs once per located frame, after the tracker: for each track seen in it, the
candidate its box came from (the same box, else the one it overlaps most) gives what found
it (``motion`` for the motion gate and the burst localiser, ``megadetector`` for its boxes),
that detector's confidence and category and, for a detector's box, the box exactly as the
detector gave it. A detector's category is also a vote on the track (``Track.categories``:
a person or vehicle outweighing the rest labels it so), and any person box withholds the
track's images as the privacy guard's write gate does (``Track.privacy_suppressed``).

The boxes are bounded: every box of a photo (a folder's photos come a few per burst), and
in a clip or from a camera one box per track per ``EVERY_S`` plus its largest box once
counted (the frame of its best crop, picked as the media keeper picks it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from edge_agent.counting.tracking import Track
from edge_agent.labels import PERSON
from edge_agent.vision.candidates import Candidate, Located
from edge_agent.vision.geometry import Box, iou

# In a clip, a track's box is kept once per this many seconds (and its largest box).
EVERY_S = 1.0
# What found a box, for every localiser but a detector's (``Candidate.category`` None).
MOTION = "motion"
# A counted track's largest box is replaced by one this much larger: the media keeper's
# rule (``service.media.GROWTH``), so the frame it keeps has the track's box.
GROWTH = 1.1


@dataclass(frozen=True)
class Sighting:
    """A track's box on one frame, normalised to the frame (``x, y, w, h`` from its
    top-left corner), with the photo (``file``, relative to the folder) or the frame index
    (the pipeline's count of frames, a clip's own frame number when it is read whole)."""

    time: datetime
    frame: int
    file: str | None
    bbox: tuple[float, float, float, float]
    area: int  # in pixels, to find the largest
    detector: str  # motion or the detector's name (megadetector)
    score: float | None  # the detector's confidence; None for motion
    category: str | None  # the detector's category; None: it follows the track's label


def note(located: Located, tracks: Iterable[Track], frame_index: int) -> None:
    """Record on each of ``tracks`` (those seen in ``located``) its box on this frame."""
    height, width = located.frame.shape[:2]
    for track in tracks:
        if track.rejected:
            continue  # swung like vegetation: never counted, its boxes never stored
        source = source_of(track.box, located.candidates)
        x, y, w, h = track.box
        bbox = (x / width, y / height, w / width, h / height)
        detector, score, category = MOTION, None, None
        if source is not None and source.category is not None:
            detector, score, category = source.source, source.score, source.category
            track.categories[category] = track.categories.get(category, 0.0) + source.score
            track.category_counts[category] = track.category_counts.get(category, 0) + 1
            if category == PERSON:
                track.privacy_suppressed = True  # never pictured: the detector saw a person
            if source.bbox is not None and tuple(source.box) == tuple(track.box):
                bbox = source.bbox  # as the detector gave it, not rounded to pixels
        sighting = Sighting(
            located.timestamp, frame_index, located.file, bbox, w * h, detector, score, category
        )
        best = track.best_sighting
        if track.counted and (
            not isinstance(best, Sighting) or sighting.area >= GROWTH * best.area
        ):
            track.best_sighting = sighting  # the frame the media keeper keeps
        last = track.sightings[-1] if track.sightings else None
        if (
            located.file is not None
            or last is None
            or (sighting.time - last.time).total_seconds() >= EVERY_S
        ):
            track.sightings.append(sighting)


def source_of(box: Box, candidates: Sequence[Candidate]) -> Candidate | None:
    """The candidate ``box`` came from: the one with the same box, else the one it
    overlaps most (the tracker joined fragments), else None."""
    for candidate in candidates:
        if tuple(candidate.box) == tuple(box):
            return candidate
    overlaps = [(iou(box, candidate.box), i) for i, candidate in enumerate(candidates)]
    best = max(overlaps, default=(0.0, -1))
    return candidates[best[1]] if best[0] > 0 else None


def sightings_of(track: Track) -> list[Sighting]:
    """The boxes to store for ``track``: its kept sightings and its largest box, by time."""
    kept: list[Sighting] = list(track.sightings)
    best = track.best_sighting
    if isinstance(best, Sighting) and best not in kept:
        kept.append(best)
    return sorted(kept, key=lambda s: (s.time, s.frame))
