"""Kept media files as the office reads them: the rows of the ``media`` table
(``edge_agent.service.media``), their files found inside a media folder, judged for privacy,
measured, and made into small thumbnails.

A kept file's recorded path is where the trap wrote it (``<media_dir>/<UTC day>/<name>``);
in the office the folder is usually a copy, so a file is looked for as
``<folder>/<day>/<name>``, then at its recorded path, and only ever *inside* the folder
given (symbolic links resolved): a tampered database cannot make an export copy or a
report embed ``/etc/shadow``.

**Privacy.** An image may leave the trap's folder only when the privacy guard checked it and
found nobody (``privacy_status = clear``) and nothing says it shows a person: neither its
label nor a reviewer's label is a person, and no box on it is one. ``blurred`` images
showed someone (now hidden), ``unchecked`` ones were written with the guard off.
"""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from edge_agent.store.database import Store
from edge_agent.store.models import Detection, Event, Media
from edge_agent.store.queries import has_table

HUMAN_LABELS = frozenset({"person", "people", "human"})
CLEAR, BLURRED, UNCHECKED = "clear", "blurred", "unchecked"
CROP, FRAME, RECORD = "crop", "frame", "record"
# A detection belongs to a kept frame when their times agree to this (both are the frame's).
SAME_FRAME = timedelta(milliseconds=1)


def is_human(label: str | None) -> bool:
    return label is not None and label.strip().lower() in HUMAN_LABELS


def shows_person(row: Media) -> bool:
    """Whether a media row is of a person, as the classifier, the guard or a reviewer said."""
    return is_human(row.label) or is_human(row.reviewed_label)


def resolve_media_file(root: Path, recorded: str | None) -> Path | None:
    """The kept file recorded as ``recorded``, inside ``root``, or None: ``root/<day>/<name>``,
    the recorded path itself, or (for a relative path) ``root/<path>``; anything that
    resolves outside ``root`` or is not a regular file is refused."""
    if not recorded:
        return None
    root = Path(root).expanduser().resolve()
    path = Path(recorded)
    candidates = [root / path.parent.name / path.name, path]
    if not path.is_absolute():
        candidates.append(root / path)
    for candidate in candidates:
        try:
            resolved = candidate.resolve()
            if resolved.is_relative_to(root) and resolved.is_file():
                return resolved
        except (OSError, RuntimeError, ValueError):
            continue
    return None


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image, read from its header; None when it is not one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def thumbnail_jpeg(path: Path, side: int, quality: int = 70) -> bytes | None:
    """A JPEG at most ``side`` pixels on its long side (decoded reduced where the format
    allows), or None when the file is not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.draft("RGB", (side, side))  # JPEG: libjpeg's reduced decoding
            image = image.convert("RGB")
            image.thumbnail((side, side))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality, optimize=True)
            return buffer.getvalue()
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def kept_media(store: Store, deployment_ids: set[int] | None = None) -> list[Media]:
    """The store's media rows (files and records), oldest first; none without the table."""
    if not has_table(store, "media"):
        return []
    rows = store.media()
    if deployment_ids is not None:
        rows = [row for row in rows if row.deployment_id in deployment_ids]
    return rows


def event_starts(store: Store, event_ids: set[int]) -> dict[int, datetime]:
    """{event id: start} of those events in ``store``: media rows name their event by its
    id in their own database, reports know an event by its deployment and start."""
    found: dict[int, datetime] = {}
    ids = sorted(event_ids)
    with store.read() as session:
        for begin in range(0, len(ids), 500):
            query = select(Event.id, Event.start).where(Event.id.in_(ids[begin : begin + 500]))
            found.update({event_id: start for event_id, start in session.execute(query)})
    return found


@dataclass(frozen=True)
class Box:
    """A box on a kept frame, normalised to the frame (x, y from the top-left corner)."""

    x: float
    y: float
    w: float
    h: float
    label: str
    confidence: float
    track: int | None
    source: str  # "detections" (the detections table) or "media" (the media row's box)
    detector: str = ""
    category: str = ""


def detections_by_event(store: Store, event_ids: set[int]) -> dict[int, list[Detection]]:
    """The ``detections`` rows (revision 0008: every counted track's box per frame) of the
    given events; empty without the table or rows."""
    if not event_ids or not has_table(store, "detections"):
        return {}
    found: dict[int, list[Detection]] = defaultdict(list)
    ids = sorted(event_ids)
    with store.read() as session:
        for start in range(0, len(ids), 500):
            query = select(Detection).where(Detection.event_id.in_(ids[start : start + 500]))
            for row in session.scalars(query):
                found[row.event_id].append(row)
    return found


def on_frame(frame: Media, detections: list[Detection]) -> list[Detection]:
    """Those of an event's ``detections`` that were on the kept ``frame``."""
    return [d for d in detections if abs(d.time - frame.time) <= SAME_FRAME]


def frame_boxes(
    frame: Media, detections: list[Detection], size: tuple[int, int] | None
) -> list[Box]:
    """The boxes on a kept frame: the detections recorded for that frame (every counted
    track visible in it), else the media row's own box (frame pixels, normalised by the
    frame's ``size``); boxes are clipped to the frame, empty ones dropped."""
    boxes = [
        Box(
            d.x, d.y, d.w, d.h, d.label, d.confidence, d.track, "detections", d.detector, d.category
        )
        for d in on_frame(frame, detections)
    ]
    if not boxes and size is not None and None not in (frame.box_x, frame.box_y):
        width, height = size
        if width > 0 and height > 0 and frame.box_w and frame.box_h:
            boxes = [
                Box(
                    frame.box_x / width,
                    frame.box_y / height,
                    frame.box_w / width,
                    frame.box_h / height,
                    frame.label,
                    frame.confidence,
                    None,
                    "media",
                )
            ]
    clipped = []
    for box in boxes:
        x, y = min(max(box.x, 0.0), 1.0), min(max(box.y, 0.0), 1.0)
        right, bottom = min(box.x + box.w, 1.0), min(box.y + box.h, 1.0)
        if right - x > 1e-6 and bottom - y > 1e-6:
            clipped.append(replace(box, x=x, y=y, w=right - x, h=bottom - y))
    return clipped
