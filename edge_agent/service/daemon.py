"""``trapcount run``: the long-running trap service under APScheduler 3.

The service wires a frame source, the pipeline and the store together (``wiring``, as
``process`` does) and runs these jobs, each in ``schedule.guarded``:

- **capture**: ``continuous`` keeps a capture worker running while inside the active hours
  (cron fields ``capture.active_hours`` / ``capture.active_days_of_week`` in the trap's time
  zone); ``interval`` grabs ``burst_frames`` frames every ``interval_s``. Outside the active
  hours the source is closed, so the camera is released (and the Pi can idle). A source
  that fails is retried with back-off (``source.reconnect_*``).
- **roll-up** of events into per-interval counts every ``storage.rollup_minutes``.
- **heartbeat** every ``service.heartbeat_s``: frames, fps, open events, model, free disk.
- **model check** every ``service.model_check_s``: when ``model.tflite`` or ``model.json``
  changes, a new classifier is built completely and swapped in between two frames; a model
  that does not load (hash mismatch, damaged file) is refused and the old one kept.
- **retention** of kept media (``media.retention_check_s``) when media are kept.
- **sync** every ``sync.interval_s`` when a central database is configured (``sync.url`` or
  the ``sync.url_env`` variable): in its own single thread, so counting never waits for
  it; while the network is down it backs off (``sync.backoff_initial_s`` doubling up to
  ``sync.backoff_max_s``, with jitter so a fleet does not retry in step).
- **systemd** (``Type=notify``): ``READY=1`` once the jobs run, ``WATCHDOG=1`` from the
  heartbeat and, under ``WatchdogSec``, from a watchdog job in between that pings only
  while heartbeats are on time; ``STOPPING=1`` on shutdown.

Every closed event is written in its own transaction as soon as it closes. SIGTERM, SIGINT
and SIGHUP stop capture, close the open events, write them, roll up and exit 0 within
``service.shutdown_timeout_s`` or so; ``kill -9`` loses only the events still open.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.backoff import Backoff
from edge_agent.capture.factory import open_source
from edge_agent.capture.frames import SourceError
from edge_agent.capture.live import redact
from edge_agent.config import Settings
from edge_agent.manifest import ModelContractError
from edge_agent.service import notify
from edge_agent.service.media import apply_retention
from edge_agent.service.model import load_classifier, model_signature
from edge_agent.service.schedule import ActiveHours, Pacer, guarded
from edge_agent.service.wiring import check_files, wire
from edge_agent.store.database import Store
from edge_agent.store.errors import StoreError
from edge_agent.store.models import utc_now
from edge_agent.store.sync import SyncError, resolve_target, sync
from edge_agent.vision.classifier import Classifier

if TYPE_CHECKING:
    from edge_agent.counting.pipeline import Pipeline

log = logging.getLogger("trapcount.service")

CAPTURE_POLL_S = 5.0  # how often the capture job checks the active hours and the worker

# Signals that stop the service (and `process`) cleanly: open events closed and written,
# counts rolled up. SIGHUP is what a dropped SSH session sends.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


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
        # The service runs for months: its sink keeps no list of the events it wrote.
        self.wiring = wire(settings, store, classifier, remember_ids=False)
        self.deployment_id = self.wiring.deployment_id
        self.privacy = self.wiring.privacy
        self.keeper = self.wiring.keeper
        self.sink = self.wiring.sink

        self._pipeline: Pipeline | None = None
        self._pipeline_lock = threading.Lock()  # pipeline.process vs. model swap vs. close
        self._worker: threading.Thread | None = None
        self._session_stop: threading.Event | None = None
        self._source_finished = False  # a file or folder source that reached its end
        self._retry_at = 0.0
        self._retry = Backoff(settings.source.reconnect_initial_s, settings.source.reconnect_max_s)
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
        # Jitter, so that a fleet that lost its server does not retry in step.
        self._sync_retry = Backoff(
            settings.sync.backoff_initial_s, settings.sync.backoff_max_s, jitter=0.2
        )

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
        jobs: list[tuple[str, Callable[[], Any], float, datetime | None]] = [
            ("capture", self._capture_job, capture_every, now),
            ("roll-up", self._rollup_job, self.settings.storage.rollup_minutes * 60.0, None),
            ("heartbeat", self._heartbeat_job, self.settings.service.heartbeat_s, now),
            ("model check", self._model_check_job, self.settings.service.model_check_s, None),
        ]
        if self.keeper is not None:
            retention_s = self.settings.media.retention_check_s
            jobs.append(("retention", self._retention_job, retention_s, now))
        watchdog_s = notify.watchdog_interval_s()
        if watchdog_s is not None:
            jobs.append(("watchdog", self._watchdog_job, watchdog_s, None))
        for name, job, every_s, first in jobs:
            # APScheduler takes next_run_time=None as "paused": leave it out to run on time.
            start = {} if first is None else {"next_run_time": first}
            scheduler.add_job(
                guarded(name, job),
                "interval",
                seconds=every_s,
                id=name.replace(" ", "_").replace("-", ""),
                **start,
            )
        self._add_sync_job(scheduler, now)
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
                pacer = Pacer(self.settings.service.replay_speed if not source.live else 0)
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
                    self._process(timestamp, frame, source.current_file)
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
            self._retry.reset()
        except SourceError as exc:
            self._schedule_retry(f"capture: {exc}")
        except Exception:  # a damaged frame or a pipeline bug must not stop the trap
            log.exception("capture failed")
            self._schedule_retry("capture failed")
        finally:
            if continuous or self._source_finished or self.stop_event.is_set():
                self._close_pipeline()

    def _schedule_retry(self, reason: str) -> None:
        delay = self._retry.next()
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

    def _process(self, timestamp: datetime, frame: Any, file: str | None = None) -> None:
        with self._pipeline_lock:
            if self._pipeline is None:
                self._pipeline = self.wiring.pipeline(self.classifier)
            closed = self._pipeline.process(timestamp, frame, file)
            unprocessed, self._pipeline.unprocessed = self._pipeline.unprocessed, []
            self._last_timestamp = timestamp
        if closed:
            self.sink.write(closed)
        self.sink.write_unprocessed(unprocessed)

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
            unprocessed = pipeline.unprocessed
            self._frames_done += int(pipeline.frames)
            self._motion_done += int(getattr(pipeline, "motion_frames", 0))
        finally:
            self._pipeline_lock.release()
        if closed:
            log.info("closing %d open event(s)", len(closed))
            self.sink.write(closed)
        self.sink.write_unprocessed(unprocessed)

    # -- scheduled jobs -------------------------------------------------------------------

    def _rollup_job(self) -> None:
        rows = self.sink.rollup(self.settings.storage.rollup_minutes)
        if rows:
            log.info("roll-up: %d count row(s) updated", rows)

    def _retention_job(self) -> None:
        """Delete kept media older than ``media.retention_days`` (counts stay)."""
        deleted = apply_retention(self.store, self.settings.media, utc_now())
        if deleted:
            log.info("retention: %d media file(s) deleted", deleted)

    def _heartbeat_job(self) -> None:
        try:
            self._write_heartbeat()
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
        nominal = self._sync_retry.delay  # before jitter: "about" this
        self._sync_due = time.monotonic() + self._sync_retry.next()
        log.warning("sync failed: %s; next try in about %.0f s", reason, nominal)

    def _sync_job(self) -> None:
        """Push what changed to the central database when due; back off while it fails."""
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
        self._sync_retry.reset()
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
