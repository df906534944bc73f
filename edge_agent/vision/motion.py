"""Motion gate: frames in, candidate boxes (full-frame ``(x, y, w, h)``) out.

Pure numpy/OpenCV and testable on synthetic frames. Per frame:

1. Downscale to ``downscale_width`` (aspect kept), convert to grey and blur 5x5: the
   background model then sees less sensor noise and costs a fraction of full resolution.
2. Foreground: ``mog2`` (OpenCV's Gaussian-mixture background subtractor; it learns
   multimodal backgrounds such as leaves in the wind; its shadow pixels are ignored),
   ``diff`` (difference to a running-average background, cheaper on a Pi Zero) or
   ``whole_frame`` (MOG2 as a trigger; the box is the whole frame: close-up traps, where
   the animal fills the view and a crop around the motion would cut it up).
3. The optional mask image (black = ignore) and ``ignore_regions`` zero their pixels.
4. Morphology: an opening removes single-pixel noise, ``dilate_iterations`` dilations
   join the fragments of one animal (legs, a body split by a branch in front of it).
5. Connected components; the fragments of one animal that are still apart by less than
   ``merge_distance`` of the frame width are merged into one box. Two animals farther
   apart than that stay two boxes.
6. A blob with fewer foreground pixels than ``min_area`` of the frame is noise; a box
   larger than ``max_area`` of the frame, or a frame where more than ``max_area`` changed
   at once, is a lighting change or a camera knock, not an animal.

For the first ``warmup_frames`` frames the model learns fast and no box is reported; after
that it learns at ``1 / history`` per frame, so a still object fades into the background in
about ``history / 10`` frames, the same at the start of a clip as an hour into it.

Hold regions: ``boxes(frame, hold=[...])`` keeps the background model from learning what
lies inside the given boxes this frame (the pipeline passes the boxes of animals it is
already counting). A plain background subtractor absorbs a still object within
``history / 10`` frames or so: an animal resting in view would fade away and, when it
walks off, leave a "ghost" where it lay. Holding its box keeps it visible while it rests
and leaves no ghost behind.

What a box holds: ``stillness(box)`` (how much of it changed since the previous frame, how
solid and how steady its foreground is) and ``is_ghost(box)`` (whether its outline is in
the background image rather than in the frame) let the pipeline tell an animal that stands
still from a swaying branch and from a ghost (see ``tracking.Tracker.observe_stillness``).

Still photos: ``burst_background(photos)`` (their per-pixel median) and
``boxes_against(photo, background)`` replace the learned model for bursts of photos, which
are too far apart in time for one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from edge_agent.config import MotionSettings, TrackingSettings
from edge_agent.vision.candidates import Candidate, Located
from edge_agent.vision.geometry import Box, box_gap
from edge_agent.vision.scene_change import CUT, LIGHT, SceneChangeDetector

# MOG2 marks shadows 127 and foreground 255.
_FOREGROUND = 200
_BLUR = (5, 5)


class MotionGate:
    """Background subtraction gate; ``boxes(frame)`` -> full-frame boxes of moving things."""

    def __init__(
        self,
        settings: MotionSettings,
        *,
        mask: np.ndarray | str | Path | None = None,
    ) -> None:
        """``mask``: an image (or its path) where black means "ignore"; defaults to
        ``settings.mask`` read relative to the working directory (the pipeline resolves it
        against the config file's folder)."""
        self.settings = settings
        if mask is None and settings.mask:
            mask = settings.mask
        if isinstance(mask, str | Path):
            path = Path(mask)
            loaded = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if loaded is None:
                raise ValueError(f"motion mask {path} is not a readable image")
            mask = loaded
        self._mask_image = mask
        self.frames = 0
        self.last_foreground: np.ndarray | None = None
        self.last_filled: np.ndarray | None = None  # foreground after closing
        self._previous_filled: np.ndarray | None = None
        self._small: np.ndarray | None = None  # this frame, grey, at motion resolution
        self._previous: np.ndarray | None = None  # the frame before
        self._shape: tuple[int, int] | None = None
        self._valid: np.ndarray | None = None
        self._scale = 1.0
        self._model: cv2.BackgroundSubtractorMOG2 | None = None
        self._model_frames = 0
        self._average: np.ndarray | None = None
        self._scenes = SceneChangeDetector(settings.threshold)
        self.scene_change: str | None = None  # CUT or LIGHT at the frame that ended one
        self._open_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._dilate_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    # -- set-up --------------------------------------------------------------------------

    def reset(self, *, skip_warmup: bool = False) -> None:
        """Forget the background (a new scene: camera moved, new burst of photos).

        ``skip_warmup``: the next frame seeds the model and the one after reports boxes.
        """
        self.frames = self.settings.warmup_frames if skip_warmup else 0
        self._shape = None
        self._model = None
        self._average = None
        self._small = self._previous = None
        self.last_filled = self._previous_filled = None
        self._scenes.reset()

    def _setup(self, frame_shape: tuple[int, ...]) -> None:
        height, width = frame_shape[:2]
        target = min(self.settings.downscale_width, width)
        self._scale = target / width
        small = (max(1, round(height * self._scale)), target)
        self._shape = (height, width)
        valid = np.full(small, 255, np.uint8)
        if self._mask_image is not None:
            mask = self._mask_image
            if mask.ndim == 3:
                mask = cv2.cvtColor(mask, cv2.COLOR_BGR2GRAY)
            mask = cv2.resize(mask, (small[1], small[0]), interpolation=cv2.INTER_NEAREST)
            valid[mask < 128] = 0
        for fx, fy, fw, fh in self.settings.ignore_regions:
            x0, y0 = round(fx * small[1]), round(fy * small[0])
            x1, y1 = round((fx + fw) * small[1]), round((fy + fh) * small[0])
            valid[y0:y1, x0:x1] = 0
        self._valid = valid
        self._model_frames = 0
        if self.settings.method in ("mog2", "whole_frame"):
            self._model = cv2.createBackgroundSubtractorMOG2(
                history=self.settings.history,
                varThreshold=self.settings.threshold,
                detectShadows=True,
            )
        self._average = None

    # -- per frame -----------------------------------------------------------------------

    def small_grey(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` grey, at motion resolution, blurred: what the gate compares."""
        if self._shape != frame.shape[:2]:
            self._setup(frame.shape)
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if self._scale != 1.0:
            assert self._valid is not None
            size = (self._valid.shape[1], self._valid.shape[0])
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(grey, _BLUR, 0)

    def _hold_mask(self, hold: Sequence[Box], shape: tuple[int, int]) -> np.ndarray | None:
        if not hold:
            return None
        mask = np.zeros(shape, bool)
        for x, y, w, h in hold:
            # A margin: the animal moves a little between frames.
            mx, my = 0.15 * w, 0.15 * h
            x0 = max(0, int((x - mx) * self._scale))
            y0 = max(0, int((y - my) * self._scale))
            x1 = int(np.ceil((x + w + mx) * self._scale))
            y1 = int(np.ceil((y + h + my) * self._scale))
            mask[y0:y1, x0:x1] = True
        return mask if mask.any() else None

    def _learning_rate(self) -> float:
        """1 on the model's first frame, OpenCV's fast start-up rate during warm-up, then
        ``1 / history``. OpenCV's own schedule (``1 / min(2 n, history)``) would keep
        learning fast for ``history / 2`` frames, swallowing an animal that stops within
        the first minute of a clip in a frame or two."""
        self._model_frames += 1
        n = self._model_frames
        if n == 1:
            return 1.0
        if self.frames <= self.settings.warmup_frames:
            return 1.0 / min(2 * n, self.settings.history)
        return 1.0 / self.settings.history

    def _foreground(self, small: np.ndarray, hold: np.ndarray | None) -> np.ndarray:
        if self._model is not None:
            rate = self._learning_rate()
            if hold is None:
                raw = self._model.apply(small, learningRate=rate)
            else:
                # Detect without learning, then learn from a frame whose held pixels are
                # replaced by the background the model already has.
                raw = self._model.apply(small, learningRate=0)
                learn = small.copy()
                learn[hold] = self._model.getBackgroundImage()[hold]
                self._model.apply(learn, learningRate=rate)
            return np.where(raw > _FOREGROUND, 255, 0).astype(np.uint8)
        # diff: running average background.
        if self._average is None:
            self._average = small.astype(np.float32)
        diff = cv2.absdiff(small, cv2.convertScaleAbs(self._average))
        foreground = np.where(diff > self.settings.threshold, 255, 0).astype(np.uint8)
        alpha = 1.0 / self.settings.history if self.frames > self.settings.warmup_frames else 0.5
        learn_mask = None if hold is None else np.where(hold, 0, 255).astype(np.uint8)
        cv2.accumulateWeighted(small, self._average, alpha, mask=learn_mask)
        return foreground

    def boxes(
        self, frame: np.ndarray, hold: Sequence[Box] = (), timestamp: datetime | None = None
    ) -> list[Box]:
        """Boxes of moving things in ``frame`` (BGR or grey), in full-frame pixels.

        ``hold``: full-frame boxes whose contents the background must not learn this
        frame (animals being counted, so that one resting stays visible). ``timestamp``:
        the frame's time, for judging scene changes in seconds (:attr:`scene_change`).
        """
        if self._shape != frame.shape[:2]:
            self._setup(frame.shape)
        small = self.small_grey(frame)
        self.scene_change = self._scenes.update(small, self.background_image, timestamp)
        if self.scene_change is not None:
            # A new view (or new light): learn it from this frame on, as at the start of
            # a clip; a light change keeps no warm-up (the animals are still there).
            self.reset(skip_warmup=self.scene_change == LIGHT)
            self._setup(frame.shape)
            self._scenes.update(small, None, timestamp)
        assert self._valid is not None
        self.frames += 1
        self._previous, self._small = self._small, small
        self._previous_filled = self.last_filled
        foreground = self._foreground(small, self._hold_mask(hold, small.shape))
        foreground &= self._valid
        self.last_foreground = foreground
        if self.frames <= self.settings.warmup_frames or self._scenes.judging:
            return []
        return self._as_reported(self._blobs(foreground), frame)

    # -- what is inside a box ----------------------------------------------------------

    def small_box(self, box: Box) -> tuple[slice, slice] | None:
        """The rows and columns of full-frame ``box`` in the last frame's small copy (None
        before a frame, or for a box under two small pixels across)."""
        if self._small is None:
            return None
        x, y, w, h = box
        s = self._scale
        x0, y0 = max(0, int(x * s)), max(0, int(y * s))
        x1 = min(self._small.shape[1], int(np.ceil((x + w) * s)))
        y1 = min(self._small.shape[0], int(np.ceil((y + h) * s)))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return slice(y0, y1), slice(x0, x1)

    def stillness(self, box: Box) -> tuple[float, float, float] | None:
        """(changed, solid, steady) inside ``box`` in the last frame: the fraction of its
        pixels that changed by more than ``threshold`` since the frame before, the fraction
        that is foreground (after closing), and the IoU of that foreground with the frame
        before's. A resting animal: little changed, solid, steady. A swaying branch: thin,
        and different leaves move each frame. None without a frame before (photos)."""
        region = self.small_box(box)
        if region is None or self._previous is None or self.last_foreground is None:
            return None
        assert self._small is not None
        diff = cv2.absdiff(self._small[region], self._previous[region])
        changed = float(np.count_nonzero(diff > self.settings.threshold)) / diff.size
        filled = self.last_filled if self.last_filled is not None else self.last_foreground
        now = filled[region] > 0
        solid = float(np.count_nonzero(now)) / diff.size
        steady = 0.0
        if self._previous_filled is not None:
            before = self._previous_filled[region] > 0
            union = np.count_nonzero(now | before)
            steady = float(np.count_nonzero(now & before)) / union if union else 0.0
        return changed, solid, steady

    def background_image(self) -> np.ndarray | None:
        """The background the gate compares with, grey at motion resolution."""
        if self._model is not None:
            return self._model.getBackgroundImage()
        if self._average is not None:
            return cv2.convertScaleAbs(self._average)
        return None

    def is_ghost(self, box: Box, background: np.ndarray | None = None) -> bool:
        """Whether the foreground in ``box`` is a *ghost*: background revealed where
        something the model had absorbed (an animal already there at start-up) moved away.

        An object that arrived has its outline in the current frame; a ghost has it in the
        background image instead (the absorbed object's outline) and none in the frame,
        where the revealed ground continues its surroundings. ``background``: the image the
        last frame was compared with (``boxes_against``), else the learned one.
        """
        region = self.small_box(box)
        if background is None:
            background = self.background_image()
        if region is None or background is None or self.last_foreground is None:
            return False
        assert self._small is not None
        mask = self.last_foreground[region]
        if not mask.any():
            return False
        kernel = np.ones((3, 3), np.uint8)
        outline = cv2.dilate(mask, kernel) > cv2.erode(mask, kernel)
        if not outline.any():
            return False

        def edges(image: np.ndarray) -> float:
            patch = image[region].astype(np.float32)
            gx = cv2.Sobel(patch, cv2.CV_32F, 1, 0, ksize=3)
            gy = cv2.Sobel(patch, cv2.CV_32F, 0, 1, ksize=3)
            return float(np.hypot(gx, gy)[outline].mean())

        return edges(background) > edges(self._small)

    # -- still photos ------------------------------------------------------------------

    def burst_background(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """The per-pixel median of a burst of photos, at motion resolution.

        An animal that moves across the burst is absent from most photos at any given
        pixel, so the median is the empty scene, even in the burst's first photo.
        """
        if self._shape != frames[0].shape[:2]:
            self._setup(frames[0].shape)
        small = np.stack([self.small_grey(frame) for frame in frames])
        return np.median(small, axis=0).astype(np.uint8)

    def boxes_against(
        self,
        frame: np.ndarray,
        background: np.ndarray,
        small: np.ndarray | None = None,
        threshold: float | None = None,
    ) -> list[Box]:
        """Boxes of what differs from ``background`` (from ``burst_background``, or an
        empty view of the camera) by more than ``threshold`` grey levels (default: the
        settings'); no model is learned or updated. ``small``: the frame's
        ``small_grey``, when already made."""
        level = self.settings.threshold if threshold is None else threshold
        if self._shape != frame.shape[:2]:
            self._setup(frame.shape)
        assert self._valid is not None
        if small is None:
            small = self.small_grey(frame)
        self._previous, self._small = None, small  # photos: no "previous frame"
        diff = cv2.absdiff(small, background)
        foreground = np.where(diff > level, 255, 0).astype(np.uint8)
        foreground &= self._valid
        self.last_foreground = foreground
        return self._as_reported(self._blobs(foreground), frame)

    def _as_reported(self, found: list[Box], frame: np.ndarray) -> list[Box]:
        """The blobs, or in whole-frame mode the whole frame when anything moved."""
        if self.settings.method == "whole_frame":
            if found or self.settings.whole_frame_always:
                return [(0, 0, frame.shape[1], frame.shape[0])]
            return []
        return found

    def _blobs(self, foreground: np.ndarray) -> list[Box]:
        s = self.settings
        frame_px = foreground.shape[0] * foreground.shape[1]
        moving = cv2.countNonZero(foreground)
        self.last_filled = None
        if moving == 0 or moving > s.max_area * frame_px:
            return []
        cleaned = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, self._open_kernel)
        if cv2.countNonZero(cleaned) == 0:
            return []  # only speckle noise
        joined, filled = cleaned, cleaned
        if s.dilate_iterations:
            joined = cv2.dilate(cleaned, self._dilate_kernel, iterations=s.dilate_iterations)
            # Closing: the dilated blob shrunk back, holes and gaps between fragments filled.
            filled = cv2.erode(joined, self._dilate_kernel, iterations=s.dilate_iterations)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
        if count <= 1:
            return []
        # A blob's area is its filled area: a mottled animal has holes but is not small.
        self.last_filled = filled
        pixels = np.bincount(labels[filled > 0], minlength=count)
        grow = 2 * s.dilate_iterations  # what dilation added to each side
        fh, fw = foreground.shape
        blobs = []
        for i in range(1, count):
            if pixels[i] == 0:
                continue
            x, y, w, h = (int(v) for v in stats[i, :4])
            # Dilation stops at the frame edge: only shrink the sides it could grow.
            x0 = x + grow if x > 0 else 0
            y0 = y + grow if y > 0 else 0
            x1 = x + w - grow if x + w < fw else fw
            y1 = y + h - grow if y + h < fh else fh
            x1, y1 = max(x0 + 1, x1), max(y0 + 1, y1)
            blobs.append([x0, y0, x1 - x0, y1 - y0, int(pixels[i])])
        blobs = merge_boxes(blobs, s.merge_distance * foreground.shape[1])
        inv = 1.0 / self._scale
        height, width = self._shape or foreground.shape
        out: list[Box] = []
        for x, y, w, h, px in blobs:
            if px < s.min_area * frame_px or w * h > s.max_area * frame_px:
                continue
            x0, y0 = max(0, int(x * inv)), max(0, int(y * inv))
            x1, y1 = (
                min(width, int(np.ceil((x + w) * inv))),
                min(height, int(np.ceil((y + h) * inv))),
            )
            out.append((x0, y0, x1 - x0, y1 - y0))
        return out


def merge_boxes(blobs: list[list[int]], distance: float) -> list[list[int]]:
    """Merge [x, y, w, h, pixels] blobs whose edges are within ``distance`` until none are."""
    blobs = [list(b) for b in blobs]
    merged = True
    while merged and len(blobs) > 1:
        merged = False
        for i in range(len(blobs)):
            for j in range(i + 1, len(blobs)):
                a, b = blobs[i], blobs[j]
                if box_gap(a, b) <= distance:
                    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
                    x1 = max(a[0] + a[2], b[0] + b[2])
                    y1 = max(a[1] + a[3], b[1] + b[3])
                    blobs[i] = [x0, y0, x1 - x0, y1 - y0, a[4] + b[4]]
                    del blobs[j]
                    merged = True
                    break
            if merged:
                break
    return blobs


# -- the motion gate as a localiser ---------------------------------------------------------

MOTION = "motion"
# A pause longer than this (no frames: interval capture with a long interval) and the old
# background is stale: it is relearned, the first frame after the pause seeding it without
# a warm-up, so that a short burst still reports motion.
PAUSE_S = 60.0


class MotionLocaliser:
    """Video and live cameras (``candidates.Localiser``): the motion gate on every frame,
    each frame located at once. A cut of the view (``scene_change``) marks the frame
    ``new_view``; the ``whole_frame`` method needs no travel of a counted track."""

    def __init__(self, settings: MotionSettings, *, mask: np.ndarray | None = None) -> None:
        self.gate = MotionGate(settings, mask=mask)
        self._last: datetime | None = None

    def locate(
        self, timestamp: datetime, frame: np.ndarray, hold: Sequence[Box], file: str | None = None
    ) -> list[Located]:
        if self._last is not None and (timestamp - self._last).total_seconds() > PAUSE_S:
            self.gate.reset(skip_warmup=True)
        self._last = timestamp
        boxes = self.gate.boxes(frame, hold=hold, timestamp=timestamp)
        found = [Candidate(box, MOTION) for box in boxes]
        cut = self.gate.scene_change == CUT
        return [Located(timestamp, frame, found, new_view=cut, file=file)]

    def flush(self) -> list[Located]:
        return []

    def track_rules(self, tracking: TrackingSettings) -> tuple[TrackingSettings, float]:
        whole_frame = self.gate.settings.method == "whole_frame"
        return tracking, 0.0 if whole_frame else tracking.min_displacement

    def stillness(self, box: Box) -> tuple[float, float, float] | None:
        return self.gate.stillness(box)

    def is_ghost(self, box: Box) -> bool:
        return self.gate.is_ghost(box)
