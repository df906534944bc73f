"""Still photos (``candidates.Localiser``): a camera trap's photos come in bursts a second
or so apart, hours from the next burst, too far apart in time for a background model to
learn anything.

Photos less than ``tracking.stills_gap_s`` apart form a burst (a change of size or of view
starts a new one: another camera's photos are not a background; a time-lapse folder is cut
into bursts of at most ``MAX_BURST``, photos that cannot be read again into bursts of at
most ``MAX_KEPT_BYTES``). A burst is
located when it is complete (a later photo, or the end of the input), against two
references:

- **the burst itself**: its per-pixel median, where an animal that moves is absent from
  most photos at any pixel: this finds what moved, even in the burst's first photo; where
  an animal stands in most photos, the median holds it, and the photos it is not in show
  a "hole" whose outline is the median's, not theirs: a ghost, dropped (unless it is all
  that photo shows: a large animal crossing a strongly textured view outlines like that
  too; ``_without_ghosts``);
- **an empty view of the same camera** (``bank.BackgroundBank``: photos of this camera
  under the same light in which nothing was found before): this finds an animal that
  stands still in every photo of the burst, which the median swallows. What it finds
  where the empty view has the outline instead of the photo is a ghost (the bank's view
  had something that has left) and is dropped. It is asked only when the median found
  nothing in the burst (or for a single photo): taken at another hour, it differs by
  shadows and sun too, which beside an animal the median found made a second one. So a
  still animal beside a moving one is not found by it.

Before either, each photo's small copy is brought to the exposure of the burst's median
(``exposure.matched_exposure``: the gain and offset that map its view onto the median's,
fitted on the pixels where nothing changed): a trap steps its exposure or its lamp within
a burst, and a photo a dozen grey levels brighter all over differs everywhere, which hid
the animal in it. Photos at one exposure are left exactly as they were.

Against the median, a pixel differs when it differs by more than the burst's own level:
five times its noise (``burst_noise``: how much its photos differ from the median over most
of the view), between ``motion.quiet_burst_threshold`` (10) and ``motion.threshold`` (16).
A still night view under the IR lamp differs by a grey level or two, where a dark animal
13 levels off its ground is something; leaves in sun and wind differ by several, where it
is not. The empty view, another moment's light, is compared at ``motion.threshold``.

In a burst of several photos a candidate must be seen in two of them, near each other in
place, of a like size and at most two photos apart: a one-off flicker is not an animal. (So
an animal that arrives in the first photo only and then stands without a pixel changing in
all the others is not found without an empty view: its arriving photo has no partner, and
the median holds it where it stands. Taking a ghost seen in one or two photos for a still
animal in all the others found it, and on field-train's real bursts made 27 over-counts of
90, against 16: not done.) A single photo with no empty view of its camera has nothing to
be compared with: it is located as ``unprocessed`` (``NO_REFERENCE``), which the report
says, rather than as a photo with nothing in it. Photos in which nothing was found become
empty views of their camera.

**Memory.** A burst holds its photos decoded only up to ``KEEP_BYTES`` (a few photos);
the others keep their small grey copy (what the burst is located with) and are read
again from their file (``read_again``, the folder source's own decoding: the same
pixels) one at a time as the pipeline steps through the located burst, so a long burst
(a time-lapse folder, up to ``MAX_BURST`` photos) never holds all its photos decoded.
A time-lapse video's frames are all read again, by number, by a second decoder of the file
(``capture.video.VideoFrameReader``). The first photo read back is checked against its
small copy; if it differs (the reader decodes differently from the source), every photo is
kept instead, in bursts of at most ``MAX_KEPT_BYTES``. A photo that cannot be read back
the same later (deleted or rewritten meanwhile) is unprocessed (``READ_AGAIN_FAILED``),
never counted from other pixels.

The tracker links across photos with still-photo rules (``track_rules``): no travel needed
(a heron standing in a river is an animal; the two references and the corroboration have
already told motion from noise), a track may be one photo long, centres may be up to half
the frame width apart between photos, and a track survives the whole burst. A track missed
in a photo may be found again by distance in a later one, a box cut by the frame's edge
(an animal walking out between two photos) may link to it down to a tenth of its area, and
a photo's one box links to the burst's one track seen in the photo before, whatever its
size (``relink_missed``; video links by distance only from the frame before).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import cv2
import numpy as np

from edge_agent.config import MotionSettings, TrackingSettings
from edge_agent.vision.bank import BackgroundBank, view_similarity
from edge_agent.vision.candidates import NO_REFERENCE, Candidate, Located
from edge_agent.vision.exposure import matched_exposure
from edge_agent.vision.geometry import Box, near_any, overlap_of
from edge_agent.vision.illumination import illumination_of
from edge_agent.vision.info_bars import blank_bars, info_bars, is_band, scene_rows
from edge_agent.vision.motion import MotionGate

log = logging.getLogger(__name__)

BURST = "burst"
BANK = "bank"
# At most this many photos in one burst (a time-lapse folder is cut into chunks).
MAX_BURST = 60
# A burst holds its photos decoded up to this many bytes (two 1600x1200 photos); the
# others are read again from their files when the burst is located.
KEEP_BYTES = 16 * 2**20
# Photos that cannot be read again (no reader, or one that decodes differently) all stay
# decoded: a burst of them is located once they reach this many bytes (1080p frames in
# bursts of 8, 640x480 of 54), so memory stays bounded.
MAX_KEPT_BYTES = 48 * 2**20
# A photo that could not be read back as it was first decoded.
READ_AGAIN_FAILED = "unreadable"
# Consecutive photos whose views are less alike than this (bank.view_similarity) are from
# different cameras (two traps' cards in one folder): a burst never mixes them. An animal
# close to the lens makes one camera's photos differ in far fewer cells.
SAME_CAMERA = 0.4


@dataclass
class _Photo:
    """A photo of the burst being gathered."""

    timestamp: datetime
    frame: np.ndarray | None  # None: read again (``key``) when located
    small: np.ndarray  # grey, at motion resolution
    file: str | None
    key: str | None  # what ``read_again`` reads it by: its file, or a video frame's number
    shape: tuple[int, ...]
    light: str  # vision.illumination
    bars: tuple[int, int]  # info_bars: the camera's data bands, top and bottom rows


class BurstLocaliser:
    """Photos grouped into bursts, located against the burst and the camera's empty view;
    see the module docstring. ``read_again``: reads a photo again from its file
    (``capture.folder.photo_reader``); without it every photo of a burst stays decoded.
    ``by_frame_number``: photos without a file (a time-lapse video's frames) are read again
    by their number in the input, ``"frame N"`` from 0 (``capture.video.VideoFrameReader``)."""

    relink_missed = True  # photos seconds apart: see Tracker.relink_missed
    photo_bursts = True  # events of photo bursts: see counting.events

    def __init__(
        self,
        settings: MotionSettings,
        stills_gap_s: float,
        *,
        mask: np.ndarray | None = None,
        bank: BackgroundBank | None = None,
        read_again: Callable[[str], np.ndarray | None] | None = None,
        by_frame_number: bool = False,
    ) -> None:
        self.gate = MotionGate(settings, mask=mask)
        self.stills_gap_s = stills_gap_s
        self.bank = bank if bank is not None else BackgroundBank()
        self.read_again = read_again
        self.by_frame_number = by_frame_number
        self._frames_seen = 0
        self._read_again_checked = False
        self.read_back = 0  # photos read back from their files
        self._burst: list[_Photo] = []
        self._kept_bytes = 0

    def locate(
        self, timestamp: datetime, frame: np.ndarray, hold: Sequence[Box], file: str | None = None
    ) -> Iterator[Located] | list[Located]:
        located: Iterator[Located] | list[Located] = []
        small = self.gate.small_grey(frame)
        key = file
        if key is None and self.by_frame_number:
            key = f"frame {self._frames_seen}"
        self._frames_seen += 1
        if self._burst:
            last = self._burst[-1]
            if (
                (timestamp - last.timestamp).total_seconds() > self.stills_gap_s
                or last.shape != frame.shape
                or len(self._burst) >= MAX_BURST
                or view_similarity(last.small, small) < SAME_CAMERA
                or (
                    self._kept_bytes + frame.nbytes > MAX_KEPT_BYTES
                    and not self._can_read_again(key, small)
                )
            ):
                located = self._locate_burst()
        kept: np.ndarray | None = frame
        # A video's frames are all read again: a decoder is already open for it, and at a
        # frame a second or slower decoding twice costs little.
        keep = 0 if self.by_frame_number else KEEP_BYTES
        if self._kept_bytes + frame.nbytes > keep and self._can_read_again(key, small):
            kept = None
        else:
            self._kept_bytes += frame.nbytes
        self._burst.append(
            _Photo(
                timestamp,
                kept,
                small,
                file,
                key,
                frame.shape,
                illumination_of(frame),
                info_bars(frame),
            )
        )
        return located

    def flush(self) -> Iterator[Located] | list[Located]:
        """The input ended: locate the last burst; keep the bank (when it has a file)."""
        located = self._locate_burst()
        self.bank.save()
        return located

    def _can_read_again(self, key: str | None, small: np.ndarray) -> bool:
        """Whether this photo can be dropped and read again later. The first time, it is
        read again at once and compared: a reader that decodes differently from the source
        (other settings) is not used again."""
        if self.read_again is None or key is None:
            return False
        if not self._read_again_checked:
            self._read_again_checked = True
            again = self.read_again(key)
            if again is None or not np.array_equal(self.gate.small_grey(again), small):
                log.warning(
                    "%s does not read back as it was decoded; bursts are kept in memory", key
                )
                self.read_again = None
                return False
        return True

    def _locate_burst(self) -> Iterator[Located] | list[Located]:
        """Locate the burst gathered so far, at once; its photos are read back (those not
        kept) as the returned iterator is stepped through."""
        photos, self._burst = self._burst, []
        self._kept_bytes = 0
        if not photos:
            return []
        smalls = [photo.small for photo in photos]
        median = np.median(np.stack(smalls), axis=0).astype(np.uint8)
        light = photos[len(photos) // 2].light
        # The data bands printed on the photos, the widest any photo of the burst shows:
        # their text changes from photo to photo and is no animal.
        bars = (max(p.bars[0] for p in photos), max(p.bars[1] for p in photos))
        looked_at = photos
        level = None
        if len(photos) > 1:
            looked_at, median = _exposures_matched(photos, median, bars)
            level = self._burst_level(looked_at, median, bars)
        # The empty view is brought to the exposure of the median the photos are compared
        # with: the matched one in a burst, so that revealed_ground weighs like with like.
        reference = self.bank.reference(median, light)
        if reference is None and len(photos) == 1:
            self.bank.add(smalls[0], light)  # the camera's first view: a reference to come
            return self._located(photos, [[]], unprocessed=NO_REFERENCE)
        found = self._find(looked_at, median if len(photos) > 1 else None, reference, bars, level)
        for small, candidates in zip(smalls, found, strict=True):
            if not candidates:
                self.bank.add(small, light)
        return self._located(photos, found)

    def _find(
        self,
        photos: list[_Photo],
        median: np.ndarray | None,
        reference: np.ndarray | None,
        bars: tuple[int, int],
        level: float | None,
    ) -> list[list[Candidate]]:
        """Per photo, the candidates found against the burst's ``median`` (None: a single
        photo) and the camera's empty view ``reference``, ghosts dropped and, in a burst,
        corroborated. Beside the median the empty view only tells a ghost (the ground an
        animal of the median stood on, ``revealed_ground``); it is asked for animals of its
        own only when the median found nothing in the whole burst: it is there for the
        animal the median swallows (still in every photo); taken hours before, it also
        differs by shadows, sun and grown leaves, which beside an animal the median found
        counted a second one (``docs/benchmarks.md``, "Real bursts by camera")."""
        empty_view = reference if median is not None else None
        against_median = [
            self._candidates(photo, median, BURST, bars, level, empty_view=empty_view)
            for photo in photos
        ]
        found = _kept(against_median)
        if reference is None or (median is not None and any(found)):
            return found
        looked = [
            self._candidates(photo, reference, BANK, bars, level, earlier)
            for photo, earlier in zip(photos, against_median, strict=True)
        ]
        return _kept(looked)

    def _located(
        self, photos: list[_Photo], found: list[list[Candidate]], unprocessed: str | None = None
    ) -> Iterator[Located]:
        for photo, candidates in zip(photos, found, strict=True):
            frame = photo.frame
            why = unprocessed
            if frame is None:
                frame = self._read_back(photo)
                if frame is None:
                    frame = np.zeros(photo.shape, np.uint8)
                    candidates, why = [], READ_AGAIN_FAILED
            yield Located(photo.timestamp, frame, candidates, unprocessed=why, file=photo.file)

    def _read_back(self, photo: _Photo) -> np.ndarray | None:
        """The photo's pixels read again, or None when they are not what was located."""
        assert self.read_again is not None and photo.key is not None
        frame = self.read_again(photo.key)
        self.read_back += 1
        same = frame is not None and frame.shape == photo.shape
        if same and np.array_equal(self.gate.small_grey(frame), photo.small):
            return frame
        log.warning("%s changed or went while it was processed: not counted", photo.key)
        return None

    def _burst_level(
        self, photos: list[_Photo], median: np.ndarray, bars: tuple[int, int]
    ) -> float:
        """The difference level against the burst's median: ``NOISE_MULTIPLE`` times its
        noise, between ``quiet_burst_threshold`` and ``threshold`` (see ``burst_noise``)."""
        settings = self.gate.settings
        low = min(settings.quiet_burst_threshold, settings.threshold)
        smalls = [blank_bars(p.small, median, bars, p.shape[0]) for p in photos]
        noise = burst_noise(smalls, median)
        level = float(np.clip(NOISE_MULTIPLE * noise, low, settings.threshold))
        log.debug(
            "burst of %d photos: noise %.1f, difference level %.1f", len(photos), noise, level
        )
        return level

    def _candidates(
        self,
        photo: _Photo,
        background: np.ndarray | None,
        source: str,
        bars: tuple[int, int] = (0, 0),
        level: float | None = None,
        earlier: Sequence[tuple[Candidate, bool]] = (),
        empty_view: np.ndarray | None = None,
    ) -> list[tuple[Candidate, bool]]:
        """``earlier`` and what differs from ``background`` (the burst's median,
        ``BURST``, or the camera's empty view, ``BANK``) in ``photo``: (candidate, whether
        its outline is the background's, a possible ghost; ``_without_ghosts`` decides).
        ``level``: the difference level against the median (``_burst_level``); the empty
        view, another moment's light, is compared at the settings' ``threshold``.
        ``empty_view``: the camera's empty view, when the bank has one, against which a
        difference from the median that is the bare ground is known for a ghost
        (``revealed_ground``) and dropped."""
        found = list(earlier)
        if background is None:
            return found
        # The gate reads only the photo's shape from it (its pixels may be on disk).
        shape_of = np.broadcast_to(np.zeros((), np.uint8), photo.shape)
        small = blank_bars(photo.small, background, bars, photo.shape[0])
        threshold = level if source == BURST else None
        for box in self.gate.boxes_against(shape_of, background, small, threshold):
            if is_band(box, photo.shape[1]):
                continue  # a band of light across the frame, or the data bar
            region = self.gate.small_box(box)
            if (
                empty_view is not None
                and region is not None
                and revealed_ground(small[region], background[region], empty_view[region])
            ):
                continue  # the ground an animal stood on in most photos of the burst
            # The outline is the background's: what stands there in the other
            # photos (or stood there in the empty view) may not be in this one.
            ghostly = self.gate.is_ghost(box, background=background)
            same = [i for i, (other, _) in enumerate(found) if overlap_of(box, other.box) > 0.5]
            if same:  # found against the other reference too: keep the surer one
                if not ghostly and all(found[i][1] for i in same):
                    found[same[0]] = (Candidate(box, source), False)
                continue
            found.append((Candidate(box, source), ghostly))
        return found

    def track_rules(self, tracking: TrackingSettings) -> tuple[TrackingSettings, float]:
        return photo_track_rules(tracking), 0.0

    def stillness(self, box: Box) -> tuple[float, float, float] | None:
        return None  # photos seconds apart: no "frame before" to measure against

    def is_ghost(self, box: Box) -> bool:
        return False


def _exposures_matched(
    photos: list[_Photo], median: np.ndarray, bars: tuple[int, int]
) -> tuple[list[_Photo], np.ndarray]:
    """The burst's photos with their small copies brought to one exposure (that of the
    burst's median, ``exposure.matched_exposure``, over the rows between the data bars),
    and the median of those. A photo whose whole view is brighter than the others (the
    camera's exposure or its lamp stepped) otherwise differs everywhere, and the animal in
    it is lost in more change than an animal makes."""
    rows = scene_rows(bars, photos[0].shape[0], median.shape[0])
    matched = [matched_exposure(photo.small, median, rows) for photo in photos]
    if all(m is photo.small for m, photo in zip(matched, photos, strict=True)):
        return photos, median
    looked_at = [replace(photo, small=m) for photo, m in zip(photos, matched, strict=True)]
    return looked_at, np.median(np.stack(matched), axis=0).astype(np.uint8)


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


# A difference from the burst's median is the bare ground when, inside its box, the photo is
# at least this many times closer to the camera's empty view than the median is. On
# field-train's bursts fed by camera the ground revealed where an animal had stood was 7-9
# times closer, every other candidate at most 1.5 (docs/benchmarks.md, "The ground an
# animal stood on").
REVEALED_RATIO = 3.0


def revealed_ground(photo: np.ndarray, median: np.ndarray, empty_view: np.ndarray) -> bool:
    """Whether a region where ``photo`` differs from the burst's ``median`` shows the
    camera's ``empty_view`` there while the median does not (grey, the same small region of
    each): an animal stood there in most of the burst's photos, so the median holds it,
    and this photo shows the ground behind it, a ghost, whatever its outline says. Two
    regions that both differ from the empty view (an animal in the photo, shadows or sun
    since the view was taken) are left to the other rules."""
    to_photo = float(cv2.absdiff(photo, empty_view).mean())
    to_median = float(cv2.absdiff(median, empty_view).mean())
    return to_median > REVEALED_RATIO * max(to_photo, 1.0)


def _without_ghosts(looked: list[list[tuple[Candidate, bool]]]) -> list[list[Candidate]]:
    """Per photo, the candidates that are not ghosts. One whose outline is the background's
    (``MotionGate.is_ghost``) is taken for a ghost, as in video, unless it is the only thing
    found in its photo of a burst: the outline test alone took large animals walking past a
    textured background for ghosts, and real Reconyx bursts lost whole animals to it. Where
    a photo shows the animal elsewhere too (it landed, then stood where the burst's median
    has it), the hole is the ghost; a single photo against the empty view has nothing else
    to tell it by. (Also calling a lone candidate a ghost when another photo shows the same
    pixels in the same box, a hole that stays put, lost more real animals than ghosts on
    field-train's bursts: not done.)"""
    burst = len(looked) > 1
    return [
        [c for c, ghostly in candidates if not ghostly or (burst and len(candidates) == 1)]
        for candidates in looked
    ]


def _kept(looked: list[list[tuple[Candidate, bool]]]) -> list[list[Candidate]]:
    """Per photo, the candidates that are no ghost and, in a burst, corroborated."""
    found = _without_ghosts(looked)
    return _corroborated(found) if len(looked) > 1 else found


# A burst's difference level is this many times its noise (``burst_noise``), within the
# settings' bounds. On field-train's real Reconyx bursts the animals that only a lower level
# than 16 finds were all in bursts whose noise was at most 2.5 grey levels, and the empty
# triggers a lower level counted all in bursts of 3 or more (docs/benchmarks.md, "Real
# bursts").
NOISE_MULTIPLE = 5.0
# The share of a burst's pixels that may differ from its median by more than its noise:
# leaves, flicker and sensor noise, not the animal, which covers less of the view.
NOISE_QUANTILE = 90


def burst_noise(smalls: Sequence[np.ndarray], median: np.ndarray) -> float:
    """How much a burst's photos differ from its median over most of the view: the
    ``NOISE_QUANTILE`` percentile of the absolute differences of all its photos (grey
    levels, at motion resolution, blurred). A still night view under the IR lamp is about
    1, leaves in sun and wind, haze or a flickering light 3 to 10."""
    diffs = np.stack([cv2.absdiff(small, median) for small in smalls])
    return float(np.percentile(diffs, NOISE_QUANTILE))


# A candidate is corroborated by one in another photo of its burst whose centre is within
# this many box sizes: an animal walks about its length a second, photos are a second or
# two apart; a flicker of leaves in one photo has nothing near it in the others.
CORROBORATING_SIZES = 3.0
# ... and that photo at most this many photos before or after it (one the gate missed the
# animal in may lie between). Near in place but far in time is where the animal was, not
# where it is: on field-train's real bursts the flickers that had only such a partner were
# half the empty triggers counted and several second tracks beside an animal.
CORROBORATING_PHOTOS = 2
# ... and of a like size: the longer side of either at most this many times the other's.
# "Near" is counted in the larger box's sizes, so without this a box spanning half the view
# (the lamp or the exposure stepping over a band of it) was near everything in the photos
# beside it, and made a flicker there, or itself, a second animal. An animal's box changes
# less than this from one photo to the next; one that shrinks more (turning, stepping into
# cover) is still found where a photo within two shows it at its new size, and the tracker
# links it to its track (``Tracker.relink_missed``).
CORROBORATING_SCALE = 3.0


def like_sized(box: Box, other: Box, scale: float = CORROBORATING_SCALE) -> bool:
    """Whether the longer sides of ``box`` and ``other`` are within ``scale`` of each
    other."""
    side, other_side = max(box[2], box[3]), max(other[2], other[3])
    return side <= scale * other_side and other_side <= scale * side


def _corroborated(found: list[list[Candidate]]) -> list[list[Candidate]]:
    """Per photo, the candidates that a photo of the burst at most ``CORROBORATING_PHOTOS``
    away has one near and like-sized."""
    kept = []
    for i, candidates in enumerate(found):
        others = [
            c.box
            for j, cs in enumerate(found)
            if j != i and abs(j - i) <= CORROBORATING_PHOTOS
            for c in cs
        ]
        kept.append(
            [
                c
                for c in candidates
                if near_any(c.box, [o for o in others if like_sized(c.box, o)], CORROBORATING_SIZES)
            ]
        )
    return kept
