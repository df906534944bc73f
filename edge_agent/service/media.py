"""Frames kept for retraining: which crops are written, where, and when they go again.

``MediaKeeper`` is the pipeline's media observer. While a counted track is in view it
remembers the track's *best* image: the crop (and, with ``media.keep_frames``, the full
frame) where its box was largest. When the track's event has been written,
:meth:`MediaKeeper.keep` decides per track:

- **Quota and hard cases first.** At most ``media.quota_per_label_per_day`` crops per label
  and UTC day. Below the quota a crop is kept; at the quota, a *harder* one (its crops
  disagreed, or a lower confidence) replaces the easiest one kept that day (whose file is
  deleted and logged with reason ``quota``), so that reviewers see the hard cases.
- **Privacy.** Every image is checked again just before it is written
  (``PrivacyGuard.prepare``): in ``drop`` mode nothing with a face or person is written (a
  person track's images never are); in ``blur`` mode it is written blurred. A track with a
  MegaDetector person box is never pictured, whatever the mode.
- **Files** are created 0600 in folders made 0700 (``media_dir/YYYY-MM-DD/``), named by time,
  event, track and label, and recorded in the ``media`` table with their sha256.
- **Disk guard.** Before every write the free space of the media filesystem is checked: below
  ``media.min_free_mb`` (after the file) the oldest media is deleted first (reason ``disk``);
  when that is not enough, media writes stop (logged once; :attr:`paused`, shown in the
  heartbeat log and by ``doctor``) until there is room again. Counting never stops, and
  events, counts and the database are never deleted.
- **Retention.** :func:`apply_retention` deletes media older than ``media.retention_days``
  (reason ``retention``); the service runs it every ``media.retention_check_s``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from edge_agent.config import MediaSettings
from edge_agent.counting.tracking import Track
from edge_agent.files import make_private_dir, write_private
from edge_agent.labels import PERSON
from edge_agent.store.database import Store
from edge_agent.store.models import Media, as_utc
from edge_agent.vision.classifier import square_box
from edge_agent.vision.geometry import Box
from edge_agent.vision.privacy import UNCHECKED, Prepared, PrivacyGuard

log = logging.getLogger(__name__)

JPEG_QUALITY = 90
# A media row without a file: a track whose images the privacy guard withheld.
RECORD = "record"
SUPPRESSED = "suppressed"
# A box must grow by this factor before its crop replaces the remembered one.
GROWTH = 1.1


@dataclass
class Best:
    """A track's best image so far."""

    time: datetime
    area: int
    box: Box
    crop: np.ndarray  # BGR
    frame: np.ndarray | None  # BGR, with keep_frames


def free_bytes(path: Path) -> int | None:
    """Free space of the filesystem holding ``path`` (its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def box_fields(box: Box) -> dict[str, int]:
    """A track's box as the media table's columns."""
    x, y, w, h = (int(v) for v in box)
    return {"box_x": x, "box_y": y, "box_w": w, "box_h": h}


def hardness(disagreed: bool, confidence: float) -> tuple[int, float]:
    """Larger is harder: disagreeing crops first, then low confidence."""
    return (1 if disagreed else 0, -float(confidence))


def remove_media(store: Store, rows: list[Media], reason: str) -> int:
    """Delete the files of ``rows`` and their rows (each logged with ``reason``)."""
    for row in rows:
        try:
            if row.path is not None:  # a record of a withheld track has no file
                Path(row.path).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot delete %s: %s", row.path, exc)
    return store.delete_media(rows, reason)


def apply_retention(store: Store, settings: MediaSettings, now: datetime) -> int:
    """Delete media older than ``retention_days``; return how many files went."""
    if settings.retention_days <= 0:
        return 0
    cutoff = as_utc(now) - timedelta(days=settings.retention_days)
    old = store.media(until=cutoff)
    if old:
        log.info("retention: deleting %d media older than %s", len(old), cutoff.isoformat())
    return remove_media(store, old, "retention")


class MediaKeeper:
    """Remembers each counted track's best image and writes the chosen ones; see above."""

    def __init__(
        self,
        settings: MediaSettings,
        media_dir: Path,
        store: Store,
        deployment_id: int,
        guard: PrivacyGuard | None,
    ) -> None:
        self.settings = settings
        self.media_dir = Path(media_dir)
        self.store = store
        self.deployment_id = deployment_id
        self.guard = guard
        self.paused = False
        self.written = 0
        self.dropped_private = 0
        self.skipped_disk = 0
        make_private_dir(self.media_dir)

    # -- while tracks are in view --------------------------------------------------------

    def observe(self, timestamp: datetime, frame: np.ndarray, tracks: list[Track]) -> None:
        for track in tracks:
            area = track.box[2] * track.box[3]
            best = track.media
            if isinstance(best, Best) and area < GROWTH * best.area:
                continue
            x, y, s, _ = square_box(track.box, frame.shape)
            crop = _crop(frame, (x, y, s, s), self.settings.crop_px)
            keep_frame = frame.copy() if self.settings.keep_frames else None
            track.media = Best(timestamp, area, track.box, crop, keep_frame)

    # -- when the event was written ------------------------------------------------------

    def keep(self, event_id: int | None, tracks: tuple[Track, ...]) -> int:
        """Write the chosen images of an event's ``tracks``; return how many files."""
        written = 0
        for track in tracks:
            best = track.media
            if not isinstance(best, Best):
                continue
            track.media = None  # written once, and the memory goes
            written += self._keep_track(event_id, track, best)
        return written

    def _keep_track(self, event_id: int | None, track: Track, best: Best) -> int:
        label = track.label
        confidence = round(float(track.confidence), 4)
        disagreed = len(track.vote_counts) > 1
        person = track.person or label == PERSON  # the guard's or a detector's (MegaDetector)
        withheld = person or track.privacy_suppressed
        suppressed_only = track.privacy_suppressed and not person
        # A detector's person box is strong evidence: never an image, whatever privacy.mode.
        detector_person = track.category_counts.get(PERSON, 0) > 0
        drop = detector_person or (self.guard is not None and self.guard.mode == "drop")
        if suppressed_only and drop:
            # Never an image; a record a reviewer can see and relabel instead.
            self._record(event_id, track, best, confidence, disagreed)
            self.dropped_private += 1
            return 0
        if person and detector_person:
            self.dropped_private += 1
            return 0
        quota = self.settings.quota_per_label_per_day
        if quota <= 0:
            return 0
        day = as_utc(best.time).replace(hour=0, minute=0, second=0, microsecond=0)
        kept = self.store.media(
            deployment_id=self.deployment_id,
            label=label,
            kind="crop",
            since=day,
            until=day + timedelta(days=1),
        )
        replace: Media | None = None
        if len(kept) >= quota:
            easiest = min(kept, key=lambda m: (hardness(m.disagreed, m.confidence), -m.id))
            if hardness(disagreed, confidence) <= hardness(easiest.disagreed, easiest.confidence):
                return 0  # the day's quota of this label holds harder cases
            replace = easiest
        crop_h, crop_w = best.crop.shape[:2]
        crop = self._prepare(best.crop, [(0, 0, crop_w, crop_h)] if withheld else None)
        if crop.image is None:
            return 0
        images = [("crop", crop)]
        if best.frame is not None:
            frame = self._prepare(best.frame, [best.box] if withheld else None)
            if frame.image is not None:
                images.append(("frame", frame))
        if replace is not None:
            siblings = [
                m
                for m in self.store.media(deployment_id=self.deployment_id, kind="frame")
                if m.event_id == replace.event_id and m.time == replace.time
            ]
            remove_media(self.store, [replace, *siblings], "quota")
        written = 0
        for kind, prepared in images:
            assert prepared.image is not None
            ok, buffer = cv2.imencode(
                ".jpg", prepared.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
            )
            if not ok:
                continue
            data = buffer.tobytes()
            if not self._room_for(len(data)):
                self.skipped_disk += 1
                return written
            stamp = as_utc(best.time)
            folder = self.media_dir / stamp.strftime("%Y-%m-%d")
            make_private_dir(folder)
            name = f"{stamp.strftime('%H%M%S-%f')}-e{event_id or 0}-t{track.id}-{label}-{kind}.jpg"
            path = folder / name
            try:
                write_private(path, data)
            except FileExistsError:
                continue
            except OSError as exc:
                log.error("media not written: %s: %s", path, exc.strerror or exc)
                self.skipped_disk += 1
                return written
            self.store.add_media(
                deployment_id=self.deployment_id,
                event_id=event_id,
                time=stamp,
                kind=kind,
                path=str(path),
                sha256=hashlib.sha256(data).hexdigest(),
                bytes=len(data),
                label=label,
                confidence=confidence,
                disagreed=disagreed,
                privacy_status=prepared.status,
                **box_fields(best.box),
            )
            written += 1
        self.written += written
        return written

    def _record(
        self, event_id: int | None, track: Track, best: Best, confidence: float, disagreed: bool
    ) -> None:
        """A track whose images the write gate withheld: a row without a file."""
        self.store.add_media(
            deployment_id=self.deployment_id,
            event_id=event_id,
            time=as_utc(best.time),
            kind=RECORD,
            path=None,
            sha256="",
            bytes=0,
            label=track.label,
            confidence=confidence,
            disagreed=disagreed,
            privacy_status=SUPPRESSED,
            **box_fields(best.box),
        )

    def _prepare(self, image: np.ndarray, person: list[Box] | None) -> Prepared:
        if self.guard is None:
            return Prepared(image, UNCHECKED)
        prepared = self.guard.prepare(image, person=person)
        if prepared.image is None:
            self.dropped_private += 1
        return prepared

    # -- disk guard ------------------------------------------------------------------------

    def _room_for(self, size: int) -> bool:
        threshold = int(self.settings.min_free_mb * 1e6)
        free = free_bytes(self.media_dir)
        if free is None:
            return True
        while free - size < threshold:
            oldest = self.store.media(limit=1, files_only=True)
            if not oldest:
                break
            remove_media(self.store, oldest, "disk")
            log.info("disk guard: deleted the oldest media, %s", oldest[0].path)
            free = free_bytes(self.media_dir) or 0
        if free - size < threshold:
            if not self.paused:
                log.warning(
                    "media writes stopped: %.1f MB free on %s (media.min_free_mb = %s); "
                    "counting goes on",
                    free / 1e6,
                    self.media_dir,
                    self.settings.min_free_mb,
                )
            self.paused = True
            return False
        if self.paused:
            log.info("media writes resumed: %.1f MB free", free / 1e6)
        self.paused = False
        return True


def _crop(frame: np.ndarray, square: tuple[int, int, int, int], longest: int) -> np.ndarray:
    x, y, s, _ = square
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(fw, x + s), min(fh, y + s)
    crop = frame[y0:y1, x0:x1]
    side = max(crop.shape[:2])
    if side > longest:
        scale = longest / side
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return crop.copy()
