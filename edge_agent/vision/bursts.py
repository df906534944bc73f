"""Still photos (``candidates.Localiser``): a camera trap's photos come in bursts a second
or so apart, hours from the next burst, too far apart in time for a background model to
learn anything.

Photos less than ``tracking.stills_gap_s`` apart form a burst (a change of size starts a new
one, and a time-lapse folder is cut into bursts of at most ``MAX_BURST``). A burst is
located when it is complete (a later photo, or the end of the input): its per-pixel median
is its background (an animal crossing is absent from most photos at any pixel), and every
photo of it is compared with that. The tracker then links across photos with still-photo
rules (``track_rules``): a track needs 2 photos (``min_track_frames`` if lower), no minimum
duration, half a box size of travel (``min_displacement`` if lower), centres may be up to
half the frame width apart between photos, and a track survives the whole burst.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from edge_agent.config import MotionSettings, TrackingSettings
from edge_agent.vision.candidates import Box, Candidate, Located
from edge_agent.vision.motion import MotionGate

BURST = "burst"
# At most this many photos in one burst (a time-lapse folder is cut into chunks).
MAX_BURST = 60


class BurstLocaliser:
    """Photos grouped into bursts, each burst its own background; see the module docstring."""

    def __init__(
        self, settings: MotionSettings, stills_gap_s: float, *, mask: np.ndarray | None = None
    ) -> None:
        self.gate = MotionGate(settings, mask=mask)
        self.stills_gap_s = stills_gap_s
        self._burst: list[tuple[datetime, np.ndarray]] = []

    def locate(self, timestamp: datetime, frame: np.ndarray, hold: Sequence[Box]) -> list[Located]:
        located: list[Located] = []
        if self._burst:
            last_time, last_frame = self._burst[-1]
            gap = (timestamp - last_time).total_seconds()
            if (
                gap > self.stills_gap_s
                or last_frame.shape != frame.shape
                or len(self._burst) >= MAX_BURST
            ):
                located = self.flush()
        self._burst.append((timestamp, frame))
        return located

    def flush(self) -> list[Located]:
        burst, self._burst = self._burst, []
        if not burst:
            return []
        if len(burst) == 1:  # a lone photo: nothing to compare it with
            return [Located(burst[0][0], burst[0][1])]
        background = self.gate.burst_background([frame for _, frame in burst])
        return [
            Located(
                timestamp,
                frame,
                [Candidate(box, BURST) for box in self.gate.boxes_against(frame, background)],
            )
            for timestamp, frame in burst
        ]

    def track_rules(self, tracking: TrackingSettings) -> tuple[TrackingSettings, float]:
        whole_frame = self.gate.settings.method == "whole_frame"
        displacement = 0.0 if whole_frame else min(tracking.min_displacement, 0.5)
        rules = tracking.model_copy(
            update={
                "min_track_frames": min(tracking.min_track_frames, 2),
                "min_track_s": 0.0,
                "max_distance": max(tracking.max_distance, 0.5),
                "max_missed_s": max(tracking.max_missed_s, tracking.stills_gap_s),
                "classify_every": 1,
            }
        )
        return rules, displacement

    def stillness(self, box: Box) -> tuple[float, float, float] | None:
        return None  # photos seconds apart: no "frame before" to measure against

    def is_ghost(self, box: Box) -> bool:
        return False
