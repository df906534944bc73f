"""One frame through the pipeline: localiser -> tracker -> classifier -> event counter.

``Pipeline.process(timestamp, frame)`` returns the events that closed at this frame;
``close()`` closes what is still open (end of a file, shutdown); ``run(source)`` does both
over a whole source. The store, the scheduler and the sources live outside: the pipeline
is pure computation on what it is given.

- **No motion, no classification.** The classifier runs only on the boxes of tracks seen
  in this frame, each track at most every ``tracking.classify_every`` frames (its first
  frame always) and at most ``tracking.max_votes`` times, all crops of a frame in one
  batch. On a Pi the crops, not the frames, cost inference time.
- **Resting animals.** The boxes of live counted tracks are held in the localiser (their
  background is not learned, for up to ``motion.hold_max_s``), so an animal that rests in
  view stays visible and stays one track. A track that does not travel but sits still is
  held while it is judged, then counted if its outline is in the frame (an animal that
  stepped out of cover) and dropped if it is in the background image (a ghost).
- **Motion-only mode.** ``Pipeline(settings, classifier=None, label="animal")`` labels
  every crop ``label`` with confidence 1.0: counts per event of "animal", what the motion
  gate and the tracker alone can say (tests; a trap running without a model).
- **People.** With a ``privacy`` guard (``edge_agent.vision.privacy``), each counted track's
  box is checked for a face or a person, at most ``privacy.max_checks_per_track`` times
  and each time only when its box grew by a quarter since the last check: a cost per
  track, not per frame. A person track is labelled ``person`` (counted, never an animal).
- **Media.** With a ``media`` keeper (``edge_agent.service.media``), each counted track's
  best (largest) crop is remembered for the keeper to write when its event closes.
- **Hot reload.** ``set_classifier()`` between frames; tracks keep the votes they have.
- **Boxes.** Each track's box per frame, with the photo it is in and what found it, is
  kept on the track (``counting.sightings``: bounded in clips) for the store's
  ``detections`` table.
- **Localisers.** Where the candidate boxes come from is the localiser's business
  (``vision.candidates.Localiser``, chosen by ``vision.localiser.localiser_for`` from the
  config unless one is given): the motion gate for video and live cameras, the burst
  background for still photos. Some hold frames back (a burst is located when it is
  complete); the pipeline steps through whatever frames they return, with the tracker
  rules they ask for (``track_rules``), and ends every track and the open event when one
  says the camera's view changed (``new_view``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

import numpy as np

from edge_agent.config import Settings
from edge_agent.counting import sightings
from edge_agent.counting.events import ClosedEvent, EventCounter
from edge_agent.counting.tracking import Track, Tracker
from edge_agent.vision.candidates import Localiser, Located
from edge_agent.vision.geometry import Box
from edge_agent.vision.illumination import IlluminationSampler
from edge_agent.vision.localiser import localiser_for
from edge_agent.vision.privacy import PrivacyGuard

log = logging.getLogger(__name__)

MOTION_ONLY_LABEL = "animal"
# A counted track's box is checked for a person again after this long (or once it grew).
RECHECK_S = 1.0


def is_person(track: Track) -> bool:
    """The count label ``person`` (``vision.privacy``: high precision): faces in two of the
    track's checks, one of them strong (the precise cascade's face in an upright box). Not
    the classifier's confidence: an animal-only model is as sure of a person (a sprite model
    0.90 ``hare``) as of a dog whose face the cascades see (the shipped model 0.92 ``dog``),
    and on the demo's animal-only scenes a face twice on deer and cats the classifier was
    0.6-0.8 sure of made four false people in 96 tracks (``bench_privacy.py --part
    scenes``)."""
    return track.any_face_checks >= 2 and track.strong_checks >= 1


class MediaObserver(Protocol):
    """What the pipeline needs of ``media.MediaKeeper``."""

    def observe(self, timestamp: datetime, frame: np.ndarray, tracks: list[Track]) -> None: ...


class CropClassifier(Protocol):
    """What the pipeline needs of ``classifier.Classifier``."""

    @property
    def sha256(self) -> str: ...

    def classify_crops(self, frame_bgr: np.ndarray, boxes: list[Box]) -> list: ...


class Pipeline:
    """Frames in, ``ClosedEvent``s out; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        classifier: CropClassifier | None = None,
        *,
        label: str = MOTION_ONLY_LABEL,
        localiser: Localiser | None = None,
        privacy: PrivacyGuard | None = None,
        media: MediaObserver | None = None,
    ) -> None:
        self.settings = settings
        self.privacy = privacy
        self.media = media
        self.person_checks = 0
        self.label = label
        self.localiser = localiser if localiser is not None else localiser_for(settings)
        tracking, displacement = self.localiser.track_rules(settings.tracking)
        self.tracker = Tracker(tracking, min_displacement=displacement)
        self.tracker.join_fragments = getattr(self.localiser, "join_fragments", True)
        self.tracker.relink_missed = getattr(self.localiser, "relink_missed", False)
        self.counter = EventCounter(
            settings.events,
            photo_bursts=getattr(self.localiser, "photo_bursts", False),
        )
        self._lighting = IlluminationSampler()
        self.classifier: CropClassifier | None = None
        self.set_classifier(classifier)
        self.frames = 0
        self.motion_frames = 0
        self.crops_classified = 0
        self.events_closed = 0
        self.last_timestamp: datetime | None = None
        # Frames nothing could be looked for in, and why (``Located.unprocessed``).
        self.unprocessed: list[tuple[datetime, str]] = []

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

    def process(
        self, timestamp: datetime, frame: np.ndarray, file: str | None = None
    ) -> list[ClosedEvent]:
        """Run one frame; return the events that closed at it. ``file``: the photo it is,
        relative to its folder (``FrameSource.current_file``), kept with its boxes."""
        if timestamp.tzinfo is None:
            raise ValueError("frame timestamps must be timezone-aware")
        timestamp = timestamp.astimezone(UTC)
        closed: list[ClosedEvent] = []
        held = self._held_boxes(timestamp)
        for located in self.localiser.locate(timestamp, frame, held, file=file):
            closed += self._step(located)
        return closed

    def run(self, frames: Iterable[tuple[datetime, np.ndarray]]) -> Iterator[ClosedEvent]:
        """Process every ``(timestamp, frame)`` of ``frames`` (a source, whose
        ``current_file`` names each photo), then ``close()``; yield each event as it closes."""
        for timestamp, frame in frames:
            yield from self.process(timestamp, frame, getattr(frames, "current_file", None))
        yield from self.close()

    def close(self, timestamp: datetime | None = None) -> list[ClosedEvent]:
        """End all tracks and close the open event (end of input, shutdown).

        Events end at their last sighting, whenever the input stops, so ``timestamp`` is
        accepted for symmetry with ``process`` and not needed."""
        del timestamp
        closed: list[ClosedEvent] = []
        for located in self.localiser.flush():
            closed += self._step(located)
        last = self.counter.close(self.tracker.close())
        self.events_closed += len(last)
        return closed + last

    # -- internals ---------------------------------------------------------------------

    def _step(self, located: Located) -> list[ClosedEvent]:
        if located.unprocessed is not None:
            self.unprocessed.append((located.timestamp, located.unprocessed))
        closed = self._end_view(located.timestamp) if located.new_view else []
        timestamp, frame, boxes = located.timestamp, located.frame, located.boxes
        self.last_timestamp = timestamp
        self.frames += 1
        if boxes:
            self.motion_frames += 1
        update = self.tracker.update(timestamp, boxes, (frame.shape[1], frame.shape[0]))
        sightings.note(located, update.visible, update.frame)
        self._judge_still_tracks(timestamp, update.visible)
        self._classify(frame, update.visible, update.frame)
        if self.privacy is not None:
            self._check_people(frame, update.visible, timestamp)
        if self.media is not None:
            self.media.observe(timestamp, frame, [t for t in update.visible if t.counted])
        # How the frame was lit matters only while an event is open: measured then, once
        # a second of footage (the light changes over minutes).
        lighting = partial(self._lighting, timestamp, frame)
        ended = self.counter.update(timestamp, update.visible, update.ended, lighting)
        self.events_closed += len(ended)
        return closed + ended

    def _end_view(self, timestamp: datetime) -> list[ClosedEvent]:
        """The camera's view changed (``Located.new_view``): every track ends and the open
        event closes, so that animals of two views are never counted together."""
        log.info("%s: the camera's view changed; tracks ended, event closed", timestamp)
        self._lighting.reset()
        closed = self.counter.close(self.tracker.close())
        self.events_closed += len(closed)
        return closed

    def _judge_still_tracks(self, timestamp: datetime, visible: list[Track]) -> None:
        """Tracks that do not travel but sit still and solid: animal or ghost?"""
        if self.tracker.min_displacement <= 0:
            return  # whole frame: every track counts anyway
        for track in visible:
            if track.counted or track.rejected or track.still_verdict is not None:
                continue
            measured = self.localiser.stillness(track.box)
            if measured is None:
                continue
            if self.tracker.observe_stillness(track, timestamp, *measured):
                self.tracker.settle(track, is_object=not self.localiser.is_ghost(track.box))

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

    def _check_people(self, frame: np.ndarray, visible: list[Track], when: datetime) -> None:
        """Look for a person in counted tracks' boxes: each track at most
        ``privacy.max_checks_per_track`` times, again only once its box grew by a quarter or
        ``RECHECK_S`` passed (so a person walking past at one distance is seen twice)."""
        assert self.privacy is not None
        limit = self.settings.privacy.max_checks_per_track
        for track in visible:
            if not track.counted or track.person or track.person_checks >= limit:
                continue
            area = track.box[2] * track.box[3]
            if track.person_checked_at is not None:
                grew = area >= 1.25 * track.person_area
                later = (when - track.person_checked_at).total_seconds() >= RECHECK_S
                if not (grew or later):
                    continue
            track.person_checks += 1
            track.person_area = area
            track.person_checked_at = when
            self.person_checks += 1
            evidence = self.privacy.look(frame, track.box)
            track.privacy_suppressed |= evidence.any
            track.face_checks += evidence.face
            track.any_face_checks += evidence.any_face
            track.strong_checks += evidence.strong
            if is_person(track):
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
