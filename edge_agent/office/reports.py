"""Reports from one or several databases: tables, CSV and JSON (HTML: ``html_report``).

Counts are the ecologists' count: per label, the sum over events of the event's MaxN
(never a sum of per-frame detections). Times are ISO 8601 with the UTC offset of the
deployment's time zone, so a reader sees the trap's local clock and can still compare
traps in different zones.

Periods are the trap's own: an event belongs to the local hour, day and ISO week (Monday
to Sunday) in which it *started*, in its deployment's time zone. A date in ``--since`` or
``--until`` is a local day too, so "2024-06-01" selects each trap's own June 1st even when
the traps are in different zones; a time without an offset is the trap's wall clock, and
a time with an offset (or ``Z``) is one instant for every trap.

Several databases are read together (``report_data``): an event found in two of them (a
trap's file and the fleet copy of it) is counted once. Report time is ``windows``.

Counts are a reviewer's where an event was reviewed (``trapcount review``), else the
machine's; each event entry says whose (``counted_by``) and keeps the machine's labels and
MaxN (``machine``); ``--counts machine`` shows the machine's alone (docs/reports.md,
"Reviewed counts").
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from edge_agent import __version__
from edge_agent.office.report_data import ReportData, Row, load
from edge_agent.office.windows import PERIODS, TimeBound, Window, local_iso, period_of
from edge_agent.store.database import Store
from edge_agent.store.queries import REVIEWER
from edge_agent.text import format_table, plural

GROUPINGS = ("event", *PERIODS, "deployment", "illumination")
# Events written before illumination was recorded (schema revision 0006).
UNTOLD = "untold"


def summarize(rows: Iterable[Row]) -> dict[str, dict[str, Any]]:
    """Per label: events, count (sum of MaxN), largest MaxN, mean confidence (of the
    machine's observations; 0 for a label only a reviewer gave), and how many of the
    events a reviewer counted."""
    summary: dict[str, dict[str, Any]] = {}
    confidences: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        entry = summary.setdefault(row.label, {"events": 0, "count": 0, "max_n": 0, "reviewed": 0})
        entry["events"] += 1
        entry["count"] += row.max_n
        entry["max_n"] = max(entry["max_n"], row.max_n)
        entry["reviewed"] += row.counted_by == REVIEWER
        if row.tracks:
            confidences[row.label].append(row.mean_confidence)
    for label, entry in summary.items():
        found = confidences[label]  # none: only a reviewer saw the label (a split)
        entry["confidence"] = round(statistics.fmean(found), 4) if found else 0.0
    return dict(sorted(summary.items()))


def group_rows(rows: Iterable[Row], by: Sequence[str]) -> list[dict[str, Any]]:
    """Counts per (deployment, period, illumination, label) for the groupings in ``by``
    ("deployment", at most one of hour, day, week, and "illumination": colour or ir, day or
    night as the camera saw it): events, count (sum of MaxN), largest MaxN."""
    periods = [b for b in by if b in PERIODS]
    if len(periods) > 1:
        raise ValueError(f"group by one period at a time, not {' and '.join(periods)}")
    unknown = set(by) - set(PERIODS) - {"deployment", "illumination"}
    if unknown:
        raise ValueError(f"cannot group by {', '.join(sorted(unknown))}")
    period = periods[0] if periods else None
    per_deployment = "deployment" in by
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        key: tuple[str, ...] = ()
        entry: dict[str, Any] = {}
        if per_deployment:
            key += (row.deployment.key,)
            entry["deployment"] = row.deployment.key
            entry["trap_id"] = row.deployment.trap_id
        if period is not None:
            value = period_of(row.start, row.timezone, period)
            key += (value,)
            entry[period] = value
        if "illumination" in by:
            key += (row.illumination or UNTOLD,)
            entry["illumination"] = row.illumination or UNTOLD
        key += (row.label,)
        entry["label"] = row.label
        group = groups.setdefault(
            key, {**entry, "events": 0, "count": 0, "max_n": 0, "reviewed": 0}
        )
        group["events"] += 1
        group["count"] += row.max_n
        group["max_n"] = max(group["max_n"], row.max_n)
        group["reviewed"] += row.counted_by == REVIEWER

    def order(key: tuple[str, ...]) -> tuple[Any, ...]:
        if period != "hour":
            return key  # days and weeks sort as text
        i = int(per_deployment)  # local hours of traps in different zones: by instant
        return (*key[:i], datetime.fromisoformat(key[i]), *key[i + 1 :])

    return [groups[key] for key in sorted(groups, key=order)]


def group_columns(by: Sequence[str]) -> list[str]:
    columns = []
    if "deployment" in by:
        columns.append("deployment")
    columns += [b for b in by if b in PERIODS]
    if "illumination" in by:
        columns.append("illumination")
    return [*columns, "label", "events", "count", "max_n"]


def event_dict(row: Row) -> dict[str, Any]:
    """One event x label as the JSON report lists it (the keys the agent defined), and
    whose count it is: ``counted_by`` machine or reviewer, the reviewer and when, and the
    machine's labels and MaxN of the observations it stands for (``machine``)."""
    reviewed = row.counted_by == REVIEWER
    return {
        "id": row.event_id,
        "deployment_id": row.deployment_id,
        "trap_id": row.deployment.trap_id,
        "start": local_iso(row.start, row.timezone),
        "end": local_iso(row.end, row.timezone),
        "label": row.label,
        "max_n": row.max_n,
        "frames": row.frames,
        "confidence": round(row.mean_confidence, 4) if row.tracks else None,
        "tracks": row.tracks,
        "model": row.model_sha256[:12] if row.model_sha256 else None,
        "illumination": row.illumination,
        # Tracks counted without an image: the privacy guard saw person-like features.
        "privacy_suppressed": row.suppressed or 0,
        "counted_by": row.counted_by,
        "machine": dict(row.machine),
        "reviewed_by": row.reviewed_by if reviewed else None,
        "reviewed_at": local_iso(row.reviewed_at, row.timezone) if reviewed else None,
        "count_from_reviewer": bool(row.reviewed_counted) if reviewed else None,
    }


def event_record(row: Row) -> dict[str, Any]:
    """One event x label for CSV: the JSON entry and the deployment's report name; the
    machine's labels and MaxN as ``deer:2 fox:1``."""
    return {"deployment": row.deployment.key, **_flat(event_dict(row))}


def _flat(event: dict[str, Any]) -> dict[str, Any]:
    machine = " ".join(f"{label}:{n}" for label, n in event["machine"].items())
    return {**event, "machine": machine}


def heartbeat_health(beats: list[dict[str, Any]], zone: str = "UTC") -> dict[str, Any]:
    """A trap's health from its heartbeats (oldest first): how regular they were, the
    gaps (more than three usual intervals without one: the trap was off, crashed or lost
    power), free disk, speed and temperature."""
    if not beats:
        return {"heartbeats": 0, "gaps": []}
    times = [b["time"] for b in beats]
    steps = [(b - a).total_seconds() for a, b in pairwise(times)]
    usual = statistics.median(steps) if steps else None
    gaps = []
    if usual:
        limit = max(3 * usual, usual + 60)
        gaps = [
            {
                "from": local_iso(a, zone),
                "to": local_iso(b, zone),
                "hours": round((b - a).total_seconds() / 3600, 2),
            }
            for a, b in pairwise(times)
            if (b - a).total_seconds() > limit
        ]
    disks = [b["free_disk_bytes"] for b in beats if b.get("free_disk_bytes") is not None]
    temps = [b["cpu_temp_c"] for b in beats if b.get("cpu_temp_c") is not None]
    last = beats[-1]
    return {
        "heartbeats": len(beats),
        "first": local_iso(times[0], zone),
        "last": local_iso(times[-1], zone),
        "interval_s": round(usual, 1) if usual else None,
        "gaps": gaps,
        "free_disk_bytes": disks[-1] if disks else None,
        "min_free_disk_bytes": min(disks) if disks else None,
        "fps": last.get("fps"),
        "max_cpu_temp_c": max(temps) if temps else None,
        "capturing": last.get("capturing"),
        "model": (last.get("model_sha256") or "")[:12] or None,
    }


def trap_zones(data: ReportData) -> dict[str, str]:
    """Each trap's time zone (its latest deployment's)."""
    zones: dict[str, str] = {}
    for dep in sorted(data.deployments, key=lambda d: d.start):
        zones[dep.trap_id] = dep.timezone
    return zones


def build_report(
    stores: Store | Sequence[Store] | ReportData,
    *,
    since: datetime | TimeBound | None = None,
    until: datetime | TimeBound | None = None,
    deployment_id: int | None = None,
    labels: Iterable[str] = (),
    by: Sequence[str] = (),
    counts: str = "reviewed",
) -> dict[str, Any]:
    """The report as plain data (what ``--format json`` prints): "totals" ({label:
    count}), "labels" (per label: events, count, max_n, confidence), "events" (one entry
    per event and label), "counts" (the rolled-up intervals), "deployments", and with
    ``by`` a "groups" list."""
    if isinstance(stores, ReportData):
        data = stores
    else:
        window = Window(TimeBound.of(since), TimeBound.of(until))
        data = load(stores, window, labels, deployment_id=deployment_id, counts=counts)
    summary = summarize(data.rows)
    zones = trap_zones(data)
    report: dict[str, Any] = {
        "trapcount_version": __version__,
        "generated": local_iso(datetime.now(UTC)),
        "database": data.sources[0] if len(data.sources) == 1 else data.sources,
        "databases": data.sources,
        "schema_revision": data.schema_revisions[0] if data.schema_revisions else None,
        "filters": {
            **data.window.describe(),
            "labels": list(data.labels),
            "deployment_id": deployment_id,
        },
        "deployments": [
            {
                "deployment": d.key,
                "id": d.id,
                "database": d.source,
                "trap_id": d.trap_id,
                "location_name": d.location_name,
                "latitude": d.latitude,
                "longitude": d.longitude,
                "camera_model": d.camera_model,
                "timezone": d.timezone,
                "start": local_iso(d.start, d.timezone),
                "end": local_iso(d.end, d.timezone),
            }
            for d in data.deployments
        ],
        "totals": {label: entry["count"] for label, entry in summary.items()},
        "labels": summary,
        "events": [event_dict(row) for row in data.rows],
        "counts": data.counts,
        "models": [
            {
                "sha256": m["sha256"],
                "version": m["sha256"][:12],
                "arch": m["arch"],
                "accuracy": m["accuracy"],
                "labels": m["labels"],
                "first_seen": local_iso(m["first_seen"]),
                "events": m["events"],
            }
            for m in data.models
        ],
        "health": {
            trap: heartbeat_health(beats, zones.get(trap, "UTC"))
            for trap, beats in data.heartbeats.items()
        },
        "duplicate_events": data.duplicate_events,
        "unprocessed": data.unprocessed,
        "counts_from": data.count_mode,
        "reviewed_events": data.reviewed_events,
    }
    grouping = [b for b in by if b != "event"]
    if grouping:
        report["by"] = list(grouping)
        report["groups"] = group_rows(data.rows, grouping)
    return report


def summary_table(summary: dict[str, dict[str, int]], reviewed: bool = False) -> str:
    """label | events | count (sum of MaxN) | largest MaxN, and with ``reviewed`` the
    events a reviewer counted."""
    columns = ["label", "events", "count", "max_n", *(["reviewed"] if reviewed else [])]
    rows = [[label, *(entry[c] for c in columns[1:])] for label, entry in summary.items()]
    return format_table(columns, rows)


EVENT_COLUMNS = ["event", "trap", "start", "end", "label", "max_n", "frames", "confidence"]


def _event_cells(event: dict[str, Any], reviewed: bool = False) -> list[Any]:
    confidence = event["confidence"]
    return [
        event["id"],
        event["trap_id"],
        event["start"],
        event["end"],
        event["label"],
        event["max_n"],
        event["frames"],
        "-" if confidence is None else f"{confidence:.2f}",
        *([event["counted_by"]] if reviewed else []),
    ]


def _event_table(events: list[dict[str, Any]], reviewed: bool) -> str:
    """The events; with ``reviewed`` a last column ``by``: reviewer or machine."""
    columns = [*EVENT_COLUMNS, *(["by"] if reviewed else [])]
    return format_table(columns, [_event_cells(e, reviewed) for e in events])


def review_line(report: dict[str, Any]) -> str:
    """How many events' counts are a reviewer's (shown when any is, or when the machine's
    counts were asked for)."""
    if report.get("counts_from") == "machine":
        return "counts: the machine's (--counts machine), reviews not applied"
    events = len({(e["trap_id"], e["id"]) for e in report["events"]})
    return (
        f"counts: a reviewer's for {report['reviewed_events']} of {plural(events, 'event')}, "
        "the machine's for the rest (--counts machine: the machine's alone)"
    )


def render_table(report: dict[str, Any], by: Sequence[str] = ()) -> str:
    """The report as text: the per-label summary and the events (no ``by``), the events
    (``by`` event), or the grouped counts. An empty range gives the headers alone."""
    events = report["events"]
    reviewed = bool(report.get("reviewed_events"))
    notes = [review_line(report)] if reviewed or report.get("counts_from") == "machine" else []
    if "event" in by:
        return "\n".join([_event_table(events, reviewed), *notes])
    if report.get("groups") is not None:
        columns = group_columns(report["by"])
        table = format_table(columns, [[g[c] for c in columns] for g in report["groups"]])
        return "\n".join([table, *notes])
    parts = [summary_table(report["labels"], reviewed)]
    parts += unprocessed_lines(report.get("unprocessed", []))
    parts += notes
    if events:
        parts += ["", _event_table(events, reviewed)]
    return "\n".join(parts)


def unprocessed_lines(entries: Sequence[dict[str, Any]]) -> list[str]:
    """``unprocessed: no reference: 3 frames`` (with the trap when several traps are read):
    footage nothing could be looked for in is not footage with nothing in it."""
    traps = {entry["trap_id"] for entry in entries}
    return [
        f"unprocessed: {entry['reason']}: {plural(entry['frames'], 'frame')}"
        + (f" (trap {entry['trap_id']})" if len(traps) > 1 else "")
        for entry in entries
    ]


CSV_EVENT_COLUMNS = [
    "deployment",
    "trap_id",
    "id",
    "start",
    "end",
    "label",
    "max_n",
    "frames",
    "tracks",
    "confidence",
    "model",
    "illumination",
    "privacy_suppressed",
    "counted_by",
    "machine",
    "reviewed_by",
    "reviewed_at",
    "count_from_reviewer",
]

# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (a label or trap id such as
    ``=HYPERLINK(...)`` from a foreign database), prefixed with ``'`` so it shows as text.
    Numbers, negative ones included, and times (which start with a digit) are left alone."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    if _NUMBER.fullmatch(value):
        return value
    return "'" + value


def to_csv(columns: list[str], records: Iterable[dict[str, Any]]) -> str:
    """CSV for spreadsheets (``report --format csv``, ``export csv``): formulas defused."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({key: spreadsheet_safe(value) for key, value in record.items()})
    return buffer.getvalue()


def render_csv(report: dict[str, Any], rows: Iterable[Row] | None = None) -> str:
    """The grouped counts (with ``by``), else one line per event and label (from
    ``rows`` when given, which adds the deployment's name)."""
    if report.get("groups") is not None:
        return to_csv(group_columns(report["by"]), report["groups"])
    if rows is not None:
        return to_csv(CSV_EVENT_COLUMNS, [event_record(row) for row in rows])
    return to_csv(CSV_EVENT_COLUMNS[1:], [_flat(event) for event in report["events"]])
