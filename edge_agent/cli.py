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
from edge_agent.store import StoreError

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
        from edge_agent.sources import SourceError

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
    def handle(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="trapcount")
def cli() -> None:
    """trapcount: count wildlife at a camera trap, on the trap.

    Frames -> motion gate -> int8 classifier -> tracker -> events with MaxN per label
    -> SQLite. `run` is the service, `process` runs the same pipeline over a recording,
    `report` reads the counts back, `doctor` checks a trap.
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
    from edge_agent.logging_setup import setup_logging
    from edge_agent.service import resolve_model_dir, run_service

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
    from edge_agent.logging_setup import setup_logging
    from edge_agent.reports import summary_table
    from edge_agent.service import load_classifier, process_source, resolve_model_dir
    from edge_agent.store import Store, summarize_rows

    # A file or folder is relative to the working directory (not to the config file).
    is_path = "://" not in source and not source.isdigit()
    uri = str(Path(source).expanduser().resolve()) if is_path else source
    overrides: dict[str, dict[str, Any]] = {"source": {"uri": uri, "kind": "auto"}}
    if event_gap is not None:
        overrides["events"] = {"event_gap_s": event_gap}
    settings = _load_settings(config, **overrides)
    setup_logging("INFO" if verbose else "WARNING")
    start_time = _parse_time(start, settings.trap.timezone, "--start")
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
        )
        rows = store.event_rows(event_ids=result.event_ids)
        where = store.where
    if progress is not None and sys.stderr.isatty():
        click.echo("", err=True)  # end the progress line
    if result.replaced:
        click.echo(
            f"note: {result.replaced} event(s) of an earlier run over the same footage "
            "were not found again and were removed",
            err=True,
        )
    span = ""
    if result.first is not None and result.last is not None:
        span = f", {(result.last - result.first).total_seconds():.1f} s of footage"
    click.echo(
        f"{Path(source).name}: {result.frames} frames{span}, {result.events} events "
        f"(trap {settings.trap.id}, model {classifier.manifest.version}, database {where})"
    )
    summary = summarize_rows(rows)
    click.echo(summary_table(summary) if summary else "no events")
    if result.interrupted:
        click.echo("interrupted: the events so far are written; rerun to complete", err=True)
        sys.exit(130)


def _progress_printer() -> Callable[[int, int | None, int], None]:
    tty = sys.stderr.isatty()

    def show(frames: int, total: int | None, events: int) -> None:
        done = f"{frames}/{total} frames ({100 * frames / total:.0f}%)" if total else f"{frames}"
        message = f"{done}, {events} events"
        if tty:
            click.echo(f"\r{message}  ", err=True, nl=False)
        else:
            click.echo(message, err=True)

    return show


@cli.command()
@click.option(
    "--db",
    help="SQLite file or database URL [default: the config's storage.db_path].",
)
@click.option("--config", "-c", type=click.Path(dir_okay=False, path_type=Path), help=CONFIG_HELP)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option("--since", help="Only events starting at or after this ISO time.")
@click.option("--until", help="Only events starting before this ISO time.")
@library_errors
def report(
    db: str | None,
    config: Path | None,
    fmt: str,
    since: str | None,
    until: str | None,
) -> None:
    """Print the counts in a database, as a table or JSON.

    A label's count is the sum of each event's MaxN. JSON has "totals" ({label: count}),
    "events" (one entry per event and label: id, start, end, label, max_n, frames,
    confidence), "counts" (the rolled-up intervals) and "deployments". Times are ISO 8601
    in the trap's time zone, with the offset; --since and --until without an offset are
    in UTC.
    """
    from edge_agent.reports import build_report, render_table
    from edge_agent.store import Store

    if db is None:
        if config is None:
            raise ConfigProblem("give --db PATH or --config FILE")
        settings = load_config(config)
        db = str(settings.resolve(settings.storage.db_path))
    with Store.open(db, create=False) as store:
        data = build_report(
            store,
            since=_parse_time(since, "UTC", "--since"),
            until=_parse_time(until, "UTC", "--until"),
        )
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(render_table(data))


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
    from edge_agent.doctor import render, run_checks
    from edge_agent.logging_setup import setup_logging
    from edge_agent.service import resolve_model_dir

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
