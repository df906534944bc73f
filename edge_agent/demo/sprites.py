"""Sprites for synthetic scenes: ``ProceduralSprites`` draws a few animal-like classes that
differ in shape, colour and texture (a tiny classifier learns them in seconds), and
``FolderSprites`` pastes real images from class folders (e.g. CIFAR-10 upscaled, for a demo
with the shipped model); and the grass-and-trunks background they walk over."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np


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


def paste_sprite(
    frame: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, cx: float, cy: float
) -> None:
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


class PeopleSprites:
    """Procedural animals, and for ``person`` someone upright: the NASA astronaut photograph
    (public domain, from scikit-image when installed, else a grey head) as the head and
    shoulders, over a body of plain clothes twice as tall; a person stands, an animal is
    long. For the privacy checks' tests and benchmarks."""

    def __init__(self, animals: Sequence[str] = ("deer", "fox", "boar")) -> None:
        self.animals = ProceduralSprites(list(animals))
        self.labels = [*animals, "person"]
        try:
            from skimage import data

            self.photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        except ImportError:
            self.photo = np.full((512, 512, 3), 120, np.uint8)

    def sprite(self, label: str, width: int, rng: np.random.Generator):
        if label != "person":
            return self.animals.sprite(label, width, rng)
        head = cv2.resize(self.photo, (width, width), interpolation=cv2.INTER_AREA)
        body = np.empty((2 * width, width, 3), np.uint8)
        body[:] = (60, 70, 90)  # plain clothes
        image = np.vstack([head, body])
        return image, np.ones(image.shape[:2], np.float32)
