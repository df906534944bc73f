"""One frame through the pipeline: motion gate -> tracker -> classifier -> event counter.

``Pipeline.process(timestamp, frame)`` returns the events that closed at this frame;
``close()`` closes what is still open (end of a file, shutdown); ``run(source)`` does both
over a whole source. The store, the scheduler and the sources live outside: the pipeline
is pure computation on what it is given.

- **No motion, no classification.** The classifier runs only on the boxes of tracks seen
  in this frame, each track at most every ``tracking.classify_every`` frames (its first
  frame always) and at most ``tracking.max_votes`` times, all crops of a frame in one
  batch. On a Pi the crops, not the frames, cost inference time.
- **Resting animals.** The boxes of live counted tracks are held in the motion gate (their
  background is not learned, for up to ``motion.hold_max_s``), so an animal that rests in
  view stays visible and stays one track. A track that does not travel but sits still is
  held while it is judged, then counted if its outline is in the frame (an animal that
  stepped out of cover) and dropped if it is in the background image (a ghost).
- **Motion-only mode.** ``Pipeline(settings, classifier=None, label="animal")`` labels
  every crop ``label`` with confidence 1.0: counts per event of "animal", what the motion
  gate and the tracker alone can say (tests; a trap running without a model).
- **People.** With a ``privacy`` guard (``edge_agent.vision.privacy``), each counted track's box
  is checked for a face or a person, at most ``privacy.max_checks_per_track`` times and
  each time only when its box grew by a quarter since the last check: a cost per track, not
  per frame. A person track is labelled ``person`` (counted, never an animal).
- **Media.** With a ``media`` keeper (``edge_agent.service.media``), each counted track's best
  (largest) crop is remembered for the keeper to write when its event closes.
- **Hot reload.** ``set_classifier()`` between frames; tracks keep the votes they have.
- **Pauses.** After more than ``PAUSE_S`` without frames (interval capture with a long
  interval) the old background is stale: it is relearned, the first frame after the pause
  seeding it without a warm-up, so that a short burst still reports motion.
- **Still photos** (``stills=True``; the default when ``settings.source`` is an image folder).
  A camera trap's photos come in bursts a second or so apart, hours from the next burst,
  too far apart in time for a background model to learn anything. Photos less than
  ``tracking.stills_gap_s`` apart form a burst; each burst is processed when it is
  complete (when a later photo or ``close()`` arrives): its per-pixel median is its
  background (an animal crossing is absent from most photos at any pixel), every photo of
  it is compared with that, and the tracker links across photos with still-photo
  settings: a track needs 2 photos (``min_track_frames`` if lower), no minimum duration,
  half a box size of travel (``min_displacement`` if lower), centres may be up to half the
  frame width apart between photos, and a track survives the whole burst.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Protocol

import cv2
import numpy as np

from edge_agent.capture.factory import source_kind
from edge_agent.capture.frames import SourceError
from edge_agent.config import ConfigError, Settings
from edge_agent.counting.events import ClosedEvent, EventCounter
from edge_agent.counting.tracking import Track, Tracker
from edge_agent.vision.motion import Box, MotionGate
from edge_agent.vision.privacy import PrivacyGuard
from edge_agent.vision.scene_change import CUT

log = logging.getLogger(__name__)

MOTION_ONLY_LABEL = "animal"
# A pause longer than this (no frames) and the background is relearned.
PAUSE_S = 60.0
# Still photos: at most this many in one burst (a time-lapse folder is cut into chunks).
MAX_BURST = 60


class MediaObserver(Protocol):
    """What the pipeline needs of ``media.MediaKeeper``."""

    def observe(self, timestamp: datetime, frame: np.ndarray, tracks: list[Track]) -> None: ...


class CropClassifier(Protocol):
    """What the pipeline needs of ``classifier.Classifier``."""

    @property
    def sha256(self) -> str: ...

    def classify_crops(self, frame_bgr: np.ndarray, boxes: list[Box]) -> list: ...


def motion_mask(settings: Settings) -> np.ndarray | None:
    """The ``motion.mask`` image (grey), or None without one; a ConfigError naming the key
    when the file is missing or not an image."""
    if not settings.motion.mask:
        return None
    path = settings.resolve(settings.motion.mask)
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
    if mask is None:
        problem = "not found" if not path.exists() else "not a readable image"
        raise ConfigError(f"motion.mask: {path} is {problem}")
    return mask


def is_still_source(settings: Settings) -> bool:
    """Whether ``settings.source`` is an image folder (still photos)."""
    try:
        return source_kind(settings.source, settings.base_dir) == "folder"
    except SourceError:
        return False


class Pipeline:
    """Frames in, ``ClosedEvent``s out; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        classifier: CropClassifier | None = None,
        *,
        label: str = MOTION_ONLY_LABEL,
        stills: bool | None = None,
        privacy: PrivacyGuard | None = None,
        media: MediaObserver | None = None,
    ) -> None:
        self.settings = settings
        self.privacy = privacy
        self.media = media
        self.person_checks = 0
        self.label = label
        self.stills = is_still_source(settings) if stills is None else stills
        motion = settings.motion
        self.gate = MotionGate(motion, mask=motion_mask(settings))
        tracking = settings.tracking
        displacement = 0.0 if motion.method == "whole_frame" else tracking.min_displacement
        if self.stills:
            tracking = tracking.model_copy(
                update={
                    "min_track_frames": min(tracking.min_track_frames, 2),
                    "min_track_s": 0.0,
                    "max_distance": max(tracking.max_distance, 0.5),
                    "max_missed_s": max(tracking.max_missed_s, tracking.stills_gap_s),
                    "classify_every": 1,
                }
            )
            displacement = min(displacement, 0.5)
        self.tracker = Tracker(tracking, min_displacement=displacement)
        self.counter = EventCounter(settings.events)
        self.classifier: CropClassifier | None = None
        self.set_classifier(classifier)
        self.frames = 0
        self.motion_frames = 0
        self.crops_classified = 0
        self.events_closed = 0
        self.last_timestamp: datetime | None = None
        self._burst: list[tuple[datetime, np.ndarray]] = []

    # -- public ------------------------------------------------------------------------

    @property
    def open_events(self) -> int:
        return self.counter.open_events

    @property
    def live_tracks(self) -> list[Track]:
        return list(self.tracker.live)

    def set_classifier(self, classifier: CropClassifier | None) -> None:
        """Use ``classifier`` from the next frame on (``None``: motion-only mode)."""
        self.classifier = classifier
        self.counter.model_sha256 = classifier.sha256 if classifier is not None else None

    def process(self, timestamp: datetime, frame: np.ndarray) -> list[ClosedEvent]:
        """Run one frame; return the events that closed at it."""
        if timestamp.tzinfo is None:
            raise ValueError("frame timestamps must be timezone-aware")
        timestamp = timestamp.astimezone(UTC)
        if self.stills:
            return self._add_photo(timestamp, frame)
        if self.last_timestamp is not None:
            pause = (timestamp - self.last_timestamp).total_seconds()
            if pause > PAUSE_S:
                self.gate.reset(skip_warmup=True)
        boxes = self.gate.boxes(frame, hold=self._held_boxes(timestamp), timestamp=timestamp)
        closed: list[ClosedEvent] = []
        if self.gate.scene_change == CUT:
            closed = self._end_view(timestamp)
        return closed + self._step(timestamp, frame, boxes)

    def run(self, frames: Iterable[tuple[datetime, np.ndarray]]) -> Iterator[ClosedEvent]:
        """Process every ``(timestamp, frame)`` of ``frames`` (a source), then ``close()``;
        yield each event as it closes."""
        for timestamp, frame in frames:
            yield from self.process(timestamp, frame)
        yield from self.close()

    def close(self, timestamp: datetime | None = None) -> list[ClosedEvent]:
        """End all tracks and close the open event (end of input, shutdown).

        Events end at their last sighting, whenever the input stops, so ``timestamp`` is
        accepted for symmetry with ``process`` and not needed."""
        del timestamp
        closed = self._flush_burst()
        last = self.counter.close(self.tracker.close())
        self.events_closed += len(last)
        return closed + last

    # -- internals ---------------------------------------------------------------------

    def _step(self, timestamp: datetime, frame: np.ndarray, boxes: list[Box]) -> list[ClosedEvent]:
        self.last_timestamp = timestamp
        self.frames += 1
        if boxes:
            self.motion_frames += 1
        update = self.tracker.update(timestamp, boxes, (frame.shape[1], frame.shape[0]))
        self._judge_still_tracks(timestamp, update.visible)
        self._classify(frame, update.visible, update.frame)
        if self.privacy is not None:
            self._check_people(frame, update.visible)
        if self.media is not None:
            self.media.observe(timestamp, frame, [t for t in update.visible if t.counted])
        closed = self.counter.update(timestamp, update.visible, update.ended)
        self.events_closed += len(closed)
        return closed

    def _end_view(self, timestamp: datetime) -> list[ClosedEvent]:
        """The camera's view changed (``scene_change.CUT``): every track ends and the open
        event closes, so that animals of two views are never counted together."""
        log.info("%s: the camera's view changed; tracks ended, event closed", timestamp)
        closed = self.counter.close(self.tracker.close())
        self.events_closed += len(closed)
        return closed

    def _add_photo(self, timestamp: datetime, frame: np.ndarray) -> list[ClosedEvent]:
        closed: list[ClosedEvent] = []
        if self._burst:
            gap = (timestamp - self._burst[-1][0]).total_seconds()
            same_size = self._burst[-1][1].shape == frame.shape
            full = len(self._burst) >= MAX_BURST
            if gap > self.settings.tracking.stills_gap_s or not same_size or full:
                closed = self._flush_burst()
        self._burst.append((timestamp, frame))
        return closed

    def _flush_burst(self) -> list[ClosedEvent]:
        burst, self._burst = self._burst, []
        if not burst:
            return []
        background = self.gate.burst_background([frame for _, frame in burst])
        closed: list[ClosedEvent] = []
        for timestamp, frame in burst:
            boxes = self.gate.boxes_against(frame, background) if len(burst) > 1 else []
            closed += self._step(timestamp, frame, boxes)
        return closed

    def _judge_still_tracks(self, timestamp: datetime, visible: list[Track]) -> None:
        """Tracks that do not travel but sit still and solid: animal or ghost?"""
        if self.tracker.min_displacement <= 0:
            return  # whole frame: every track counts anyway
        for track in visible:
            if track.counted or track.rejected or track.still_verdict is not None:
                continue
            measured = self.gate.stillness(track.box)
            if measured is None:
                continue
            if self.tracker.observe_stillness(track, timestamp, *measured):
                self.tracker.settle(track, is_object=not self.gate.is_ghost(track.box))

    def _held_boxes(self, timestamp: datetime) -> list[Box]:
        hold_s = self.settings.motion.hold_max_s
        if hold_s <= 0:
            return []
        # Counted animals, and still tracks while they are being judged (the background
        # model must not swallow them before the verdict).
        return [
            track.box
            for track in self.tracker.live
            if (track.counted or (track.still_run > 0 and track.still_verdict is None))
            and (timestamp - track.first_seen).total_seconds() < hold_s
        ]

    def _check_people(self, frame: np.ndarray, visible: list[Track]) -> None:
        assert self.privacy is not None
        limit = self.settings.privacy.max_checks_per_track
        for track in visible:
            if not track.counted or track.person or track.person_checks >= limit:
                continue
            area = track.box[2] * track.box[3]
            if track.person_checks and area < 1.25 * track.person_area:
                continue
            track.person_checks += 1
            track.person_area = area
            self.person_checks += 1
            if self.privacy.is_person(frame, track.box):
                track.person = True
                log.debug("track %d is a person", track.id)

    def _classify(self, frame: np.ndarray, visible: list[Track], frame_index: int) -> None:
        s = self.tracker.settings
        due = [
            track
            for track in visible
            if track.n_votes < s.max_votes
            and frame_index - track.last_vote_frame >= s.classify_every
        ]
        if not due:
            return
        if self.classifier is None:
            for track in due:
                track.add_vote(self.label, 1.0, frame_index)
            return
        predictions = self.classifier.classify_crops(frame, [track.box for track in due])
        self.crops_classified += len(due)
        for track, prediction in zip(due, predictions, strict=True):
            track.add_vote(prediction.label, prediction.confidence, frame_index)
