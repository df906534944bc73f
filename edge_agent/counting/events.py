"""Tracks -> events -> MaxN per label. Pure logic: no I/O, no OpenCV.

An **event** is a burst of activity. It opens when a track becomes *counted* (see
``tracking``: long, lasting and travelled enough to be an animal) and closes once no
counted track is live and none has been seen for ``event_gap_s``. Tracks that are never
counted (a swaying branch, rain, a ghost), and tracks the classifier calls ``empty`` (no
animal there), neither open an event nor keep one open.

Per event and label, **MaxN** is the largest number of counted tracks of that label
visible in one frame. This is how camera-trap ecologists count (AddaxAI, Agouti, Wildlife
Insights): an animal that stays for a minute is one track, or several tracks that are
never visible at the same time, so it is counted once; three deer walking through
together are three tracks in the same frames, so MaxN is 3. Per-frame detections are
never summed.

Events of photo bursts (``photo_bursts``: photos a second apart, a track broken more
easily than in video) follow three more rules when they close:

- a track the classifier calls ``empty`` that walked across the burst (``WALKED_SIZES``
  of its size, on a path close to straight) is kept aside, and when the event has no
  other animal it is counted ``unknown``: a thing that walks across three photos of a
  trap is an animal the 32-pixel model did not see (a coati in daylight on leaf litter,
  field-train's SEQ75250), while beside an animal such a track is more often a piece of
  it or its shadow;
- a track seen in one photo only is dropped when another track of the event was seen in
  two or more. A burst's candidate must be seen in two photos (``vision.bursts``), and
  such a track had no partner of its own: the box that corroborated it was the animal's,
  on the other track. It is that animal seen twice in one photo: a piece of it, or the
  ground it left (which the burst's median holds) taken by the animal's track while the
  animal itself starts a new one. On field-train's real bursts this mended three
  over-counts and took no count below its truth (``docs/benchmarks.md``). The cost: a
  second animal seen in one photo only, beside one seen in several, is not counted;
- an ``unknown`` track that would not raise the MaxN of the event's one named animal
  label (it is never seen in more photos at once than that label's tracks leave room for)
  takes that label: it is that animal, broken in two by the localiser or the tracker and
  not recognised in its part (a deer whose last photos show it half out of the frame).
  With two named labels, or none, it stays ``unknown``.

Labels are taken when the event closes, from each track's vote over all its crops, so a
track whose first crops were uncertain still gets its best label. A track that becomes
counted after its event closed (rare: it took longer than ``event_gap_s`` to qualify)
opens a new event.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from edge_agent.config import EventSettings
from edge_agent.labels import EMPTY, NOT_ANIMALS, UNKNOWN, VEHICLE

# A track labelled ``empty`` counts ``unknown`` (see the module docstring) when its first
# and last boxes are this many of its sizes apart, on a path at most 1 / WALKED_STRAIGHTNESS
# as long as that.
WALKED_SIZES = 2.0
WALKED_STRAIGHTNESS = 0.5
# Labels that name no animal: an ``unknown`` track never joins them.
NOT_NAMED = NOT_ANIMALS | {VEHICLE}

if TYPE_CHECKING:  # counting needs tracks' attributes only, not the tracker
    from edge_agent.counting.tracking import Track


@dataclass(frozen=True)
class LabelObservation:
    label: str  # classifier label, or "unknown"
    max_n: int  # MaxN: most tracks of this label visible in one frame
    frames: int  # frames in which a counted track of this label was visible
    mean_confidence: float  # mean crop confidence of this label's counted tracks
    tracks: int  # counted tracks with this label (>= max_n)
    suppressed: int = 0  # of them, tracks whose images the privacy guard withheld


@dataclass(frozen=True)
class ClosedEvent:
    start: datetime  # UTC: first frame of the first counted track
    end: datetime  # UTC: last frame of the last counted track
    frames: int  # frames between start and end that the pipeline processed
    observations: tuple[LabelObservation, ...]  # one per label, sorted by label
    model_sha256: str | None  # the model that classified it
    # Its counted tracks (for the media keeper); not part of the event's value.
    tracks: tuple[Track, ...] = field(default=(), compare=False, repr=False)
    # How most of its frames were lit (vision.illumination: colour or ir); None: not told.
    illumination: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        """{label: MaxN}."""
        return {obs.label: obs.max_n for obs in self.observations}

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


def observations(tracks: Iterable[Track]) -> tuple[LabelObservation, ...]:
    """Per-label MaxN, frames, mean confidence and track count of a set of counted tracks.
    A track that joined a label (``join_unknowns``) counts in its MaxN and tracks, not in
    its mean confidence: its crops never said it (the label's own tracks did)."""
    by_label: dict[str, list[Track]] = defaultdict(list)
    for track in tracks:
        by_label[track.label].append(track)
    return tuple(_observation(label, by_label[label]) for label in sorted(by_label))


def _observation(label: str, tracks: list[Track]) -> LabelObservation:
    per_frame = tracks_per_frame(tracks)
    confidences = [track.confidence for track in tracks if track.joined is None]
    return LabelObservation(
        label=label,
        max_n=max(per_frame.values(), default=0),
        frames=len(per_frame),
        mean_confidence=round(sum(confidences) / max(len(confidences), 1), 4),
        tracks=len(tracks),
        suppressed=sum(track.privacy_suppressed for track in tracks),
    )


def tracks_per_frame(tracks: Iterable[Track]) -> Counter[int]:
    """{frame index: how many of ``tracks`` were seen in it}."""
    per_frame: Counter[int] = Counter()
    for track in tracks:
        per_frame.update(track.seen_frames)
    return per_frame


def max_n(tracks: Iterable[Track]) -> int:
    """The most of ``tracks`` seen in one frame."""
    return max(tracks_per_frame(tracks).values(), default=0)


def without_one_photo_pieces(tracks: list[Track]) -> list[Track]:
    """Photo bursts: ``tracks`` without those seen in one photo only, when one was seen in
    two or more (see the module docstring); all of them otherwise."""
    lasting = [t for t in tracks if t.frames >= 2]
    return lasting or tracks


def join_unknowns(tracks: list[Track]) -> None:
    """Photo bursts: each ``unknown`` track that does not raise the MaxN of the event's
    one named label takes that label (``Track.joined``; see the module docstring)."""
    named = {t.label for t in tracks} - NOT_NAMED
    if len(named) != 1:
        return
    (label,) = named
    own = [t for t in tracks if t.label == label]
    most = max_n(own)  # a track joins only when it leaves this as it is
    for track in tracks:
        if track.label == UNKNOWN and max_n([*own, track]) == most:
            track.joined = label
            own.append(track)


class _Event:
    def __init__(self, keep_empty: bool = False) -> None:
        self.tracks: dict[int, Track] = {}
        # ``empty`` tracks kept aside (``keep_empty``: photo bursts), for ``walkers``.
        self.empties: dict[int, Track] = {}
        self.keep_empty = keep_empty
        self.lighting: Counter[str] = Counter()  # frames per illumination while open

    def add(self, track: Track) -> None:
        if track.label != EMPTY:
            self.tracks[track.id] = track
        elif self.keep_empty:
            self.empties[track.id] = track

    def prune(self) -> None:
        """Drop tracks the tracker has since rejected (they swung like vegetation) and
        tracks the classifier calls ``empty`` (a model that learned empty trap frames
        rejects a motion false positive: no animal there; kept aside with
        ``keep_empty``)."""
        if self.keep_empty:
            self.empties.update(
                (i, t) for i, t in self.tracks.items() if t.counted and t.label == EMPTY
            )
        self.tracks = {i: t for i, t in self.tracks.items() if t.counted and t.label != EMPTY}
        self.empties = {i: t for i, t in self.empties.items() if t.counted and t.label == EMPTY}

    def walkers(self) -> list[Track]:
        """The ``empty`` tracks that walked across the burst (``WALKED_SIZES``)."""
        return [t for t in self.empties.values() if t.walked(WALKED_SIZES, WALKED_STRAIGHTNESS)]

    @property
    def members(self) -> list[Track]:
        """Every track that keeps it open: the counted ones and those kept aside."""
        return [*self.tracks.values(), *self.empties.values()]

    @property
    def last_seen(self) -> datetime:
        return max(t.last_seen for t in self.members)

    @property
    def live(self) -> bool:
        return any(not t.ended for t in self.members)


class EventCounter:
    """Groups counted tracks into events and emits a ``ClosedEvent`` when one ends."""

    def __init__(
        self,
        settings: EventSettings,
        *,
        model_sha256: str | None = None,
        photo_bursts: bool = False,
    ) -> None:
        self.settings = settings
        self.model_sha256 = model_sha256
        # Events of photo bursts: walking ``empty`` tracks and ``unknown`` pieces of a
        # named animal (the module docstring).
        self.photo_bursts = photo_bursts
        self._event: _Event | None = None
        self.closed_events = 0

    @property
    def open_events(self) -> int:
        return 0 if self._event is None else 1

    def update(
        self,
        timestamp: datetime,
        visible: Iterable[Track],
        ended: Iterable[Track] = (),
        illumination: str | Callable[[], str] | None = None,
    ) -> list[ClosedEvent]:
        """Feed one frame: the tracks seen in it, the tracks that ended at it and how it
        was lit (``vision.illumination``; a callable is asked only when an event is open,
        so that the frames with nothing in them cost nothing).

        The open event is closed before this frame's tracks join it when it was already
        over: none of its tracks live and ``event_gap_s`` passed since its last sighting
        (photo bursts hours apart: the next burst's first photo must not reopen the last
        burst's event)."""
        self._add(ended)
        closed: list[ClosedEvent] = []
        if self._is_over(timestamp):
            closed = self._close()
        self._add(visible)
        event = self._event
        if event is None:
            return closed
        if callable(illumination):
            illumination = illumination()
        if illumination is not None:
            event.lighting[illumination] += 1
        event.prune()
        if not event.members:
            self._event = None  # everything in it turned out not to be an animal
            return closed
        if self._is_over(timestamp):
            closed += self._close()
        return closed

    def _add(self, tracks: Iterable[Track]) -> None:
        for track in tracks:
            if track.counted:
                if self._event is None:
                    self._event = _Event(self.photo_bursts)
                self._event.add(track)

    def _is_over(self, timestamp: datetime) -> bool:
        event = self._event
        if event is None:
            return False
        event.prune()
        if not event.members or event.live:
            return False
        return (timestamp - event.last_seen).total_seconds() >= self.settings.event_gap_s

    def close(self, ended: Iterable[Track] = ()) -> list[ClosedEvent]:
        """Close the open event now (end of input, shutdown), after adding ``ended`` tracks."""
        self._add(ended)
        return self._close()

    def _close(self) -> list[ClosedEvent]:
        event, self._event = self._event, None
        if event is None:
            return []
        event.prune()
        tracks = list(event.tracks.values())
        if not tracks:
            tracks = event.walkers()
            for track in tracks:
                track.empty_overruled = True
        if not tracks:
            return []
        if self.photo_bursts:
            tracks = without_one_photo_pieces(tracks)
            join_unknowns(tracks)
        first = min(tracks, key=lambda t: (t.first_seen, t.first_frame))
        last = max(tracks, key=lambda t: (t.last_seen, t.last_frame))
        self.closed_events += 1
        closed = ClosedEvent(
            start=first.first_seen,
            end=last.last_seen,
            frames=max(t.last_frame for t in tracks) - min(t.first_frame for t in tracks) + 1,
            observations=observations(tracks),
            model_sha256=self.model_sha256,
            tracks=tuple(sorted(tracks, key=lambda t: t.id)),
            illumination=event.lighting.most_common(1)[0][0] if event.lighting else None,
        )
        return [closed]
