"""Still photos (``candidates.Localiser``): a camera trap's photos come in bursts a second
or so apart, hours from the next burst, too far apart in time for a background model to
learn anything.

Photos less than ``tracking.stills_gap_s`` apart form a burst (a change of size or of view
starts a new one: another camera's photos are not a background; a time-lapse folder is cut
into bursts of at most ``MAX_BURST``). A burst is
located when it is complete (a later photo, or the end of the input), against two
references:

- **the burst itself**: its per-pixel median, where an animal that moves is absent from
  most photos at any pixel: this finds what moved, even in the burst's first photo; where
  an animal stands in most photos, the median holds it, and the photos it is not in show
  a "hole" whose outline is the median's, not theirs: a ghost, dropped;
- **an empty view of the same camera** (``bank.BackgroundBank``: photos of this camera
  under the same light in which nothing was found before): this finds an animal that
  stands still in every photo of the burst, which the median swallows. What it finds
  where the empty view has the outline instead of the photo is a ghost (the bank's view
  had something that has left) and is dropped.

In a burst of several photos a candidate must be seen in two of them (near each other):
a one-off flicker is not an animal. A single photo with no empty view of its camera has
nothing to be compared with: it is located as ``unprocessed`` (``NO_REFERENCE``), which
the report says, rather than as a photo with nothing in it. Photos in which nothing was
found become empty views of their camera.

The tracker links across photos with still-photo rules (``track_rules``): no travel needed
(a heron standing in a river is an animal; the two references and the corroboration have
already told motion from noise), a track may be one photo long, centres may be up to half
the frame width apart between photos, and a track survives the whole burst.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from edge_agent.config import MotionSettings, TrackingSettings
from edge_agent.vision.bank import BackgroundBank, view_similarity
from edge_agent.vision.candidates import NO_REFERENCE, Candidate, Located
from edge_agent.vision.geometry import Box, near_any, overlap_of
from edge_agent.vision.illumination import illumination_of
from edge_agent.vision.motion import MotionGate

BURST = "burst"
BANK = "bank"
# At most this many photos in one burst (a time-lapse folder is cut into chunks).
MAX_BURST = 60
# Consecutive photos whose views are less alike than this (bank.view_similarity) are from
# different cameras (two traps' cards in one folder): a burst never mixes them. An animal
# close to the lens makes one camera's photos differ in far fewer cells.
SAME_CAMERA = 0.4


class BurstLocaliser:
    """Photos grouped into bursts, located against the burst and the camera's empty view;
    see the module docstring."""

    def __init__(
        self,
        settings: MotionSettings,
        stills_gap_s: float,
        *,
        mask: np.ndarray | None = None,
        bank: BackgroundBank | None = None,
    ) -> None:
        self.gate = MotionGate(settings, mask=mask)
        self.stills_gap_s = stills_gap_s
        self.bank = bank if bank is not None else BackgroundBank()
        # time, frame, small, file
        self._burst: list[tuple[datetime, np.ndarray, np.ndarray, str | None]] = []

    def locate(
        self, timestamp: datetime, frame: np.ndarray, hold: Sequence[Box], file: str | None = None
    ) -> list[Located]:
        located: list[Located] = []
        small = self.gate.small_grey(frame)
        if self._burst:
            last_time, last_frame, last_small, _ = self._burst[-1]
            if (
                (timestamp - last_time).total_seconds() > self.stills_gap_s
                or last_frame.shape != frame.shape
                or len(self._burst) >= MAX_BURST
                or view_similarity(last_small, small) < SAME_CAMERA
            ):
                located = self._locate_burst()
        self._burst.append((timestamp, frame, small, file))
        return located

    def flush(self) -> list[Located]:
        """The input ended: locate the last burst; keep the bank (when it has a file)."""
        located = self._locate_burst()
        self.bank.save()
        return located

    def _locate_burst(self) -> list[Located]:
        entries, self._burst = self._burst, []
        if not entries:
            return []
        burst = [(timestamp, frame) for timestamp, frame, _, _ in entries]
        frames = [frame for _, frame in burst]
        smalls = [small for _, _, small, _ in entries]
        files = [file for _, _, _, file in entries]
        median = np.median(np.stack(smalls), axis=0).astype(np.uint8)
        light = illumination_of(frames[len(frames) // 2])
        reference = self.bank.reference(median, light)
        if reference is None and len(burst) == 1:
            timestamp, frame = burst[0]
            self.bank.add(smalls[0], light)  # the camera's first view: a reference to come
            return [Located(timestamp, frame, unprocessed=NO_REFERENCE, file=files[0])]
        found = [
            self._candidates(frame, small, median if len(burst) > 1 else None, reference)
            for frame, small in zip(frames, smalls, strict=True)
        ]
        if len(burst) > 1:
            found = _corroborated(found)
        for small, candidates in zip(smalls, found, strict=True):
            if not candidates:
                self.bank.add(small, light)
        return [
            Located(timestamp, frame, candidates, file=file)
            for (timestamp, frame), candidates, file in zip(burst, found, files, strict=True)
        ]

    def _candidates(
        self,
        frame: np.ndarray,
        small: np.ndarray,
        median: np.ndarray | None,
        reference: np.ndarray | None,
    ) -> list[Candidate]:
        found: list[Candidate] = []
        for background, source in ((median, BURST), (reference, BANK)):
            if background is None:
                continue
            for box in self.gate.boxes_against(frame, background, small):
                if self.gate.is_ghost(box, background=background):
                    # The outline is the background's: what stands there in the other
                    # photos (or stood there in the empty view) is not in this one.
                    continue
                if any(overlap_of(box, other.box) > 0.5 for other in found):
                    continue  # found against the other reference too
                found.append(Candidate(box, source))
        return found

    def track_rules(self, tracking: TrackingSettings) -> tuple[TrackingSettings, float]:
        return photo_track_rules(tracking), 0.0

    def stillness(self, box: Box) -> tuple[float, float, float] | None:
        return None  # photos seconds apart: no "frame before" to measure against

    def is_ghost(self, box: Box) -> bool:
        return False


def photo_track_rules(tracking: TrackingSettings) -> TrackingSettings:
    """The tracker's rules for photos seconds apart (see the module docstring): a track may
    be one photo long, centres up to half the frame apart, and it lives through the burst."""
    return tracking.model_copy(
        update={
            "min_track_frames": 1,  # corroborated within the burst already
            "min_track_s": 0.0,
            "max_distance": max(tracking.max_distance, 0.5),
            "max_missed_s": max(tracking.max_missed_s, tracking.stills_gap_s),
            "classify_every": 1,
        }
    )


# A candidate is corroborated by one in another photo of its burst whose centre is within
# this many box sizes: an animal walks about its length a second, photos are a second or
# two apart; a flicker of leaves in one photo has nothing near it in the others.
CORROBORATING_SIZES = 3.0


def _corroborated(found: list[list[Candidate]]) -> list[list[Candidate]]:
    """Per photo, the candidates that another photo of the burst has one near."""
    kept = []
    for i, candidates in enumerate(found):
        others = [c.box for j, cs in enumerate(found) if j != i for c in cs]
        kept.append([c for c in candidates if near_any(c.box, others, CORROBORATING_SIZES)])
    return kept
