"""Synthetic camera-trap scenes with ground truth, for tests, the demo and benchmarks.

A ``Scene`` is a noisy, static, textured background (grass and tree trunks), animals
("sprites" of known classes) that walk along known paths at known times, and optional
branches that sway in the wind without ever going anywhere. It renders frame by frame,
deterministically from its seed, and knows its own truth: for every event (a burst of
activity separated from the next by at least ``event_gap_s``) and label, MaxN, the most
animals of that label visible (at least half inside the frame) in one frame.

Writers: ``write_video`` (``.mp4`` with ``mp4v`` or ``.avi`` with ``MJPG``, both available in
opencv-python-headless) and ``write_image_burst`` (JPEGs with an EXIF DateTimeOriginal
that this module writes itself, like a camera trap's photo bursts).

Sprites come from a ``SpriteSource``: ``ProceduralSprites`` draws a few animal-like classes
that differ in shape, colour and texture (a tiny classifier learns them in seconds;
``write_sprite_dataset`` writes their crops the way the pipeline's classifier sees them), and
``FolderSprites`` pastes real images from class folders (e.g. CIFAR-10 upscaled, for a demo
with the shipped model).

Only numpy and OpenCV: this module ships with the edge agent (the README demo runs it).
"""

from __future__ import annotations

import itertools
import math
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from edge_agent.vision.classifier import crop_square

# -- sprites -------------------------------------------------------------------------------


class SpriteSource(Protocol):
    """Makes an animal image of a class: ``(BGR uint8, alpha float32 0..1)`` ``width`` wide."""

    labels: list[str]

    def sprite(
        self, label: str, width: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]: ...


def _smooth_noise(shape: tuple[int, int], cell: int, rng: np.random.Generator) -> np.ndarray:
    """Value noise in [-1, 1] with features about ``cell`` pixels wide."""
    h, w = shape
    small = rng.uniform(-1, 1, (max(2, h // cell + 2), max(2, w // cell + 2))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _draw_deer(img: np.ndarray, mask: np.ndarray, colour: tuple[int, ...], u: float) -> None:
    dark = tuple(int(c * 0.6) for c in colour)
    legs = [(22, 60), (32, 60), (64, 60), (74, 60)]
    for x, y in legs:
        for target, value in ((img, dark), (mask, 255)):
            cv2.line(target, (int(x * u), int(y * u)), (int(x * u), int(95 * u)), value, int(4 * u))
    for target, value in ((img, colour), (mask, 255)):
        cv2.ellipse(
            target, (int(48 * u), int(52 * u)), (int(34 * u), int(15 * u)), 0, 0, 360, value, -1
        )
        cv2.line(target, (int(78 * u), int(48 * u)), (int(88 * u), int(22 * u)), value, int(8 * u))
        cv2.ellipse(
            target, (int(91 * u), int(18 * u)), (int(8 * u), int(5 * u)), 20, 0, 360, value, -1
        )
    # Antlers and a pale rump patch.
    for target, value in ((img, (40, 70, 90)), (mask, 255)):
        cv2.line(
            target, (int(88 * u), int(12 * u)), (int(82 * u), int(2 * u)), value, max(1, int(2 * u))
        )
        cv2.line(
            target, (int(92 * u), int(12 * u)), (int(97 * u), int(2 * u)), value, max(1, int(2 * u))
        )
    cv2.circle(img, (int(16 * u), int(48 * u)), int(6 * u), (200, 215, 225), -1)


def _draw_boar(img: np.ndarray, mask: np.ndarray, colour: tuple[int, ...], u: float) -> None:
    for x in (24, 36, 62, 74):
        for target, value in ((img, (25, 25, 25)), (mask, 255)):
            cv2.rectangle(
                target, (int(x * u), int(45 * u)), (int((x + 7) * u), int(60 * u)), value, -1
            )
    for target, value in ((img, colour), (mask, 255)):
        cv2.ellipse(
            target, (int(48 * u), int(32 * u)), (int(40 * u), int(20 * u)), 0, 0, 360, value, -1
        )
        pts = np.array([[80, 18], [99, 34], [80, 44]], np.float32) * u
        cv2.fillPoly(target, [pts.astype(np.int32)], value)
    # Bristly back: grizzled stripes.
    for x in range(14, 84, 6):
        cv2.line(
            img,
            (int(x * u), int(14 * u)),
            (int((x + 3) * u), int(30 * u)),
            (48, 46, 44),
            max(1, int(2 * u)),
        )
    cv2.circle(img, (int(96 * u), int(34 * u)), max(1, int(3 * u)), (150, 160, 200), -1)


def _draw_fox(img: np.ndarray, mask: np.ndarray, colour: tuple[int, ...], u: float) -> None:
    for x in (30, 38, 64, 72):
        for target, value in ((img, (20, 20, 30)), (mask, 255)):
            cv2.line(
                target, (int(x * u), int(36 * u)), (int(x * u), int(54 * u)), value, int(3 * u)
            )
    for target, value in ((img, colour), (mask, 255)):
        cv2.ellipse(
            target, (int(52 * u), int(32 * u)), (int(26 * u), int(10 * u)), 0, 0, 360, value, -1
        )
        cv2.ellipse(
            target, (int(16 * u), int(30 * u)), (int(16 * u), int(7 * u)), -15, 0, 360, value, -1
        )
        pts = np.array([[74, 16], [99, 30], [74, 36]], np.float32) * u
        cv2.fillPoly(target, [pts.astype(np.int32)], value)
        ears = np.array([[76, 18], [79, 4], [85, 20]], np.float32) * u
        cv2.fillPoly(target, [ears.astype(np.int32)], value)
    cv2.circle(img, (int(3 * u), int(33 * u)), int(5 * u), (235, 240, 240), -1)
    cv2.ellipse(
        img, (int(56 * u), int(38 * u)), (int(16 * u), int(4 * u)), 0, 0, 360, (210, 225, 235), -1
    )


def _draw_hare(img: np.ndarray, mask: np.ndarray, colour: tuple[int, ...], u: float) -> None:
    for target, value in ((img, colour), (mask, 255)):
        cv2.ellipse(
            target, (int(45 * u), int(58 * u)), (int(28 * u), int(20 * u)), 0, 0, 360, value, -1
        )
        cv2.circle(target, (int(74 * u), int(42 * u)), int(12 * u), value, -1)
        cv2.ellipse(
            target, (int(70 * u), int(18 * u)), (int(4 * u), int(16 * u)), -10, 0, 360, value, -1
        )
        cv2.ellipse(
            target, (int(80 * u), int(18 * u)), (int(4 * u), int(16 * u)), 10, 0, 360, value, -1
        )
        cv2.ellipse(
            target, (int(35 * u), int(76 * u)), (int(18 * u), int(5 * u)), 0, 0, 360, value, -1
        )
    cv2.circle(img, (int(18 * u), int(54 * u)), int(6 * u), (245, 245, 245), -1)
    cv2.circle(img, (int(79 * u), int(39 * u)), max(1, int(2 * u)), (10, 10, 10), -1)
    for x in (66, 84):
        cv2.line(
            img,
            (int(x * u), int(6 * u)),
            (int(x * u), int(12 * u)),
            (20, 20, 20),
            max(1, int(2 * u)),
        )


# label: (base colour BGR, height / width, drawing, texture strength)
_PROCEDURAL = {
    "deer": ((105, 155, 200), 0.95, _draw_deer, 0.10),
    "boar": ((18, 19, 24), 0.62, _draw_boar, 0.30),
    "fox": ((30, 130, 250), 0.56, _draw_fox, 0.08),
    "hare": ((195, 200, 205), 0.86, _draw_hare, 0.18),
}


class ProceduralSprites:
    """Drawn animal-like classes (``deer``, ``boar``, ``fox``, ``hare``) with per-individual
    variation in colour, proportions and fur texture; learnable by a tiny CNN."""

    def __init__(self, labels: Sequence[str] | None = None) -> None:
        self.labels = list(labels or _PROCEDURAL)
        unknown = set(self.labels) - set(_PROCEDURAL)
        if unknown:
            raise ValueError(
                f"no procedural sprite for {sorted(unknown)}; have {sorted(_PROCEDURAL)}"
            )

    def sprite(
        self, label: str, width: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        colour, aspect, draw, texture = _PROCEDURAL[label]
        # Draw at 4x and shrink: anti-aliased edges, like a real photo.
        scale = 4
        u = width * scale / 100.0
        aspect *= rng.uniform(0.92, 1.08)
        big = (max(4, round(width * aspect * scale)), width * scale)
        img = np.zeros((*big, 3), np.uint8)
        mask = np.zeros(big, np.uint8)
        jitter = rng.uniform(0.85, 1.15)
        tint = np.clip(np.array(colour) * jitter + rng.normal(0, 6, 3), 0, 255)
        draw(img, mask, tuple(int(c) for c in tint), u)
        size = (width, max(2, round(big[0] / scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(mask, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        fur = 1.0 + texture * _smooth_noise(img.shape[:2], max(2, width // 12), rng)
        img = np.clip(img.astype(np.float32) * fur[..., None], 0, 255).astype(np.uint8)
        return img, alpha


class FolderSprites:
    """Real images from class folders (``root/<label>/*.jpg|png``), pasted as opaque
    rectangles (CIFAR-10 pictures have their own background), upscaled to the width asked."""

    def __init__(
        self, root: str | Path, labels: Sequence[str] | None = None, limit: int = 500
    ) -> None:
        self.root = Path(root)
        folders = sorted(p for p in self.root.iterdir() if p.is_dir())
        self.files: dict[str, list[Path]] = {}
        for folder in folders:
            if labels is not None and folder.name not in labels:
                continue
            files = sorted(
                p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
            )[:limit]
            if files:
                self.files[folder.name] = files
        if not self.files:
            raise ValueError(f"{self.root} has no class folders with images")
        self.labels = sorted(self.files)

    def sprite(
        self, label: str, width: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        files = self.files[label]
        image = cv2.imread(str(files[int(rng.integers(len(files)))]), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"unreadable sprite image under {self.root / label}")
        height = max(2, round(width * image.shape[0] / image.shape[1]))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
        return image, np.ones((height, width), np.float32)


# -- background ----------------------------------------------------------------------------


def textured_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A static grass-and-forest-like BGR picture: multi-scale noise, trunks, grass blades."""
    shape = (height, width)
    mix = sum(_smooth_noise(shape, cell, rng) / (i + 1) for i, cell in enumerate((48, 20, 8, 3)))
    mix = (mix - mix.min()) / (np.ptp(mix) + 1e-6)
    dark_green = np.array([35, 75, 45], np.float32)
    olive = np.array([50, 105, 90], np.float32)
    image = dark_green + mix[..., None] * (olive - dark_green)
    # Darker woods in the upper part, lit grass lower down.
    ramp = np.linspace(0.85, 1.05, height, dtype=np.float32)[:, None, None]
    image = np.clip(image * ramp, 0, 255).astype(np.uint8)
    for _ in range(max(1, width // 90)):
        x = int(rng.integers(0, width))
        w = int(rng.integers(max(3, width // 60), max(5, width // 25)))
        top = int(rng.integers(0, height // 4))
        colour = tuple(int(c) for c in rng.integers(25, 60, 3))
        cv2.rectangle(image, (x, top), (x + w, int(height * rng.uniform(0.35, 0.55))), colour, -1)
    for _ in range(width * height // 150):
        x = int(rng.integers(0, width))
        y = int(rng.integers(height // 2, height))
        length = int(rng.integers(3, 3 + height // 30))
        lean = int(rng.integers(-2, 3))
        shade = rng.uniform(0.7, 1.4)
        colour = tuple(int(min(255, c * shade)) for c in (40, 110, 70))
        cv2.line(image, (x, y), (x + lean, y - length), colour, 1)
    return image


def _paste(frame: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, cx: float, cy: float) -> None:
    """Alpha-blend ``sprite`` centred on (cx, cy), clipped to the frame."""
    h, w = alpha.shape
    x0, y0 = round(cx - w / 2), round(cy - h / 2)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + w), min(frame.shape[0], y0 + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sx0, sy0 = fx0 - x0, fy0 - y0
    a = alpha[sy0 : sy0 + fy1 - fy0, sx0 : sx0 + fx1 - fx0, None]
    s = sprite[sy0 : sy0 + fy1 - fy0, sx0 : sx0 + fx1 - fx0].astype(np.float32)
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    frame[fy0:fy1, fx0:fx1] = (a * s + (1 - a) * region).astype(np.uint8)


# -- actors --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Walk:
    """One animal: its class, size and path.

    ``path`` holds ``(t, x, y)`` points, ``t`` in seconds from the scene start and ``x, y``
    the sprite centre as fractions of the frame (outside 0..1 is off-screen); the animal
    moves linearly between points and exists from the first point's time to the last's.
    ``wander`` (fraction of the frame width) adds a slow random sway around the path, like
    an animal grazing or shifting its weight.
    """

    label: str
    path: tuple[tuple[float, float, float], ...]
    width: float = 0.16
    wander: float = 0.0
    seed: int = 0

    @property
    def start_s(self) -> float:
        return self.path[0][0]

    @property
    def end_s(self) -> float:
        return self.path[-1][0]

    def position(self, t: float) -> tuple[float, float, float] | None:
        """(x, y, heading) as fractions at time ``t``; None when the animal is not there."""
        path = self.path
        if t < path[0][0] or t > path[-1][0]:
            return None
        for (t0, x0, y0), (t1, x1, y1) in itertools.pairwise(path):
            if t0 <= t <= t1:
                f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                x, y = x0 + f * (x1 - x0), y0 + f * (y1 - y0)
                heading = x1 - x0
                break
        else:
            _, x, y = path[-1]
            heading = 0.0
        if self.wander:
            phase = self.seed * 1.37
            x += self.wander * (math.sin(0.9 * t + phase) + 0.5 * math.sin(2.3 * t + 2 * phase))
            y += 0.5 * self.wander * math.sin(1.3 * t + 3 * phase)
        if heading == 0.0:  # standing: keep facing the way it came
            heading = next((b[1] - a[1] for a, b in itertools.pairwise(path) if b[1] != a[1]), 1.0)
        return x, y, heading


@dataclass(frozen=True)
class Branch:
    """A leafy branch hanging from ``base`` (fractions), swaying ``amplitude`` degrees around
    ``angle`` (0 = pointing right, 90 = straight down) with ``period`` seconds, in gusts."""

    base: tuple[float, float] = (0.9, 0.0)
    length: float = 0.4
    angle: float = 115.0
    amplitude: float = 10.0
    period: float = 1.6
    start_s: float = 0.0
    end_s: float = math.inf

    def angle_at(self, t: float) -> float:
        if not self.start_s <= t <= self.end_s:
            return self.angle
        gust = 0.65 + 0.35 * math.sin(2 * math.pi * t / (self.period * 5.3))
        return self.angle + self.amplitude * gust * math.sin(2 * math.pi * t / self.period)

    def draw(self, frame: np.ndarray, t: float) -> None:
        h, w = frame.shape[:2]
        bx, by = self.base[0] * w, self.base[1] * h
        a = math.radians(self.angle_at(t))
        length = self.length * w
        tip = (bx + length * math.cos(a), by + length * math.sin(a))
        thick = max(3, round(w / 70))
        cv2.line(
            frame, (round(bx), round(by)), (round(tip[0]), round(tip[1])), (80, 105, 120), thick
        )
        for i in range(1, 7):
            f = i / 6.5
            px, py = bx + f * (tip[0] - bx), by + f * (tip[1] - by)
            side = 1 if i % 2 else -1
            lx = px + side * 0.03 * w * math.sin(a)
            ly = py - side * 0.03 * w * math.cos(a)
            axes = (max(3, round(0.035 * w)), max(2, round(0.016 * w)))
            leaf_angle = math.degrees(a) + side * 40
            cv2.ellipse(frame, (round(lx), round(ly)), axes, leaf_angle, 0, 360, (50, 160, 80), -1)


# -- truth ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TruthEvent:
    start_s: float
    end_s: float
    counts: dict[str, int]  # label -> MaxN


@dataclass
class SceneTruth:
    """What a written clip or burst shows: events with MaxN per label, and where it is."""

    events: list[TruthEvent]
    start_time: datetime
    frames: int
    fps: float
    event_gap_s: float
    path: Path | None = None

    @property
    def totals(self) -> dict[str, int]:
        """Per label, the sum over events of MaxN (what a count report shows)."""
        totals: dict[str, int] = {}
        for event in self.events:
            for label, n in event.counts.items():
                totals[label] = totals.get(label, 0) + n
        return dict(sorted(totals.items()))


# -- scenes --------------------------------------------------------------------------------


@dataclass
class Scene:
    """A synthetic clip: background, animals and branches, rendered deterministically."""

    width: int = 320
    height: int = 240
    fps: float = 10.0
    duration_s: float = 10.0
    walks: list[Walk] = field(default_factory=list)
    branches: list[Branch] = field(default_factory=list)
    noise: float = 4.0
    seed: int = 0
    sprites: SpriteSource | None = None

    def __post_init__(self) -> None:
        if self.sprites is None:
            self.sprites = ProceduralSprites()
        rng = np.random.default_rng(self.seed)
        self.background = textured_background(self.width, self.height, rng)
        self._sprites: list[tuple[np.ndarray, np.ndarray]] = []
        for i, walk in enumerate(self.walks):
            if walk.label not in self.sprites.labels:
                raise ValueError(f"the sprite source has no class {walk.label!r}")
            sprite_rng = np.random.default_rng([self.seed, i, walk.seed])
            pixels = max(4, round(walk.width * self.width))
            self._sprites.append(self.sprites.sprite(walk.label, pixels, sprite_rng))

    @property
    def frame_count(self) -> int:
        return round(self.duration_s * self.fps)

    def visible(self, t: float) -> list[tuple[int, str]]:
        """(walk index, label) of the animals at least half inside the frame at ``t``."""
        seen = []
        for i, walk in enumerate(self.walks):
            pos = walk.position(t)
            if pos is None:
                continue
            alpha = self._sprites[i][1]
            h, w = alpha.shape
            cx, cy = pos[0] * self.width, pos[1] * self.height
            ix = max(0.0, min(cx + w / 2, self.width) - max(cx - w / 2, 0))
            iy = max(0.0, min(cy + h / 2, self.height) - max(cy - h / 2, 0))
            if ix * iy >= 0.5 * w * h:
                seen.append((i, walk.label))
        return seen

    def render(self, t: float, index: int = 0) -> np.ndarray:
        """The BGR frame at ``t`` seconds; ``index`` seeds its sensor noise."""
        frame = self.background.copy()
        placed = []
        for i, walk in enumerate(self.walks):
            pos = walk.position(t)
            if pos is not None:
                placed.append((pos[1], i, pos))
        for _, i, (x, y, heading) in sorted(placed):  # farther (higher up) first
            sprite, alpha = self._sprites[i]
            if heading < 0:  # sprites are drawn facing right
                sprite, alpha = sprite[:, ::-1], alpha[:, ::-1]
            bob = 0.004 * self.height * math.sin(2 * math.pi * 1.7 * t + i)
            _paste(frame, sprite, alpha, x * self.width, y * self.height + bob)
        for branch in self.branches:
            branch.draw(frame, t)
        if self.noise > 0:
            frame = np.clip(frame.astype(np.int16) + self._noise(index), 0, 255).astype(np.uint8)
        return frame

    def _noise(self, index: int) -> np.ndarray:
        """Sensor noise for frame ``index``: a shifted window into one of a few pre-drawn
        noise fields (drawing a fresh field per frame costs more than the rest of the
        frame, and nothing downstream can tell the difference)."""
        pad = 32
        if not hasattr(self, "_noise_bank"):
            rng = np.random.default_rng([self.seed, 7919])
            shape = (self.height + pad, self.width + pad, 3)
            self._noise_bank = [
                np.round(rng.standard_normal(shape, dtype=np.float32) * self.noise).astype(np.int16)
                for _ in range(4)
            ]
        pick = np.random.default_rng([self.seed, 7919, index]).integers(0, pad, 3)
        field = self._noise_bank[int(pick[0]) % len(self._noise_bank)]
        dy, dx = int(pick[1]), int(pick[2])
        return field[dy : dy + self.height, dx : dx + self.width]

    def frames(self, times: Sequence[float] | None = None) -> Iterator[tuple[float, np.ndarray]]:
        """(t, frame) at every frame time, or at the given ``times``."""
        if times is None:
            times = [i / self.fps for i in range(self.frame_count)]
        for i, t in enumerate(times):
            yield t, self.render(t, i)

    def truth(
        self,
        event_gap_s: float,
        times: Sequence[float] | None = None,
        start_time: datetime | None = None,
    ) -> SceneTruth:
        """Events and MaxN per label as seen at the frame ``times`` (default: every frame)."""
        if times is None:
            times = [i / self.fps for i in range(self.frame_count)]
        events: list[TruthEvent] = []
        current: dict[str, int] = {}
        first = last = None
        for t in times:
            seen = self.visible(t)
            if not seen:
                continue
            if last is not None and t - last >= event_gap_s:
                events.append(TruthEvent(first, last, dict(sorted(current.items()))))
                current, first = {}, None
            per_label: dict[str, int] = {}
            for _, label in seen:
                per_label[label] = per_label.get(label, 0) + 1
            for label, n in per_label.items():
                current[label] = max(current.get(label, 0), n)
            first = t if first is None else first
            last = t
        if first is not None:
            events.append(TruthEvent(first, last, dict(sorted(current.items()))))
        return SceneTruth(
            events=events,
            start_time=start_time or DEFAULT_START,
            frames=len(times),
            fps=self.fps,
            event_gap_s=event_gap_s,
        )


DEFAULT_START = datetime(2024, 6, 1, 4, 0, 0, tzinfo=UTC)


# -- building blocks for scenes ------------------------------------------------------------


def crossing(
    label: str,
    start_s: float,
    duration_s: float,
    *,
    k: int = 1,
    y: float = 0.62,
    direction: int = 1,
    width: float = 0.16,
    seed: int = 0,
) -> list[Walk]:
    """``k`` animals walking across the frame together, in a loose staggered group.

    They keep clear of each other (a camera counts two touching animals as one blob), and
    the group is short enough that all ``k`` are in view at once mid-crossing.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    walks = []
    rows = [0.0, -0.2, 0.2, -0.1, 0.1]
    spread = min(1.4 * width, 0.75 / max(1, k - 1)) if k > 1 else 0.0
    for i in range(k):
        lag = i * spread
        row = y + rows[i % len(rows)] * (1 if k > 1 else 0)
        margin = width * 0.6
        x0, x1 = -margin - lag, 1 + margin + (k - 1) * spread - lag
        if direction < 0:
            x0, x1 = 1 - x0, 1 - x1
        walks.append(
            Walk(label, ((start_s, x0, row), (start_s + duration_s, x1, row)), width, seed=seed + i)
        )
    return walks


def lingering(
    label: str,
    start_s: float,
    linger_s: float,
    *,
    walk_s: float = 3.0,
    spot: tuple[float, float] = (0.5, 0.62),
    width: float = 0.16,
    wander: float = 0.01,
    seed: int = 0,
) -> Walk:
    """An animal that walks in from the left, stays ``linger_s`` around ``spot`` (moving only
    by ``wander``, a fraction of the frame width) and walks out to the right."""
    x, y = spot
    path = (
        (start_s, -0.6 * width, y),
        (start_s + walk_s, x, y),
        (start_s + walk_s + linger_s, x, y),
        (start_s + 2 * walk_s + linger_s, 1 + 0.6 * width, y),
    )
    return Walk(label, path, width, wander=wander, seed=seed)


def example_scene(
    labels: Sequence[str] | None = None,
    *,
    width: int = 320,
    height: int = 240,
    fps: float = 10.0,
    gap_s: float = 20.0,
    seed: int = 0,
    sprites: SpriteSource | None = None,
) -> Scene:
    """A short clip with a bit of everything: two of one class crossing together, a gap, one
    of another class, a gap, a group of three, a branch swaying throughout. For the README
    demo and the benchmarks; events are ``gap_s`` (> the default event gap) apart."""
    sprites = sprites or ProceduralSprites()
    labels = list(labels or sprites.labels)
    rng = np.random.default_rng(seed)
    picks = [labels[int(i)] for i in rng.permutation(len(labels))[:3]]
    while len(picks) < 3:
        picks.append(labels[len(picks) % len(labels)])
    t = 2.0
    walks = crossing(picks[0], t, 7.0, k=2, seed=1)
    t += 7.0 + gap_s
    walks += crossing(picks[1], t, 6.0, direction=-1, y=0.7, seed=2)
    t += 6.0 + gap_s
    walks += crossing(picks[2], t, 8.0, k=3, y=0.6, width=0.13, seed=3)
    t += 8.0 + 2.0
    return Scene(
        width=width,
        height=height,
        fps=fps,
        duration_s=t,
        walks=walks,
        branches=[Branch(base=(0.92, 0.0), length=0.35)],
        seed=seed,
        sprites=sprites,
    )


# -- writers -------------------------------------------------------------------------------


def _writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    codec = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} with codec {codec}")
    return writer


def write_video(
    scene: Scene,
    path: str | Path,
    *,
    event_gap_s: float = 60.0,
    start_time: datetime | None = None,
) -> SceneTruth:
    """Render ``scene`` to ``path`` (.mp4: mp4v, .avi: MJPG); return its truth.

    The file's mtime is set to ``start_time`` + duration (default ``DEFAULT_START``), so a
    source that takes "mtime minus duration" as the clip start gets ``start_time`` back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = start_time or DEFAULT_START
    writer = _writer(path, scene.fps, (scene.width, scene.height))
    try:
        for _, frame in scene.frames():
            writer.write(frame)
    finally:
        writer.release()
    end = (start + timedelta(seconds=scene.frame_count / scene.fps)).timestamp()
    os.utime(path, (end, end))
    truth = scene.truth(event_gap_s, start_time=start)
    truth.path = path
    return truth


def exif_app1(
    taken: datetime,
    *,
    subsec: str | None = None,
    offset: str | None = None,
    big_endian: bool = False,
) -> bytes:
    """A minimal JPEG APP1 EXIF segment holding DateTimeOriginal (local clock time, no zone,
    as camera traps write it), and optionally SubSecTimeOriginal and OffsetTimeOriginal.
    ``big_endian`` writes Motorola ("MM") byte order, as some cameras do."""
    e = ">" if big_endian else "<"
    entries: list[tuple[int, bytes]] = [
        (0x9003, taken.strftime("%Y:%m:%d %H:%M:%S").encode() + b"\0")
    ]
    if offset:
        entries.append((0x9011, offset.encode() + b"\0"))
    if subsec:
        entries.append((0x9291, subsec.encode() + b"\0"))
    # TIFF header, IFD0 with one entry (the Exif IFD pointer), then the Exif IFD.
    ifd0_offset = 8
    exif_offset = ifd0_offset + 2 + 12 + 4
    data_offset = exif_offset + 2 + 12 * len(entries) + 4
    ifd0 = struct.pack(e + "H", 1) + struct.pack(e + "HHII", 0x8769, 4, 1, exif_offset)
    ifd0 += b"\0" * 4
    exif = struct.pack(e + "H", len(entries))
    blob = b""
    for tag, value in entries:
        if len(value) <= 4:
            field_value = value.ljust(4, b"\0")
        else:
            field_value = struct.pack(e + "I", data_offset + len(blob))
            blob += value
        exif += struct.pack(e + "HHI", tag, 2, len(value)) + field_value
    exif += b"\0" * 4
    header = b"MM\0*" if big_endian else b"II*\0"
    tiff = header + struct.pack(e + "I", ifd0_offset) + ifd0 + exif + blob
    payload = b"Exif\0\0" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def jpeg_with_exif(image: np.ndarray, app1: bytes, quality: int = 90) -> bytes:
    """Encode ``image`` as JPEG and insert ``app1`` right after the SOI marker."""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    data = encoded.tobytes()
    return data[:2] + app1 + data[2:]


def write_image_burst(
    scene: Scene,
    out_dir: str | Path,
    times: Sequence[float],
    *,
    start_time: datetime | None = None,
    timezone: str = "UTC",
    event_gap_s: float = 60.0,
    prefix: str = "IMG_",
    shuffle_mtime: bool = True,
) -> SceneTruth:
    """Write the scene at ``times`` (seconds) as JPEGs with EXIF DateTimeOriginal.

    EXIF holds the trap's local clock time in ``timezone`` (with SubSecTimeOriginal for
    bursts within one second), as camera traps write it. With ``shuffle_mtime`` the files'
    mtimes are in reverse order, so only EXIF gives the right order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = start_time or DEFAULT_START
    zone = ZoneInfo(timezone)
    for i, (t, frame) in enumerate(scene.frames(times)):
        taken = (start + timedelta(seconds=t)).astimezone(zone)
        subsec = f"{taken.microsecond // 10000:02d}"
        data = jpeg_with_exif(frame, exif_app1(taken.replace(tzinfo=None), subsec=subsec))
        file = out / f"{prefix}{i + 1:04d}.JPG"
        file.write_bytes(data)
        if shuffle_mtime:
            stamp = (start + timedelta(hours=1, seconds=-i)).timestamp()
            os.utime(file, (stamp, stamp))
    truth = scene.truth(event_gap_s, times=times, start_time=start)
    truth.path = out
    return truth


def write_sprite_dataset(
    out_dir: str | Path,
    per_class: int,
    size: int = 32,
    seed: int = 0,
    *,
    sprites: SpriteSource | None = None,
) -> dict[str, int]:
    """Write ``out_dir/<label>/NNNN.png`` crops as the pipeline's classifier sees them.

    Each crop is a sprite on a random patch of textured background with sensor noise and
    JPEG-like compression, cut with ``classifier.crop_square`` around a box as loose or
    tight as a motion box (sometimes clipped by the frame edge), at ``size`` x ``size``.
    Returns {label: count}.
    """
    sprites = sprites or ProceduralSprites()
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    canvas_w, canvas_h = 200, 150
    # Patches of a few large backgrounds: as varied, and much faster than one per crop.
    backdrops = [textured_background(640, 480, rng) for _ in range(4)]
    for label in sprites.labels:
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            backdrop = backdrops[int(rng.integers(len(backdrops)))]
            bx = int(rng.integers(0, 640 - canvas_w))
            by = int(rng.integers(0, 480 - canvas_h))
            frame = backdrop[by : by + canvas_h, bx : bx + canvas_w].copy()
            width = int(rng.integers(28, 80))
            sprite, alpha = sprites.sprite(label, width, rng)
            if rng.random() < 0.5:
                sprite, alpha = sprite[:, ::-1], alpha[:, ::-1]
            h, w = alpha.shape
            cx = canvas_w / 2 + rng.uniform(-30, 30)
            cy = canvas_h / 2 + rng.uniform(-20, 20)
            _paste(frame, sprite, alpha, cx, cy)
            noise = rng.normal(0, rng.uniform(2, 6), frame.shape)
            frame = np.clip(frame + noise, 0, 255).astype(np.uint8)
            quality = int(rng.integers(60, 95))
            frame = cv2.imdecode(
                cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1],
                cv2.IMREAD_COLOR,
            )
            # A motion box: the sprite's bounds, loosened or tightened a little.
            grow = rng.uniform(-0.1, 0.3, 4)
            x0 = cx - w / 2 - grow[0] * w
            y0 = cy - h / 2 - grow[1] * h
            x1 = cx + w / 2 + grow[2] * w
            y1 = cy + h / 2 + grow[3] * h
            if rng.random() < 0.15:  # entering at the frame edge: half the animal cut off
                x0 = max(x0, cx - 0.1 * w)
            box = (round(x0), round(y0), max(2, round(x1 - x0)), max(2, round(y1 - y0)))
            crop = crop_square(frame, box, (size, size))
            cv2.imwrite(str(folder / f"{n:04d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        counts[label] = per_class
    return counts
