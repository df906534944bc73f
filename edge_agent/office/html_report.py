"""The report as one self-contained HTML page: tables, charts and trap health.

Everything is inside the file (charts are PNGs made with matplotlib's Agg renderer and
embedded as base64, the style sheet is inline, there is no script), so it opens offline,
from an e-mail or a USB stick, and looks the same everywhere.

The page: totals per label (with the taxon an ecologist would record), per deployment
when there are several, the sampling effort (trap-days from the heartbeats, else the
footage) and detections per 100 trap-nights per label (``edge_agent.office.effort``),
counts per local day per label, activity (events) by local hour of day per label, every
event with its confidence and a thumbnail where a clear image was kept
(``edge_agent.office.thumbnails``: small JPEGs as ``data:`` URIs, capped in number), the
model versions that classified them, and trap health from the heartbeats (gaps, free disk,
speed, temperature). Printed, the page lists every event (no scroll box: the style sheet's
``@media print`` rules).

The markup is a Jinja2 template, ``templates/report.html`` (with ``templates/report.css``),
rendered with autoescape on; this module computes what it shows (numbers, formatted text,
the charts).

matplotlib and Jinja2 are imported when a page is written, not with this module: a trap that
never writes HTML needs neither (``pip install 'trapcount[reports]'``).
"""

from __future__ import annotations

import base64
import io
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.office.effort import FOOTAGE, HEARTBEATS, detection_rates, trap_effort
from edge_agent.office.report_data import ReportData
from edge_agent.office.reports import group_rows, heartbeat_health, summarize, trap_zones
from edge_agent.office.taxa import TaxonMap
from edge_agent.office.thumbnails import Thumbnails
from edge_agent.office.windows import local_iso, zone_of

# Colour-blind-friendly (Okabe-Ito, then Tableau) with grey for "unknown".
PALETTE = [
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#D55E00",
    "#56B4E9",
    "#8C564B",
    "#F0E442",
    "#7F3C8D",
    "#11A579",
    "#3969AC",
    "#E73F74",
]
UNKNOWN_COLOUR = "#9AA0A6"
INK = "#1F2933"
MUTED = "#616E7C"
GRID = "#E4E7EB"


def label_colours(labels: list[str]) -> dict[str, str]:
    colours = {}
    others = [label for label in sorted(labels) if label != "unknown"]
    for i, label in enumerate(others):
        colours[label] = PALETTE[i % len(PALETTE)]
    if "unknown" in labels:
        colours["unknown"] = UNKNOWN_COLOUR
    return colours


# -- charts -------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=120, layout="constrained")
    figure.patch.set_facecolor("white")
    return figure


def _style(axes: Any) -> None:
    axes.set_facecolor("white")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_color("#9AA5B1")
    axes.tick_params(colors=MUTED, labelsize=9)
    axes.yaxis.grid(True, color=GRID, linewidth=0.8)
    axes.set_axisbelow(True)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor="white")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _day_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def counts_per_day_chart(data: ReportData, colours: dict[str, str]) -> str:
    """Stacked bars: per local day, the count (sum of MaxN) of each label."""
    import matplotlib.dates as mdates
    from matplotlib.ticker import MaxNLocator

    per_day: dict[str, Counter[date]] = defaultdict(Counter)
    for group in group_rows(data.rows, ["day"]):
        per_day[group["label"]][date.fromisoformat(group["day"])] += group["count"]
    days = _day_range(min(min(c) for c in per_day.values()), max(max(c) for c in per_day.values()))
    figure = _figure(10, 3.6)
    axes = figure.add_subplot()
    _style(axes)
    bottom = [0] * len(days)
    x = [datetime(d.year, d.month, d.day) for d in days]
    width = 0.8 if len(days) < 200 else 1.0
    for label in sorted(per_day, key=lambda lb: (lb == "unknown", lb)):
        heights = [per_day[label].get(d, 0) for d in days]
        axes.bar(x, heights, width, bottom=bottom, label=label, color=colours[label])
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_ylabel("count (sum of MaxN)", color=MUTED, fontsize=9)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes.set_xlim(x[0] - timedelta(days=0.7), x[-1] + timedelta(days=0.7))
    axes.legend(
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
        fontsize=9,
        labelcolor=INK,
        title="label",
        title_fontsize=9,
    )
    return _png(figure)


def hour_of_day_chart(data: ReportData, colours: dict[str, str]) -> str:
    """Small multiples: per label, the events started in each local hour of the day."""
    from matplotlib.ticker import MaxNLocator

    per_label: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    seen: set[tuple[str, int, str]] = set()
    for row in data.rows:
        key = (row.deployment.key, row.event_id, row.label)
        if key not in seen:
            seen.add(key)
            per_label[row.label][row.local().hour] += 1
    labels = sorted(per_label, key=lambda lb: (lb == "unknown", lb))
    columns = min(3, len(labels))
    rows = -(-len(labels) // columns)
    figure = _figure(10, 1.0 + 2.0 * rows)
    grid = figure.subplots(rows, columns, squeeze=False, sharex=True)
    for i, axes in enumerate(grid.flat):
        if i >= len(labels):
            axes.set_visible(False)
            continue
        label = labels[i]
        _style(axes)
        axes.bar(range(24), per_label[label], 0.85, color=colours[label])
        axes.set_title(label, loc="left", fontsize=10, color=INK, fontweight="bold")
        axes.set_xlim(-0.6, 23.6)
        axes.set_xticks([0, 6, 12, 18, 23], ["00", "06", "12", "18", "23"])
        axes.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        # Night hours shaded: the pattern most reviewers look for first.
        for start, end in ((-0.6, 5.5), (19.5, 23.6)):
            axes.axvspan(start, end, color="#F5F7FA", zorder=0)
    figure.supxlabel("local hour of day (event start)", color=MUTED, fontsize=9)
    figure.supylabel("events", color=MUTED, fontsize=9)
    return _png(figure)


def disk_chart(data: ReportData) -> str | None:
    """Free disk over time per trap, with heartbeat gaps shaded."""
    series = {
        trap: [(b["time"], b["free_disk_bytes"] / 1e9) for b in beats if b.get("free_disk_bytes")]
        for trap, beats in data.heartbeats.items()
    }
    series = {trap: points for trap, points in series.items() if points}
    if not series:
        return None
    import matplotlib.dates as mdates

    zones = trap_zones(data)
    figure = _figure(10, 2.6)
    axes = figure.add_subplot()
    _style(axes)
    for i, (trap, points) in enumerate(series.items()):
        zone = zone_of(zones.get(trap, "UTC"))
        times = [t.astimezone(zone).replace(tzinfo=None) for t, _ in points]
        colour = PALETTE[i % len(PALETTE)]
        axes.plot(times, [gb for _, gb in points], color=colour, linewidth=1.8, label=trap)
        for gap in heartbeat_health(data.heartbeats[trap], zones.get(trap, "UTC"))["gaps"]:
            start = datetime.fromisoformat(gap["from"]).replace(tzinfo=None)
            end = datetime.fromisoformat(gap["to"]).replace(tzinfo=None)
            axes.axvspan(start, end, color=colour, alpha=0.12, linewidth=0)
    axes.set_ylabel("free disk (GB)", color=MUTED, fontsize=9)
    axes.set_ylim(bottom=0)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=9)
    return _png(figure)


# -- HTML ---------------------------------------------------------------------------------
# The page's markup is the Jinja template templates/report.html (its style sheet is
# templates/report.css); the functions below only prepare what it shows, as plain values
# and formatted strings. The environment escapes every value (autoescape); nothing is
# marked safe.

TEMPLATE = "report.html"


@cache
def environment() -> Any:
    """The Jinja environment of the office's templates, found through the package (so it
    works from an installed wheel, whatever the working directory). Jinja is imported here,
    like matplotlib, so that a trap that never writes HTML does not need it."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(
        loader=PackageLoader("edge_agent.office", "templates"),
        autoescape=True,  # every value, in every template (report.css has none)
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _duration(seconds: float | None) -> str:
    if not seconds:
        return "–"
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _bytes(value: int | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1e9:.1f} GB"


def _short_time(value: str | None, seconds: bool = True) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM:SS +HH:MM' (easier to read in a table)."""
    if not value:
        return "–"
    parsed = datetime.fromisoformat(value)
    offset = parsed.strftime("%z")
    clock = "%H:%M:%S" if seconds else "%H:%M"
    return f"{parsed:%Y-%m-%d {clock}} {offset[:3]}:{offset[3:]}"


def _taxon(label: str, taxa: TaxonMap) -> dict[str, Any]:
    """What the taxon column shows: the scientific name (and its rank, when coarser than a
    species) of an animal, else the observation type."""
    taxon = taxa[label]
    rank = f" ({taxon.rank})" if taxon.rank and taxon.rank != "species" else ""
    return {
        "animal": taxon.is_animal,
        "name": taxon.scientific_name,
        "rank": rank,
        "type": taxon.observation_type,
    }


def _totals(data: ReportData, colours: dict[str, str], taxa: TaxonMap) -> list[dict[str, Any]]:
    return [
        {
            "label": label,
            "colour": colours.get(label, UNKNOWN_COLOUR),
            "taxon": _taxon(label, taxa),
            "events": entry["events"],
            "count": entry["count"],
            "max_n": entry["max_n"],
            "confidence": f"{entry['confidence']:.2f}",
        }
        for label, entry in summarize(data.rows).items()
    ]


def _per_deployment(data: ReportData, colours: dict[str, str]) -> dict[str, Any] | None:
    """Deployments x labels: each cell the count (sum of MaxN), "·" for none, with a total;
    None when there is only one deployment."""
    if len({row.deployment.key for row in data.rows}) < 2:
        return None
    labels = list(summarize(data.rows))
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for group in group_rows(data.rows, ["deployment"]):
        counts[group["deployment"]][group["label"]] += group["count"]
    return {
        "labels": [(label, colours[label]) for label in labels],
        "rows": [
            {
                "key": key,
                "cells": [
                    str(counts[key][label]) if counts[key][label] else "·" for label in labels
                ],
                "total": sum(counts[key].values()),
            }
            for key in sorted(counts)
        ],
    }


def _thumbnail_note(thumbs: Thumbnails | None) -> str:
    if thumbs is None or thumbs.folder is None:
        return "No pictures: give --media DIR (the kept media folder) for thumbnails."
    note = (
        f"{thumbs.embedded} thumbnail(s) of images the privacy guard found clear of people "
        "(never a person's, a blurred or an unchecked image)"
    )
    if thumbs.capped:
        note += (
            f"; at most {thumbs.limit} are embedded, the latest events' first: "
            f"{thumbs.capped} more are not"
        )
    return note + "."


def _events(data: ReportData, colours: dict[str, str], thumbs: Thumbnails | None) -> dict[str, Any]:
    """Every event and label (the page prints them all), with its thumbnail or why none."""
    note = "One line per event and label, in the trap's local time. " + _thumbnail_note(thumbs)
    shown = []
    for row in data.rows:
        confidence = max(0.0, min(1.0, row.mean_confidence))
        image, why = thumbs.of(row) if thumbs is not None else (None, "")
        shown.append(
            {
                "start": _short_time(local_iso(row.start, row.timezone)),
                "deployment": row.deployment.key,
                "label": row.label,
                "colour": colours.get(row.label, UNKNOWN_COLOUR),
                "max_n": row.max_n,
                "duration": f"{(row.end - row.start).total_seconds():.0f} s",
                "frames": row.frames,
                "bar": f"{confidence * 60:.0f}",
                "confidence": f"{confidence:.2f}",
                "model": row.model_sha256[:12] if row.model_sha256 else "–",
                "image": image,
                "no_image": why,
            }
        )
    pictures = thumbs is not None and thumbs.folder is not None
    return {"note": note, "rows": shown, "pictures": pictures}


def _days(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _effort(data: ReportData) -> dict[str, Any]:
    """Effort per trap and detections per 100 trap-nights per label, as the page shows them."""
    efforts = trap_effort(data)
    zones = trap_zones(data)
    sources = {
        HEARTBEATS: "heartbeats",
        FOOTAGE: "footage (first to last event; no heartbeats)",
    }
    traps = []
    for effort in efforts:
        zone = zones.get(effort.trap, "UTC")
        first = _short_time(local_iso(effort.first, zone), seconds=False)
        last = _short_time(local_iso(effort.last, zone), seconds=False)
        traps.append(
            {
                "trap": effort.trap,
                "source": sources.get(effort.source, "none (no heartbeats, no events)"),
                "period": f"{first} → {last}" if effort.first else "–",
                "trap_days": _days(effort.trap_days),
                "gaps": (
                    f"{effort.gaps} ({effort.gap_seconds / 3600:.1f} h)" if effort.gaps else "none"
                ),
                "outside": effort.outside,
            }
        )
    rates = detection_rates(data, efforts)
    several = len(efforts) > 1

    def rate(value: float | None) -> str:
        return "–" if value is None else f"{value:.1f}"

    return {
        "traps": traps,
        "total": _days(sum(e.trap_days for e in efforts)),
        "footage": any(e.source == FOOTAGE for e in efforts),
        "per_trap": [e.trap for e in efforts] if several else [],
        "rates": [
            {
                "label": r["label"],
                "events": r["events"],
                "rate": rate(r["rate"]),
                "per_trap": [rate(v) for v in r["per_trap"].values()] if several else [],
            }
            for r in rates
        ],
    }


def _models(data: ReportData) -> list[dict[str, Any]]:
    models = [m for m in data.models if m["events"]] or data.models
    return [
        {
            "version": m["sha256"][:12],
            "arch": str(m["arch"]),
            "accuracy": f"{m['accuracy']:.1%}" if m["accuracy"] is not None else "–",
            "labels": len(m["labels"]),
            "first_used": _short_time(local_iso(m["first_seen"])),
            "events": m["events"],
        }
        for m in models
    ]


def _health(data: ReportData) -> dict[str, Any]:
    """Per trap, its heartbeats' summary; the gaps, one line each; the free-disk chart."""
    zones = trap_zones(data)
    rows = []
    gaps = []
    for trap, beats in data.heartbeats.items():
        health = heartbeat_health(beats, zones.get(trap, "UTC"))
        temp = health["max_cpu_temp_c"]
        low = health["min_free_disk_bytes"]
        rows.append(
            {
                "trap": trap,
                "heartbeats": health["heartbeats"],
                "first": _short_time(health["first"], seconds=False)[:16],
                "last": _short_time(health["last"], seconds=False),
                "interval": _duration(health["interval_s"]),
                "gaps": len(health["gaps"]),
                "longest_gap": f"{max((g['hours'] for g in health['gaps']), default=0.0):.0f}",
                "free_disk": _bytes(health["free_disk_bytes"]),
                "low_disk": _bytes(low) if low is not None else None,
                "fps": f"{health['fps']:.1f}" if health["fps"] is not None else "–",
                "cpu_max": f"{temp:.0f} °C" if temp is not None else "–",
            }
        )
        gaps += [
            {
                "trap": trap,
                "start": _short_time(g["from"]),
                "end": _short_time(g["to"]),
                "hours": f"{g['hours']:.1f}",
            }
            for g in health["gaps"]
        ]
    return {"rows": rows, "gaps": gaps, "disk_chart": disk_chart(data) if rows else None}


def _subtitle(data: ReportData, traps: list[str]) -> str:
    if data.rows:
        first = local_iso(data.rows[0].start, data.rows[0].timezone)
        last = local_iso(data.rows[-1].start, data.rows[-1].timezone)
        span = f"{_short_time(first)[:10]} to {_short_time(last)[:10]}"
    else:
        span = "no events"
    window = data.window.describe()
    filters = []
    if window["since"]:
        filters.append(f"since {window['since']}")
    if window["until"]:
        filters.append(f"until {window['until']}")
    if data.labels:
        filters.append(f"labels {', '.join(data.labels)}")
    return f"{span} · {len(traps)} trap(s)" + (f" · {'; '.join(filters)}" if filters else "")


def render_html(
    data: ReportData,
    taxa: TaxonMap | None = None,
    title: str | None = None,
    thumbnails: Thumbnails | None = None,
) -> str:
    """The whole page as a string; ``thumbnails``: the events' pictures
    (``thumbnails.event_thumbnails``), else none."""
    taxa = taxa or TaxonMap()
    colours = label_colours(sorted({row.label for row in data.rows}))
    traps = sorted({d.trap_id for d in data.deployments})
    summary = summarize(data.rows)
    effort = _effort(data)
    cards = [
        (data.event_count, "events"),
        (sum(e["count"] for e in summary.values()), "individuals counted (ΣMaxN)"),
        (len(summary), "labels"),
        (len({d.key for d in data.deployments}), "deployments"),
        (effort["total"], "trap-days of effort"),
        (sum(1 for m in data.models if m["events"]), "model versions used"),
    ]
    charts = None
    if data.rows:
        charts = {
            "per_day": counts_per_day_chart(data, colours),
            "hour_of_day": hour_of_day_chart(data, colours),
        }
    return (
        environment()
        .get_template(TEMPLATE)
        .render(
            title=title or f"Wildlife counts: {', '.join(traps) or 'no trap'}",
            subtitle=_subtitle(data, traps),
            cards=cards,
            totals=_totals(data, colours, taxa),
            per_deployment=_per_deployment(data, colours),
            charts=charts,
            effort=effort,
            events=_events(data, colours, thumbnails),
            models=_models(data),
            health=_health(data),
            generated=datetime.now(UTC).isoformat(timespec="seconds"),
            version=__version__,
            sources=len(data.sources),
        )
    )


def write_html(
    data: ReportData,
    path: Path,
    taxa: TaxonMap | None = None,
    title: str | None = None,
    thumbnails: Thumbnails | None = None,
) -> Path:
    """Write the page to ``path`` (its folder is created)."""
    path = Path(path)
    html = render_html(data, taxa, title, thumbnails)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
