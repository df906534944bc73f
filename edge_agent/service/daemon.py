"""The long-running trap service (``trapcount run``) and the batch run (``trapcount process``).

The service wires a frame source, the pipeline and the store together under APScheduler 3:

- **capture**: ``continuous`` keeps a capture worker running while inside the active hours
  (cron fields ``capture.active_hours`` / ``capture.active_days_of_week`` in the trap's time
  zone); ``interval`` grabs ``burst_frames`` frames every ``interval_s``. Outside the active
  hours the source is closed, so the camera is released (and the Pi can idle).
- **roll-up** of events into per-interval counts every ``storage.rollup_minutes``.
- **heartbeat** every ``service.heartbeat_s``: frames, fps, open events, model, free disk.
- **model check** every ``service.model_check_s``: when ``model.tflite`` or ``model.json``
  changes, a new classifier is built completely and swapped in between two frames; a model
  that does not load (hash mismatch, damaged file) is refused and the old one kept.
- **sync** every ``sync.interval_s`` when a central database is configured (``sync.url`` or
  the ``sync.url_env`` variable): in its own single thread, so counting never waits for
  it; while the network is down it backs off (``sync.backoff_initial_s`` doubling up to
  ``sync.backoff_max_s``, with jitter so a fleet does not retry in step).
- **systemd** (``Type=notify``): ``READY=1`` once the jobs run, ``WATCHDOG=1`` from the
  heartbeat and, under ``WatchdogSec``, from a watchdog job in between that pings only
  while heartbeats are on time; ``STOPPING=1`` on shutdown.

Every closed event is written in its own transaction as soon as it closes. SIGTERM/SIGINT
stop capture, close the open events, write them, roll up and exit 0 within
``service.shutdown_timeout_s`` or so; ``kill -9`` loses only the events still open.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import edge_agent
from edge_agent.config import ClassifierSettings, Settings
from edge_agent.manifest import ModelContractError, model_paths
from edge_agent.service import notify
from edge_agent.store.database import Store
from edge_agent.store.errors import StoreError
from edge_agent.store.models import LIVE_SOURCE, utc_now
from edge_agent.vision.classifier import Classifier

if TYPE_CHECKING:
    from edge_agent.counting.events import ClosedEvent
    from edge_agent.counting.pipeline import Pipeline
    from edge_agent.service.media import MediaKeeper
    from edge_agent.vision.privacy import PrivacyGuard

log = logging.getLogger("trapcount.service")

MODEL_ENV = "TRAPCOUNT_MODEL"
CAPTURE_POLL_S = 5.0  # how often the capture job checks the active hours and the worker
MAX_PENDING_EVENTS = 10_000
# Signals that stop the service (and `process`) cleanly: open events closed and written,
# counts rolled up. SIGHUP is what a dropped SSH session sends.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


# -- model location and loading -----------------------------------------------------------


def default_model_dir() -> Path:
    """The shipped model: ``$TRAPCOUNT_MODEL``, else ``models/default`` next to the
    ``edge_agent`` package (a source checkout or an editable install), else under the
    working directory."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env).expanduser()
    beside_package = Path(edge_agent.__file__).resolve().parent.parent / "models" / "default"
    if beside_package.exists():
        return beside_package
    return Path.cwd() / "models" / "default"


def resolve_model_dir(
    settings: Settings, *, config_given: bool, override: str | Path | None = None
) -> Path:
    """``--model`` wins, then the config's ``classifier.model_dir`` (relative to the config
    file); else (no config, or no model_dir in it) the shipped default model."""
    if override is not None:
        return Path(override).expanduser().resolve()
    if config_given and settings.classifier.model_dir:
        return settings.resolve(settings.classifier.model_dir).resolve()
    return default_model_dir().resolve()


def check_files(settings: Settings) -> None:
    """The files the config names besides the model (``motion.mask``), before anything is
    opened or created: a ConfigError naming the key when one is missing or unreadable."""
    from edge_agent.counting.pipeline import motion_mask

    motion_mask(settings)


def load_classifier(model_dir: Path, settings: ClassifierSettings) -> Classifier:
    """Build a classifier completely (manifest, hash, tensors) or raise ModelContractError."""
    try:
        return Classifier(
            model_dir,
            num_threads=settings.num_threads,
            confidence_threshold=settings.confidence_threshold,
            max_batch=settings.max_batch,
        )
    except OSError as exc:
        raise ModelContractError(f"cannot read model {model_dir}: {exc.strerror or exc}") from None


def model_signature(model_dir: Path) -> tuple[Any, ...] | None:
    """What changes when either model file is replaced (inode, size, mtime)."""
    signature: list[Any] = []
    for path in model_paths(model_dir):
        try:
            info = path.stat()
        except OSError:
            return None
        signature.append((info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(signature)


# -- small system probes ------------------------------------------------------------------


def free_disk_bytes(path: Path | None) -> int | None:
    if path is None:
        return None
    probe = path if path.exists() else path.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def cpu_temperature_c() -> float | None:
    """SoC temperature on a Pi (and most Linux boards); None where there is no sensor."""
    try:
        raw = Path("/sys/class/thermal/thermal_zone0/temp").read_text().strip()
        return round(int(raw) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def redact(uri: str) -> str:
    """A source URI fit for a log: a stream URL's password replaced by ***."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.password:
        return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
    return uri


class ActiveHours:
    """Cron hour and day-of-week fields, evaluated in the trap's time zone."""

    def __init__(self, hours: str, days_of_week: str, timezone: str) -> None:
        from apscheduler.triggers.cron import CronTrigger

        self.always = hours.strip() == "*" and days_of_week.strip() == "*"
        self._trigger = CronTrigger(
            day_of_week=days_of_week, hour=hours, minute="*", second="*", timezone=timezone
        )
        self.description = f"hours {hours!r}, days {days_of_week!r} ({timezone})"

    def contains(self, when: datetime) -> bool:
        if self.always:
            return True
        second = when.replace(microsecond=0)
        return self._trigger.get_next_fire_time(None, second) == second

    def next_start(self, when: datetime) -> datetime | None:
        return self._trigger.get_next_fire_time(None, when)


# -- writing events -----------------------------------------------------------------------


def plural(count: int, noun: str) -> str:
    """``1 event``, ``3 events``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def describe_event(event: ClosedEvent) -> str:
    labels = ", ".join(f"{o.label} x{o.max_n}" for o in event.observations) or "nothing"
    seconds = (event.end - event.start).total_seconds()
    return f"{event.start.isoformat(timespec='seconds')} +{seconds:.1f}s: {labels}"


class EventSink:
    """Writes closed events one transaction each; keeps the ones a failing database
    refused and retries them before the next; remembers the time range to roll up.

    ``origin``: the identity of the file an event's first frame came from (a source's
    ``origin_of``), stored as the event's ``source_key`` so that a rerun of ``process``
    replaces the events of the same footage and nothing else; None (a live camera) is
    ``live``. ``retry_note``: what the error line promises about events a write failed on.
    """

    def __init__(
        self,
        store: Store,
        deployment_id: int,
        on_written: Callable[[ClosedEvent, int], None] | None = None,
        *,
        origin: Callable[[datetime], str | None] | None = None,
        retry_note: str = "kept in memory and retried before the next write",
    ) -> None:
        self.store = store
        self.deployment_id = deployment_id
        self.on_written = on_written
        self.origin = origin
        self.retry_note = retry_note
        self.written = 0
        self.event_ids: list[int] = []
        self._pending: list[ClosedEvent] = []
        self._dirty: tuple[datetime, datetime] | None = None
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def source_key(self, event: ClosedEvent) -> str:
        key = self.origin(event.start) if self.origin is not None else None
        return key or LIVE_SOURCE

    def write(self, events: Iterable[ClosedEvent]) -> int:
        with self._lock:
            self._pending.extend(events)
            written = 0
            while self._pending:
                event = self._pending[0]
                try:
                    event_id = self.store.write_event(
                        event, self.deployment_id, source_key=self.source_key(event)
                    )
                except StoreError as exc:
                    waiting = plural(len(self._pending), "event")
                    log.error("%s; %s %s", exc, waiting, self.retry_note)
                    del self._pending[:-MAX_PENDING_EVENTS]
                    break
                self._pending.pop(0)
                self.event_ids.append(event_id)
                self._mark_dirty(event.start)
                written += 1
                log.info("event %d: %s", event_id, describe_event(event))
                if self.on_written is not None:
                    try:
                        self.on_written(event, event_id)
                    except Exception as exc:  # media must never stop the counting
                        log.error("media of event %d not kept: %s", event_id, exc)
            self.written += written
            return written

    def mark_dirty(self, since: datetime, until: datetime) -> None:
        """Have the next roll-up recompute the intervals of [since, until] too."""
        with self._lock:
            self._mark_dirty(since)
            self._mark_dirty(until)

    def _mark_dirty(self, start: datetime) -> None:
        if self._dirty is None:
            self._dirty = (start, start)
        else:
            self._dirty = (min(self._dirty[0], start), max(self._dirty[1], start))

    def rollup(self, minutes: int) -> int:
        """Recompute the counts of the intervals that got new events; 0 when none did."""
        with self._lock:
            dirty, self._dirty = self._dirty, None
        if dirty is None:
            return 0
        try:
            return self.store.rollup(
                dirty[1] + timedelta(microseconds=1),
                since=dirty[0],
                minutes=minutes,
                deployment_id=self.deployment_id,
            )
        except StoreError:
            with self._lock:  # try those intervals again next time
                for moment in dirty:
                    self._mark_dirty(moment)
            raise


def privacy_guard(settings: Settings) -> PrivacyGuard | None:
    """The person/face checks of ``privacy.mode``; None (with a warning) when it is off."""
    from edge_agent.vision.privacy import PrivacyGuard

    if settings.privacy.mode == "off":
        log.warning("privacy.mode = off: people are not detected, images are not checked")
        return None
    return PrivacyGuard(settings.privacy)


def media_keeper(
    settings: Settings,
    store: Store,
    deployment_id: int,
    guard: PrivacyGuard | None,
    media_dir: Path | None = None,
) -> MediaKeeper | None:
    """The media keeper for ``media_dir`` (else ``media.media_dir``); None when neither."""
    from edge_agent.service.media import MediaKeeper

    if media_dir is None and settings.media.media_dir:
        media_dir = settings.resolve(settings.media.media_dir)
    if media_dir is None:
        return None
    return MediaKeeper(settings.media, Path(media_dir), store, deployment_id, guard)


def keeper_callback(keeper: MediaKeeper | None) -> Callable[[ClosedEvent, int], None] | None:
    if keeper is None:
        return None

    def keep(event: ClosedEvent, event_id: int) -> None:
        keeper.keep(event_id, event.tracks)

    return keep


# -- the batch run: trapcount process ----------------------------------------------------


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
    from edge_agent.capture.sources import open_source
    from edge_agent.counting.pipeline import Pipeline

    deployment_id = store.ensure_deployment(settings.trap)
    store.register_model(classifier.manifest)
    guard = privacy_guard(settings)
    keeper = media_keeper(settings, store, deployment_id, guard, media_dir)
    sink = EventSink(
        store,
        deployment_id,
        keeper_callback(keeper),
        retry_note="retried before the next event and at the end of the run",
    )
    result = ProcessResult()
    pipeline = Pipeline(settings, classifier, privacy=guard, media=keeper)
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
                    sink.write(pipeline.process(timestamp, frame))
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
        _retry_pending(sink)
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
            deployment_id,
            footage,
            keep=sink.event_ids,
            until=result.last if result.interrupted else None,
        )
        result.replaced = len(removed)
        for start in removed:
            sink.mark_dirty(start, start)
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


# Events the database refused are written again at the end of a run, this many times,
# this far apart (a database locked by a long report, a disk that filled for a moment).
END_RETRIES = 3
END_RETRY_DELAY_S = 1.0


def _retry_pending(sink: EventSink) -> None:
    for _attempt in range(END_RETRIES):
        if not sink.pending:
            return
        time.sleep(END_RETRY_DELAY_S)
        sink.write(())


# -- the service: trapcount run ----------------------------------------------------------


class Service:
    """``trapcount run``. ``run()`` blocks until :meth:`stop` (or SIGTERM/SIGINT)."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        classifier: Classifier,
        model_dir: Path,
    ) -> None:
        self.settings = settings
        self.store = store
        self.classifier = classifier
        self.model_dir = model_dir
        self.stop_event = threading.Event()
        self.active = ActiveHours(
            settings.capture.active_hours,
            settings.capture.active_days_of_week,
            settings.trap.timezone,
        )
        self.deployment_id = store.ensure_deployment(settings.trap)
        store.register_model(classifier.manifest)
        self.privacy = privacy_guard(settings)
        self.keeper = media_keeper(settings, store, self.deployment_id, self.privacy)
        self.sink = EventSink(store, self.deployment_id, keeper_callback(self.keeper))

        self._pipeline: Pipeline | None = None
        self._pipeline_lock = threading.Lock()  # pipeline.process vs. model swap vs. close
        self._worker: threading.Thread | None = None
        self._session_stop: threading.Event | None = None
        self._source_finished = False  # a file or folder source that reached its end
        self._retry_at = 0.0
        self._retry_delay = settings.source.reconnect_initial_s
        self._last_processed: datetime | None = None
        self._last_timestamp: datetime | None = None

        self._frames_done = 0  # frames of pipelines already closed
        self._motion_done = 0
        self._started = time.monotonic()
        self._last_beat = (self._started, 0)
        self._model_signature = model_signature(model_dir)
        self._refused_signature: tuple[Any, ...] | None = None
        self._scheduler: Any = None
        self._last_beat_done = self._started  # when a heartbeat job last ran to its end
        self._sync_target: Any = None  # edge_agent.sync.SyncTarget when syncing
        self._sync_due = 0.0
        self._sync_delay = settings.sync.backoff_initial_s

    # -- counters -------------------------------------------------------------------------

    @property
    def frames(self) -> int:
        pipeline = self._pipeline
        return self._frames_done + (int(pipeline.frames) if pipeline is not None else 0)

    @property
    def motion_frames(self) -> int:
        pipeline = self._pipeline
        current = int(getattr(pipeline, "motion_frames", 0)) if pipeline is not None else 0
        return self._motion_done + current

    @property
    def open_events(self) -> int:
        pipeline = self._pipeline
        return int(pipeline.open_events) if pipeline is not None else 0

    @property
    def capturing(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    # -- lifecycle ------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM, SIGINT and SIGHUP (the SSH session it was started from dropped) request
        a clean stop; a second one exits at once."""

        def handle(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.stop_event.is_set():
                log.warning("%s again: exiting now without flushing", name)
                os._exit(1)
            log.info("%s received: closing open events and stopping", name)
            self.stop()

        for signum in STOP_SIGNALS:
            signal.signal(signum, handle)

    def stop(self) -> None:
        self.stop_event.set()
        session_stop = self._session_stop
        if session_stop is not None:
            session_stop.set()

    def run(self) -> int:
        """Start the jobs, block until stopped, shut down cleanly; return the exit code."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        # Events written before a crash may not have been rolled up yet.
        self.store.rollup(minutes=self.settings.storage.rollup_minutes)
        scheduler = BackgroundScheduler(
            timezone=UTC,
            # The sync has a thread of its own: a slow link never holds up the other jobs.
            executors={
                "default": ThreadPoolExecutor(max_workers=4),
                "sync": ThreadPoolExecutor(max_workers=1),
            },
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        )
        now = datetime.now(UTC)
        capture = self.settings.capture
        capture_every = capture.interval_s if capture.mode == "interval" else CAPTURE_POLL_S
        scheduler.add_job(
            self._capture_job,
            "interval",
            seconds=capture_every,
            id="capture",
            next_run_time=now,
        )
        scheduler.add_job(
            self._rollup_job,
            "interval",
            minutes=self.settings.storage.rollup_minutes,
            id="rollup",
        )
        scheduler.add_job(
            self._heartbeat_job,
            "interval",
            seconds=self.settings.service.heartbeat_s,
            id="heartbeat",
            next_run_time=now,
        )
        scheduler.add_job(
            self._model_check_job,
            "interval",
            seconds=self.settings.service.model_check_s,
            id="model_check",
        )
        if self.keeper is not None:
            scheduler.add_job(
                self._retention_job,
                "interval",
                seconds=self.settings.media.retention_check_s,
                id="retention",
                next_run_time=now,
            )
        self._add_sync_job(scheduler, now)
        watchdog_s = notify.watchdog_interval_s()
        if watchdog_s is not None:
            scheduler.add_job(self._watchdog_job, "interval", seconds=watchdog_s, id="watchdog")
        self._scheduler = scheduler
        scheduler.start()
        log.info(
            "started: trap %s (deployment %d), model %s (%s), source %s, %s capture, "
            "active %s, database %s",
            self.settings.trap.id,
            self.deployment_id,
            self.classifier.manifest.version,
            self.classifier.backend,
            redact(self.settings.source.uri),
            capture.mode,
            "always" if self.active.always else self.active.description,
            self.store.where,
        )
        notify.ready(f"counting: trap {self.settings.trap.id}, model {self.classifier.sha256[:12]}")
        try:
            while not self.stop_event.wait(1.0):
                pass
        finally:
            self._shutdown(scheduler)
        return 0

    def _shutdown(self, scheduler: Any) -> None:
        began = time.monotonic()
        notify.stopping("closing the open events")
        self.stop()
        scheduler.shutdown(wait=True)  # the scheduled jobs are short; capture is its own thread
        worker = self._worker
        if worker is not None:
            worker.join(self.settings.service.shutdown_timeout_s)
            if worker.is_alive():
                log.warning("capture did not stop in time; closing the open events anyway")
        self._close_pipeline(timeout=self.settings.service.shutdown_timeout_s)
        try:
            self.sink.rollup(self.settings.storage.rollup_minutes)
            self._write_heartbeat()
        except StoreError as exc:
            log.error("%s", exc)
        if self.sink.pending:
            log.error("%d event(s) could not be written and are lost", self.sink.pending)
        log.info(
            "stopped in %.1f s: %d frames, %d events written",
            time.monotonic() - began,
            self.frames,
            self.sink.written,
        )

    # -- capture --------------------------------------------------------------------------

    def _capture_job(self) -> None:
        if self.stop_event.is_set():
            return
        inside = self.active.contains(datetime.now(UTC))
        if not inside:
            if self._session_stop is not None and self.capturing:
                log.info("outside active hours: stopping capture, releasing the camera")
                self._session_stop.set()
            elif self._pipeline is not None and not self.capturing:
                self._close_pipeline()  # interval mode: the window's last burst is done
            return
        if self.capturing or self._source_finished or time.monotonic() < self._retry_at:
            return
        continuous = self.settings.capture.mode == "continuous"
        self._session_stop = threading.Event()
        if self.stop_event.is_set():
            return
        self._worker = threading.Thread(
            target=self._capture_session,
            args=(self._session_stop, None if continuous else self.settings.capture.burst_frames),
            name="capture",
            daemon=True,
        )
        self._worker.start()

    def _capture_session(self, session_stop: threading.Event, burst: int | None) -> None:
        """Read frames until stopped, outside the active hours, the file ends or (``burst``)
        that many frames were taken; then release the source."""
        from edge_agent.capture.sources import SourceError, open_source

        continuous = burst is None
        taken = 0
        try:
            with open_source(
                self.settings.source,
                timezone=self.settings.trap.timezone,
                stop_event=session_stop,
                base_dir=self.settings.base_dir,
            ) as source:
                self.sink.origin = source.origin_of
                if continuous:
                    log.info("capture started: %s", source.description)
                pacer = _Pacer(self.settings.service.replay_speed if not source.live else 0)
                next_check = time.monotonic() + 1.0
                exhausted = True
                for timestamp, frame in source:
                    if session_stop.is_set() or self.stop_event.is_set():
                        exhausted = False
                        break
                    if continuous and time.monotonic() >= next_check:
                        next_check = time.monotonic() + 1.0
                        if not self.active.contains(datetime.now(UTC)):
                            exhausted = False
                            log.info("outside active hours: releasing the camera")
                            break
                    if not pacer.wait(timestamp, self.stop_event):
                        exhausted = False
                        break
                    if self._rate_limited(timestamp):
                        continue
                    self._process(timestamp, frame)
                    taken += 1
                    if burst is not None and taken >= burst:
                        exhausted = False
                        break
                if exhausted and not source.live and not self.stop_event.is_set():
                    self._source_finished = True
                    log.info("%s: source finished; the service keeps running", source.description)
            # The source is closed here: between bursts and outside the active hours the
            # camera is free (and idle).
            if burst is not None:
                log.debug("burst: %d frame(s), source released", taken)
            else:
                log.info("capture stopped after %d frame(s), source released", taken)
            self._retry_delay = self.settings.source.reconnect_initial_s
        except SourceError as exc:
            self._schedule_retry(f"capture: {exc}")
        except Exception:  # a damaged frame or a pipeline bug must not stop the trap
            log.exception("capture failed")
            self._schedule_retry("capture failed")
        finally:
            if continuous or self._source_finished or self.stop_event.is_set():
                self._close_pipeline()

    def _schedule_retry(self, reason: str) -> None:
        delay = self._retry_delay
        self._retry_delay = min(delay * 2, self.settings.source.reconnect_max_s)
        self._retry_at = time.monotonic() + delay
        log.error("%s; retrying in %.0f s", reason, delay)

    def _rate_limited(self, timestamp: datetime) -> bool:
        """``capture.max_fps``: skip frames closer than 1/max_fps (by their timestamps, so
        a file is thinned exactly as the live camera would have been)."""
        max_fps = self.settings.capture.max_fps
        last = self._last_processed
        if max_fps > 0 and last is not None and (timestamp - last).total_seconds() < 1 / max_fps:
            return True
        self._last_processed = timestamp
        return False

    def _process(self, timestamp: datetime, frame: Any) -> None:
        from edge_agent.counting.pipeline import Pipeline

        with self._pipeline_lock:
            if self._pipeline is None:
                self._pipeline = Pipeline(
                    self.settings, self.classifier, privacy=self.privacy, media=self.keeper
                )
            closed = self._pipeline.process(timestamp, frame)
            self._last_timestamp = timestamp
        if closed:
            self.sink.write(closed)

    def _close_pipeline(self, timeout: float = -1) -> None:
        """Close the open events of the current pipeline and write them."""
        if not self._pipeline_lock.acquire(timeout=timeout):
            log.error("pipeline busy: open events could not be closed")
            return
        try:
            pipeline, self._pipeline = self._pipeline, None
            if pipeline is None:
                return
            closed = pipeline.close(self._last_timestamp)
            self._frames_done += int(pipeline.frames)
            self._motion_done += int(getattr(pipeline, "motion_frames", 0))
        finally:
            self._pipeline_lock.release()
        if closed:
            log.info("closing %d open event(s)", len(closed))
            self.sink.write(closed)

    # -- scheduled jobs -------------------------------------------------------------------

    def _rollup_job(self) -> None:
        try:
            rows = self.sink.rollup(self.settings.storage.rollup_minutes)
        except StoreError as exc:
            log.error("roll-up failed: %s", exc)
            return
        if rows:
            log.info("roll-up: %d count row(s) updated", rows)

    def _retention_job(self) -> None:
        """Delete kept media older than ``media.retention_days`` (counts stay)."""
        from edge_agent.service.media import apply_retention

        try:
            deleted = apply_retention(self.store, self.settings.media, utc_now())
        except StoreError as exc:
            log.error("retention failed: %s", exc)
            return
        if deleted:
            log.info("retention: %d media file(s) deleted", deleted)

    def _heartbeat_job(self) -> None:
        try:
            self._write_heartbeat()
        except StoreError as exc:
            log.error("heartbeat not written: %s", exc)
        finally:
            self._last_beat_done = time.monotonic()
            notify.watchdog()  # the scheduler is alive: tell systemd's watchdog
        notify.status(
            f"{self.frames} frames, {self.sink.written} events written, "
            f"{'capturing' if self.capturing else 'idle'}"
        )

    def _watchdog_job(self) -> None:
        """Ping systemd's watchdog between heartbeats while they run on time: a scheduler
        that stopped running its jobs is restarted by systemd."""
        late = time.monotonic() - self._last_beat_done
        if late <= self.settings.service.heartbeat_s * 2 + 30:
            notify.watchdog()
        else:
            log.error("no heartbeat for %.0f s: letting systemd's watchdog restart us", late)

    # -- fleet sync -----------------------------------------------------------------------

    def _add_sync_job(self, scheduler: Any, now: datetime) -> None:
        from edge_agent.store.sync import SyncError, resolve_target

        try:
            self._sync_target = resolve_target(self.settings)
        except SyncError as exc:
            log.error("sync disabled: %s", exc)
            return
        if self._sync_target is None:
            return
        sync = self.settings.sync
        scheduler.add_job(
            self._sync_job,
            "interval",
            seconds=min(sync.interval_s, sync.backoff_initial_s, 30.0),
            id="sync",
            executor="sync",
            max_instances=1,
            next_run_time=now + timedelta(seconds=1),
        )
        log.info("sync to %s every %.0f s", self._sync_target.shown, sync.interval_s)

    def _sync_backoff(self, reason: str) -> None:
        delay = self._sync_delay
        self._sync_delay = min(delay * 2, self.settings.sync.backoff_max_s)
        self._sync_due = time.monotonic() + delay * random.uniform(0.8, 1.2)
        log.warning("sync failed: %s; next try in about %.0f s", reason, delay)

    def _sync_job(self) -> None:
        """Push what changed to the central database when due; back off while it fails."""
        from edge_agent.store.sync import SyncError, sync

        if self.stop_event.is_set() or time.monotonic() < self._sync_due:
            return
        settings = self.settings.sync
        try:
            result = sync(
                self.store,
                self._sync_target,
                batch_size=settings.batch_size,
                timeout_s=settings.timeout_s,
                stop_event=self.stop_event,
            )
        except SyncError as exc:
            self._sync_backoff(str(exc))
            return
        except Exception:  # a bug in the sync must not stop the trap, nor retry in a loop
            log.exception("sync crashed")
            self._sync_backoff("sync crashed")
            return
        self._sync_delay = settings.backoff_initial_s
        self._sync_due = time.monotonic() + settings.interval_s
        if result.units:
            log.info("sync: %s", result.describe())

    def _write_heartbeat(self) -> None:
        now = time.monotonic()
        frames = self.frames
        last_time, last_frames = self._last_beat
        fps = (frames - last_frames) / (now - last_time) if now > last_time else 0.0
        self._last_beat = (now, frames)
        free = free_disk_bytes(self.store.path)
        self.sink.write(())  # retry events a failing database refused earlier
        self.store.write_heartbeat(
            self.deployment_id,
            frames=frames,
            fps=round(fps, 2),
            open_events=self.open_events,
            model_sha256=self.classifier.sha256,
            free_disk_bytes=free,
            motion_frames=self.motion_frames,
            events_written=self.sink.written,
            capturing=self.capturing,
            uptime_s=round(now - self._started, 1),
            cpu_temp_c=cpu_temperature_c(),
            media_paused=None if self.keeper is None else self.keeper.paused,
        )
        free_mb = None if free is None else free / 1e6
        media = ""
        if self.keeper is not None:
            media = f", media {self.keeper.written} kept"
            if self.keeper.paused:
                media += " (writes stopped: disk low)"
        log.info(
            "heartbeat: %d frames (%.1f fps), %d open events, %d written, model %s%s%s",
            frames,
            fps,
            self.open_events,
            self.sink.written,
            self.classifier.manifest.version,
            "" if free_mb is None else f", {free_mb:.0f} MB free",
            media,
        )
        if free_mb is not None and free_mb < self.settings.storage.min_free_mb:
            log.warning(
                "low disk: %.0f MB free (storage.min_free_mb = %d)",
                free_mb,
                self.settings.storage.min_free_mb,
            )

    def _model_check_job(self) -> None:
        signature = model_signature(self.model_dir)
        if signature is None or signature in (self._model_signature, self._refused_signature):
            return
        self.reload_model(signature)

    def reload_model(self, signature: tuple[Any, ...] | None = None) -> bool:
        """Build the model in ``model_dir`` and swap it in; keep the old one on failure."""
        current = self.classifier
        try:
            candidate = load_classifier(self.model_dir, self.settings.classifier)
        except ModelContractError as exc:
            if signature is not None and model_signature(self.model_dir) != signature:
                # The files changed while loading (a copy in progress): not a bad model.
                log.info("model files changed while loading; trying again at the next check")
                return False
            self._refused_signature = signature
            log.error("model reload refused: %s; keeping model %s", exc, current.manifest.version)
            return False
        self._model_signature = signature
        self._refused_signature = None
        if candidate.sha256 == current.sha256:
            candidate.close()
            return False
        try:
            self.store.register_model(candidate.manifest)
        except StoreError as exc:
            log.error("new model not recorded in the database: %s", exc)
        with self._pipeline_lock:
            self.classifier = candidate
            if self._pipeline is not None:
                self._pipeline.set_classifier(candidate)
        current.close()
        log.info(
            "model reloaded: %s -> %s (%s, %d labels)",
            current.manifest.version,
            candidate.manifest.version,
            candidate.manifest.arch,
            len(candidate.labels),
        )
        return True


class _Pacer:
    """``service.replay_speed``: play a recorded file as if it were live."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._origin: tuple[datetime, float] | None = None

    def wait(self, timestamp: datetime, stop: threading.Event) -> bool:
        """Sleep until ``timestamp`` is due; False when ``stop`` was set meanwhile."""
        if self.speed <= 0:
            return True
        if self._origin is None:
            self._origin = (timestamp, time.monotonic())
            return True
        first, began = self._origin
        due = began + (timestamp - first).total_seconds() / self.speed
        delay = due - time.monotonic()
        if delay > 5.0:  # a long gap in a folder of stills: do not sleep for hours
            self._origin = (timestamp, time.monotonic())
            delay = 0.0
        return not (delay > 0 and stop.wait(delay))


def run_service(
    settings: Settings,
    *,
    model_dir: Path,
    db: str | Path | None = None,
    install_signals: bool = True,
) -> int:
    """Open everything, run until SIGTERM/SIGINT, return the exit code (0 on a clean stop)."""
    target = db if db is not None else settings.resolve(settings.storage.db_path)
    check_files(settings)
    classifier = load_classifier(model_dir, settings.classifier)
    service: Service | None = None
    try:
        with Store.open(target) as store:
            service = Service(settings, store=store, classifier=classifier, model_dir=model_dir)
            if install_signals:
                service.install_signal_handlers()
            return service.run()
    finally:
        (service.classifier if service is not None else classifier).close()


__all__ = [
    "ActiveHours",
    "EventSink",
    "ProcessResult",
    "Service",
    "default_model_dir",
    "load_classifier",
    "process_source",
    "resolve_model_dir",
    "run_service",
    "utc_now",
]
