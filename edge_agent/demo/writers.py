"""Writing scenes to disk: ``write_video`` (``.mp4`` with ``mp4v`` or ``.avi`` with ``MJPG``,
both available in opencv-python-headless), ``write_image_burst`` (JPEGs with an EXIF
DateTimeOriginal written here, like a camera trap's photo bursts) and
``write_sprite_dataset`` (sprite crops the way the pipeline's classifier sees them)."""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from edge_agent.demo.scenes import DEFAULT_START, Scene, SceneTruth
from edge_agent.demo.sprites import (
    ProceduralSprites,
    SpriteSource,
    paste_sprite,
    textured_background,
)
from edge_agent.vision.classifier import crop_square


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
            paste_sprite(frame, sprite, alpha, cx, cy)
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
