"""The media of a Camtrap DP package: the camera's frames the trap kept, put into the package,
and what was seen on them (media-level observations with their boxes).

Camtrap DP's ``media`` are the files the *camera* recorded. A crop is cut by trapcount from
a frame, so crops are never listed; frames are (``media.kind = frame``, kept with
``media.keep_frames``). A frame goes into the package only when it can be delivered there:

- its file is found inside the media folder given (``--media DIR``), and is copied to
  ``media/<deployment>/<file name>`` (``--link-media``: a hard link, else a symbolic link);
- the privacy guard found nobody on it (``clear``), nothing says it shows a person (its
  label, a reviewer's label of it or of its crop, a person box on it), and its event is in
  the package. ``blurred`` frames (someone was hidden) only with ``include_blurred``, and
  then never public; ``unchecked`` frames (the guard was off) never.

Every frame left out is counted with its reason. Each packaged frame gets one media-level
observation per box on it: the ``detections`` rows of that frame when the trap recorded
them (revision 0008: every counted track visible in it), else the media row's own box
(frame pixels, normalised by the file's size); ``bboxX/Y/Width/Height`` are fractions of the
frame from its top-left corner, as the standard defines them.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from edge_agent.files import make_private_dir, write_private
from edge_agent.office.media_files import (
    BLURRED,
    CLEAR,
    CROP,
    FRAME,
    Box,
    detections_by_event,
    event_starts,
    frame_boxes,
    image_size,
    is_human,
    kept_media,
    on_frame,
    resolve_media_file,
    shows_person,
)
from edge_agent.office.report_data import Deployment, ReportData
from edge_agent.office.taxa import TaxonMap
from edge_agent.office.windows import camtrap_time
from edge_agent.store.database import Store
from edge_agent.store.models import Detection, Media

MEDIA_FOLDER = "media"
COPIED, HARD_LINK, SYMLINK = "copied", "hard link", "symbolic link"


@dataclass(frozen=True)
class MediaOptions:
    """How the package gets its media: from ``folder`` (the trap's media folder or a copy
    of it; None: no media in the package), copied or linked, blurred frames or not."""

    folder: Path | None = None
    link: bool = False
    include_blurred: bool = False


@dataclass
class PackagedMedia:
    records: list[dict[str, str]] = field(default_factory=list)  # media.csv
    observations: list[dict[str, str]] = field(default_factory=list)  # observationLevel=media
    labels: set[str] = field(default_factory=set)  # the labels of those observations
    placed: Counter[str] = field(default_factory=Counter)  # copied / hard link / symbolic link
    left_out: Counter[str] = field(default_factory=Counter)  # frames not packaged, by reason
    crops: int = 0  # kept crops, never listed (not camera media)
    times: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    files: list[tuple[Path, str]] = field(default_factory=list)  # (kept file, path in package)


def folder_name(text: str) -> str:
    """A deployment's or a file's name as one safe path segment."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "deployment"


def _box_value(value: float) -> str:
    return f"{min(max(value, 0.0), 1.0):.6f}".rstrip("0").rstrip(".") or "0"


def _place(source: Path, target: Path, link: bool) -> str:
    """``source`` at ``target`` (replacing a file of an earlier export): a private copy, or
    a hard link, else a symbolic link; returns which."""
    target.unlink(missing_ok=True)
    if link:
        try:
            os.link(source, target)
            return HARD_LINK
        except OSError:  # another filesystem, or links not allowed there
            os.symlink(source, target)
            return SYMLINK
    write_private(target, source.read_bytes())
    return COPIED


def _clear_stale(folder: Path, keep: set[Path]) -> None:
    """Remove from the package's media folder what this export did not put there (an
    earlier export's file may since have been reviewed as a person)."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for root, dirs, names in os.walk(folder, topdown=False):
        here = Path(root)
        for name in names:
            if here / name not in keep:
                (here / name).unlink()
        for name in dirs:
            path = here / name
            if path.is_symlink():
                path.unlink()
            elif not any(path.iterdir()):
                path.rmdir()


def place_media(media: PackagedMedia, out: Path, link: bool) -> None:
    """Put the planned files into the package folder ``out`` (copies, or links with
    ``link``), and remove what an earlier export left in ``out/media``."""
    written = set()
    for source, relative in media.files:
        target = out / relative
        make_private_dir(target.parent)
        media.placed[_place(source, target, link)] += 1
        written.add(target)
    _clear_stale(out / MEDIA_FOLDER, written)


def plan_media(
    stores: Sequence[Store],
    data: ReportData,
    deployments: dict[tuple[str, int], Deployment],
    options: MediaOptions,
    taxa: TaxonMap,
    events: dict[tuple[str, datetime], dict[str, str]],
) -> PackagedMedia:
    """media.csv rows and media-level observations for the frames kept in ``stores``, and
    the files to put into the package (:func:`place_media`; nothing is written here).
    ``deployments``: the exported ones by (database, id); ``events``: the exported events
    by (deployment name, start), each with its eventID, classifiedBy and
    classificationTimestamp."""
    result = PackagedMedia()
    targets: set[str] = set()
    seen_ids: set[str] = set()
    for store in stores:
        ids = {dep_id for (where, dep_id) in deployments if where == store.where}
        rows = kept_media(store, ids)
        result.crops += sum(1 for row in rows if row.kind == CROP and row.path)
        frames = [row for row in rows if row.kind == FRAME and row.path]
        # A frame and the crop of the same track share event, time and track label.
        person_crops = {
            (row.event_id, row.time) for row in rows if row.kind == CROP and shows_person(row)
        }
        event_ids = {row.event_id for row in frames if row.event_id is not None}
        starts = event_starts(store, event_ids)
        boxes_of = detections_by_event(store, event_ids)
        for frame in frames:
            dep = deployments[(store.where, frame.deployment_id)]
            stamp = frame.time  # aware UTC, as the store returns times
            if not data.window.contains(stamp, dep.timezone):
                continue
            start = starts.get(frame.event_id) if frame.event_id is not None else None
            event = events.get((dep.key, start)) if start is not None else None
            detections = boxes_of.get(frame.event_id, []) if frame.event_id is not None else []
            reason = _left_out(frame, event, detections, person_crops, options)
            if reason is None:
                assert options.folder is not None
                source = resolve_media_file(options.folder, frame.path)
                if source is None:
                    reason = "file not found in the media folder"
            if reason is not None:
                result.left_out[reason] += 1
                continue
            assert event is not None and source is not None
            media_id = f"{dep.key}-m{frame.id}"
            if media_id in seen_ids:
                continue  # the same database given twice
            seen_ids.add(media_id)
            name = folder_name(Path(str(frame.path)).name)
            folder = f"{MEDIA_FOLDER}/{folder_name(dep.key)}"
            if f"{folder}/{name}" in targets:
                name = f"m{frame.id}-{name}"
            relative = f"{folder}/{name}"
            targets.add(relative)
            result.files.append((source, relative))
            clear = frame.privacy_status == CLEAR
            result.records.append(
                {
                    "mediaID": media_id,
                    "deploymentID": dep.key,
                    "captureMethod": "activityDetection",
                    "timestamp": camtrap_time(stamp, dep.timezone),
                    "filePath": relative,
                    "filePublic": "true" if clear else "false",
                    "fileName": name,
                    "fileMediatype": mimetypes.guess_type(name)[0] or "image/jpeg",
                    "mediaComments": (
                        "" if clear else "people in it were blurred by the privacy guard"
                    ),
                }
            )
            result.times[dep.key].append(stamp)
            boxes = frame_boxes(frame, detections, image_size(source))
            for n, box in enumerate(boxes, start=1):
                result.observations.append(_observation(media_id, n, box, dep, stamp, event, taxa))
                result.labels.add(box.label)
    return result


def _left_out(
    frame: Media,
    event: dict[str, str] | None,
    detections: list[Detection],
    person_crops: set[tuple[int | None, datetime]],
    options: MediaOptions,
) -> str | None:
    """Why a kept frame stays out of the package, or None."""
    if shows_person(frame) or (frame.event_id, frame.time) in person_crops:
        return "a person"
    if any(d.category == "person" or is_human(d.label) for d in on_frame(frame, detections)):
        return "a person"
    if frame.privacy_status == BLURRED:
        if not options.include_blurred:
            return "blurred (people hidden; include_blurred not given)"
    elif frame.privacy_status != CLEAR:
        return f"privacy {frame.privacy_status or 'not recorded'}: not checked for people"
    if event is None:
        return "its event is not in the package"
    if options.folder is None:
        return "no media folder given"
    return None


def _observation(
    media_id: str,
    n: int,
    box: Box,
    dep: Deployment,
    stamp: datetime,
    event: dict[str, str],
    taxa: TaxonMap,
) -> dict[str, str]:
    taxon = taxa[box.label]
    human = taxon.observation_type == "human"
    tags = [f"label:{box.label}"]
    if box.track is not None:
        tags.append(f"track:{box.track}")
    tags.append(f"box:{box.detector or 'motion'}" if box.source == "detections" else "box:media")
    return {
        "observationID": f"{media_id}-o{n}",
        "deploymentID": dep.key,
        "mediaID": media_id,
        "eventID": event["eventID"],
        "eventStart": camtrap_time(stamp, dep.timezone),
        "eventEnd": camtrap_time(stamp, dep.timezone, round_up=True),
        "observationLevel": "media",
        "observationType": taxon.observation_type,
        "scientificName": taxon.scientific_name if taxon.is_animal else "",
        "count": "" if taxon.observation_type == "blank" else "1",
        "classificationMethod": "machine",
        "classifiedBy": event["classifiedBy"],
        "classificationTimestamp": event["classificationTimestamp"],
        "classificationProbability": ("" if human else f"{min(max(box.confidence, 0.0), 1.0):.4f}"),
        "bboxX": _box_value(box.x),
        "bboxY": _box_value(box.y),
        "bboxWidth": _box_value(box.w),
        "bboxHeight": _box_value(box.h),
        "observationTags": " | ".join(tags),
        "observationComments": (
            ""
            if taxa.knows(box.label)
            else f"classifier label {box.label!r} is not in the taxon map"
        ),
    }
