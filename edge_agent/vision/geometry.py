"""Boxes: ``(x, y, w, h)`` in full-frame pixels, and what the localisers and the tracker ask
of them (overlap, distance, union)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

Box = tuple[int, int, int, int]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def overlap_of(a: Sequence[float], b: Sequence[float]) -> float:
    """The fraction of box ``a``'s area that lies inside box ``b``."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    area = a[2] * a[3]
    return ix * iy / area if area > 0 else 0.0


def centre(box: Sequence[float]) -> tuple[float, float]:
    return box[0] + box[2] / 2.0, box[1] + box[3] / 2.0


def box_gap(a: Sequence[float], b: Sequence[float]) -> float:
    """Distance between two boxes' edges; 0 when they touch or overlap."""
    dx = max(a[0] - (b[0] + b[2]), b[0] - (a[0] + a[2]), 0)
    dy = max(a[1] - (b[1] + b[3]), b[1] - (a[1] + a[3]), 0)
    return math.hypot(dx, dy)


def union_box(a: Box, b: Box) -> Box:
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return x0, y0, x1 - x0, y1 - y0


def near_any(box: Sequence[float], others: Iterable[Sequence[float]], sizes: float) -> bool:
    """Whether one of ``others`` has its centre within ``sizes`` box sizes (the longer
    side of either box) of ``box``'s centre."""
    cx, cy = centre(box)
    for other in others:
        ox, oy = centre(other)
        reach = sizes * max(box[2], box[3], other[2], other[3])
        if math.hypot(cx - ox, cy - oy) <= reach:
            return True
    return False


def at_edge(box: Sequence[float], frame_size: tuple[int, int], margin: int = 2) -> bool:
    """Whether ``box`` touches the frame's edge (within ``margin`` pixels): what is there
    may be cut by it. ``frame_size`` is (width, height)."""
    x, y, w, h = box
    width, height = frame_size
    return x <= margin or y <= margin or x + w >= width - margin or y + h >= height - margin
