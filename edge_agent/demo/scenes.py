"""Synthetic camera-trap scenes with ground truth, for tests, the demo and benchmarks.

A ``Scene`` is a noisy, static, textured background (grass and tree trunks), animals
("sprites" of known classes) that walk along known paths at known times, and optional
branches that sway in the wind without ever going anywhere. It renders frame by frame,
deterministically from its seed, and knows its own truth: for every event (a burst of
activity separated from the next by at least ``event_gap_s``) and label, MaxN, the most
animals of that label visible (at least half inside the frame) in one frame.

Sprites come from a ``SpriteSource`` (``sprites``); ``writers`` renders scenes to videos
and to photo bursts with EXIF times, and writes sprite datasets for training.

Only numpy and OpenCV: this module ships with the edge agent (the README demo runs it).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from edge_agent.demo.sprites import (
    ProceduralSprites,
    SpriteSource,
    paste_sprite,
    textured_background,
)


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

    def boxes(self, t: float) -> list[tuple[int, str, tuple[float, float, float, float]]]:
        """(walk index, label, box) of the animals ``visible`` at ``t``: the box around the
        sprite's opaque pixels as it is drawn, clipped to the frame and normalised (``x, y,
        w, h`` from the top-left corner, as MegaDetector writes boxes): a perfect detector's."""
        found = []
        for i, label in self.visible(t):
            x, y, heading = self.walks[i].position(t)  # type: ignore[misc]
            alpha = self._sprites[i][1]
            if heading < 0:
                alpha = alpha[:, ::-1]
            h, w = alpha.shape
            bob = 0.004 * self.height * math.sin(2 * math.pi * 1.7 * t + i)  # as render()
            x0, y0 = round(x * self.width - w / 2), round(y * self.height + bob - h / 2)
            rows = np.nonzero((alpha > 0.5).any(axis=1))[0]
            cols = np.nonzero((alpha > 0.5).any(axis=0))[0]
            left, right = max(0, x0 + int(cols[0])), min(self.width, x0 + int(cols[-1]) + 1)
            top, bottom = max(0, y0 + int(rows[0])), min(self.height, y0 + int(rows[-1]) + 1)
            box = (
                left / self.width,
                top / self.height,
                (right - left) / self.width,
                (bottom - top) / self.height,
            )
            found.append((i, label, box))
        return found

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
            paste_sprite(frame, sprite, alpha, x * self.width, y * self.height + bob)
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
