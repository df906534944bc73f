"""Event thumbnails for the HTML report: one small image per event and label, embedded in
the page (a ``data:`` URI) so that the report stays one file.

Only an image the privacy guard found clear of people (``clear``) is ever shown, and never one
of a person: not of a ``person`` event, not a crop or frame whose label or reviewed label is
a person, nor one of the same track as such a crop. An event's crop is preferred (it shows
the animal; the most confident one), else its frame. An event without such an image says
why: its images were withheld by the privacy guard (``record`` rows), it only has blurred or
unchecked ones, it is a person, or nothing was kept.

The page holds at most ``MAX_THUMBNAILS`` (the latest events'), each at most ``SIDE``
pixels on its long side (about 3-5 kB), so it stays a few hundred kilobytes at most; the
page says how many it left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from edge_agent.office.media_files import (
    CLEAR,
    CROP,
    FRAME,
    RECORD,
    data_uri,
    event_starts,
    is_human,
    kept_media,
    resolve_media_file,
    shows_person,
    thumbnail_jpeg,
)
from edge_agent.office.report_data import ReportData, Row
from edge_agent.store.database import Store
from edge_agent.store.models import Media

MAX_THUMBNAILS = 200
SIDE = 96

# What an event row without a thumbnail shows instead.
NO_FOLDER = "no media folder given"
PERSON = "no image: a person"
WITHHELD = "no image: withheld by the privacy guard"
NOT_CLEAR = "no image cleared of people"
NOTHING_KEPT = "no image kept"
MISSING = "image file not found"
CAPPED = "not embedded (thumbnail cap)"


@dataclass
class Thumbnails:
    """Per event and label (deployment name, start, label): a ``data:`` URI or why not."""

    images: dict[tuple[str, datetime, str], str] = field(default_factory=dict)
    reasons: dict[tuple[str, datetime, str], str] = field(default_factory=dict)
    folder: Path | None = None
    capped: int = 0  # events with an image that the cap left out
    limit: int = MAX_THUMBNAILS

    def of(self, row: Row) -> tuple[str | None, str]:
        """(data URI or None, what to say instead) for an event row."""
        key = (row.deployment.key, row.start, row.label)
        if key in self.images:
            return self.images[key], ""
        if self.folder is None and not is_human(row.label):
            return None, NO_FOLDER
        return None, self.reasons.get(key, PERSON if is_human(row.label) else NOTHING_KEPT)

    @property
    def embedded(self) -> int:
        return len(self.images)


def _label_of(media: Media) -> str:
    return media.reviewed_label or media.label


def event_media(
    stores: Sequence[Store], data: ReportData
) -> dict[tuple[str, datetime], list[Media]]:
    """The media rows (files and records) of the data's events, by (deployment, start)."""
    wanted = {(row.deployment.key, row.start) for row in data.rows}
    found: dict[tuple[str, datetime], list[Media]] = defaultdict(list)
    for store in stores:
        deployments = {d.id: d for d in data.deployments if d.source == store.where}
        rows = [m for m in kept_media(store, set(deployments)) if m.event_id is not None]
        starts = event_starts(store, {m.event_id for m in rows if m.event_id is not None})
        for media in rows:
            key = (deployments[media.deployment_id].key, starts.get(media.event_id))
            if key in wanted:
                found[key].append(media)
    return found


def _choose(row: Row, media: list[Media]) -> tuple[Media | None, str]:
    """The image to show for an event row, or None and why not."""
    if is_human(row.label):
        return None, PERSON
    # A track any of whose images is a person's: none of its images is shown.
    people = {(m.event_id, m.time) for m in media if shows_person(m)}
    mine = [m for m in media if _label_of(m) == row.label]
    usable = [
        m
        for m in mine
        if m.kind in (CROP, FRAME)
        and m.path
        and m.privacy_status == CLEAR
        and not shows_person(m)
        and (m.event_id, m.time) not in people
    ]
    if usable:
        best = max(usable, key=lambda m: (m.kind == CROP, m.confidence, -m.id))
        return best, ""
    if any(m.kind == RECORD for m in mine):
        return None, WITHHELD
    if any(m.kind in (CROP, FRAME) and m.path for m in mine):
        return None, NOT_CLEAR
    return None, NOTHING_KEPT


def event_thumbnails(
    stores: Sequence[Store],
    data: ReportData,
    folder: Path | None,
    *,
    limit: int = MAX_THUMBNAILS,
    side: int = SIDE,
) -> Thumbnails:
    """The thumbnails of the data's event rows from the kept media in ``folder`` (files
    are only read inside it); the latest ``limit`` events' images are embedded."""
    thumbs = Thumbnails(folder=folder, limit=limit)
    if folder is None:
        return thumbs
    media = event_media(stores, data)
    chosen: list[tuple[tuple[str, datetime, str], Media]] = []
    for row in data.rows:
        key = (row.deployment.key, row.start, row.label)
        pick, reason = _choose(row, media.get((row.deployment.key, row.start), []))
        if pick is None:
            thumbs.reasons[key] = reason
        else:
            chosen.append((key, pick))
    for key, pick in reversed(chosen):  # the latest first
        path = resolve_media_file(folder, pick.path)
        if path is None:
            thumbs.reasons[key] = MISSING
        elif len(thumbs.images) >= limit:
            thumbs.reasons[key] = CAPPED
            thumbs.capped += 1
        elif (jpeg := thumbnail_jpeg(path, side)) is None:
            thumbs.reasons[key] = MISSING
        else:
            thumbs.images[key] = data_uri(jpeg)
    return thumbs
