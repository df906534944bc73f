"""Tracker: motion boxes -> tracks of individual animals, each labelled by a vote of its crops.

Linking (per frame, greedy, no SciPy). Tracks unseen for longer than ``max_missed_s``
end first. Every live track predicts where its box is now: its last box of its *usual
shape* (width and height within 1.5x of its recent median) moved by its smoothed velocity,
which is also learned from usual-shaped boxes only, because a box cut by an occluder or
grown by a merge misplaces the centre. Candidate pairs are (a) box and prediction
overlapping with IoU >= ``iou_threshold``, best IoU first, then (b) for tracks seen in the
previous frame, centres closer than ``max_distance`` of the frame width with boxes of
comparable area, nearest first (a fast animal at a low frame rate overlaps nothing). Each
track and each box is used once. A leftover box is a *fragment* of a matched animal, and
widens its box instead of starting a track, when at least half of it lies inside that
track's prediction, or when it and the track's box together have the track's usual shape
again (an animal passing behind a tree trunk shows as two pieces). Other boxes start
tracks.

Counted tracks. Motion also comes from vegetation in the wind, rain, insects, and from
"ghosts" (the background revealed where something absorbed into the background model
moves away). A track is *counted* once all of these hold:

- it was seen in at least ``min_track_frames`` frames, and
- over at least ``min_track_s`` seconds (rain drops and insects are brief), and
- it *travelled*: two of its boxes of like shape lie at least ``min_displacement`` of its
  size (the median longer side of its boxes) apart, and
- it is not *swinging*: it has not reversed direction twice, by at least that distance
  each time, within ``SWING_S`` seconds of the previous turn.

Or, instead of travelling, it *arrived and sits still*: an animal stepping out of cover
and grazing, or one in view when a triggered clip starts. Such a track is still when its
box stays put, its pixels hardly change between frames, and its foreground is solid and
steady (``STILL_*``; a branch is thin and flickers) for ``STILL_FRAMES`` frames and
``STILL_S`` seconds; the pipeline then asks the motion gate whether its outline belongs to
the frame (an object that arrived: counted) or to the background image (a ghost: never
counted). See ``observe_stillness``.

A ghost and a patch of flickering leaves never travel. A branch's blob covers the region it
sweeps through, so it rarely moves by its own size; when its tip does (a long branch in a
strong wind), it swings back within a second or two and again, and the track is
*rejected*: it loses its counted status for good, and the event counter forgets it. An
animal arrives: it walks in from an edge or from behind cover, so it travels its own
length before it can stand anywhere, and once counted a track stays counted. An animal
that then rests for a minute is held visible by the motion gate (see
``motion.MotionGate.boxes(hold=...)``) and remains one track; should it still fade and
reappear as a new track, MaxN (see ``counting``) counts it once, because the two tracks
are never visible in the same frame. Set ``min_displacement = 0`` where animals are
expected to appear without moving (it is off in the whole-frame motion method).

Labels. ``Track.add_vote(label, confidence)`` records one crop's classification (the label
is already ``unknown`` below the classifier's confidence threshold). The track's label is
the confidence-weighted vote: the label whose votes' confidences sum highest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median

import numpy as np

from edge_agent.config import TrackingSettings
from edge_agent.labels import EMPTY, NOT_ANIMALS, PERSON, UNKNOWN, VEHICLE
from edge_agent.vision.geometry import (
    Box,
    at_edge,
    box_gap,
    centre,
    iou,
    overlap_of,
    union_box,
)

# Vegetation swings back within a few seconds; see ``Tracker._swings``.
SWING_S = 3.0
# A still track: its box overlaps the previous one this much, at most this fraction of its
# pixels changed since the previous frame, at least this fraction is (closed) foreground.
# Measured on synthetic scenes: resting animals change 0-30% (grazing, at 3 fps) and are
# 45-70% solid; swaying branches are at most about 35% solid. See ``observe_stillness``.
STILL_IOU = 0.6
STILL_CHANGED = 0.3
STILL_SOLID = 0.42
STILL_STEADY = 0.7  # IoU of its foreground with the previous frame's
# ... for this many frames and seconds (or min_track_frames / min_track_s if more).
STILL_FRAMES = 5
STILL_S = 1.0
# Photos: a box cut by the frame's edge links to a track with down to this share of the
# track's area (an animal walking out shows as a sliver in the next photo).
EDGE_CUT_AREA = 0.1


@dataclass
class Track:
    """One animal (or one moving thing) followed across frames."""

    id: int
    box: Box
    first_seen: datetime
    last_seen: datetime
    first_frame: int
    last_frame: int
    seen_frames: list[int] = field(default_factory=list)
    visible: bool = True
    counted: bool = False
    rejected: bool = False  # swung back and forth like vegetation: never counted
    # Arrived without travelling (stepped out of cover, or already there): see
    # ``Tracker.observe_stillness``.
    still_run: int = 0
    still_since: datetime | None = None
    still_verdict: str | None = None  # None (undecided), "object" or "ghost"
    ended: bool = False
    travel: float = 0.0  # farthest move between two like-sized boxes, in box sizes
    shapes: list[tuple[float, float, float, float]] = field(default_factory=list)  # cx, cy, w, h
    velocity: tuple[float, float] = (0.0, 0.0)  # pixels per second, smoothed
    # The last box of the track's usual shape, and when it was seen: predictions start
    # from it, because a box cut by an occluder or grown by a merge misplaces the centre.
    anchor: Box | None = None
    anchor_time: datetime | None = None
    votes: dict[str, float] = field(default_factory=dict)
    confidence_sums: dict[str, float] = field(default_factory=dict)
    vote_counts: dict[str, int] = field(default_factory=dict)
    last_vote_frame: int = -(10**9)
    # Per axis (x, y): [extreme position, direction (-1, 0, 1), time of the last turn].
    _swing: list[list] = field(default_factory=list)
    quick_reversals: int = 0
    # Privacy (``edge_agent.vision.privacy``). ``person``: counted as a person (strong,
    # repeated evidence); ``privacy_suppressed``: something like a person was seen in its box,
    # so no image of it is written, but it keeps its animal label. Checks so far, the box
    # area and time of the last, and the checks that found a precise face, any face, strong
    # evidence.
    person: bool = False
    privacy_suppressed: bool = False
    person_checks: int = 0
    person_area: int = 0
    person_checked_at: datetime | None = None
    face_checks: int = 0
    any_face_checks: int = 0
    strong_checks: int = 0
    # The media keeper's best image of the track so far (``edge_agent.service.media``).
    media: object | None = field(default=None, repr=False, compare=False)
    # A detector's boxes (``vision.megadetector``): per category (animal, person, vehicle)
    # their summed confidence and number; what it says outweighs the classifier for person
    # and vehicle (``label``).
    categories: dict[str, float] = field(default_factory=dict)
    category_counts: dict[str, int] = field(default_factory=dict)
    # Its boxes to store, per frame (``counting.sightings``), and the largest of them.
    sightings: list = field(default_factory=list, repr=False, compare=False)
    best_sighting: object | None = field(default=None, repr=False, compare=False)
    # Set by its event (``counting.events``, photo bursts): its crops said ``empty``, but it
    # walked across the burst and nothing else in the event was an animal, so it is one
    # the model did not see: ``unknown``.
    empty_overruled: bool = False
    # Set by its event (photo bursts): an ``unknown`` track that adds nothing to the MaxN
    # of the event's one named label is that animal, broken in two: it takes the label.
    joined: str | None = None

    # -- classification ----------------------------------------------------------------

    @property
    def n_votes(self) -> int:
        return sum(self.vote_counts.values())

    def add_vote(self, label: str, confidence: float, frame: int | None = None) -> None:
        """One crop's classification: ``label`` (``unknown`` below threshold) and confidence."""
        confidence = float(confidence)
        self.votes[label] = self.votes.get(label, 0.0) + confidence
        self.confidence_sums[label] = self.confidence_sums.get(label, 0.0) + confidence
        self.vote_counts[label] = self.vote_counts.get(label, 0) + 1
        self.last_vote_frame = self.last_frame if frame is None else frame

    @property
    def detected(self) -> str | None:
        """What a detector's boxes say it is: the category of the highest summed confidence
        (ties: alphabetical); None when no detector gave it a box."""
        if not self.categories:
            return None
        return max(self.categories, key=lambda k: (self.categories[k], k))

    @property
    def label(self) -> str:
        """Confidence-weighted vote of the crops; ``unknown`` before any crop was classified;
        ``person`` when the privacy guard found a person, or a detector's boxes say person
        (``vehicle`` likewise), whatever the crops said."""
        detected = self.detected
        if self.person or detected == PERSON:
            return PERSON
        if detected == VEHICLE:
            return VEHICLE
        if not self.votes:
            return UNKNOWN
        won = self._voted()
        if won == EMPTY and self.empty_overruled:
            return UNKNOWN
        if won == UNKNOWN and self.joined is not None:
            return self.joined
        return won

    def _voted(self) -> str:
        """The label its crops' votes give (there is at least one vote). Ties: more votes,
        then alphabetical, so the result never depends on dict order."""
        return max(self.votes, key=lambda k: (self.votes[k], self.vote_counts[k], k))

    def walked(self, sizes: float, straightness: float) -> bool:
        """Whether its boxes, in at least three sightings, went at least ``sizes`` of its
        sizes from the first to the last, that straight distance at least ``straightness``
        of the path's length (1: a straight line): a walk, not a flicker between two
        places."""
        if len(self.shapes) < 3:
            return False
        centres = np.array([(cx, cy) for cx, cy, _w, _h in self.shapes], np.float64)
        direct = float(np.hypot(*(centres[-1] - centres[0])))
        path = float(np.hypot(*np.diff(centres, axis=0).T).sum())
        return direct >= sizes * max(self.size, 1.0) and direct >= straightness * path

    @property
    def animal_confidence(self) -> float:
        """How sure the classifier alone is that this is an animal: the mean confidence of the
        winning label's crops (0 before any, or when it is person, unknown or empty)."""
        if not self.votes:
            return 0.0
        label = self._voted()
        if label in NOT_ANIMALS:
            return 0.0
        return self.confidence_sums[label] / self.vote_counts[label]

    @property
    def confidence(self) -> float:
        """Mean confidence of the crops that voted for the winning label; for a person, the
        share of the track's checks in which the precise face cascade found a face (the
        detectors, not the classifier, said so); for what a detector's boxes call a person
        or a vehicle, the mean confidence of those boxes."""
        detected = self.detected
        if detected in (PERSON, VEHICLE) and not self.person:
            return self.categories[detected] / self.category_counts[detected]
        if self.person:
            return self.face_checks / self.person_checks if self.person_checks else 0.0
        label = self.label
        if label not in self.vote_counts:
            return 0.0
        return self.confidence_sums[label] / self.vote_counts[label]

    # -- geometry ----------------------------------------------------------------------

    @property
    def frames(self) -> int:
        return len(self.seen_frames)

    @property
    def duration_s(self) -> float:
        return (self.last_seen - self.first_seen).total_seconds()

    @property
    def size(self) -> float:
        """Typical size: the median longer side of its (last 200) boxes."""
        if not self.shapes:
            return 0.0
        return float(median([max(w, h) for _, _, w, h in self.shapes[-200:]]))

    def predicted(self, timestamp: datetime) -> Box:
        """Where the animal's box should be at ``timestamp``: its last usual-shaped box moved
        by the smoothed velocity, by at most two box sizes."""
        box = self.anchor or self.box
        since = self.anchor_time or self.last_seen
        dt = max(0.0, (timestamp - since).total_seconds())
        x, y, w, h = box
        dx = min(max(float(self.velocity[0] * dt), -2.0 * w), 2.0 * w)
        dy = min(max(float(self.velocity[1] * dt), -2.0 * h), 2.0 * h)
        return round(x + dx), round(y + dy), w, h

    def usual_shape(self, box: Box) -> bool:
        """Whether ``box`` has the track's usual width and height (within 1.5x)."""
        if len(self.shapes) < 3:
            return True
        recent = self.shapes[-200:]
        med_w = float(median([r[2] for r in recent]))
        med_h = float(median([r[3] for r in recent]))
        return med_w / 1.5 <= box[2] <= med_w * 1.5 and med_h / 1.5 <= box[3] <= med_h * 1.5


class TrackerUpdate:
    """What one frame changed: tracks seen in it, and tracks that ended."""

    __slots__ = ("ended", "frame", "visible")

    def __init__(self, frame: int, visible: list[Track], ended: list[Track]) -> None:
        self.frame = frame
        self.visible = visible
        self.ended = ended


class Tracker:
    """Links boxes across frames into tracks; decides which tracks are counted."""

    def __init__(self, settings: TrackingSettings, *, min_displacement: float | None = None):
        """``min_displacement`` overrides the setting (the pipeline: 0 in whole-frame mode)."""
        self.settings = settings
        self.min_displacement = (
            settings.min_displacement if min_displacement is None else min_displacement
        )
        self.live: list[Track] = []
        self.frame = -1
        # A leftover box lying mostly inside a tracked animal is a fragment of it (motion
        # splits an animal); False for a detector's boxes, each a whole object.
        self.join_fragments = True
        # Photos seconds apart (bursts): a track missed in a photo or more may be linked
        # again by centre distance, not by overlap only, and a box cut by the frame's edge
        # may have down to EDGE_CUT_AREA of the track's area, not a quarter (an animal
        # walking out of the frame between two photos); the photo's one box links to the
        # burst's one track seen in the photo before whatever its size (a rump going into
        # cover); video keeps the frame-to-frame rule.
        self.relink_missed = False
        self.frame_size: tuple[int, int] | None = None
        self._next_id = 1

    def _link_candidates(
        self, timestamp: datetime, boxes: Sequence[Box], frame_size: tuple[int, int]
    ) -> list[tuple[int, int, float, int, int]]:
        """(kind, rank, score, track index, box index), best first: overlaps before centre
        distances, counted tracks before the others (an animal resting under a swaying
        branch keeps the blob the two merge into), then best IoU or nearest centre."""
        s = self.settings
        max_distance = s.max_distance * frame_size[0]
        # Photos: one animal in the photo before and one box in this one is the same
        # animal, whatever its change of size (it turned, walked off, came out of cover).
        sole = self.relink_missed and len(self.live) == 1 and len(boxes) == 1
        candidates = []
        for ti, track in enumerate(self.live):
            guess = track.predicted(timestamp)
            gx, gy = centre(guess)
            rank = 0 if track.counted else 1
            for bi, box in enumerate(boxes):
                overlap = iou(guess, box)
                merged = track.counted and overlap_of(guess, box) >= 0.7
                if (overlap >= s.iou_threshold and overlap > 0) or merged:
                    candidates.append((0, rank, -overlap, ti, bi))
                    continue
                if track.last_frame != self.frame and not self.relink_missed:
                    continue  # the centre fallback is for a track seen in the previous frame
                bx, by = centre(box)
                distance = math.hypot(bx - gx, by - gy)
                area_ratio = (box[2] * box[3] + 1) / (guess[2] * guess[3] + 1)
                least = 0.25
                if self.relink_missed and at_edge(box, frame_size):
                    least = EDGE_CUT_AREA
                if distance <= max_distance and least <= area_ratio <= 4.0:
                    candidates.append((1, rank, distance, ti, bi))
                elif sole and distance <= max_distance and track.last_frame == self.frame:
                    candidates.append((2, rank, distance, ti, bi))
        candidates.sort()
        return candidates

    def update(
        self, timestamp: datetime, boxes: Sequence[Box], frame_size: tuple[int, int]
    ) -> TrackerUpdate:
        """Link this frame's ``boxes``; ``frame_size`` is (width, height) in pixels."""
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        ended = self._expire(timestamp)  # first: a track gone too long links to nothing
        candidates = self._link_candidates(timestamp, boxes, self.frame_size)
        self.frame += 1
        frame = self.frame
        boxes = [tuple(int(v) for v in b) for b in boxes]
        for track in self.live:
            track.visible = False
        matched_box: dict[int, Box] = {}  # track index -> box
        used: set[int] = set()
        for _kind, _rank, _score, ti, bi in candidates:
            if ti in matched_box or bi in used:
                continue
            matched_box[ti] = boxes[bi]  # type: ignore[assignment]
            used.add(bi)
        # Leftover fragments of an animal already matched widen its box.
        new_boxes: list[Box] = []
        for bi, box in enumerate(boxes):
            if bi in used:
                continue
            if not self.join_fragments:
                new_boxes.append(box)  # type: ignore[arg-type]
                continue
            host = max(
                matched_box,
                key=lambda ti: overlap_of(box, self.live[ti].predicted(timestamp)),
                default=None,
            )
            if host is not None and overlap_of(box, self.live[host].predicted(timestamp)) >= 0.5:
                matched_box[host] = union_box(matched_box[host], box)  # type: ignore[arg-type]
                continue
            host = self._split_host(box, matched_box)  # type: ignore[arg-type]
            if host is not None:
                matched_box[host] = union_box(matched_box[host], box)  # type: ignore[arg-type]
            else:
                new_boxes.append(box)  # type: ignore[arg-type]
        visible: list[Track] = []
        for ti, box in matched_box.items():
            track = self.live[ti]
            self._observe(track, timestamp, frame, box)
            visible.append(track)
        for box in new_boxes:
            track = Track(
                id=self._next_id,
                box=box,
                first_seen=timestamp,
                last_seen=timestamp,
                first_frame=frame,
                last_frame=frame,
            )
            self._next_id += 1
            self._observe(track, timestamp, frame, box)
            self.live.append(track)
            visible.append(track)
        return TrackerUpdate(frame, visible, ended)

    def _split_host(self, box: Box, matched_box: dict[int, Box]) -> int | None:
        """The track ``box`` was split from, if any: an animal passing behind a tree trunk
        or a post shows as two pieces. The track's own box shrank to one piece this frame
        (or the new piece is a sliver of it), and the two pieces together have the track's
        usual shape again."""
        for ti, current in matched_box.items():
            track = self.live[ti]
            if len(track.shapes) < 3:
                continue
            usual_area = track.anchor[2] * track.anchor[3] if track.anchor else 0
            sliver = box[2] * box[3] <= 0.35 * usual_area
            if track.usual_shape(current) and not sliver:
                continue
            joined = union_box(current, box)
            if track.usual_shape(joined) and box_gap(current, box) <= 0.5 * track.size:
                return ti
        return None

    def _observe(self, track: Track, timestamp: datetime, frame: int, box: Box) -> None:
        if track.usual_shape(box):
            if track.anchor is not None and track.anchor_time is not None:
                dt = (timestamp - track.anchor_time).total_seconds()
                if dt > 0:
                    (ox, oy), (nx, ny) = centre(track.anchor), centre(box)
                    vx, vy = (nx - ox) / dt, (ny - oy) / dt
                    track.velocity = (
                        0.5 * track.velocity[0] + 0.5 * vx,
                        0.5 * track.velocity[1] + 0.5 * vy,
                    )
            track.anchor, track.anchor_time = box, timestamp
        track.box = box
        track.visible = True
        track.last_seen = timestamp
        track.last_frame = frame
        track.seen_frames.append(frame)
        cx, cy = centre(box)
        track.shapes.append((cx, cy, float(box[2]), float(box[3])))
        if track.rejected:
            return
        if self.min_displacement > 0 and self._swings(track, timestamp):
            track.rejected = True
            track.counted = False
            return
        if not track.counted:
            track.travel = max(track.travel, self._travel(track, self.frame_size))
            track.counted = self.qualifies(track)

    def _swings(self, track: Track, timestamp: datetime) -> bool:
        """Follow the track's turning points; True once it swung back and forth like a branch.

        A swing is a move of at least ``min_displacement`` box sizes along x or y; a
        reversal is *quick* when it comes within ``SWING_S`` seconds of the previous
        turn. Two quick reversals on one axis (there, back, there again) are vegetation
        in the wind; an animal that walks in, stays and leaves, or turns back once, never
        makes them.
        """
        recent = track.shapes[-200:]
        med_w = float(median([r[2] for r in recent]))
        med_h = float(median([r[3] for r in recent]))
        _, _, w, h = recent[-1]
        if not (med_w / 1.5 <= w <= med_w * 1.5 and med_h / 1.5 <= h <= med_h * 1.5):
            return False  # a merged or fragmentary box: its centre says little
        threshold = self.min_displacement * max(med_w, med_h)
        position = recent[-1][:2]
        if not track._swing:
            track._swing = [[position[0], 0, timestamp], [position[1], 0, timestamp]]
            return False
        for axis in (0, 1):
            state = track._swing[axis]
            extreme, direction, turned = state
            value = position[axis]
            if direction == 0:
                if abs(value - extreme) >= threshold:
                    state[:] = [value, 1 if value > extreme else -1, turned]
                continue
            if (value - extreme) * direction > 0:
                state[0] = value  # still going the same way
            elif abs(extreme - value) >= threshold:
                if (timestamp - turned).total_seconds() <= SWING_S:
                    track.quick_reversals += 1
                state[:] = [value, -direction, timestamp]
        return track.quick_reversals >= 2

    @staticmethod
    def _travel(
        track: Track, frame_size: tuple[int, int] | None = None, window: int = 400
    ) -> float:
        """How far (in box sizes) the newest box lies from the farthest like-sized earlier box.

        Only boxes of similar width and height (within 1.5x) are compared: a box that
        grew because two blobs merged, or a branch whose moving part flickers from its
        tip to its middle, changes shape, while an animal walking keeps its own. Along x
        only boxes clear of the left and right frame edges count, along y only boxes clear
        of the top and bottom: a box the frame cuts off has a centre that slides as more
        or less of the thing shows (a branch hanging into view), without it moving. And only
        the latest unbroken run of sightings counts (gaps of up to two frames): a blob
        that vanishes and comes back somewhere else is flicker, not a walk.
        """
        if len(track.shapes) < 2:
            return 0.0
        shapes = np.asarray(track.shapes[-window:], dtype=np.float64)
        seen = np.asarray(track.seen_frames[-window:])
        breaks = np.nonzero(np.diff(seen) > 3)[0]
        if breaks.size:
            shapes = shapes[breaks[-1] + 1 :]
            if len(shapes) < 2:
                return 0.0
        cx, cy, w, h = shapes[-1]
        earlier = shapes[:-1]
        like = (np.maximum(earlier[:, 2] / w, w / earlier[:, 2]) <= 1.5) & (
            np.maximum(earlier[:, 3] / h, h / earlier[:, 3]) <= 1.5
        )
        if not like.any():
            return 0.0
        dx = earlier[like, 0] - cx
        dy = earlier[like, 1] - cy
        if frame_size is not None:
            width, height = frame_size

            def cut(c: np.ndarray, size: np.ndarray, limit: int) -> np.ndarray:
                return (c - size / 2 <= 1) | (c + size / 2 >= limit - 1)

            cut_x = cut(earlier[like, 0], earlier[like, 2], width) | bool(
                cut(np.array([cx]), np.array([w]), width)[0]
            )
            cut_y = cut(earlier[like, 1], earlier[like, 3], height) | bool(
                cut(np.array([cy]), np.array([h]), height)[0]
            )
            dx = np.where(cut_x, 0.0, dx)
            dy = np.where(cut_y, 0.0, dy)
        distance = np.hypot(dx, dy).max()
        return float(distance / max(track.size, 1.0))

    def qualifies(self, track: Track) -> bool:
        """Whether a track is long and lasting enough, and travelled (or sat still as a
        solid object that arrived, see ``observe_stillness``), to be an animal."""
        s = self.settings
        return (
            track.frames >= s.min_track_frames
            and track.duration_s >= s.min_track_s
            and (track.travel >= self.min_displacement or track.still_verdict == "object")
        )

    def observe_stillness(
        self, track: Track, timestamp: datetime, changed: float, solid: float, steady: float
    ) -> bool:
        """Follow a track that does not travel; True when it has just been still for long
        enough that the caller should decide what it is (``settle``).

        An animal that steps out of cover and stays, or one placed in view, never travels.
        Still means: seen in consecutive frames, its box the same as in the previous frame
        (IoU >= 0.6), its pixels unchanged (at most 10% changed since the previous frame,
        where a swaying branch changes all the time) and solid (at least 40% foreground,
        where a branch is thin). Still for ``min_track_frames`` frames and ``min_track_s``
        seconds, it is either a solid object that arrived or a ghost: the caller looks at
        the pixels (``MotionGate.is_ghost``) and calls ``settle``.
        """
        if track.counted or track.rejected or track.still_verdict is not None:
            return False
        still = False
        if len(track.shapes) >= 2 and track.seen_frames[-2] == track.seen_frames[-1] - 1:
            cx, cy, w, h = track.shapes[-2]
            previous = (cx - w / 2, cy - h / 2, w, h)
            still = (
                iou(previous, track.box) >= STILL_IOU
                and changed <= STILL_CHANGED
                and solid >= STILL_SOLID
                and steady >= STILL_STEADY
            )
        if not still:
            track.still_run, track.still_since = 0, None
            return False
        if track.still_run == 0:
            track.still_since = timestamp
        track.still_run += 1
        assert track.still_since is not None
        s = self.settings
        return track.still_run >= max(STILL_FRAMES, s.min_track_frames) and (
            timestamp - track.still_since
        ).total_seconds() >= max(STILL_S, s.min_track_s)

    def settle(self, track: Track, is_object: bool) -> None:
        """Record the caller's verdict on a still track (``observe_stillness``)."""
        track.still_verdict = "object" if is_object else "ghost"
        track.counted = not track.rejected and self.qualifies(track)

    def _expire(self, timestamp: datetime) -> list[Track]:
        ended = []
        keep = []
        for track in self.live:
            if (timestamp - track.last_seen).total_seconds() > self.settings.max_missed_s:
                track.ended = True
                track.visible = False
                ended.append(track)
            else:
                keep.append(track)
        self.live = keep
        return ended

    def close(self) -> list[Track]:
        """End every live track (end of input, shutdown); returns them."""
        ended = self.live
        for track in ended:
            track.ended = True
            track.visible = False
        self.live = []
        return ended
