"""``trapcount export megadetector``: the boxes behind the counts as MegaDetector batch
output (https://lila.science/megadetector-output-format), which Timelapse, AddaxAI and the
MegaDetector tools load.

The file is the current format (``format_version`` "1.6", a string as 1.6 requires):

- ``info``: ``format_version``, ``detector`` (trapcount and what found the boxes:
  ``motion``, ``megadetector`` or both), ``detection_completion_time`` and
  ``classification_completion_time`` (when the latest exported event was written, UTC,
  ``YYYY-mm-dd HH:MM:SS`` as MegaDetector writes it) and ``classifier`` (the model
  versions that labelled the tracks);
- ``detection_categories``: MegaDetector's own, ``1`` animal, ``2`` person, ``3`` vehicle;
- ``classification_categories``: trapcount's labels (every label of the models in the
  database, in their order, then any other label the boxes carry), ids from ``0``;
- ``images``: one entry per photo with boxes (``file`` relative to the folder that was
  processed, as ``process`` read it), its ``detections`` with ``category``, ``conf``,
  ``bbox`` (normalised ``x, y, w, h``) and, for animal boxes, ``classifications``
  ``[[label id, confidence]]``: the track's label and its mean crop confidence.

``conf`` is MegaDetector's confidence for its boxes; a box the motion gate found has none,
and is written with 1.0: it belongs to a track trapcount counted. A box whose category no
detector gave takes its track's label's (person, a vehicle label of the taxon map), else
animal. Only counted tracks' boxes are in the database (``detections``), so a photo in
which nothing was counted is not listed. Boxes from video clips and live cameras name no
photo and are left out (counted in ``skipped``).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from edge_agent import __version__
from edge_agent.files import write_private
from edge_agent.office.taxa import TaxonMap
from edge_agent.office.windows import Window
from edge_agent.store.database import Store
from edge_agent.store.models import Deployment, Detection, Event, ModelVersion

FORMAT_VERSION = "1.6"
DETECTION_CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
CATEGORY_IDS = {name: key for key, name in DETECTION_CATEGORIES.items()}
# What MegaDetector's taxon types are in its categories.
_TYPE_CATEGORY = {"human": "person", "vehicle": "vehicle"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# A motion box has no detector confidence: it belongs to a counted track.
COUNTED_CONF = 1.0
DECIMALS = 4


@dataclass
class MegaDetectorExport:
    """What ``export_megadetector`` wrote."""

    out: Path
    images: int
    detections: int
    events: int
    skipped: int  # boxes from clips and cameras: no photo to name
    clashes: int  # file names given to two different photos (two folders processed)


def export_megadetector(
    store: Store, out: Path, window: Window | None = None
) -> MegaDetectorExport:
    """Write the boxes of ``store``'s events starting in ``window`` to ``out`` (JSON, 0600,
    replaced); see the module docstring."""
    document, result = megadetector_document(store, window or Window())
    out = Path(out)
    if out.parent != Path():
        out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    write_private(tmp, (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode())
    os.replace(tmp, out)
    result.out = out
    return result


def megadetector_document(
    store: Store, window: Window
) -> tuple[dict[str, Any], MegaDetectorExport]:
    """The batch-output document and what it holds."""
    since, until = window.coarse()
    query = (
        select(
            Detection,
            Event.start,
            Event.written_at,
            Deployment.timezone,
            ModelVersion.arch,
            ModelVersion.sha256,
        )
        .join(Event, Detection.event_id == Event.id)
        .join(Deployment, Event.deployment_id == Deployment.id)
        .outerjoin(ModelVersion, Event.model_version_id == ModelVersion.id)
        .order_by(Detection.file, Detection.time, Detection.id)
    )
    if since is not None:
        query = query.where(Event.start >= since)
    if until is not None:
        query = query.where(Event.start < until)
    with store.read() as session:
        rows = [
            (detection, start, written, zone, arch, sha)
            for detection, start, written, zone, arch, sha in session.execute(query)
            if window.contains(start, zone)
        ]
        model_labels = [
            labels
            for (labels,) in session.execute(select(ModelVersion.labels).order_by(ModelVersion.id))
        ]
    labels = _label_ids(model_labels, {detection.label for detection, *_ in rows})
    taxa = TaxonMap()
    images: dict[str, list[dict[str, Any]]] = defaultdict(list)
    times: dict[str, set[datetime]] = defaultdict(set)
    detectors: set[str] = set()
    classifiers: dict[str, str] = {}
    events: set[int] = set()
    latest: datetime | None = None
    skipped = 0
    for detection, _start, written, _zone, arch, sha in rows:
        if detection.file is None:
            skipped += 1
            continue
        events.add(detection.event_id)
        detectors.add(detection.detector)
        if sha:
            classifiers[sha] = f"trapcount {arch or 'unknown'} model {sha[:12]}"
        if written is not None and (latest is None or written > latest):
            latest = written
        times[detection.file].add(detection.time)
        category = _category(detection, taxa)
        conf = detection.detector_confidence
        entry: dict[str, Any] = {
            "category": CATEGORY_IDS[category],
            "conf": round(float(conf if conf is not None else COUNTED_CONF), DECIMALS),
            "bbox": [
                round(float(v), DECIMALS)
                for v in (detection.x, detection.y, detection.w, detection.h)
            ],
        }
        if category == "animal":
            entry["classifications"] = [
                [labels[detection.label], round(float(detection.confidence), DECIMALS)]
            ]
        images[detection.file].append(entry)
    completed = (latest or datetime.now(UTC)).astimezone(UTC).strftime(TIME_FORMAT)
    info: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "detector": f"trapcount {__version__} ({', '.join(sorted(detectors)) or 'none'})",
        "detection_completion_time": completed,
        "classifier": ", ".join(classifiers[sha] for sha in sorted(classifiers)) or "none",
        "classification_completion_time": completed,
    }
    document = {
        "info": info,
        "detection_categories": dict(DETECTION_CATEGORIES),
        "classification_categories": {key: label for label, key in labels.items()},
        "images": [
            {"file": file, "detections": sorted(boxes, key=lambda b: (-b["conf"], b["bbox"]))}
            for file, boxes in sorted(images.items())
        ],
    }
    result = MegaDetectorExport(
        out=Path(),
        images=len(images),
        detections=sum(len(boxes) for boxes in images.values()),
        events=len(events),
        skipped=skipped,
        clashes=sum(1 for stamps in times.values() if len(stamps) > 1),
    )
    return document, result


def _label_ids(model_labels: list[list[str]], used: set[str]) -> dict[str, str]:
    """Label -> classification category id: the models' labels in their order, then the
    other labels the boxes carry, alphabetically."""
    ordered: dict[str, None] = {}
    for labels in model_labels:
        for label in labels or []:
            ordered.setdefault(str(label), None)
    for label in sorted(used):
        ordered.setdefault(label, None)
    return {label: str(i) for i, label in enumerate(ordered)}


def _category(detection: Detection, taxa: TaxonMap) -> str:
    """animal, person or vehicle: the detector's, else from the track's label."""
    if detection.category in CATEGORY_IDS and detection.detector != "motion":
        return detection.category
    if detection.category in ("person", "vehicle"):
        return detection.category
    return _TYPE_CATEGORY.get(taxa[detection.label].observation_type, "animal")
