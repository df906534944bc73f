"""COCO Camera Traps files (the format of the LILA camera-trap datasets) as a ``--data`` source:
which crops to cut from which frame, under which label, in which split group.

``--data FILE.json`` names a COCO Camera Traps file: ``images`` (``id``, ``file_name``
relative to the file's folder or to ``--image-root``, ``width``, ``height``, ``location``,
``seq_id``), ``categories`` (``id``, ``name``) and ``annotations`` (``image_id``,
``category_id``, optionally ``bbox`` [x, y, w, h] in pixels). Per frame:

- every boxed annotation is one crop around its box;
- an image-level label (no box) takes the frame's MegaDetector boxes (``--boxes``: batch
  output, format 1.3+: normalised [x, y, w, h]) of the matching kind (animal; person for
  ``person``; vehicle for cars and trucks) at or above ``--boxes-threshold``, else the whole
  frame;
- an ``empty`` (or ``blank``) frame gives background crops labelled ``--empty-as`` when that
  is given (trainer.crops: random boxes of the sizes the motion gate's false positives
  have), and is skipped otherwise;
- category names become labels through ``--label-map`` (without one, the names are the
  labels, and must keep the label rules of edge_agent.labels).

The validation split keeps a location (``--split-by location``, the default), a sequence
(``seq``) or a frame (``image``) whole (trainer.cct_plan.group_split), and ``--data-repeat``
repeats the source's training crops. This module holds the source's options (a spec: what
config.json and the manifest record), the label map and the MegaDetector boxes;
trainer.cct_plan applies the rules above, trainer.crops decodes the frames and cuts.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edge_agent.labels import RULE, is_valid_label, shown

log = logging.getLogger("trapcount.trainer")

SPLIT_BY = ("location", "seq", "image")
DEFAULT_BOXES_THRESHOLD = 0.2
# Category names that mean "nothing in the frame" in the LILA datasets.
EMPTY_CATEGORIES = frozenset({"empty", "blank"})
DROP = "drop"
ANY_CATEGORY = "*"  # a label map row for every category the map does not name
# MegaDetector's detection categories, and which labels take which kind of box.
MD_ANIMAL, MD_PERSON, MD_VEHICLE = "1", "2", "3"
PERSON_NAMES = frozenset({"person", "human", "people"})
VEHICLE_NAMES = frozenset({"automobile", "bicycle", "bus", "car", "motorcycle", "truck", "vehicle"})
# The spec keys of a COCO Camera Traps source besides "coco" (its path).
OPTION_NAMES = frozenset(
    {"image_root", "boxes", "boxes_threshold", "label_map", "empty_as", "split_by", "repeat"}
)


class DataError(ValueError):
    """The data cannot be used (missing, empty, one class only, unreadable archive...).

    Defined here, at the bottom of the trainer's data modules, for the COCO Camera Traps
    files too; trainer.data, which everything else imports it from, re-exports it."""


# -- the source and its options ---------------------------------------------------------------


@dataclass(frozen=True)
class CocoSource:
    """One COCO Camera Traps ``--data`` and the options it is read with. As a spec (what
    config.json and the manifest record, what the Python API takes) it is a dict with the
    file under ``coco`` and the options by name; a bare ``.json`` path has the defaults."""

    path: str
    image_root: str | None = None  # None: the .json's folder
    boxes: tuple[str, ...] = ()  # MegaDetector batch output files
    boxes_threshold: float = DEFAULT_BOXES_THRESHOLD
    label_map: str | None = None
    empty_as: str | None = None  # None: empty frames are skipped
    split_by: str = "location"
    repeat: int = 1  # each training crop is seen this many times an epoch

    @classmethod
    def from_spec(cls, spec: str | Path | Mapping[str, Any]) -> CocoSource:
        if not isinstance(spec, Mapping):
            return cls(str(spec))
        values = {k: v for k, v in spec.items() if v is not None}
        path = values.pop("coco", None)
        if not isinstance(path, (str, Path)) or not str(path):
            raise DataError("a COCO Camera Traps data spec needs 'coco': the path of its .json")
        unknown = sorted(set(values) - OPTION_NAMES)
        if unknown:
            raise DataError(f"unknown COCO Camera Traps option(s): {', '.join(unknown)}")
        boxes = values.pop("boxes", ())
        boxes = (boxes,) if isinstance(boxes, (str, Path)) else tuple(boxes)
        for name in ("image_root", "label_map"):
            if name in values:
                values[name] = str(values[name])
        try:
            source = cls(str(path), boxes=tuple(str(b) for b in boxes), **values)
            source = replace(
                source,
                boxes_threshold=float(source.boxes_threshold),
                repeat=int(source.repeat),
            )
        except (TypeError, ValueError) as exc:
            raise DataError(f"bad COCO Camera Traps options for {path}: {exc}") from None
        source.check()
        return source

    def check(self) -> None:
        if self.split_by not in SPLIT_BY:
            raise DataError(f"--split-by {self.split_by!r}: choose {', '.join(SPLIT_BY)}")
        if not 0.0 <= self.boxes_threshold <= 1.0:
            raise DataError(f"--boxes-threshold {self.boxes_threshold:g} is not in [0, 1]")
        if self.repeat < 1:
            raise DataError(f"--data-repeat {self.repeat} must be at least 1")
        if self.empty_as is not None and not is_valid_label(self.empty_as):
            raise DataError(f"--empty-as {shown(self.empty_as)} is not a valid label ({RULE})")

    def absolute(self) -> CocoSource:
        """With every path absolute (runs record where their inputs were)."""

        def full(path: str) -> str:
            return str(Path(path).expanduser().resolve())

        return replace(
            self,
            path=full(self.path),
            image_root=full(self.image_root) if self.image_root else None,
            boxes=tuple(full(b) for b in self.boxes),
            label_map=full(self.label_map) if self.label_map else None,
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "coco": self.path,
            "image_root": self.image_root,
            "boxes": list(self.boxes),
            "boxes_threshold": self.boxes_threshold,
            "label_map": self.label_map,
            "empty_as": self.empty_as,
            "split_by": self.split_by,
            "repeat": self.repeat,
        }

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def root(self) -> Path:
        return Path(self.image_root or Path(self.path).parent).expanduser()


def is_coco_spec(spec: object) -> bool:
    """Whether a ``--data`` value is a COCO Camera Traps source (a .json file or its spec)."""
    if isinstance(spec, Mapping):
        return "coco" in spec
    return isinstance(spec, (str, Path)) and str(spec).lower().endswith(".json")


def absolute_spec(spec: str | Path | Mapping[str, Any]) -> str | dict[str, Any]:
    """A COCO spec with absolute paths: a bare .json stays a path, options make a dict."""
    if isinstance(spec, Mapping):
        return CocoSource.from_spec(spec).absolute().to_spec()
    return str(Path(spec).expanduser().resolve())


def spec_key(spec: str | Path | Mapping[str, Any]) -> str:
    """What identifies a COCO source among the ``--data`` values (for duplicates)."""
    return json.dumps(CocoSource.from_spec(spec).absolute().to_spec(), sort_keys=True)


def coco_specs(data: Iterable[str | Path], **options: Any) -> list[str | dict[str, Any]]:
    """``--data`` values with the COCO options (``--boxes``, ``--label-map``...) applied to
    every COCO Camera Traps .json among them; options left out (None, empty) keep their
    defaults. Other values are returned as they are."""
    given = {k: v for k, v in options.items() if v is not None and v != ()}
    unknown = sorted(set(given) - OPTION_NAMES)
    if unknown:
        raise TypeError(f"unknown COCO Camera Traps option(s): {', '.join(unknown)}")
    specs: list[str | dict[str, Any]] = []
    for value in data:
        if given and is_coco_spec(value):
            specs.append(CocoSource.from_spec({"coco": str(value), **given}).to_spec())
        else:
            specs.append(str(value))
    if given and not any(is_coco_spec(s) for s in specs):
        log.warning(
            "%s apply only to COCO Camera Traps .json --data; none was given",
            ", ".join("--" + name.replace("_", "-") for name in sorted(given)),
        )
    return specs


def with_recorded_options(
    specs: Iterable[str | Path | Mapping[str, Any]], recorded: Iterable[Any] | None
) -> list[Any]:
    """``specs``, where a bare .json path is one a run recorded with options, with those
    options: ``export`` and ``evaluate`` then cut the same crops, with the same labels and
    groups, as the training did. Matched by resolved path, else by file name."""
    by_path: dict[str, Mapping[str, Any]] = {}
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for item in recorded or ():
        if isinstance(item, Mapping) and isinstance(item.get("coco"), str):
            by_path[str(Path(item["coco"]).expanduser().resolve())] = item
            by_name.setdefault(Path(item["coco"]).name, []).append(item)
    result: list[Any] = []
    for spec in specs:
        if is_coco_spec(spec) and not isinstance(spec, Mapping):
            found = by_path.get(str(Path(spec).expanduser().resolve()))
            named = by_name.get(Path(spec).name, [])
            if found is None and len(named) == 1:
                found = named[0]
            if found is not None:
                log.info("%s: read with the COCO options the model was trained with", spec)
                spec = {**found, "coco": str(spec)}
        result.append(spec)
    return result


# -- reading JSON and the label map -------------------------------------------------------


def read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {what} {path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None


@dataclass
class LabelMap:
    """``--label-map``: ``source category,label`` rows (CSV; ``#`` comments and a header
    row allowed); a label left empty or ``drop`` drops the category, a ``*`` row gives the
    label of every category the map does not name."""

    path: Path
    rows: dict[str, str | None]
    default: tuple[str | None] | None = None  # the * row's label, boxed: None is "drop"

    @classmethod
    def read(cls, path: str | Path) -> LabelMap:
        path = Path(path).expanduser()
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except FileNotFoundError:
            raise DataError(f"label map not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read label map {path}: {exc}") from None
        rows: dict[str, str | None] = {}
        default = None
        first = True
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cells = [c.strip() for c in next(csv.reader([line]))]
            if first and [c.lower() for c in cells[:2]] in (
                ["source category", "label"],
                ["category", "label"],
                ["source", "label"],
            ):
                first = False
                continue
            first = False
            if len(cells) > 2 or not cells[0]:
                raise DataError(
                    f"{path} line {number}: expected 'source category,label', got {line.strip()!r}"
                )
            label = cells[1] if len(cells) == 2 else ""
            value = None if label in ("", DROP) else label
            if value is not None and not is_valid_label(value):
                raise DataError(
                    f"{path} line {number}: label {shown(value)} is not a valid label ({RULE})"
                )
            if cells[0] == ANY_CATEGORY:
                default = (value,)
            elif rows.get(cells[0], value) != value:
                raise DataError(f"{path} line {number}: category {cells[0]!r} is mapped twice")
            else:
                rows[cells[0]] = value
        return cls(path, rows, default)

    def lookup(self, category: str) -> tuple[bool, str | None]:
        """(whether the map names the category, its label or None to drop it)."""
        if category in self.rows:
            return True, self.rows[category]
        folded = {k.casefold(): v for k, v in self.rows.items()}
        if category.casefold() in folded:
            return True, folded[category.casefold()]
        if self.default is not None:
            return True, self.default[0]
        return False, None


# -- MegaDetector batch output ----------------------------------------------------------------


def _normal(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def xywh(value: object) -> tuple[float, float, float, float] | None:
    """A box [x, y, w, h] of four finite numbers with w, h > 0, else None."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    numbers = [_number(v) for v in value]
    if any(v is None for v in numbers):
        return None
    x, y, w, h = numbers  # type: ignore[misc]
    return (x, y, w, h) if w > 0 and h > 0 else None


Detection = tuple[str, float, tuple[float, float, float, float]]  # category, conf, box 0-1
_AMBIGUOUS: list[Detection] = []


class MegaDetectorBoxes:
    """The detections of one or more MegaDetector batch output files, by image file."""

    def __init__(self) -> None:
        self.exact: dict[str, list[Detection]] = {}
        self.tails: dict[str, list[Detection]] = {}  # MD paths without leading folders

    @classmethod
    def read(cls, paths: Iterable[str]) -> MegaDetectorBoxes:
        boxes = cls()
        for path in paths:
            boxes.add_file(Path(path).expanduser())
        return boxes

    def add_file(self, path: Path) -> None:
        doc = read_json(path, "MegaDetector file")
        if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
            raise DataError(f"{path} is not MegaDetector batch output (no 'images' list)")
        version = (
            (doc.get("info") or {}).get("format_version")
            if isinstance(doc.get("info"), dict)
            else None
        )
        if version is not None and _version(version) < (1, 3):
            log.warning("%s: MegaDetector format %s; 1.3 or later is expected", path, version)
        for number, entry in enumerate(doc["images"]):
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise DataError(f"{path}: image #{number} has no 'file'")
            found = []
            for k, det in enumerate(entry.get("detections") or ()):  # None: MD failed on it
                box = xywh(det.get("bbox")) if isinstance(det, dict) else None
                conf = _number(det.get("conf")) if isinstance(det, dict) else None
                if box is None or conf is None or "category" not in det:
                    raise DataError(
                        f"{path}: detection #{k} of {entry['file']!r} is malformed (needs "
                        "'category', 'conf' and a normalised 'bbox' [x, y, w, h])"
                    )
                found.append((str(det["category"]), conf, box))
            self.add(entry["file"], found)

    def add(self, file: str, detections: list[Detection]) -> None:
        name = _normal(file)
        self.exact[name] = detections
        parts = name.split("/")
        for k in range(1, len(parts)):
            tail = "/".join(parts[k:])
            if self.tails.get(tail, detections) is not detections:
                self.tails[tail] = _AMBIGUOUS  # two files end the same way
            else:
                self.tails[tail] = detections

    def lookup(self, file_name: str) -> list[Detection] | None:
        """The detections of ``file_name`` (as the COCO file writes it): the same path, or
        one that ends the other (MegaDetector run on a folder above or below the image
        root); None when no entry matches, or more than one does."""
        name = _normal(file_name)
        if name in self.exact:
            return self.exact[name]
        if name in self.tails:
            found = self.tails[name]
            return None if found is _AMBIGUOUS else found
        parts = name.split("/")
        for k in range(1, len(parts)):
            tail = "/".join(parts[k:])
            if tail in self.exact:
                return self.exact[tail]
        return None


def _version(text: object) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in str(text).split(".")[:2])
    except ValueError:
        return (0,)


def detection_kind(label: str, category: str) -> str:
    """The MegaDetector category whose boxes an image-level label takes."""
    names = {label.lower(), category.lower()}
    if names & PERSON_NAMES:
        return MD_PERSON
    if names & VEHICLE_NAMES:
        return MD_VEHICLE
    return MD_ANIMAL
