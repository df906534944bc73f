"""``trapcount doctor``: can this trap run? Each check says ok, warn or FAIL, and why.

Checks: the camera/source opens and gives a frame; the model loads and matches its
manifest; the classifier's speed, timed on this machine, and the share of one core it takes
with two animals in view (``speed``: a warning over the 25% budget that
``benchmarks/bench_budget.py`` estimates from operation counts; here it is measured on the
trap itself); the database opens (migrating it if needed), is writable, passes SQLite's
quick check and is not readable by other users; the disk has room; the clock is plausible
(a Pi without a real-time clock boots in the past until NTP syncs, and counts stamped then
are wrong).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_agent.config import Settings
from edge_agent.text import format_table

if TYPE_CHECKING:
    from edge_agent.vision.classifier import Classifier

OK, WARN, FAIL = "ok", "warn", "FAIL"
EARLIEST_PLAUSIBLE = datetime(2025, 1, 1, tzinfo=UTC)
CLOCK_TOLERANCE = timedelta(minutes=5)
# The classifier's budget (docs/benchmarks.md, "The classifier's compute budget on a Pi"):
# with two animals in view, a share of one core at most this.
BUDGET_SHARE = 0.25
BUDGET_ANIMALS = 2
# The frame rate assumed when the config names none (a video file then runs at the rate
# its header states, which the doctor does not read).
BUDGET_FPS = 10.0
SPEED_RUNS = 7  # timed invocations per network, after one to warm up


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def _guard(name: str, check: Callable[[], Check]) -> Check:
    """A check that raises is a failed check, never a crashed doctor."""
    try:
        return check()
    except Exception as exc:
        message = (str(exc).splitlines() or [type(exc).__name__])[0]
        return Check(name, FAIL, message)


def check_source(settings: Settings, timeout_s: float = 10.0) -> Check:
    """Open the source and wait up to ``timeout_s`` for one frame."""
    from edge_agent.capture.factory import open_source, source_kind

    kind = source_kind(settings.source, base_dir=settings.base_dir)
    stop = threading.Event()
    found: dict[str, object] = {}

    def grab() -> None:
        try:
            with open_source(
                settings.source,
                timezone=settings.trap.timezone,
                stop_event=stop,
                base_dir=settings.base_dir,
            ) as source:
                found["description"] = source.description
                for _timestamp, frame in source:
                    found["shape"] = frame.shape
                    break
        except Exception as exc:
            found["error"] = exc

    worker = threading.Thread(target=grab, name="doctor-source", daemon=True)
    worker.start()
    worker.join(timeout_s)
    stop.set()
    worker.join(2.0)
    if "error" in found:
        error = found["error"]
        return Check("source", FAIL, (str(error).splitlines() or [type(error).__name__])[0])
    if "shape" not in found:
        where = found.get("description", settings.source.uri)
        return Check("source", FAIL, f"{kind} {where}: no frame within {timeout_s:.0f} s")
    height, width = found["shape"][:2]  # type: ignore[index]
    return Check("source", OK, f"{kind} {found['description']}: {width}x{height} frame read")


def check_model(model_dir: Path, settings: Settings) -> Check:
    from edge_agent.service.model import load_classifier

    with load_classifier(model_dir, settings.classifier) as classifier:
        manifest = classifier.manifest
        accuracy = manifest.accuracy.get("int8", manifest.accuracy.get("float"))
        acc = f", accuracy {accuracy:.3f}" if isinstance(accuracy, int | float) else ""
        companion = manifest.grey_companion
        if companion is not None:
            acc += f", grey companion {companion.sha256[:12]} for grey (infrared) crops"
        return Check(
            "model",
            OK,
            f"{model_dir}: {manifest.arch} {manifest.version}, {len(manifest.labels)} labels, "
            f"{classifier.backend}{acc}",
        )


def core_share(ms_per_crop: float, fps: float, classify_every: int) -> float:
    """The share of one core the classifier takes with ``BUDGET_ANIMALS`` animals in view:
    each is classified every ``classify_every``-th frame while its track votes."""
    crops_per_s = BUDGET_ANIMALS * fps / classify_every
    return crops_per_s * ms_per_crop / 1000.0


def _ms_per_crop(classifier: Classifier, crop: np.ndarray) -> float:
    """Median wall time of one crop through ``classifier.predict_proba``, in ms."""
    predict = classifier.predict_proba
    predict(crop)  # the first call sets up the interpreter's buffers
    times = []
    for _ in range(SPEED_RUNS):
        started = time.perf_counter()
        predict(crop)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def check_speed(model_dir: Path, settings: Settings) -> Check:
    """Time a crop through the model on this machine (a colour crop, and a grey one for a
    model with a grey companion) and compare the slower with the budget."""
    from edge_agent.service.model import load_classifier

    with load_classifier(model_dir, settings.classifier) as classifier:
        height, width = classifier.input_size
        rng = np.random.default_rng(0)
        colour = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
        timed = {"colour": _ms_per_crop(classifier, colour)}
        if classifier.has_grey_companion:
            grey = np.repeat(colour[..., :1], 3, axis=-1)
            timed["grey"] = _ms_per_crop(classifier, grey)
    return speed_verdict(timed, settings)


def speed_verdict(timed: dict[str, float], settings: Settings) -> Check:
    """The ``speed`` check from ms a crop per look (``colour``, ``grey``): the slower one
    at the configured frame rate (else ``BUDGET_FPS``) and ``tracking.classify_every``."""
    fps = settings.source.fps or BUDGET_FPS
    every = settings.tracking.classify_every
    share = core_share(max(timed.values()), fps, every)
    crops = ", ".join(f"{ms:.1f} ms a {look} crop" for look, ms in timed.items())
    threads = settings.classifier.num_threads
    detail = (
        f"{crops} here ({threads} thread{'s' if threads > 1 else ''}); {BUDGET_ANIMALS} "
        f"animals at {fps:g} fps, classify_every {every}: {share:.1%} of a core"
    )
    if share > BUDGET_SHARE:
        return Check(
            "speed",
            WARN,
            f"{detail}, over the {BUDGET_SHARE:.0%} budget: raise tracking.classify_every",
        )
    return Check("speed", OK, f"{detail} (budget {BUDGET_SHARE:.0%})")


def check_database(target: str | Path) -> tuple[Check, datetime | None]:
    from edge_agent.store.database import Store

    with Store.open(target) as store:
        store.check_writable()
        integrity = store.integrity_check()
        latest = store.latest_timestamp()
        revision = store.schema_revision()
        if integrity != "ok":
            return Check("database", FAIL, f"{store.where}: integrity check: {integrity}"), latest
        if store.path is not None and store.path.stat().st_mode & 0o077:
            mode = oct(store.path.stat().st_mode & 0o777)
            return (
                Check("database", WARN, f"{store.where}: readable by others ({mode}); chmod 600"),
                latest,
            )
        return Check("database", OK, f"{store.where}: writable, schema {revision}"), latest


def check_disk(path: Path, min_free_mb: int) -> Check:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    free_mb = usage.free / 1e6
    detail = f"{free_mb:,.0f} MB free of {usage.total / 1e6:,.0f} MB at {probe}"
    if free_mb < min_free_mb:
        return Check("disk", FAIL, f"{detail} (storage.min_free_mb = {min_free_mb})")
    if free_mb < 2 * min_free_mb:
        return Check("disk", WARN, detail)
    return Check("disk", OK, detail)


def check_media(settings: Settings) -> Check:
    """The media folder: private, and enough room that media writes go on."""
    folder = settings.resolve(settings.media.media_dir)
    threshold = settings.media.min_free_mb
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_mb = shutil.disk_usage(probe).free / 1e6
    detail = f"{folder}: {free_mb:,.0f} MB free"
    if folder.exists() and folder.stat().st_mode & 0o077:
        mode = oct(folder.stat().st_mode & 0o777)
        return Check("media", WARN, f"{detail}; readable by others ({mode}); chmod 700")
    if free_mb < threshold:
        return Check(
            "media",
            WARN,
            f"{detail}: media writes stopped, oldest media deleted first "
            f"(media.min_free_mb = {threshold:g}); counting goes on",
        )
    return Check("media", OK, detail)


def _ntp_synchronized() -> bool | None:
    if shutil.which("timedatectl") is None:
        return None
    try:
        out = subprocess.run(
            ["timedatectl", "show", "--property=NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=3,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip()
    return {"yes": True, "no": False}.get(value)


def check_clock(latest: datetime | None, now: datetime | None = None) -> Check:
    now = now or datetime.now(UTC)
    stamp = now.isoformat(timespec="seconds")
    if now < EARLIEST_PLAUSIBLE:
        return Check("clock", FAIL, f"{stamp} is before {EARLIEST_PLAUSIBLE.date()}: not set yet")
    if latest is not None and latest > now + CLOCK_TOLERANCE:
        return Check(
            "clock",
            FAIL,
            f"{stamp} is earlier than the database's newest record "
            f"({latest.isoformat(timespec='seconds')}): the clock went backwards",
        )
    synced = _ntp_synchronized()
    if synced is False:
        return Check("clock", WARN, f"{stamp}; not NTP-synchronized (timedatectl)")
    return Check("clock", OK, stamp + ("; NTP-synchronized" if synced else ""))


def run_checks(
    settings: Settings,
    *,
    model_dir: Path,
    db: str | Path,
    source_timeout_s: float = 10.0,
) -> list[Check]:
    checks = [
        _guard("source", lambda: check_source(settings, source_timeout_s)),
        _guard("model", lambda: check_model(model_dir, settings)),
    ]
    if not checks[-1].failed:  # a model that does not load is one failure, not two
        checks.append(_guard("speed", lambda: check_speed(model_dir, settings)))
    latest: list[datetime | None] = [None]

    def database() -> Check:
        result, latest[0] = check_database(db)
        return result

    checks.append(_guard("database", database))
    db_path = Path(db) if "://" not in str(db) else Path.cwd()
    checks.append(_guard("disk", lambda: check_disk(db_path, settings.storage.min_free_mb)))
    if settings.media.media_dir:
        checks.append(_guard("media", lambda: check_media(settings)))
    checks.append(_guard("clock", lambda: check_clock(latest[0])))
    return checks


def render(checks: list[Check]) -> str:
    return format_table(
        ["check", "status", "detail"], [[c.name, c.status, c.detail] for c in checks]
    )
