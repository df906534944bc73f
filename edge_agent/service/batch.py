"""``trapcount process``: the pipeline over a finite source (a video file, an image folder)
to its end, written as it goes, rerun-safe."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from edge_agent.capture.factory import open_source
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
