"""Reports from the database: a JSON document and a plain-text table.

Counts are the ecologists' count: per label, the sum over events of the event's MaxN
(never a sum of per-frame detections). Times are ISO 8601 with the UTC offset of the
deployment's time zone, so a reader sees the trap's local clock and can still compare
traps in different zones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent import __version__
from edge_agent.store import Store, summarize_rows


def local_iso(value: datetime | None, zone: str = "UTC") -> str | None:
    """``value`` (aware) as ISO 8601 in ``zone``, with its offset, to the second."""
    if value is None:
        return None
    try:
        tz = ZoneInfo(zone)
    except (KeyError, ValueError):
        tz = UTC
    precision = "milliseconds" if value.microsecond else "seconds"
    return value.astimezone(tz).isoformat(timespec=precision)


def build_report(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    deployment_id: int | None = None,
) -> dict[str, Any]:
    """The report as plain data (what ``--format json`` prints)."""
    rows = store.event_rows(since=since, until=until, deployment_id=deployment_id)
    deployments = store.deployments()
    zones = {d.id: d.timezone for d in deployments}
    summary = summarize_rows(rows)
    counts = store.counts(since=since, until=until, deployment_id=deployment_id)
    return {
        "trapcount_version": __version__,
        "generated": local_iso(datetime.now(UTC)),
        "database": store.where,
        "schema_revision": store.schema_revision(),
        "filters": {
            "since": local_iso(since),
            "until": local_iso(until),
            "deployment_id": deployment_id,
        },
        "deployments": [
            {
                "id": d.id,
                "trap_id": d.trap_id,
                "location_name": d.location_name,
                "latitude": d.latitude,
                "longitude": d.longitude,
                "camera_model": d.camera_model,
                "timezone": d.timezone,
                "start": local_iso(d.start, d.timezone),
                "end": local_iso(d.end, d.timezone),
            }
            for d in deployments
            if deployment_id is None or d.id == deployment_id
        ],
        "totals": {label: entry["count"] for label, entry in summary.items()},
        "labels": summary,
        "events": [
            {
                "id": row.event_id,
                "deployment_id": row.deployment_id,
                "trap_id": row.trap_id,
                "start": local_iso(row.start, row.timezone),
                "end": local_iso(row.end, row.timezone),
                "label": row.label,
                "max_n": row.max_n,
                "frames": row.frames,
                "confidence": round(row.mean_confidence, 4),
                "tracks": row.tracks,
                "model": row.model_sha256[:12] if row.model_sha256 else None,
            }
            for row in rows
        ],
        "counts": [
            {
                "deployment_id": c.deployment_id,
                "trap_id": c.trap_id,
                "interval_start": local_iso(c.interval_start, zones.get(c.deployment_id, "UTC")),
                "interval_end": local_iso(c.interval_end, zones.get(c.deployment_id, "UTC")),
                "label": c.label,
                "count": c.count,
                "events": c.events,
            }
            for c in counts
        ],
    }


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain aligned text table; numbers right-aligned."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    numeric = [
        all(isinstance(row[i], int | float) for row in rows) and bool(rows)
        for i in range(len(headers))
    ]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def summary_table(summary: dict[str, dict[str, int]]) -> str:
    """label | events | count (sum of MaxN) | largest MaxN."""
    rows = [
        [label, entry["events"], entry["count"], entry["max_n"]] for label, entry in summary.items()
    ]
    return format_table(["label", "events", "count", "max_n"], rows)


def render_table(report: dict[str, Any]) -> str:
    parts = []
    if not report["events"]:
        parts.append("no events")
    else:
        parts.append(summary_table(report["labels"]))
        parts.append("")
        parts.append(
            format_table(
                ["event", "start", "end", "label", "max_n", "frames", "confidence"],
                [
                    [
                        e["id"],
                        e["start"],
                        e["end"],
                        e["label"],
                        e["max_n"],
                        e["frames"],
                        f"{e['confidence']:.2f}",
                    ]
                    for e in report["events"]
                ],
            )
        )
    return "\n".join(parts)
