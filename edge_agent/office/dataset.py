"""``trapcount collect export``: the kept crops as a training dataset for ``trapcount-train
--data``, each under its reviewed label (else the predicted one): class folders, and the same
animals as a COCO Camera Traps file (``cct.json``, the format of the LILA datasets), so that
the trainer splits them by trap and reads them as it reads LILA data: a crop whose full
frame was kept too (``media.keep_frames``) is listed as that frame with the track's box
(``frames/``), as LILA's boxed images are, so the trainer cuts it at its own input size and
margin; a crop without one is listed whole."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.files import make_private_dir, write_private
from edge_agent.labels import is_valid_label
from edge_agent.store.database import Store
from edge_agent.store.models import Media, as_utc

UNREVIEWED_FILE = "unreviewed.txt"
CCT_FILE = "cct.json"
FRAMES_DIR = "frames"
# Not classes to train an animal classifier on: people (privacy) and the unsure.
# "empty": a reviewer said the crop shows no animal (``trapcount review``).
NOT_TRAINED = frozenset({"person", "unknown", "empty"})


@dataclass
class DatasetExport:
    out: Path
    images: int
    per_label: dict[str, int]
    unreviewed: int
    missing: int  # rows whose file is gone
    # Rows skipped because their label is no valid folder name (edge_agent.labels: "../x",
    # "a/b", from a tampered or foreign database), or their folder leads outside ``out``.
    bad_labels: int = 0
    cct: Path | None = None  # the COCO Camera Traps file listing the same crops


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves (symbolic links followed) to below ``root``."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return False


def export_dataset(store: Store, out: Path) -> DatasetExport:
    """Write the kept crops as an image-folder dataset ``out/<label>/<file>`` (the reviewed
    label if set, else the predicted one) that ``trapcount-train --data`` reads, plus
    ``out/unreviewed.txt`` listing those still unreviewed (relative paths, one a line) and
    ``out/cct.json``, the same crops in COCO Camera Traps form (:func:`cct_document`).
    People, ``unknown`` and crops a reviewer marked ``empty`` are not exported; folders are
    0700, files 0600. A row whose label is no valid label is skipped and counted, never
    written outside ``out`` nor into nested folders."""
    out = Path(out)
    make_private_dir(out)
    per_label: dict[str, int] = {}
    unreviewed: list[str] = []
    written: list[tuple[Media, str, str, bytes]] = []  # row, label, file name, bytes
    missing = bad_labels = 0
    frames = {
        key: row
        for row in store.media(kind="frame")
        if row.path is not None and (key := frame_key(row)) is not None
    }
    for row in store.media(kind="crop"):
        label = row.reviewed_label or row.label
        if label in NOT_TRAINED or row.privacy_status == "blurred":
            continue
        if not is_valid_label(label):
            bad_labels += 1
            continue
        folder = out / label
        target = folder / f"m{row.id}-{Path(row.path).name}"
        # In depth: a valid label is one plain name, but out/<label> may be a symbolic link.
        if not inside(target, out):
            bad_labels += 1
            continue
        try:
            data = Path(row.path).read_bytes()
        except OSError:
            missing += 1
            continue
        make_private_dir(folder)
        target.unlink(missing_ok=True)
        write_private(target, data)
        per_label[label] = per_label.get(label, 0) + 1
        listed = (row, label, f"{label}/{target.name}", data)
        key = frame_key(row)
        frame = frames.get(key) if key is not None else None
        if frame is not None and frame.privacy_status == "clear":
            listed = _copy_frame(frame, label, out) or listed
        written.append(listed)
        if row.reviewed_label is None:
            unreviewed.append(f"{label}/{target.name}")
    listing = out / UNREVIEWED_FILE
    listing.unlink(missing_ok=True)
    write_private(listing, "".join(f"{line}\n" for line in unreviewed).encode())
    traps = {d.id: d.trap_id for d in store.deployments()}
    cct = out / CCT_FILE
    cct.unlink(missing_ok=True)
    document = cct_document(written, traps)
    write_private(cct, (json.dumps(document, indent=1) + "\n").encode())
    return DatasetExport(
        out, sum(per_label.values()), per_label, len(unreviewed), missing, bad_labels, cct
    )


def frame_key(row: Media) -> tuple[Any, ...] | None:
    """What a kept crop and the full frame kept with it share (the media keeper writes both
    for one track at one time, with the track's box on the frame); None without a box."""
    if row.box_x is None:
        return None
    return (
        row.deployment_id,
        row.event_id,
        as_utc(row.time),
        row.box_x,
        row.box_y,
        row.box_w,
        row.box_h,
    )


def _copy_frame(frame: Media, label: str, out: Path) -> tuple[Media, str, str, bytes] | None:
    """The kept frame copied to ``out/frames/``, as a row of ``written`` (None: gone)."""
    assert frame.path is not None
    try:
        data = Path(frame.path).read_bytes()
    except OSError:
        return None
    folder = out / FRAMES_DIR
    make_private_dir(folder)
    target = folder / f"m{frame.id}-{Path(frame.path).name}"
    if not inside(target, out):
        return None
    target.unlink(missing_ok=True)
    write_private(target, data)
    return frame, label, f"{FRAMES_DIR}/{target.name}", data


def cct_document(
    written: list[tuple[Media, str, str, bytes]], traps: dict[int, str]
) -> dict[str, Any]:
    """The exported crops as COCO Camera Traps: ``file_name`` relative to the file, the
    crop's size, the trap id as ``location`` (the trainer keeps a trap's crops on one side
    of its validation split), ``trap:event`` as ``seq_id`` and the time as ``datetime``;
    one annotation per image with its label's category: a kept frame's with the track's box
    as ``bbox`` ([x, y, width, height] in pixels), a crop's without one (the crop is the
    square the trap classified already, and the trainer uses an unboxed image whole)."""
    labels = sorted({label for _, label, _, _ in written})
    category = {label: number for number, label in enumerate(labels, 1)}
    images, annotations = [], []
    for row, label, file_name, data in written:
        trap = traps.get(row.deployment_id, str(row.deployment_id))
        image: dict[str, Any] = {"id": row.id, "file_name": file_name}
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        if decoded is not None:
            image["height"], image["width"] = (int(v) for v in decoded.shape[:2])
        image["location"] = trap
        if row.event_id is not None:
            image["seq_id"] = f"{trap}:{row.event_id}"
        image["datetime"] = as_utc(row.time).isoformat()
        image["reviewed"] = row.reviewed_label is not None
        images.append(image)
        annotation: dict[str, Any] = {
            "id": row.id,
            "image_id": row.id,
            "category_id": category[label],
        }
        if row.kind == "frame" and row.box_x is not None:
            annotation["bbox"] = [row.box_x, row.box_y, row.box_w, row.box_h]
        annotations.append(annotation)
    return {
        "info": {
            "description": "trapcount collect export: kept crops under their reviewed label "
            "(else the predicted one)",
            "version": "1.0",
            "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "images": images,
        "categories": [{"id": number, "name": label} for label, number in category.items()],
        "annotations": annotations,
    }
