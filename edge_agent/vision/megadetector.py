"""MegaDetector's boxes instead of the motion gate: ``trapcount process FOLDER --detections
md.json`` (``motion.localiser = "megadetector"``, ``motion.detections``).

MegaDetector (run on a desktop, often through AddaxAI) writes its boxes as *batch output*
(https://lila.science/megadetector-output-format): ``images[]``, each with ``file`` (relative
to the folder it was run on), ``detections[]`` with ``category`` (an id that
``detection_categories`` names: animal, person or vehicle), ``conf`` and ``bbox`` (``x, y,
w, h`` normalised to the image, from its top-left corner), or ``failure`` for a photo it
could not read. ``read_detections`` reads format 1.3 and later and checks it all first: a
file that is not JSON, lacks ``images`` or ``detection_categories``, names a category it
does not list, or has a box outside the image is one ``DetectionsError`` line (the CLI's
exit status 2), before anything is counted. Boxes of other categories than the three are
ignored, as the format says, with one warning.

``MegaDetectorLocaliser`` gives, for each photo, its boxes at or above
``motion.detection_threshold``; the pipeline classifies, tracks (no fragments joined: two
overlapping boxes are two animals) and counts them as it does the motion gate's. A photo
without an entry is ``unprocessed`` (``not in detections``), one MegaDetector failed on is
``unprocessed`` (``detector failed``): neither is a photo with nothing in it. Entries whose
photo is not in the folder are counted in one warning. A file whose names match no photo of
the folder as they are, but do once their first folders are cut off (MegaDetector run on
the folder above, or with absolute paths on another machine), is matched so, with one
warning; one that matches none either way is the wrong file, one error line.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from edge_agent.capture.folder import photos_in
from edge_agent.config import ConfigError, TrackingSettings
from edge_agent.labels import PERSON, VEHICLE
from edge_agent.vision.bursts import photo_track_rules
from edge_agent.vision.candidates import Candidate, Located
from edge_agent.vision.geometry import Box

log = logging.getLogger(__name__)

MEGADETECTOR = "megadetector"  # Candidate.source, detections.detector
# Why a photo was not counted (``Located.unprocessed``, the ``unprocessed`` table).
NOT_IN_DETECTIONS = "not in detections"
DETECTOR_FAILED = "detector failed"

ANIMAL = "animal"
CATEGORIES = (ANIMAL, PERSON, VEHICLE)
# MegaDetector's names for its categories (v2 said "human"), to trapcount's.
CATEGORY_NAMES = {"animal": ANIMAL, "person": PERSON, "human": PERSON, "vehicle": VEHICLE}
OLDEST_FORMAT = 1.3
# MegaDetector rounds coordinates to 3-4 decimals: x + w may pass 1 by that much.
EDGE_TOLERANCE = 1e-3


class DetectionsError(ConfigError):
    """A MegaDetector file that cannot be used; one line naming the file and the place."""


@dataclass(frozen=True)
class DetectorBox:
    """One MegaDetector box: its category (animal, person, vehicle), confidence and
    normalised ``x, y, w, h``."""

    category: str
    conf: float
    bbox: tuple[float, float, float, float]


@dataclass(frozen=True)
class Entry:
    """A photo's boxes, or why MegaDetector could not read it (``failure``)."""

    boxes: tuple[DetectorBox, ...] = ()
    failure: str | None = None


@dataclass
class Detections:
    """A MegaDetector batch-output file, read and checked: entries by file (``/``
    separators, relative to the folder MegaDetector ran on)."""

    path: Path
    format_version: str
    detector: str
    entries: dict[str, Entry]
    ignored_boxes: int = 0  # boxes of other categories than animal, person and vehicle
    _folded: dict[str, str] | None = field(default=None, repr=False)

    def lookup(self, file: str) -> Entry | None:
        """The entry of ``file`` (relative to the folder), else of the one name that differs
        from it only in case (a card read on Windows), else None."""
        key = entry_key(file)
        entry = self.entries.get(key)
        if entry is not None:
            return entry
        if self._folded is None:
            folded: dict[str, str] = {}
            for name in self.entries:
                folded.setdefault(name.casefold(), name)
            self._folded = folded
        name = self._folded.get(key.casefold())
        return self.entries[name] if name is not None else None


def entry_key(file: str) -> str:
    """A file name as entries are keyed: ``/`` separators, no ``./``."""
    return PurePosixPath(file.replace("\\", "/")).as_posix().removeprefix("./")


def read_detections(path: Path) -> Detections:
    """Read and check a MegaDetector batch-output file (format 1.3 or later); a
    ``DetectionsError`` (one line) for anything that cannot be used."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DetectionsError(f"{where}: MegaDetector file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DetectionsError(f"{where}: cannot read it: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DetectionsError(
            f"{where}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "give MegaDetector's batch output file"
        ) from None
    if not isinstance(data, dict):
        raise DetectionsError(f"{where}: not a MegaDetector batch output (not a JSON object)")
    version = _format_version(data, where)
    categories = data.get("detection_categories")
    if not isinstance(categories, dict):
        raise DetectionsError(f"{where}: no detection_categories (a MegaDetector file has them)")
    names = {str(key): str(value).strip().lower() for key, value in categories.items()}
    images = data.get("images")
    if not isinstance(images, list):
        raise DetectionsError(f"{where}: no images list (a MegaDetector file has one)")
    entries: dict[str, Entry] = {}
    ignored = 0
    for index, image in enumerate(images):
        place = f"{where}: images[{index}]"
        if not isinstance(image, dict) or not isinstance(image.get("file"), str):
            raise DetectionsError(f"{place}: no file name")
        file = entry_key(image["file"])
        place = f"{where}: images[{index}] ({image['file']})"
        if file in entries:
            raise DetectionsError(f"{place}: listed twice")
        failure = image.get("failure")
        detections = image.get("detections")
        if failure is not None:
            entries[file] = Entry(failure=str(failure))
            continue
        if not isinstance(detections, list):
            raise DetectionsError(f"{place}: no detections list and no failure")
        boxes = []
        for number, detection in enumerate(detections):
            box = _box(detection, names, f"{place}: detections[{number}]")
            if box is None:
                ignored += 1
            else:
                boxes.append(box)
        entries[file] = Entry(tuple(boxes))
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    detector = str(info.get("detector") or "unknown")
    return Detections(path, version, detector, entries, ignored)


def _format_version(data: dict[str, Any], where: str) -> str:
    info = data.get("info")
    version = info.get("format_version") if isinstance(info, dict) else None
    if version is None:
        raise DetectionsError(
            f"{where}: no info.format_version (MegaDetector batch output, format "
            f"{OLDEST_FORMAT} or later, has one)"
        )
    try:
        number = float(version)
    except (TypeError, ValueError):
        raise DetectionsError(f"{where}: info.format_version {version!r} is not a number") from None
    if not number >= OLDEST_FORMAT:
        raise DetectionsError(
            f"{where}: format {version} is older than {OLDEST_FORMAT}; convert it with a "
            "current MegaDetector (postprocessing/convert_output_format.py) or rerun it"
        )
    return str(version)


def _box(detection: Any, names: dict[str, str], place: str) -> DetectorBox | None:
    """One detection, checked; None for a category other than the three."""
    if not isinstance(detection, dict):
        raise DetectionsError(f"{place}: not an object")
    category = detection.get("category")
    if str(category) not in names:
        known = ", ".join(f"{k} ({v})" for k, v in sorted(names.items())) or "none"
        raise DetectionsError(
            f"{place}: unknown category {category!r}; detection_categories lists {known}"
        )
    conf = detection.get("conf")
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 1:
        raise DetectionsError(f"{place}: conf {conf!r} is not a number from 0 to 1")
    bbox = detection.get("bbox")
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or any(isinstance(v, bool) or not isinstance(v, int | float) for v in bbox)
        or not all(math.isfinite(v) for v in bbox)
    ):
        raise DetectionsError(f"{place}: bbox {bbox!r} is not [x, y, width, height]")
    x, y, w, h = (float(v) for v in bbox)
    inside = all(0 <= v <= 1 for v in (x, y, w, h))
    if not inside or x + w > 1 + EDGE_TOLERANCE or y + h > 1 + EDGE_TOLERANCE:
        raise DetectionsError(
            f"{place}: bbox {bbox!r} is outside the image (x, y, width, height are "
            "fractions of it, from 0 to 1)"
        )
    kind = CATEGORY_NAMES.get(names[str(category)])
    if kind is None:
        return None
    return DetectorBox(kind, float(conf), (x, y, min(w, 1 - x), min(h, 1 - y)))


def folder_photos(folder: Path) -> list[str]:
    """The photos under ``folder`` as the folder source names them (relative, ``/``)."""
    return sorted(path.relative_to(folder).as_posix() for path in photos_in(folder))


def check_against_folder(detections: Detections, folder: Path) -> int:
    """Match the entries with the photos of ``folder``: a ``DetectionsError`` when none of
    its photos has an entry (the wrong file, or one made on another folder); one warning
    counting the entries that name no photo of it. Returns that count."""
    photos = folder_photos(folder)
    matched = {detections.lookup(photo) is not None for photo in photos}
    if photos and True not in matched and _rebase(detections, photos, folder):
        matched = {True}
    if photos and True not in matched:
        first = next(iter(detections.entries), None)
        example = f"its first is {first!r}" if first is not None else "it lists no images"
        raise DetectionsError(
            f"{detections.path}: none of the {len(photos)} photos in {folder} has an entry "
            f"(entries name files relative to the folder MegaDetector ran on; {example}, "
            f"the folder's first photo is {photos[0]!r})"
        )
    known = {entry_key(photo).casefold() for photo in photos}
    missing = [name for name in detections.entries if name.casefold() not in known]
    if missing:
        log.warning(
            "%s: %d of its %d entries name no photo in %s (first: %s); their boxes are not used",
            detections.path,
            len(missing),
            len(detections.entries),
            folder,
            missing[0],
        )
    if detections.ignored_boxes:
        log.warning(
            "%s: %d box(es) of categories other than animal, person and vehicle are ignored",
            detections.path,
            detections.ignored_boxes,
        )
    return len(missing)


# At most this many leading folders are tried off the entries' names (``_rebase``).
MAX_REBASE = 8


def _rebase(detections: Detections, photos: list[str], folder: Path) -> bool:
    """When no entry names a photo of ``folder`` as it is, try the entries' names without
    their first 1..``MAX_REBASE`` folders (MegaDetector run on the folder above, or with
    absolute paths on another machine): the cut that names the most photos is taken, with
    one warning. True when one names any."""
    known = {photo.casefold() for photo in photos}
    best, hits = 0, 0
    for cut in range(1, MAX_REBASE + 1):
        found = sum(
            "/".join(name.split("/")[cut:]).casefold() in known for name in detections.entries
        )
        if found > hits:
            best, hits = cut, found
    if not hits:
        return False
    rebased: dict[str, Entry] = {}
    for name, entry in detections.entries.items():
        rebased.setdefault("/".join(name.split("/")[best:]) or name, entry)
    dropped = "/".join(next(iter(detections.entries)).split("/")[:best]) + "/"
    detections.entries, detections._folded = rebased, None
    log.warning(
        "%s: its files are named from another folder (%r before the path); matched with the "
        "photos of %s without it",
        detections.path,
        dropped,
        folder,
    )
    return True


@lru_cache(maxsize=2)
def _checked(path: str, _mtime_ns: int, _size: int, folder: str) -> Detections:
    detections = read_detections(Path(path))
    check_against_folder(detections, Path(folder))
    return detections


def detections_for(path: Path, folder: Path) -> Detections:
    """``read_detections`` and ``check_against_folder``, once per file and folder (the CLI
    checks before it opens the database, the localiser reads the same result)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DetectionsError(f"{path}: MegaDetector file not found") from None
    except OSError as exc:
        raise DetectionsError(f"{path}: cannot read it: {exc}") from None
    return _checked(str(path), stat.st_mtime_ns, stat.st_size, str(folder))


def pixel_box(bbox: tuple[float, float, float, float], width: int, height: int) -> Box:
    """A normalised ``x, y, w, h`` in the pixels of a ``width`` x ``height`` frame (at
    least one pixel each way, inside the frame)."""
    x, y, w, h = bbox
    left = min(max(round(x * width), 0), width - 1)
    top = min(max(round(y * height), 0), height - 1)
    right = min(max(round((x + w) * width), left + 1), width)
    bottom = min(max(round((y + h) * height), top + 1), height)
    return left, top, right - left, bottom - top


class MegaDetectorLocaliser:
    """Each photo's MegaDetector boxes at or above ``threshold`` (``candidates.Localiser``);
    see the module docstring."""

    join_fragments = False  # two overlapping boxes are two animals
    relink_missed = True  # photos seconds apart: see Tracker.relink_missed

    def __init__(self, detections: Detections, threshold: float) -> None:
        self.detections = detections
        self.threshold = threshold
        self.not_in_detections = 0
        self.failed = 0

    def locate(
        self, timestamp: datetime, frame: np.ndarray, hold: Sequence[Box], file: str | None = None
    ) -> list[Located]:
        entry = self.detections.lookup(file) if file is not None else None
        if entry is None:
            self.not_in_detections += 1
            return [Located(timestamp, frame, unprocessed=NOT_IN_DETECTIONS, file=file)]
        if entry.failure is not None:
            self.failed += 1
            return [Located(timestamp, frame, unprocessed=DETECTOR_FAILED, file=file)]
        height, width = frame.shape[:2]
        found = [
            Candidate(
                pixel_box(box.bbox, width, height), MEGADETECTOR, box.conf, box.category, box.bbox
            )
            for box in entry.boxes
            if box.conf >= self.threshold
        ]
        return [Located(timestamp, frame, found, file=file)]

    def flush(self) -> list[Located]:
        return []

    def track_rules(self, tracking: TrackingSettings) -> tuple[TrackingSettings, float]:
        return photo_track_rules(tracking), 0.0

    def stillness(self, box: Box) -> tuple[float, float, float] | None:
        return None  # photos seconds apart; and a detector's box needs no such judgement

    def is_ghost(self, box: Box) -> bool:
        return False
