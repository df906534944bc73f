"""The plan of a COCO Camera Traps source: which crops to cut from which frame, under which
label (the rules in trainer.cct), and each crop's split group.

Only JSON is read here (through trainer.cct); trainer.crops decodes the frames and cuts.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.labels import RULE, is_valid_label, shown
from trainer.cct import (
    EMPTY_CATEGORIES,
    CocoSource,
    DataError,
    LabelMap,
    MegaDetectorBoxes,
    detection_kind,
    read_json,
    xywh,
)

log = logging.getLogger("trapcount.trainer")

_FIRST_IMAGES_CHECKED = 20  # none of these there: the image root is wrong, not a file missing


# -- the plan: which crops of which frames --------------------------------------------------


@dataclass
class PlannedImage:
    """A frame and the crops to cut from it: (kind, label, box) with kind ``box`` (pixels
    of the declared size), ``megadetector`` (normalised), ``whole`` or ``empty`` (no box)."""

    file_name: str
    path: Path
    declared: tuple[int, int] | None  # (width, height) the file says
    location: str  # "" when unknown
    seq: str
    key: str  # the frame's own split group: "image:<file>#<id>"
    crops: list[tuple[str, str, tuple[float, float, float, float] | None]]


@dataclass
class Tally:
    """Counted skips and notes, each with its first example, for the summary line."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, reason: str, example: object = None, n: int = 1) -> None:
        self.counts[reason] += n
        if example is not None:
            self.examples.setdefault(reason, str(example))

    def merge(self, other: Tally) -> None:
        for reason, n in other.counts.items():
            self.add(reason, other.examples.get(reason), n)

    def summary(self) -> str:
        parts = []
        for reason, n in self.counts.most_common():
            example = self.examples.get(reason)
            parts.append(f"{n:,} {reason}" + (f" (e.g. {example})" if example else ""))
        return "; ".join(parts)


@dataclass
class Plan:
    source: CocoSource
    images: list[PlannedImage]
    n_images: int  # in the file
    skipped: Tally  # annotations and frames left out before any image is read


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _categories(entries: list, name: str) -> dict[Any, str]:
    categories: dict[Any, str] = {}
    for number, entry in enumerate(entries):
        if (
            not isinstance(entry, dict)
            or "id" not in entry
            or not isinstance(entry.get("name"), str)
        ):
            raise DataError(f"{name}: category #{number} needs an 'id' and a 'name'")
        if entry["id"] in categories:
            raise DataError(f"{name}: category id {entry['id']!r} is there twice")
        categories[entry["id"]] = entry["name"]
    return categories


def _labeller(
    categories: dict[Any, str], used: set, label_map: LabelMap | None, name: str
) -> dict[Any, str | None]:
    """Category id -> label (None: dropped; an empty category is left to the frame rules,
    the map does not apply to it). A name that is no valid label and that the map does not
    name is refused, as the class-folder loader refuses such a folder."""
    labels: dict[Any, str | None] = {}
    kept_as_named = []
    for cat_id in sorted(used, key=str):
        category = categories[cat_id]
        if category.strip().lower() in EMPTY_CATEGORIES:
            continue
        named, label = label_map.lookup(category) if label_map else (False, None)
        if not named:
            label = category
            kept_as_named.append(category)
            if not is_valid_label(label):
                where = f"in {label_map.path}" if label_map else "with --label-map"
                suggestion = re.sub(r"[^a-z0-9_-]+", "_", category.strip().lower()).strip("_-")
                raise DataError(
                    f"category {shown(category)} in {name} is not a valid label ({RULE}); "
                    f"map it {where}, e.g. a row '{category},{suggestion[:64] or 'a_name'}'"
                )
        labels[cat_id] = label
    if label_map is not None and kept_as_named:
        log.warning(
            "%s: categories %s keep their names (%s does not map them)",
            name,
            ", ".join(sorted(kept_as_named)),
            label_map.path.name,
        )
    return labels


def _images(entries: list, source: CocoSource) -> list[dict[str, Any]]:
    """The image entries, checked; their ids must be unique."""
    seen: set = set()
    images = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
            raise DataError(f"{source.name}: image #{number} has no 'file_name'")
        image_id = entry.get("id")
        if image_id is None or isinstance(image_id, (dict, list)):
            raise DataError(f"{source.name}: image #{number} has no usable 'id'")
        if image_id in seen:
            raise DataError(f"{source.name}: image id {image_id!r} is there twice")
        seen.add(image_id)
        width, height = entry.get("width"), entry.get("height")
        sized = all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)
        )
        images.append(
            {
                "id": image_id,
                "file_name": entry["file_name"],
                "declared": (width, height) if sized else None,
                "location": _text(entry.get("location")),
                "seq": _text(entry.get("seq_id")),
            }
        )
    return images


def plan_crops(source: CocoSource) -> Plan:
    """Read the COCO file (and its MegaDetector boxes and label map) into the crops to cut.
    Malformed files are one-line errors; annotations and frames that cannot be used are
    counted in ``Plan.skipped``."""
    path = Path(source.path).expanduser()
    doc = read_json(path, "COCO Camera Traps file")
    name = source.name
    if not isinstance(doc, dict):
        raise DataError(f"{path} is not COCO Camera Traps (not a JSON object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DataError(f"{path} is not COCO Camera Traps (no '{key}' list)")
    label_map = LabelMap.read(source.label_map) if source.label_map else None
    detections = MegaDetectorBoxes.read(source.boxes) if source.boxes else None
    categories = _categories(doc["categories"], name)
    images = _images(doc["images"], source)
    index = {image["id"]: i for i, image in enumerate(images)}
    skipped = Tally()
    by_image: dict[int, list[dict]] = {}
    for number, ann in enumerate(doc["annotations"]):
        if not isinstance(ann, dict):
            raise DataError(f"{name}: annotation #{number} is not a JSON object")
        image_id, cat_id = ann.get("image_id"), ann.get("category_id")
        if not _hashable(image_id) or image_id not in index:
            skipped.add("annotations of an unknown image id", repr(image_id))
        elif not _hashable(cat_id) or cat_id not in categories:
            skipped.add("annotations with an unknown category id", repr(cat_id))
        else:
            by_image.setdefault(index[image_id], []).append(ann)
    used = {ann["category_id"] for anns in by_image.values() for ann in anns}
    labels = _labeller(categories, used, label_map, name)
    planned = []
    for i, image in enumerate(images):
        crops = _frame_crops(
            image, by_image.get(i, []), categories, labels, source, detections, skipped
        )
        if crops:
            planned.append(
                PlannedImage(
                    file_name=image["file_name"],
                    path=source.root / image["file_name"],
                    declared=image["declared"],
                    location=image["location"],
                    seq=image["seq"],
                    key=f"image:{path}#{image['id']}",
                    crops=crops,
                )
            )
    _check_image_root(planned, source)
    return Plan(source, planned, len(images), skipped)


def _hashable(value: object) -> bool:
    return isinstance(value, (int, str, float)) and not isinstance(value, bool)


def _frame_crops(
    image: dict[str, Any],
    anns: list[dict],
    categories: dict[Any, str],
    labels: dict[Any, str | None],
    source: CocoSource,
    detections: MegaDetectorBoxes | None,
    skipped: Tally,
) -> list[tuple[str, str, tuple[float, float, float, float] | None]]:
    """The crops of one frame by the rules in the module doc."""
    file_name = image["file_name"]
    if not anns:
        skipped.add("frames without annotations", file_name)
        return []
    boxes, image_level, empties, content = [], [], 0, False
    for ann in anns:
        category = categories[ann["category_id"]]
        if category.strip().lower() in EMPTY_CATEGORIES:
            empties += 1
            continue
        label = labels[ann["category_id"]]
        content = True
        if label is None:
            skipped.add("annotations dropped by the label map", category)
            continue
        if ann.get("bbox") is None:
            image_level.append((label, category))
            continue
        box = xywh(ann["bbox"])
        if box is None:
            skipped.add("malformed boxes", f"{file_name}: {str(ann['bbox'])[:40]}")
        else:
            boxes.append(("box", label, box))
    crops = list(boxes)
    boxed = {label for _, label, _ in boxes}
    rest = sorted({(label, category) for label, category in image_level if label not in boxed})
    if rest and boxes:
        skipped.add("image-level labels on a frame boxed for another label", file_name)
    elif len({label for label, _ in rest}) > 1:
        skipped.add("frames with several image-level labels and no box", file_name)
    elif rest:
        label, category = rest[0]
        found = detections.lookup(file_name) if detections is not None else None
        kind = detection_kind(label, category)
        chosen = [
            box
            for det_kind, conf, box in found or ()
            if det_kind == kind and conf >= source.boxes_threshold
        ]
        crops += [("megadetector", label, box) for box in chosen]
        if not chosen:
            crops.append(("whole", label, None))
    if empties:
        if content:
            skipped.add("empty labels on a frame with an animal", file_name)
        elif source.empty_as is None:
            skipped.add("empty frames (give --empty-as LABEL to learn them)")
        else:
            crops.append(("empty", source.empty_as, None))
    return crops


def _check_image_root(planned: list[PlannedImage], source: CocoSource) -> None:
    """One line for a wrong image root, instead of every image counted as missing."""
    first = planned[:_FIRST_IMAGES_CHECKED]
    if first and not any(p.path.is_file() for p in first):
        where = "--image-root" if source.image_root else "the .json's folder"
        raise DataError(
            f"{source.name}: none of the first {len(first)} images is there (e.g. "
            f"{first[0].path}); file_name is relative to {where}; give --image-root DIR"
        )


# -- splitting by group ------------------------------------------------------------------------


def group_keys(
    locations: np.ndarray, seqs: np.ndarray, images: np.ndarray, split_by: str
) -> np.ndarray:
    """Each crop's split group: ``location:X`` (``--split-by location``, where known),
    ``seq:Y`` (location or seq, where known), else ``image:Z`` (its frame)."""
    keys = []
    for location, seq, image in zip(locations, seqs, images, strict=True):
        if split_by == "location" and location:
            keys.append(f"location:{location}")
        elif split_by in ("location", "seq") and seq:
            keys.append(f"seq:{seq}")
        else:
            keys.append(str(image))
    return np.array(keys, dtype=str)


def group_split(data: Any, fraction: float, rng) -> tuple[np.ndarray, np.ndarray, dict]:
    """Indices (train, validation) of the images of ``data`` (a trainer.data.Dataset) that
    have a group (``data.groups != ""``): whole groups go to validation, in a seeded random
    order, whenever one brings the validation counts per class closer to ``fraction`` of
    each class (squared distance weighted by 1 / target): a location is never on both
    sides, and the classes stay near the fraction. Also a summary: the groups of each kind
    (location, seq, image) and the images on each side."""
    index = np.flatnonzero(data.groups != "")
    if not len(index):
        return index, index, {}
    keys, inverse = np.unique(data.groups[index], return_inverse=True)
    counts = np.zeros((len(keys), len(data.classes)))
    np.add.at(counts, (inverse, data.labels[index]), 1)
    target = fraction * counts.sum(axis=0)
    weight = 1.0 / np.maximum(target, 1.0)
    chosen = np.zeros(len(keys), bool)
    val = np.zeros(len(data.classes))
    for g in rng.permutation(len(keys)):
        c = counts[g]
        if float(np.sum(weight * c * (2.0 * (val - target) + c))) < 0.0:
            chosen[g] = True
            val += c
    in_val = chosen[inverse]
    summary: dict[str, Any] = {}
    kinds = np.array([str(key).split(":", 1)[0] for key in keys])
    for kind in ("location", "seq", "image"):
        if (kinds == kind).any():
            val_groups = int(chosen[kinds == kind].sum())
            summary[kind] = {"train": int((kinds == kind).sum()) - val_groups, "val": val_groups}
    summary["images"] = {"train": int((~in_val).sum()), "val": int(in_val.sum())}
    return index[~in_val], index[in_val], summary
