"""The commands a trap runs: ``run`` (the service), ``process`` (a recording), ``doctor``
(is this trap ready?) and ``sync`` (push the counts to the fleet's database)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edge_agent.cli.app import (
    CONFIG_HELP,
    ConfigProblem,
    cli,
    library_errors,
    load_settings,
    one_line,
    parse_time,
)
from edge_agent.config import load_config

# Under "unprocessed: no reference": what a user can do about it.
NO_REFERENCE_HINT = (
    "  (a lone photo of a camera seen for the first time has no empty view to compare with: "
    "process the camera's whole card, bursts and empty triggers together, or count "
    "MegaDetector's boxes with --detections)"
)


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM, SIGINT and SIGHUP end ``process`` as its input would: open events written."""
    from edge_agent.service.daemon import STOP_SIGNALS

    def handle(_signum: int, _frame: Any) -> None:
        stop.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, handle)


@cli.command()
@click.option(
    "--config",
    "-c",
    "config",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=CONFIG_HELP,
)
@library_errors
def run(config: Path) -> None:
    """Run the trap service until SIGTERM or Ctrl-C.

    Captures frames inside the active hours, writes each event when it closes, rolls up
    counts every storage.rollup_minutes, writes a heartbeat every service.heartbeat_s
    and hot-reloads the model when its files change (a model that fails to load is
    refused and the running one kept). On SIGTERM/SIGINT the open events are closed and
    written and the exit status is 0. Logs go to stderr (journald-friendly under systemd).
    """
    from edge_agent.service.daemon import run_service
    from edge_agent.service.logging_setup import setup_logging
    from edge_agent.service.model import resolve_model_dir

    settings = load_settings(config)
    setup_logging(settings.service.log_level)
    model_dir = resolve_model_dir(settings, config_given=True)
    sys.exit(run_service(settings, model_dir=model_dir))


@cli.command()
@click.argument("source")
@click.option("--config", "-c", type=click.Path(dir_okay=False, path_type=Path), help=CONFIG_HELP)
@click.option(
    "--db",
    help="SQLite file or database URL [default: the config's storage.db_path, "
    "else ./trapcount.sqlite].",
)
@click.option(
    "--model",
    "model",
    type=click.Path(path_type=Path),
    help="Model folder (model.tflite + model.json) [default: the config's "
    "classifier.model_dir, else the shipped models/default or $TRAPCOUNT_MODEL].",
)
@click.option(
    "--event-gap",
    type=float,
    help="Seconds without a live track that end an event (events.event_gap_s).",
)
@click.option(
    "--start",
    help="Time of a video file's first frame, ISO 8601 (no offset = the trap's time zone; a "
    "folder's clips keep their own) "
    "[default: the file's mtime minus its duration].",
)
@click.option(
    "--media",
    "media_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep crops for retraining in this folder (media.media_dir), checked for people "
    "first (privacy.mode).",
)
@click.option(
    "--detections",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An image folder's MegaDetector batch output (JSON, format 1.3+; files relative to "
    "the folder): its animal, person and vehicle boxes at or above motion.detection_threshold "
    "are counted instead of motion (motion.detections).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@click.option("--verbose", "-v", is_flag=True, help="Log every event and source message.")
@library_errors
def process(
    source: str,
    config: Path | None,
    db: str | None,
    model: Path | None,
    event_gap: float | None,
    start: str | None,
    media_dir: Path | None,
    detections: Path | None,
    quiet: bool,
    verbose: bool,
) -> None:
    """Run the pipeline over a video file or an image folder to its end.

    A folder's video files (a trail camera's clips beside its photos) are counted too, each
    as a video of its own; one that cannot be decoded is skipped and named.

    Events are written to the database as they close (an interrupted run keeps them),
    the rest are closed at the end, the counts are rolled up and a per-label summary is
    printed: events, count (the sum of each event's MaxN) and the largest MaxN. Running
    it again over the same footage (after a crash, or with other settings) replaces the
    earlier run's events instead of counting twice. Progress goes to stderr.

    With --detections, an image folder's MegaDetector boxes replace the motion gate: each
    box is classified, tracked through bursts and counted; person and vehicle boxes are
    counted as person and vehicle, and no image of a person is kept. A photo the file does
    not list is reported unprocessed, not empty. The boxes are stored per track and photo
    (`trapcount export megadetector` writes them back out).
    """
    from edge_agent.office.reports import summary_table
    from edge_agent.service.batch import process_path
    from edge_agent.service.logging_setup import setup_logging
    from edge_agent.service.model import load_classifier, resolve_model_dir
    from edge_agent.service.wiring import check_files
    from edge_agent.store.database import Store
    from edge_agent.store.queries import summarize_rows
    from edge_agent.text import plural
    from edge_agent.vision.candidates import NO_REFERENCE

    # A file or folder is relative to the working directory (not to the config file).
    is_path = "://" not in source and not source.isdigit()
    uri = str(Path(source).expanduser().resolve()) if is_path else source
    overrides: dict[str, dict[str, Any]] = {"source": {"uri": uri, "kind": "auto"}}
    if event_gap is not None:
        overrides["events"] = {"event_gap_s": event_gap}
    if detections is not None:
        file = str(detections.expanduser().resolve())
        overrides["motion"] = {"detections": file, "localiser": "megadetector"}
    settings = load_settings(config, **overrides)
    setup_logging("INFO" if verbose else "WARNING")
    start_time = parse_time(start, settings.trap.timezone, "--start")
    check_files(settings)
    model_dir = resolve_model_dir(settings, config_given=config is not None, override=model)
    target = db if db is not None else settings.resolve(settings.storage.db_path)

    stop = threading.Event()
    _stop_on_signals(stop)
    progress = None if quiet else _progress_printer()
    with load_classifier(model_dir, settings.classifier) as classifier, Store.open(target) as store:
        result = process_path(
            settings,
            store,
            classifier,
            start_time=start_time,
            stop_event=stop,
            progress=progress,
            media_dir=media_dir.expanduser().resolve() if media_dir is not None else None,
        )
        rows = store.event_rows(event_ids=result.event_ids)
        where = store.where
    if progress is not None and sys.stderr.isatty():
        click.echo("", err=True)  # end the progress line
    if result.replaced:
        click.echo(
            f"note: {plural(result.replaced, 'event')} that an earlier run found in the same "
            "footage were not found again and were removed",
            err=True,
        )
    span = ""
    if result.first is not None and result.last is not None:
        span = f", {(result.last - result.first).total_seconds():.1f} s of footage"
    clips = f" (of which {plural(result.videos, 'video file')})" if result.videos else ""
    click.echo(
        f"{Path(source).name}: {plural(result.frames, 'frame')}{clips}{span}, "
        f"{plural(result.events, 'event')} "
        f"(trap {settings.trap.id}, model {classifier.manifest.version}, database {where})"
    )
    summary = summarize_rows(rows)
    click.echo(summary_table(summary) if summary else "no events")
    if result.skipped_videos:
        names = ", ".join(result.skipped_videos[:3])
        more = ", ..." if len(result.skipped_videos) > 3 else ""
        click.echo(
            f"skipped: {plural(len(result.skipped_videos), 'video file')} that could not be "
            f"decoded ({names}{more})",
            err=True,
        )
    for reason, frames in sorted(result.unprocessed.items()):
        # Not a frame with nothing in it: a frame nothing could be looked for in.
        click.echo(f"unprocessed: {reason}: {plural(frames, 'frame')}")
        if reason == NO_REFERENCE:
            click.echo(NO_REFERENCE_HINT)
    if result.media_dir is not None:
        paused = ", media writes stopped: disk low" if result.media_paused else ""
        click.echo(
            f"media: {result.media_written} file(s) kept in {result.media_dir}, "
            f"{result.media_private} not written (people){paused}"
        )
    if result.interrupted:
        click.echo("interrupted: the events so far are written; rerun to complete", err=True)
        sys.exit(130)


def _progress_printer() -> Callable[[int, int | None, int], None]:
    from edge_agent.text import plural

    tty = sys.stderr.isatty()

    def show(frames: int, total: int | None, events: int) -> None:
        done = f"{frames}/{total} frames ({100 * frames / total:.0f}%)" if total else f"{frames}"
        message = f"{done}, {plural(events, 'event')}"
        if tty:
            click.echo(f"\r{message}  ", err=True, nl=False)
        else:
            click.echo(message, err=True)

    return show


@cli.command()
@click.option(
    "--config",
    "-c",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=CONFIG_HELP,
)
@click.option("--db", help="Check this database instead of the config's storage.db_path.")
@click.option(
    "--source-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the first frame.",
)
@library_errors
def doctor(config: Path, db: str | None, source_timeout: float) -> None:
    """Check that this trap can run; exit status 1 when a check fails.

    The source gives a frame, the model loads and matches its manifest, a crop through it
    is timed here (a warning when two animals in view would take over 25% of a core), the
    database is writable, healthy and private, the disk has room and the clock is
    plausible. Prints a table: check, status (ok, warn, FAIL), detail.
    """
    from edge_agent.service.doctor import render, run_checks
    from edge_agent.service.logging_setup import setup_logging
    from edge_agent.service.model import resolve_model_dir

    settings = load_config(config)
    setup_logging("ERROR")
    checks = run_checks(
        settings,
        model_dir=resolve_model_dir(settings, config_given=True),
        db=db if db is not None else settings.resolve(settings.storage.db_path),
        source_timeout_s=source_timeout,
    )
    click.echo(render(checks))
    failed = [c.name for c in checks if c.failed]
    if failed:
        click.echo(f"Error: failed: {', '.join(failed)}", err=True)
        sys.exit(1)


@cli.command()
@click.option(
    "--to",
    "url",
    metavar="URL",
    help="Central database, e.g. postgresql+psycopg://trap@fleet.example.org/trapcount "
    "[default: $TRAPCOUNT_SYNC_URL (the config's sync.url_env), else sync.url].",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File whose first line is the database password [default: sync.password_file].",
)
@click.option("--config", "-c", type=click.Path(dir_okay=False, path_type=Path), help=CONFIG_HELP)
@click.option("--db", help="The trap's SQLite file [default: the config's storage.db_path].")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    help="Changes per central transaction [default: sync.batch_size, 500].",
)
@click.option(
    "--setup",
    is_flag=True,
    help="Only create or upgrade the central database's tables (as its owner), then exit.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@library_errors
def sync(
    url: str | None,
    password_file: Path | None,
    config: Path | None,
    db: str | None,
    batch_size: int | None,
    setup: bool,
    quiet: bool,
) -> None:
    """Push this trap's counts to a central PostgreSQL database.

    Deployments, model versions, events with their observations, counts and heartbeats
    are upserted, keyed by this trap database and their id on it, in batches; a sync that
    stops (network down, server restarted) resumes where it stopped, and one that has
    nothing new changes nothing. Events a `process` rerun replaced or removed are
    replaced or removed centrally too. The central tables are the trap's own schema, so
    `trapcount report --db postgresql+psycopg://...` reads the fleet; the first sync
    creates them, or `--setup` as the database's owner when the traps' role may only
    read and write rows. The URL is never printed with its password.
    """
    from edge_agent.config import Settings
    from edge_agent.service.logging_setup import setup_logging
    from edge_agent.store.database import Store
    from edge_agent.store.sync import SyncError, open_central, resolve_target
    from edge_agent.store.sync import sync as run_sync

    settings = load_config(config) if config is not None else Settings()
    setup_logging("ERROR" if quiet else "WARNING")
    try:
        target = resolve_target(settings, url=url, password_file=password_file)
    except SyncError as exc:
        raise ConfigProblem(one_line(exc)) from None
    if target is None:
        raise ConfigProblem(
            f"no central database: give --to URL, set ${settings.sync.url_env} or sync.url"
        )
    if setup:
        with open_central(target, settings.sync.timeout_s) as central:
            revision = central.schema_revision()
        if not quiet:
            click.echo(f"{target.shown}: schema {revision}")
        return
    if db is None:
        if config is None:
            raise ConfigProblem("give --db PATH or --config FILE")
        db = str(settings.resolve(settings.storage.db_path))

    def progress(batch: int, units: int) -> None:
        if not quiet:
            click.echo(f"batch {batch}: {units} change(s)", err=True)

    with Store.open(db, create=False) as store:
        result = run_sync(
            store,
            target,
            batch_size=batch_size or settings.sync.batch_size,
            timeout_s=settings.sync.timeout_s,
            on_batch=progress,
        )
    if not quiet:
        click.echo(f"synced {db} to {result.describe()}")
