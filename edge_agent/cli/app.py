"""``trapcount``: the edge agent's command line, a thin layer over the library.

Each command's docstring is its ``--help``. Library errors (a bad config, a model that does
not match its manifest, a database that cannot be opened) become one ``Error:`` line and a
non-zero exit status, never a traceback: 2 for a bad config or usage, 1 for the rest.
``TRAPCOUNT_DEBUG=1`` shows the traceback of an unexpected error.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from edge_agent import __version__
from edge_agent.config import ConfigError, Settings, load_config, settings_from_dict
from edge_agent.manifest import ModelContractError
from edge_agent.store.errors import StoreError

F = TypeVar("F", bound=Callable[..., Any])

CONFIG_HELP = "Trap config (TOML); relative paths in it are relative to the file."


class ConfigProblem(click.ClickException):
    """A config or argument that cannot be used: exit status 2, like a usage error."""

    exit_code = 2


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def library_errors(func: F) -> F:
    """Turn the library's expected errors into one-line CLI errors."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from edge_agent.capture.frames import SourceError

        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            raise ConfigProblem(_one_line(exc)) from None
        except (ModelContractError, StoreError, SourceError) as exc:
            raise click.ClickException(_one_line(exc)) from None
        except OSError as exc:
            raise click.ClickException(_one_line(exc)) from None

    return wrapper  # type: ignore[return-value]


def _load_settings(config: Path | None, **overrides: dict[str, Any]) -> Settings:
    """The config file (or defaults) with command-line overrides, validated together."""
    settings = load_config(config)
    if not any(overrides.values()):
        return settings
    data = settings.model_dump()
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return settings_from_dict(data, base_dir=settings.base_dir)


def _parse_time(value: str | None, zone: str, option: str) -> datetime | None:
    """ISO 8601; a time without an offset is the trap's local time."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigProblem(f"{option}: not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    return parsed


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM, SIGINT and SIGHUP end ``process`` as its input would: open events written."""
    from edge_agent.service.daemon import STOP_SIGNALS

    def handle(_signum: int, _frame: Any) -> None:
        stop.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, handle)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="trapcount")
def cli() -> None:
    """trapcount: count wildlife at a camera trap, on the trap.

    Frames -> motion gate -> int8 classifier -> tracker -> events with MaxN per label
    -> SQLite. `run` is the service, `process` runs the same pipeline over a recording,
    `report` reads the counts back, `export` writes Camtrap DP or CSV, `sync` pushes to a
    central PostgreSQL, `doctor` checks a trap.
    """


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

    settings = _load_settings(config)
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
    help="Time of a video's first frame, ISO 8601 (no offset = the trap's time zone) "
    "[default: the file's mtime minus its duration].",
)
@click.option(
    "--media",
    "media_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep crops for retraining in this folder (media.media_dir), checked for people "
    "first (privacy.mode).",
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
    quiet: bool,
    verbose: bool,
) -> None:
    """Run the pipeline over a video file or an image folder to its end.

    Events are written to the database as they close (an interrupted run keeps them),
    the rest are closed at the end, the counts are rolled up and a per-label summary is
    printed: events, count (the sum of each event's MaxN) and the largest MaxN. Running
    it again over the same footage (after a crash, or with other settings) replaces the
    earlier run's events instead of counting twice. Progress goes to stderr.
    """
    from edge_agent.office.reports import summary_table
    from edge_agent.service.batch import process_source
    from edge_agent.service.logging_setup import setup_logging
    from edge_agent.service.model import load_classifier, resolve_model_dir
    from edge_agent.service.wiring import check_files
    from edge_agent.store.database import Store
    from edge_agent.store.queries import summarize_rows
    from edge_agent.text import plural

    # A file or folder is relative to the working directory (not to the config file).
    is_path = "://" not in source and not source.isdigit()
    uri = str(Path(source).expanduser().resolve()) if is_path else source
    overrides: dict[str, dict[str, Any]] = {"source": {"uri": uri, "kind": "auto"}}
    if event_gap is not None:
        overrides["events"] = {"event_gap_s": event_gap}
    settings = _load_settings(config, **overrides)
    setup_logging("INFO" if verbose else "WARNING")
    start_time = _parse_time(start, settings.trap.timezone, "--start")
    check_files(settings)
    model_dir = resolve_model_dir(settings, config_given=config is not None, override=model)
    target = db if db is not None else settings.resolve(settings.storage.db_path)

    stop = threading.Event()
    _stop_on_signals(stop)
    progress = None if quiet else _progress_printer()
    with load_classifier(model_dir, settings.classifier) as classifier, Store.open(target) as store:
        result = process_source(
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
    click.echo(
        f"{Path(source).name}: {plural(result.frames, 'frame')}{span}, "
        f"{plural(result.events, 'event')} "
        f"(trap {settings.trap.id}, model {classifier.manifest.version}, database {where})"
    )
    summary = summarize_rows(rows)
    click.echo(summary_table(summary) if summary else "no events")
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


REPORT_DB_HELP = (
    "SQLite file or database URL (e.g. postgresql+psycopg://host/fleet); repeat to read "
    "several traps' databases together [default: the config's storage.db_path]."
)
SINCE_HELP = (
    "Only events starting at or after this: a date (the trap's local day) or an ISO 8601 "
    "time (without an offset: the trap's local time)."
)
UNTIL_HELP = (
    "Only events starting before this ISO 8601 time, or up to the end of this date (the "
    "trap's local day)."
)
GROUPINGS = ["event", "hour", "day", "week", "deployment"]


def _report_databases(databases: tuple[str, ...], config: Path | None) -> list[str]:
    if databases:
        return list(databases)
    if config is None:
        raise ConfigProblem("give --db PATH or --config FILE")
    settings = load_config(config)
    return [str(settings.resolve(settings.storage.db_path))]


def _report_window(since: str | None, until: str | None) -> Any:
    from edge_agent.office.windows import Window, parse_bound

    def bound(value: str | None, option: str, end: bool) -> Any:
        if value is None:
            return None
        try:
            return parse_bound(value, end=end)
        except ValueError:
            raise ConfigProblem(f"{option}: not a date or ISO 8601 time: {value!r}") from None

    return Window(bound(since, "--since", False), bound(until, "--until", True))


def _check_groupings(by: tuple[str, ...]) -> None:
    if "event" in by and len(set(by)) > 1:
        raise ConfigProblem("--by event lists the events; it does not combine with other --by")
    periods = [b for b in dict.fromkeys(by) if b in ("hour", "day", "week")]
    if len(periods) > 1:
        raise ConfigProblem(f"--by: one period at a time, not {' and '.join(periods)}")


def _note_duplicates(count: int) -> None:
    if count:
        click.echo(
            f"note: {count} event(s) found in more than one database were counted once", err=True
        )


@cli.command()
@click.option("--db", "databases", multiple=True, help=REPORT_DB_HELP)
@click.option("--config", "-c", type=click.Path(dir_okay=False, path_type=Path), help=CONFIG_HELP)
@click.option("--since", help=SINCE_HELP)
@click.option("--until", help=UNTIL_HELP)
@click.option(
    "--by",
    "by",
    multiple=True,
    type=click.Choice(GROUPINGS),
    help="List the events, or count per local hour, day or ISO week and/or per deployment; "
    "repeat to combine (--by deployment --by day) [default: per label, then the events].",
)
@click.option("--label", "labels", multiple=True, help="Only this label; repeat for several.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    help="Output format [default: table; none when --html is given].",
)
@click.option(
    "--html",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML page with charts and trap health to this file.",
)
@library_errors
def report(
    databases: tuple[str, ...],
    config: Path | None,
    since: str | None,
    until: str | None,
    by: tuple[str, ...],
    labels: tuple[str, ...],
    fmt: str | None,
    html: Path | None,
) -> None:
    """Print the counts in one or several databases, as a table, CSV or JSON.

    A label's count is the sum of each event's MaxN. Hours, days and weeks are the trap's
    local ones (its deployment's time zone), and an event counts in the period it started
    in. JSON has "totals" ({label: count}), "labels", "events" (one entry per event and
    label: id, start, end, label, max_n, frames, confidence), "counts" (the rolled-up
    intervals), "deployments", "models", "health" and, with --by, "groups". Times are ISO
    8601 in the trap's time zone, with the offset. An empty range prints an empty table.
    """
    from edge_agent.office.report_data import load, open_stores
    from edge_agent.office.reports import build_report, render_csv, render_table

    by = tuple(dict.fromkeys(by))  # --by day --by day is --by day
    _check_groupings(by)
    window = _report_window(since, until)
    with open_stores(_report_databases(databases, config)) as stores:
        data = load(stores, window, labels)
    document = build_report(data, by=by)
    _note_duplicates(data.duplicate_events)
    if html is not None:
        from edge_agent.office.taxa import TaxonMap

        try:
            from edge_agent.office.html_report import write_html

            write_html(data, html, TaxonMap(load_config(config).export.taxa))
        except ImportError as exc:
            raise click.ClickException(
                f"--html needs {exc.name or 'matplotlib'}: pip install 'trapcount[reports]'"
            ) from None
        click.echo(f"wrote {html}: {data.event_count} events", err=True)
        if fmt is None:
            return
    if fmt == "json":
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    elif fmt == "csv":
        click.echo(render_csv(document, data.rows), nl=False)
    else:
        click.echo(render_table(document, by))


@cli.group()
def collect() -> None:
    """Kept crops for retraining: export them as a dataset for trapcount-train."""


@collect.command("export")
@click.option(
    "--db", required=True, help="SQLite file or database URL whose media table lists the crops."
)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the dataset (created 0700).",
)
@library_errors
def collect_export(db: str, out: Path) -> None:
    """Write the kept crops as an image-folder dataset for ``trapcount-train --data OUT``.

    Each crop goes to OUT/<label>/, under its reviewed label if a reviewer set one, else
    the predicted label; OUT/unreviewed.txt lists those still unreviewed. Crops of people,
    of ``unknown`` and those a reviewer marked ``empty`` are left out. Files are created 0600.
    Crops whose label is not a valid folder name (a tampered or foreign database) are
    skipped and counted.
    """
    from edge_agent.office.dataset import export_dataset
    from edge_agent.store.database import Store

    with Store.open(db, create=False) as store:
        result = export_dataset(store, out)
    labels = ", ".join(f"{label} {n}" for label, n in sorted(result.per_label.items()))
    click.echo(
        f"wrote {result.out}: {result.images} image(s) ({labels or 'none'}), "
        f"{result.unreviewed} unreviewed"
        + (f", {result.missing} file(s) missing" if result.missing else "")
        + (
            f", {result.bad_labels} skipped (label not a valid folder name)"
            if result.bad_labels
            else ""
        )
    )


@cli.command()
@click.option(
    "--db", required=True, help="SQLite file or database URL whose media table lists the crops."
)
@click.option(
    "--media",
    "media_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The kept media folder (the config's media.media_dir, or a copy of it).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port."
)
@click.option(
    "--token",
    envvar="TRAPCOUNT_REVIEW_TOKEN",
    help="Secret every request must carry (?token= once); required off localhost "
    "[env TRAPCOUNT_REVIEW_TOKEN].",
)
@library_errors
def review(db: str, media_dir: Path, host: str, port: int, token: str | None) -> None:
    """Review the kept crops in a browser: confirm, relabel or mark empty, one at a time
    with the keyboard or in bulk. Decisions go to the database at once; ``collect export``
    then writes the reviewed dataset. Needs Flask (the ``review`` extra)."""
    from edge_agent.office.review import ReviewError, check_bind

    try:
        check_bind(host, token)
    except ReviewError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        import flask  # noqa: F401
    except ImportError:
        raise click.ClickException(
            "the review page needs Flask: pip install 'trapcount[review]'"
        ) from None
    from edge_agent.office.review import serve

    shown = f"[{host}]" if ":" in host else host

    def announce() -> None:
        click.echo(
            f"reviewing {db} at http://{shown}:{port}/" + ("?token=..." if token else ""),
            err=True,
        )

    try:
        serve(db, media_dir, host=host, port=port, token=token, announce=announce)
    except ReviewError as exc:
        raise click.ClickException(str(exc)) from None


@cli.group()
def export() -> None:
    """Write the counts for other tools: a Camtrap DP package, or CSV for spreadsheets."""


@export.command("camtrap-dp")
@click.option("--db", "databases", multiple=True, help=REPORT_DB_HELP)
@click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trap config (TOML): its [trap] coordinates and [export] section (contributor, "
    "licenses, setup, label -> taxon map) fill in what the database does not hold.",
)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the package (created; its four files are replaced).",
)
@click.option("--since", help=SINCE_HELP)
@click.option("--until", help=UNTIL_HELP)
@click.option(
    "--validate",
    is_flag=True,
    help="Validate the package offline with frictionless (pip install 'trapcount[reports]').",
)
@library_errors
def export_camtrap_dp(
    databases: tuple[str, ...],
    config: Path | None,
    out: Path,
    since: str | None,
    until: str | None,
    validate: bool,
) -> None:
    """Write a Camtrap DP 1.0.2 package, the camera-trap data standard.

    The folder gets datapackage.json, deployments.csv, media.csv and observations.csv,
    ready for GBIF, Agouti, camtrapR or Wildlife Insights.
    Observations are per event and label at observationLevel=event, with count = MaxN,
    observationType and scientificName from the label -> taxon map, classificationMethod
    machine, the classifier's confidence and the model version. Deployments need
    coordinates (trap.latitude, trap.longitude). Times are ISO 8601 with the trap's offset.
    """
    from edge_agent.office.camtrap import ExportError, export_camtrap_dp, validate_package
    from edge_agent.office.report_data import open_stores

    settings = load_config(config)
    window = _report_window(since, until)
    with open_stores(_report_databases(databases, config)) as stores:
        try:
            result = export_camtrap_dp(stores, out, settings, window=window)
        except ExportError as exc:
            raise click.ClickException(_one_line(exc)) from None
    click.echo(
        f"wrote {out}: {result.deployments} deployment(s), {result.observations} "
        f"observation(s), {result.media} media"
    )
    if result.unmapped_labels:
        click.echo(
            f"note: label(s) {', '.join(result.unmapped_labels)} are not in the taxon map and "
            "were exported as observationType=unknown; map them in the config's [export] taxa",
            err=True,
        )
    if validate:
        try:
            problems = validate_package(out)
        except ImportError:
            raise click.ClickException(
                "--validate needs frictionless: pip install 'trapcount[reports]'"
            ) from None
        for problem in problems[:20]:
            click.echo(f"  {problem}", err=True)
        if problems:
            raise click.ClickException(f"the package is not valid: {len(problems)} problem(s)")
        click.echo("valid Camtrap DP 1.0.2 (checked offline)")


@export.command("csv")
@click.option("--db", "databases", multiple=True, help=REPORT_DB_HELP)
@click.option("--config", "-c", type=click.Path(dir_okay=False, path_type=Path), help=CONFIG_HELP)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for events.csv and counts.csv (created; the two files are replaced).",
)
@click.option("--since", help=SINCE_HELP)
@click.option("--until", help=UNTIL_HELP)
@click.option("--label", "labels", multiple=True, help="Only this label; repeat for several.")
@click.option(
    "--by",
    "period",
    type=click.Choice(["hour", "day", "week"]),
    default="day",
    show_default=True,
    help="Period of counts.csv, in the trap's local time.",
)
@library_errors
def export_csv(
    databases: tuple[str, ...],
    config: Path | None,
    out: Path,
    since: str | None,
    until: str | None,
    labels: tuple[str, ...],
    period: str,
) -> None:
    """Write events.csv and counts.csv for spreadsheets.

    events.csv has one line per event and label; counts.csv one per deployment, local
    period (--by) and label: events, count (the sum of MaxN) and the largest MaxN."""
    from edge_agent.office.report_data import load, open_stores
    from edge_agent.office.reports import (
        CSV_EVENT_COLUMNS,
        event_record,
        group_columns,
        group_rows,
        to_csv,
    )

    window = _report_window(since, until)
    with open_stores(_report_databases(databases, config)) as stores:
        data = load(stores, window, labels)
    _note_duplicates(data.duplicate_events)
    by = ["deployment", period]
    groups = group_rows(data.rows, by)
    out.mkdir(parents=True, exist_ok=True)
    (out / "events.csv").write_text(
        to_csv(CSV_EVENT_COLUMNS, [event_record(row) for row in data.rows]), encoding="utf-8"
    )
    (out / "counts.csv").write_text(to_csv(group_columns(by), groups), encoding="utf-8")
    click.echo(f"wrote {out}: events.csv ({len(data.rows)} rows), counts.csv ({len(groups)} rows)")


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

    The source gives a frame, the model loads and matches its manifest, the database is
    writable, healthy and private, the disk has room and the clock is plausible. Prints a
    table: check, status (ok, warn, FAIL), detail.
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
        raise ConfigProblem(_one_line(exc)) from None
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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="trapcount")
    except Exception as exc:  # a bug, not a user error: still one line unless debugging
        if os.environ.get("TRAPCOUNT_DEBUG"):
            raise
        click.echo(
            f"Error: unexpected {type(exc).__name__}: {_one_line(exc)} "
            "(TRAPCOUNT_DEBUG=1 shows the traceback)",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
