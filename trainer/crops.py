"""Cutting a COCO Camera Traps source's crops (trainer.cct plans them), once.

The frames are decoded one by one, on a few threads, and only the crops at the model's
input size are kept: a 100,000-frame dataset never holds more than a few frames in memory.
Boxes are cut with the edge agent's own square-crop geometry
(``edge_agent.vision.classifier.crop_square``: the box grown to a square with its margin,
what lies outside the frame padded by replicating the border, ``INTER_AREA`` down), so a
crop the trainer learns from looks like the crops the trap classifies. A frame used whole
is padded to a square (no margin: a kept crop that ``trapcount collect export`` wrote is
its own square already). Background crops of an ``empty`` frame are random boxes of the
sizes the motion gate's false positives have.

The crops are cached as ``.npz`` under the trainer's dataset cache (``TRAPCOUNT_CACHE_DIR``),
keyed by the .json, the MegaDetector files and the label map (path, size, modification
time), the image root, the options that change crops or labels and the input size: epochs,
``export``, ``evaluate`` and reruns read them back. An image replaced in place is not
noticed (``--no-cache``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.vision.classifier import crop_square
from trainer.cct import CocoSource, DataError
from trainer.cct_plan import PlannedImage, Tally, group_keys, plan_crops

log = logging.getLogger("trapcount.trainer")

_CACHE_FORMAT = 1  # bump when cropping changes, so old caches are ignored
# Background crops per empty frame, and the area of their boxes as a fraction of the frame:
# from the motion gate's smallest blob (motion.min_area's default, 0.002) to a quarter of
# the frame (larger false positives are rare: a scene change is not a blob).
EMPTY_CROPS_PER_FRAME = 2
EMPTY_AREA = (0.002, 0.25)
EMPTY_ASPECT = (0.5, 2.0)
_CHUNK = 64  # frames handed to the threads at a time
_REPORT_EVERY_S = 5.0


@dataclass
class CocoCrops:
    """The crops of one COCO Camera Traps source, and where each came from."""

    images: np.ndarray  # (N, h, w, 3) uint8 RGB
    names: list[str]  # label per crop
    locations: np.ndarray  # str per crop, "" when unknown
    seqs: np.ndarray
    frames: np.ndarray  # the frame's own group key ("image:...")
    kinds: Counter = field(default_factory=Counter)  # crops per kind (box, megadetector...)
    skipped: Tally = field(default_factory=Tally)
    unreadable: int = 0  # frames missing or not decodable
    frames_used: int = 0  # frames that gave crops
    frames_in_file: int = 0

    def groups(self, split_by: str) -> np.ndarray:
        return group_keys(self.locations, self.seqs, self.frames, split_by)


# -- geometry ---------------------------------------------------------------------------------


def whole_square(frame_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The whole frame padded to a square (border replicated, as ``crop_square`` pads) and
    resized like it; RGB."""
    h, w = frame_bgr.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    if side != h or side != w:
        frame_bgr = cv2.copyMakeBorder(
            frame_bgr, top, side - h - top, left, side - w - left, cv2.BORDER_REPLICATE
        )
    height, width = size
    interpolation = cv2.INTER_AREA if side > height else cv2.INTER_LINEAR
    square = cv2.resize(frame_bgr, (width, height), interpolation=interpolation)
    return cv2.cvtColor(square, cv2.COLOR_BGR2RGB)


def background_boxes(
    file_name: str, width: int, height: int, count: int = EMPTY_CROPS_PER_FRAME
) -> list[tuple[float, float, float, float]]:
    """``count`` random boxes inside a frame, the same ones for the same file every time:
    area log-uniform over ``EMPTY_AREA`` of the frame, aspect ratio over ``EMPTY_ASPECT``."""
    rng = np.random.default_rng(zlib.crc32(file_name.encode()))
    boxes = []
    for _ in range(count):
        area = math.exp(rng.uniform(*np.log(EMPTY_AREA))) * width * height
        aspect = math.exp(rng.uniform(*np.log(EMPTY_ASPECT)))
        w = min(math.sqrt(area * aspect), width)
        h = min(math.sqrt(area / aspect), height)
        boxes.append((rng.uniform(0, width - w), rng.uniform(0, height - h), w, h))
    return boxes


def _inside(box, width: int, height: int) -> tuple[float, float, float, float] | None:
    """The part of ``box`` inside the frame; None when nothing of it is."""
    x, y, w, h = box
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    if x1 - x0 < 1.0 or y1 - y0 < 1.0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def cut_frame(
    planned: PlannedImage, size: tuple[int, int]
) -> tuple[list[tuple[str, np.ndarray, str]], Tally]:
    """Decode one frame and cut its crops: [(label, RGB crop, kind)], and what was skipped."""
    problems = Tally()
    try:
        data = planned.path.read_bytes()
    except OSError:
        problems.add("missing images", planned.path)
        return [], problems
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if frame is None or frame.ndim != 3 or frame.size == 0:
        problems.add("unreadable images", planned.path)
        return [], problems
    height, width = frame.shape[:2]
    sx = sy = 1.0
    if planned.declared is not None and planned.declared != (width, height):
        sx, sy = width / planned.declared[0], height / planned.declared[1]
        problems.add(
            "frames whose size differs from the width and height given (boxes scaled)",
            f"{planned.file_name}: {planned.declared[0]}x{planned.declared[1]} in the file, "
            f"{width}x{height} decoded",
        )
    crops = []
    for kind, label, box in planned.crops:
        if kind == "whole":
            crops.append((label, whole_square(frame, size), kind))
            continue
        if kind == "empty":
            for square in background_boxes(planned.file_name, width, height):
                crops.append((label, crop_square(frame, square, size), kind))
            continue
        x, y, w, h = box  # type: ignore[misc]
        if kind == "megadetector":
            scaled = (x * width, y * height, w * width, h * height)
        else:
            scaled = (x * sx, y * sy, w * sx, h * sy)
        inside = _inside(scaled, width, height)
        if inside is None:
            problems.add("boxes outside the image", f"{planned.file_name}: {list(box)}")
            continue
        crops.append((label, crop_square(frame, inside, size), kind))  # type: ignore[arg-type]
    return crops, problems


# -- the whole source ---------------------------------------------------------------------------


def _threads() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, cores or 1))


class _Progress:
    """A line every few seconds while cropping: frames done, crops, rate and ETA."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total = name, total
        self.started = self.last = time.monotonic()

    def update(self, done: int, crops: int) -> None:
        now = time.monotonic()
        if now - self.last < _REPORT_EVERY_S or done >= self.total:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        left = (self.total - done) / rate if rate > 0 else float("inf")
        log.info(
            "  %s: %s/%s frames, %s crops, %.0f frames/s, ETA %s",
            self.name, f"{done:,}", f"{self.total:,}", f"{crops:,}", rate, _duration(left),
        )  # fmt: skip


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def cut_crops(source: CocoSource, size: tuple[int, int]) -> CocoCrops:
    """Plan (trainer.cct) and cut every crop of ``source``; a summary line at the end."""
    started = time.monotonic()
    plan = plan_crops(source)
    images: list[np.ndarray] = []
    names: list[str] = []
    meta: list[tuple[str, str, str]] = []
    kinds: Counter = Counter()
    skipped = plan.skipped
    progress = _Progress(source.name, len(plan.images))
    with ThreadPoolExecutor(max_workers=_threads()) as pool:
        for start in range(0, len(plan.images), _CHUNK):
            chunk = plan.images[start : start + _CHUNK]
            for planned, (crops, problems) in zip(
                chunk, pool.map(lambda p: cut_frame(p, size), chunk), strict=True
            ):
                skipped.merge(problems)
                for label, crop, kind in crops:
                    images.append(crop)
                    names.append(label)
                    meta.append((planned.location, planned.seq, planned.key))
                    kinds[kind] += 1
            progress.update(start + len(chunk), len(images))
    unreadable = skipped.counts["missing images"] + skipped.counts["unreadable images"]
    empty = np.zeros((0, *size, 3), np.uint8)
    columns = [np.array(c, dtype=str) for c in zip(*meta, strict=True)] or [
        np.zeros(0, dtype=str)
    ] * 3
    result = CocoCrops(
        np.stack(images) if images else empty,
        names,
        *columns,
        kinds=kinds,
        skipped=skipped,
        unreadable=unreadable,
        frames_used=len({key for _, _, key in meta}),
        frames_in_file=plan.n_images,
    )
    _log_summary(source, result, time.monotonic() - started)
    return result


def _log_summary(source: CocoSource, crops: CocoCrops, seconds: float, note: str = "") -> None:
    per_label = ", ".join(f"{k} {v:,}" for k, v in sorted(Counter(crops.names).items()))
    per_kind = ", ".join(f"{k} {v:,}" for k, v in crops.kinds.most_common())
    log.info(
        "%s: %s crops (%s) from %s of %s frames; by %s (%.1f s%s)",
        source.name, f"{len(crops.names):,}", per_label or "none", f"{crops.frames_used:,}",
        f"{crops.frames_in_file:,}", per_kind or "-", seconds, note,
    )  # fmt: skip
    if crops.skipped.counts:
        log.info("%s: skipped %s", source.name, crops.skipped.summary())


# -- cache ------------------------------------------------------------------------------------


def _stamp(path: str | None) -> list[Any] | None:
    if path is None:
        return None
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except OSError:
        return [str(resolved)]  # plan_crops reports it
    return [str(resolved), stat.st_size, stat.st_mtime_ns]


def cache_file(source: CocoSource, size: tuple[int, int], folder: Path) -> Path:
    key = {
        "format": _CACHE_FORMAT,
        "coco": _stamp(source.path),
        "root": str(source.root.resolve()),
        "boxes": [_stamp(b) for b in source.boxes],
        "threshold": source.boxes_threshold if source.boxes else None,
        "map": _stamp(source.label_map),
        "empty_as": source.empty_as,
        "empty": [EMPTY_CROPS_PER_FRAME, EMPTY_AREA, EMPTY_ASPECT] if source.empty_as else None,
        "size": list(size),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return folder / f"{Path(source.path).stem}.coco.{size[0]}x{size[1]}.{digest}.npz"


def _load(target: Path) -> CocoCrops:
    with np.load(target, allow_pickle=False) as data:
        report = json.loads(str(data["report"]))
        skipped = Tally(Counter(report["skipped"]), dict(report["examples"]))
        return CocoCrops(
            data["images"],
            [str(n) for n in data["names"]],
            data["locations"],
            data["seqs"],
            data["frames"],
            Counter(report["kinds"]),
            skipped,
            int(report["unreadable"]),
            *report["frames"],
        )


def _save(target: Path, crops: CocoCrops) -> None:
    report = {
        "skipped": dict(crops.skipped.counts),
        "examples": crops.skipped.examples,
        "kinds": dict(crops.kinds),
        "unreadable": crops.unreadable,
        "frames": [crops.frames_used, crops.frames_in_file],
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp.npz")
    np.savez(
        tmp,
        images=crops.images,
        names=np.array(crops.names, dtype=str),
        locations=crops.locations,
        seqs=crops.seqs,
        frames=crops.frames,
        report=np.array(json.dumps(report)),
    )
    os.replace(tmp, target)  # an interrupted run never leaves half a cache


def read_coco(source: CocoSource, size: tuple[int, int], cache: Path | None) -> CocoCrops:
    """The crops of ``source`` at ``size``: from the cache folder ``cache`` when they are
    there, else cut (and cached when ``cache`` is given)."""
    if not Path(source.path).expanduser().is_file():
        raise DataError(f"data not found: {Path(source.path).expanduser()}")
    target = cache_file(source, size, cache) if cache is not None else None
    if target is not None and target.is_file():
        try:
            crops = _load(target)
            _log_summary(source, crops, 0.0, f", cached {target}")
            return crops
        except (OSError, ValueError, KeyError):
            log.warning("ignoring unreadable cache %s", target)
    crops = cut_crops(source, size)
    if target is not None:
        try:
            _save(target, crops)
        except OSError as exc:
            log.warning("cannot write dataset cache %s: %s", target, exc)
    return crops


def coco_arrays(
    spec: Any, size: tuple[int, int], cache: Path | None
) -> tuple[np.ndarray, list[str], int, np.ndarray, np.ndarray]:
    """A COCO Camera Traps ``--data`` value for trainer.data: (crops, label per crop,
    frames skipped as unreadable, split group per crop, training repeats per crop). The
    crops are cached under ``cache``/datasets when ``cache`` is given."""
    source = CocoSource.from_spec(spec)
    crops = read_coco(source, size, cache / "datasets" if cache is not None else None)
    repeats = np.full(len(crops.names), source.repeat, int)
    return crops.images, crops.names, crops.unreadable, crops.groups(source.split_by), repeats
