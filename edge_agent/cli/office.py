"""The reviewer's commands: ``report``, ``export`` (Camtrap DP, CSV), ``collect export`` (the
kept crops as a training set) and ``review`` (the page that confirms or relabels crops)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from edge_agent.cli.app import (
    CONFIG_HELP,
    ConfigProblem,
    cli,
    library_errors,
    one_line,
)
from edge_agent.config import load_config

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

GROUPINGS = ["event", "hour", "day", "week", "deployment", "illumination"]

COUNTS_OPTION = click.option(
    "--counts",
    "counts",
    type=click.Choice(["reviewed", "machine"]),
    default="reviewed",
    show_default=True,
    help="Whose counts: a reviewer's where an event was reviewed (trapcount review), else "
    "the machine's; or the machine's alone.",
)


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


def _media_folder(media_dir: Path | None, config: Path | None) -> Path | None:
    """--media, else the config's media.media_dir when it is set and exists."""
    if media_dir is not None or config is None:
        return media_dir
    settings = load_config(config)
    if not settings.media.media_dir:
        return None
    folder = settings.resolve(settings.media.media_dir)
    return folder if folder.is_dir() else None


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
    help="List the events, or count per local hour, day or ISO week and/or per deployment "
    "and/or per illumination (colour or ir: day or night as the camera saw it); "
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
    help="Write a self-contained HTML page with charts, effort (trap-days, detections per 100 "
    "trap-nights), event thumbnails (--media) and trap health to this file.",
)
@click.option(
    "--media",
    "media_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="With --html: the kept media folder (the config's media.media_dir, or a copy of it) "
    "for event thumbnails; only images clear of people are shown [default: the config's "
    "media.media_dir].",
)
@COUNTS_OPTION
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
    media_dir: Path | None,
    counts: str,
) -> None:
    """Print the counts in one or several databases, as a table, CSV or JSON.

    A label's count is the sum of each event's MaxN. Hours, days and weeks are the trap's
    local ones (its deployment's time zone), and an event counts in the period it started
    in. JSON has "totals" ({label: count}), "labels", "events" (one entry per event and
    label: id, start, end, label, max_n, frames, confidence), "counts" (the rolled-up
    intervals), "deployments", "models", "health" and, with --by, "groups". Times are ISO
    8601 in the trap's time zone, with the offset. An empty range prints an empty table.

    Where a reviewer reviewed an event, its counts are the reviewer's (--counts machine:
    the machine's); each event says whose ("counted_by") and keeps the machine's labels and
    MaxN ("machine").
    """
    from edge_agent.office.report_data import load, open_stores
    from edge_agent.office.reports import build_report, render_csv, render_table

    by = tuple(dict.fromkeys(by))  # --by day --by day is --by day
    _check_groupings(by)
    window = _report_window(since, until)
    with open_stores(_report_databases(databases, config)) as stores:
        data = load(stores, window, labels, counts=counts)
        thumbnails = None
        if html is not None:
            from edge_agent.office.thumbnails import event_thumbnails

            thumbnails = event_thumbnails(stores, data, _media_folder(media_dir, config))
    document = build_report(data, by=by)
    _note_duplicates(data.duplicate_events)
    if html is not None:
        from edge_agent.office.taxa import TaxonMap

        try:
            from edge_agent.office.html_report import write_html

            write_html(data, html, TaxonMap(load_config(config).export.taxa), None, thumbnails)
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
    the predicted label; OUT/unreviewed.txt lists those still unreviewed. OUT/cct.json lists
    the same animals as COCO Camera Traps (the trap id as location, trap:event as seq_id), for
    ``trapcount-train --data OUT/cct.json``, which keeps each trap on one side of the
    validation split: a crop whose full frame was kept too (media.keep_frames) as that frame
    (copied to OUT/frames/) with the track's box, others as the crop whole. Crops of people,
    of ``unknown`` and those a reviewer marked ``empty`` are left out. Files are created
    0600. Crops whose label is not a valid folder name (a tampered or foreign database) are
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
@click.option(
    "--reviewer",
    envvar="TRAPCOUNT_REVIEWER",
    help="Your name, recorded with every reviewed count (Camtrap DP classifiedBy) "
    "[env TRAPCOUNT_REVIEWER; default: your login name].",
)
@library_errors
def review(
    db: str, media_dir: Path, host: str, port: int, token: str | None, reviewer: str | None
) -> None:
    """Review the kept crops in a browser, event by event: confirm, relabel or mark empty
    a crop or a whole event (and give a count), with the keyboard or in bulk; filter by
    label, confidence, date, unreviewed and disagreement. Decisions go to the database at
    once; an event whose crops are all decided counts as reviewed in reports and exports,
    and ``collect export`` writes the reviewed dataset. Served by waitress on 127.0.0.1
    unless --host (then --token is required). Needs the ``review`` extra."""
    from edge_agent.office.review import ReviewError, check_bind

    try:
        check_bind(host, token)
    except ReviewError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        import flask  # noqa: F401
        import waitress  # noqa: F401
    except ImportError as exc:
        raise click.ClickException(
            f"the review page needs {exc.name or 'Flask'}: pip install 'trapcount[review]'"
        ) from None
    from edge_agent.office.review import serve

    shown = f"[{host}]" if ":" in host else host

    def announce() -> None:
        click.echo(
            f"reviewing {db} at http://{shown}:{port}/" + ("?token=..." if token else ""),
            err=True,
        )

    try:
        serve(
            db,
            media_dir,
            host=host,
            port=port,
            token=token,
            reviewer=reviewer,
            announce=announce,
        )
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
@click.option(
    "--media",
    "media_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The kept media folder (media.media_dir, or a copy of it): the camera frames kept "
    "there (media.keep_frames) that are clear of people go into OUT/media, with their boxes "
    "as media-level observations. Without it the package has no media.",
)
@click.option(
    "--link-media",
    is_flag=True,
    help="With --media: hard-link the frames into the package (a symbolic link where a hard "
    "link cannot be made, e.g. across filesystems) instead of copying them.",
)
@click.option(
    "--include-blurred",
    is_flag=True,
    help="With --media: also frames on which the privacy guard blurred people (never public: "
    "filePublic false). Frames of a person are never included.",
)
@library_errors
def export_camtrap_dp(
    databases: tuple[str, ...],
    config: Path | None,
    out: Path,
    since: str | None,
    until: str | None,
    validate: bool,
    media_dir: Path | None,
    link_media: bool,
    include_blurred: bool,
) -> None:
    """Write a Camtrap DP 1.0.2 package, the camera-trap data standard.

    The folder gets datapackage.json, deployments.csv, media.csv and observations.csv,
    ready for GBIF, Agouti, camtrapR or Wildlife Insights.
    Observations are per event and label at observationLevel=event, with count = MaxN,
    observationType and scientificName from the label -> taxon map, classificationMethod
    machine, the classifier's confidence and the model version; where a reviewer reviewed
    the event (trapcount review), the reviewer's label and count, classificationMethod
    human, the reviewer and the review time, the machine's in the tags. Deployments need
    coordinates (trap.latitude, trap.longitude); their dates are trap.deployment_start and
    trap.deployment_end, else the trap's recorded activity (said in deploymentComments).
    Times are ISO 8601 with the trap's offset. With --media, media.csv lists the kept
    camera frames put into OUT/media (crops are not camera media), each with one
    media-level observation per box; OUT/media is rewritten on every export.
    """
    from edge_agent.office.camtrap import (
        ExportError,
        MediaOptions,
        export_camtrap_dp,
        validate_package,
    )
    from edge_agent.office.report_data import open_stores

    if media_dir is None and (link_media or include_blurred):
        flag = "--link-media" if link_media else "--include-blurred"
        raise click.UsageError(f"{flag} needs --media DIR (the kept media folder)")
    settings = load_config(config)
    window = _report_window(since, until)
    media = MediaOptions(media_dir, link=link_media, include_blurred=include_blurred)
    with open_stores(_report_databases(databases, config)) as stores:
        try:
            result = export_camtrap_dp(stores, out, settings, window=window, media=media)
        except ExportError as exc:
            raise click.ClickException(one_line(exc)) from None
    click.echo(
        f"wrote {out}: {result.deployments} deployment(s), {result.observations} "
        f"observation(s), {result.media} media"
    )
    if result.media_placed:
        how = ", ".join(
            f"{n} {way}" if way == "copied" or n == 1 else f"{n} {way}s"
            for way, n in result.media_placed.items()
        )
        click.echo(
            f"media: {result.media} frame(s) in {out / 'media'} ({how}), "
            f"{result.media_observations} media-level observation(s) with boxes"
        )
    for reason, n in sorted(result.media_left_out.items()):
        click.echo(f"note: {n} kept frame(s) not in the package: {reason}", err=True)
    if result.crops:
        click.echo(
            f"note: {result.crops} kept crop(s) not listed: crops are cut by trapcount, not "
            "camera media (keep frames with media.keep_frames)",
            err=True,
        )
    if result.dates_from_activity:
        click.echo(
            f"note: deployment(s) {', '.join(result.dates_from_activity)}: dates from the "
            "trap's recorded activity, not its set-up and collection (see deploymentComments); "
            "set trap.deployment_start / trap.deployment_end in the config",
            err=True,
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
@COUNTS_OPTION
@library_errors
def export_csv(
    databases: tuple[str, ...],
    config: Path | None,
    out: Path,
    since: str | None,
    until: str | None,
    labels: tuple[str, ...],
    period: str,
    counts: str,
) -> None:
    """Write events.csv and counts.csv for spreadsheets.

    events.csv has one line per event and label; counts.csv one per deployment, local
    period (--by) and label: events, count (the sum of MaxN) and the largest MaxN. Counts
    are a reviewer's where an event was reviewed (events.csv's counted_by says whose),
    unless --counts machine."""
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
        data = load(stores, window, labels, counts=counts)
    _note_duplicates(data.duplicate_events)
    by = ["deployment", period]
    groups = group_rows(data.rows, by)
    out.mkdir(parents=True, exist_ok=True)
    (out / "events.csv").write_text(
        to_csv(CSV_EVENT_COLUMNS, [event_record(row) for row in data.rows]), encoding="utf-8"
    )
    (out / "counts.csv").write_text(to_csv(group_columns(by), groups), encoding="utf-8")
    click.echo(f"wrote {out}: events.csv ({len(data.rows)} rows), counts.csv ({len(groups)} rows)")


@export.command("megadetector")
@click.option("--db", required=True, help="SQLite file or database URL whose events to export.")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The JSON file to write (replaced).",
)
@click.option("--since", help=SINCE_HELP)
@click.option("--until", help=UNTIL_HELP)
@library_errors
def export_megadetector(db: str, out: Path, since: str | None, until: str | None) -> None:
    """Write the counted tracks' boxes as MegaDetector batch output (format 1.6).

    Timelapse, AddaxAI and MegaDetector's own tools load it: one entry per photo with the
    boxes of the animals, people and vehicles counted in it (file relative to the folder
    that was processed), each with MegaDetector's confidence (1.0 for a box the motion gate
    found), and trapcount's label and confidence as its classification. Boxes from video
    clips and live cameras, which name no photo, are left out (said on stderr).
    """
    from edge_agent.office.megadetector import export_megadetector as write
    from edge_agent.office.report_data import open_for_reading

    window = _report_window(since, until)
    store = open_for_reading(db)
    try:
        result = write(store, out, window)
    finally:
        store.close()
    click.echo(
        f"wrote {out}: {result.images} image(s), {result.detections} box(es) "
        f"from {result.events} event(s)"
    )
    if result.skipped:
        click.echo(
            f"note: {result.skipped} box(es) from video clips or live cameras are not in it "
            "(MegaDetector's format names each photo by its file)",
            err=True,
        )
    if result.clashes:
        click.echo(
            f"note: {result.clashes} file name(s) belong to photos taken at different times "
            "(folders with the same names processed into one database); their boxes are "
            "listed together: use --since/--until to export one folder at a time",
            err=True,
        )
