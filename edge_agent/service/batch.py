"""``trapcount process``: the pipeline over a finite source (a video file, an image folder)
to its end, written as it goes, rerun-safe.

A folder is a camera's card, and a card may hold clips beside its photos (trail cameras in
"hybrid" mode write a photo and then a clip per trigger): ``process_path`` counts the photos
as one image folder and then each video file in it as a video of its own (its own media
time, its own localiser: the motion gate, or bursts for a time-lapse), into the same
database, rather than skipping the clips without a word. A clip that cannot be decoded is
skipped with a warning and named in the result; the others are counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from edge_agent.capture.factory import open_source, source_kind, source_path
from edge_agent.capture.folder import photos_in
from edge_agent.capture.frames import SourceError
from edge_agent.capture.video import videos_in
from edge_agent.config import Settings
from edge_agent.service.sink import retry_pending
from edge_agent.service.wiring import wire
from edge_agent.store.database import Store
from edge_agent.store.errors import StoreError
from edge_agent.text import plural
from edge_agent.vision.classifier import Classifier

log = logging.getLogger("trapcount.service")


@dataclass
class ProcessResult:
    frames: int = 0
    motion_frames: int = 0
    events: int = 0
    first: datetime | None = None
    last: datetime | None = None
    interrupted: bool = False
    replaced: int = 0  # events of an earlier run over the same footage that were dropped
    event_ids: list[int] = field(default_factory=list)
    media_dir: Path | None = None  # where crops were kept (None: none were)
    media_written: int = 0
    media_private: int = 0  # images not written because they showed people
    media_paused: bool = False  # the disk guard stopped media writes
    person_checks: int = 0
    # Frames that could not be counted, per reason ("no reference": a lone photo of a camera
    # with no empty view to compare it with).
    unprocessed: dict[str, int] = field(default_factory=dict)
    videos: int = 0  # video files of a folder counted (``process_path``)
    skipped_videos: list[str] = field(default_factory=list)  # ... that could not be decoded

    def add(self, other: ProcessResult) -> None:
        """Fold ``other`` (another file of the same card) into this result."""
        self.frames += other.frames
        self.motion_frames += other.motion_frames
        self.events += other.events
        known = [t for t in (self.first, other.first) if t is not None]
        self.first = min(known) if known else None
        known = [t for t in (self.last, other.last) if t is not None]
        self.last = max(known) if known else None
        self.interrupted |= other.interrupted
        self.replaced += other.replaced
        self.event_ids += other.event_ids
        self.media_dir = self.media_dir or other.media_dir
        self.media_written += other.media_written
        self.media_private += other.media_private
        self.media_paused |= other.media_paused
        self.person_checks += other.person_checks
        for reason, frames in other.unprocessed.items():
            self.unprocessed[reason] = self.unprocessed.get(reason, 0) + frames
        self.videos += other.videos
        self.skipped_videos += other.skipped_videos


ProgressCallback = Callable[[int, int | None, int], None]


def process_source(
    settings: Settings,
    store: Store,
    classifier: Classifier,
    *,
    start_time: datetime | None = None,
    stop_event: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    progress_every_s: float = 1.0,
    media_dir: Path | None = None,
) -> ProcessResult:
    """Run the pipeline over a finite source (video file, image folder) to its end.

    Events are written as they close (so an interrupted run keeps them), the rest are
    closed at the end, and the counts of the covered intervals are rolled up. Processing
    the same footage again (the same files, by content: ``sources.file_identity``) replaces
    the events an earlier run found in it; other footage is never touched, even when its
    times overlap. An event the database refused is retried as the run goes on and at its
    end (``END_RETRIES``); what still fails is an error that says to rerun. With
    ``media_dir`` (else ``media.media_dir``), crops are kept for retraining
    (``edge_agent.service.media``).
    """
    wiring = wire(
        settings,
        store,
        classifier,
        media_dir=media_dir,
        retry_note="retried before the next event and at the end of the run",
    )
    sink, keeper = wiring.sink, wiring.keeper
    result = ProcessResult()
    pipeline = wiring.pipeline(classifier)
    last_report = time.monotonic()
    footage: set[str] = set()
    try:
        with open_source(
            settings.source,
            timezone=settings.trap.timezone,
            start_time=start_time,
            stop_event=stop_event,
            base_dir=settings.base_dir,
        ) as source:
            sink.origin = source.origin_of
            total = getattr(source, "frame_count", None)
            if total is None and hasattr(source, "__len__"):
                total = len(source)
            try:
                for timestamp, frame in source:
                    if result.first is None:
                        result.first = timestamp
                    result.last = timestamp
                    sink.write(pipeline.process(timestamp, frame, source.current_file))
                    result.frames += 1
                    now = time.monotonic()
                    if progress is not None and now - last_report >= progress_every_s:
                        last_report = now
                        progress(result.frames, total, sink.written)
            except KeyboardInterrupt:
                result.interrupted = True
            if stop_event is not None and stop_event.is_set():
                result.interrupted = True
            footage = source.origins_read
    finally:
        # Whatever happened, the events still open are closed and written.
        sink.write(pipeline.close(result.last))
        retry_pending(sink)
        for _time, reason in pipeline.unprocessed:
            result.unprocessed[reason] = result.unprocessed.get(reason, 0) + 1
        result.motion_frames = int(getattr(pipeline, "motion_frames", 0))
        result.person_checks = pipeline.person_checks
        if keeper is not None:
            result.media_dir = keeper.media_dir
            result.media_written = keeper.written
            result.media_private = keeper.dropped_private
            result.media_paused = keeper.paused
    if footage and not sink.pending:
        # Rerunning over the same footage: an event found before but not now (different
        # settings or model) would otherwise still be counted. Events keep their ids when
        # found again (same footage, same start), so only the stale ones go. An interrupted
        # run did not see the rest of its files: their later events stay.
        removed = store.delete_stale_events(
            wiring.deployment_id,
            footage,
            keep=sink.event_ids,
            until=result.last if result.interrupted else None,
        )
        result.replaced = len(removed)
        for start in removed:
            sink.mark_dirty(start, start)
    # After the stale rows of the same footage went: a rerun replaces them.
    sink.write_unprocessed(pipeline.unprocessed)
    if result.first is not None and result.last is not None:
        sink.mark_dirty(result.first, result.last)
    sink.rollup(settings.storage.rollup_minutes)
    if progress is not None:
        progress(result.frames, result.frames, sink.written)
    result.events = sink.written
    result.event_ids = list(sink.event_ids)
    if sink.pending:
        raise StoreError(
            f"{plural(sink.pending, 'event')} could not be written to {store.where}; the "
            "counts written so far are kept: rerun the same command to count the rest "
            "(a rerun replaces the events of the same footage)"
        )
    return result


def process_path(
    settings: Settings,
    store: Store,
    classifier: Classifier,
    *,
    start_time: datetime | None = None,
    stop_event: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    media_dir: Path | None = None,
) -> ProcessResult:
    """``process_source`` over ``settings.source``; for an image folder, its photos and then
    each video file in it (see the module docstring), one result for all. ``start_time``
    is a single video file's (a folder's clips each keep their own)."""
    run = dict(stop_event=stop_event, progress=progress, media_dir=media_dir)
    source = settings.source
    if source_kind(source, settings.base_dir) != "folder":
        return process_source(settings, store, classifier, start_time=start_time, **run)
    folder = source_path(source, settings.base_dir)
    videos = videos_in(folder)
    if not videos:
        return process_source(settings, store, classifier, **run)
    result = ProcessResult()
    if photos_in(folder):
        result.add(process_source(settings, store, classifier, **run))
    # MegaDetector's boxes are an image folder's: a clip is located by its own rule.
    motion = settings.motion.model_copy(update={"localiser": "auto", "detections": ""})
    for number, video in enumerate(videos, 1):
        if result.interrupted or (stop_event is not None and stop_event.is_set()):
            result.interrupted = True
            break
        log.info("%s: video %d of %d", video, number, len(videos))
        one = settings.model_copy(
            update={
                "source": source.model_copy(update={"uri": str(video), "kind": "video"}),
                "motion": motion,
            }
        )
        try:
            done = process_source(one, store, classifier, **run)
        except SourceError as exc:
            log.warning("skipping %s: %s", video, exc)
            result.skipped_videos.append(str(video.relative_to(folder)))
            continue
        done.videos = 1
        result.add(done)
    return result
