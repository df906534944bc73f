"""The report as one self-contained HTML page: tables, charts and trap health.

Everything is inside the file (charts are PNGs made with matplotlib's Agg renderer and
embedded as base64, the style sheet is inline, there is no script), so it opens offline,
from an e-mail or a USB stick, and looks the same everywhere.

The page: totals per label (with the taxon an ecologist would record), per deployment
when there are several, counts per local day per label, activity (events) by local hour of
day per label, the events with their confidence, the model versions that classified them,
and trap health from the heartbeats (gaps, free disk, speed, temperature).

matplotlib is imported when a page is written, not with this module: a trap that never
writes HTML does not need it (``pip install 'trapcount[reports]'``).
"""

from __future__ import annotations

import base64
import io
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.office.report_data import ReportData
from edge_agent.office.reports import group_rows, heartbeat_health, summarize, trap_zones
from edge_agent.office.taxa import TaxonMap
from edge_agent.office.windows import local_iso, zone_of

MAX_EVENT_ROWS = 500
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

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --soft:#f5f7fa; --accent:#0b6e4f; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--soft); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header { background: linear-gradient(135deg, #0b6e4f, #14532d); color: #fff; padding: 28px 0 24px; }
.wrap { max-width: 1120px; margin: 0 auto; padding: 0 24px; }
header h1 { margin: 0 0 4px; font-size: 26px; font-weight: 650; letter-spacing: -0.01em; }
header p { margin: 0; opacity: .88; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 14px;
  margin: -18px auto 8px; }
.card { background: #fff; border-radius: 10px; padding: 14px 16px;
  box-shadow: 0 1px 3px rgba(15,23,42,.12); }
.card .value { font-size: 26px; font-weight: 650; }
.card .name { color: var(--muted); font-size: 13px; }
section { background: #fff; border-radius: 10px; margin: 18px 0; padding: 18px 22px 20px;
  box-shadow: 0 1px 3px rgba(15,23,42,.10); }
section h2 { margin: 0 0 4px; font-size: 18px; }
section .note { margin: 0 0 12px; color: var(--muted); font-size: 13.5px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12.5px;
  text-transform: uppercase; letter-spacing: .04em; border-bottom: 2px solid var(--line);
  padding: 6px 10px; background: #fff; position: sticky; top: 0; }
td { padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: middle; }
tr:nth-child(even) td { background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 3px;
  margin-right: 8px; vertical-align: -1px; }
.taxon { font-style: italic; color: var(--muted); }
.scroll { max-height: 520px; overflow: auto; border: 1px solid var(--line); border-radius: 8px; }
img.chart { display: block; width: 100%; height: auto; margin-top: 6px; }
.bar { display: inline-block; height: 8px; border-radius: 4px; background: var(--accent);
  vertical-align: middle; margin-right: 8px; opacity: .75; }
.conf, td.first, td.last, td.start, td.gaps { white-space: nowrap; }
.wide { overflow-x: auto; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; }
.ok { color: #0b6e4f; font-weight: 600; } .warn { color: #b45309; font-weight: 600; }
.empty { color: var(--muted); font-style: italic; }
footer { color: var(--muted); font-size: 12.5px; padding: 8px 0 32px; }
"""


def _table(
    headers: list[tuple[str, str]], rows: list[list[str]], table_id: str, row_attrs=None
) -> str:
    # Header names are HTML (callers escape what they did not write themselves).
    head = "".join(f'<th class="{cls}">{name}</th>' for name, cls in headers)
    body = []
    for i, cells in enumerate(rows):
        attrs = row_attrs[i] if row_attrs else ""
        tds = "".join(
            f'<td class="{cls}">{cell}</td>' for (_, cls), cell in zip(headers, cells, strict=True)
        )
        body.append(f"<tr{attrs}>{tds}</tr>")
    return (
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _label_cell(label: str, colours: dict[str, str]) -> str:
    colour = colours.get(label, UNKNOWN_COLOUR)
    return f'<span class="swatch" style="background:{colour}"></span>{escape(label)}'


def _taxon_cell(label: str, taxa: TaxonMap) -> str:
    taxon = taxa[label]
    if taxon.is_animal:
        rank = f" ({taxon.rank})" if taxon.rank and taxon.rank != "species" else ""
        return f'<span class="taxon">{escape(taxon.scientific_name)}</span>{escape(rank)}'
    return escape(taxon.observation_type)


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


def _totals_section(data: ReportData, colours: dict[str, str], taxa: TaxonMap) -> str:
    summary = summarize(data.rows)
    rows = [
        [
            _label_cell(label, colours),
            _taxon_cell(label, taxa),
            str(entry["events"]),
            str(entry["count"]),
            str(entry["max_n"]),
            f"{entry['confidence']:.2f}",
        ]
        for label, entry in summary.items()
    ]
    attrs = [f' data-label="{escape(label)}"' for label in summary]
    headers = [
        ("label", "label"),
        ("taxon / type", "taxon-col"),
        ("events", "num events"),
        ("count", "num count"),
        ("largest MaxN", "num max-n"),
        ("mean confidence", "num confidence"),
    ]
    table = (
        _table(headers, rows, "totals", attrs)
        if rows
        else '<p class="empty">No events in this period.</p>'
    )
    parts = [
        "<section><h2>Totals per label</h2>",
        '<p class="note">count = the sum over events of each event\'s MaxN, the most '
        "individuals of the label seen together in one frame; an animal that lingers is "
        "counted once per event.</p>",
        table,
    ]
    keys = sorted({row.deployment.key for row in data.rows})
    if len(keys) > 1:
        parts += [
            '<h2 style="margin-top:22px">Count per deployment</h2>',
            '<p class="note">The same counts, per deployment (one trap at one place).</p>',
            _per_deployment_table(data, list(summary), colours),
        ]
    parts.append("</section>")
    return "".join(parts)


def _per_deployment_table(data: ReportData, labels: list[str], colours: dict[str, str]) -> str:
    """Deployments x labels: each cell the count (sum of MaxN), with a total column."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for group in group_rows(data.rows, ["deployment"]):
        counts[group["deployment"]][group["label"]] += group["count"]
    headers = [("deployment", "deployment")]
    headers += [
        (f'<span class="swatch" style="background:{colours[label]}"></span>{escape(label)}', "num")
        for label in labels
    ]
    headers.append(("total", "num total"))
    rows = [
        [escape(key)]
        + [str(counts[key].get(label, 0)) if counts[key].get(label) else "·" for label in labels]
        + [f"<b>{sum(counts[key].values())}</b>"]
        for key in sorted(counts)
    ]
    return _table(headers, rows, "per-deployment")


def _chart_section(title: str, note: str, png: str, alt: str) -> str:
    return (
        f"<section><h2>{escape(title)}</h2><p class='note'>{escape(note)}</p>"
        f'<img class="chart" alt="{escape(alt)}" src="data:image/png;base64,{png}"></section>'
    )


def _events_section(data: ReportData, colours: dict[str, str]) -> str:
    rows = data.rows[-MAX_EVENT_ROWS:]
    cut = len(data.rows) - len(rows)
    note = "One line per event and label, in the trap's local time."
    if cut:
        note += f" The latest {len(rows)} of {len(data.rows)}; use --format csv for all."
    cells = []
    for row in rows:
        confidence = max(0.0, min(1.0, row.mean_confidence))
        cells.append(
            [
                escape(_short_time(local_iso(row.start, row.timezone))),
                escape(row.deployment.key),
                _label_cell(row.label, colours),
                str(row.max_n),
                f"{(row.end - row.start).total_seconds():.0f} s",
                str(row.frames),
                f'<span class="conf"><span class="bar" style="width:{confidence * 60:.0f}px">'
                f"</span>{confidence:.2f}</span>",
                f"<code>{escape(row.model_sha256[:12]) if row.model_sha256 else '–'}</code>",
            ]
        )
    headers = [
        ("start", "start"),
        ("deployment", "deployment"),
        ("label", "label"),
        ("MaxN", "num max-n"),
        ("duration", "num"),
        ("frames", "num"),
        ("confidence", "confidence"),
        ("model", "model"),
    ]
    body = (
        f'<div class="scroll">{_table(headers, cells, "events")}</div>'
        if cells
        else '<p class="empty">No events in this period.</p>'
    )
    return f"<section><h2>Events</h2><p class='note'>{escape(note)}</p>{body}</section>"


def _models_section(data: ReportData) -> str:
    models = [m for m in data.models if m["events"]] or data.models
    rows = [
        [
            f"<code>{escape(m['sha256'][:12])}</code>",
            escape(str(m["arch"])),
            f"{m['accuracy']:.1%}" if m["accuracy"] is not None else "–",
            str(len(m["labels"])),
            escape(_short_time(local_iso(m["first_seen"]))),
            str(m["events"]),
        ]
        for m in models
    ]
    headers = [
        ("version", "version"),
        ("architecture", "arch"),
        ("int8 accuracy", "num"),
        ("labels", "num"),
        ("first used (UTC)", "first"),
        ("events here", "num events"),
    ]
    body = (
        _table(headers, rows, "models")
        if rows
        else '<p class="empty">No model recorded in the database.</p>'
    )
    note = "The classifier versions (first 12 hex digits of the .tflite's sha256)."
    return f"<section><h2>Model versions</h2><p class='note'>{note}</p>{body}</section>"


def _health_section(data: ReportData) -> str:
    zones = trap_zones(data)
    rows = []
    gap_lines = []
    for trap, beats in data.heartbeats.items():
        health = heartbeat_health(beats, zones.get(trap, "UTC"))
        gaps = health["gaps"]
        longest = max((g["hours"] for g in gaps), default=0.0)
        gap_text = (
            f'<span class="warn">{len(gaps)}, longest {longest:.0f} h</span>'
            if gaps
            else '<span class="ok">none</span>'
        )
        temp = health["max_cpu_temp_c"]
        first = _short_time(health["first"], seconds=False)
        last = _short_time(health["last"], seconds=False)
        low = health["min_free_disk_bytes"]
        rows.append(
            [
                escape(trap),
                str(health["heartbeats"]),
                f"{escape(first[:16])} →<br>{escape(last)}",
                _duration(health["interval_s"]),
                gap_text,
                _bytes(health["free_disk_bytes"])
                + (f" <small>(low {_bytes(low)})</small>" if low is not None else ""),
                f"{health['fps']:.1f}" if health["fps"] is not None else "–",
                f"{temp:.0f} °C" if temp is not None else "–",
            ]
        )
        gap_lines += [
            f"<li>{escape(trap)}: {escape(_short_time(g['from']))} → "
            f"{escape(_short_time(g['to']))} ({g['hours']:.1f} h)</li>"
            for g in gaps
        ]
    headers = [
        ("trap", "trap"),
        ("beats", "num"),
        ("heard from", "period"),
        ("interval", "num"),
        ("gaps", "gaps"),
        ("free disk", "num disk"),
        ("fps", "num"),
        ("CPU max", "num"),
    ]
    if not rows:
        return (
            "<section><h2>Trap health</h2>"
            '<p class="empty">No heartbeats in this period.</p></section>'
        )
    parts = [
        "<section><h2>Trap health</h2>",
        "<p class='note'>From the service's heartbeats. A gap is more than three usual "
        "intervals without one: the trap was off, crashed or lost power, and counted "
        "nothing then.</p>",
        f'<div class="wide">{_table(headers, rows, "health")}</div>',
    ]
    if gap_lines:
        parts.append(f"<ul class='note'>{''.join(gap_lines)}</ul>")
    chart = disk_chart(data)
    if chart:
        parts.append(
            f'<img class="chart" alt="free disk over time" src="data:image/png;base64,{chart}">'
        )
    parts.append("</section>")
    return "".join(parts)


def render_html(data: ReportData, taxa: TaxonMap | None = None, title: str | None = None) -> str:
    """The whole page as a string."""
    taxa = taxa or TaxonMap()
    colours = label_colours(sorted({row.label for row in data.rows}))
    traps = sorted({d.trap_id for d in data.deployments})
    title = title or f"Wildlife counts: {', '.join(traps) or 'no trap'}"
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
    subtitle = f"{span} · {len(traps)} trap(s)" + (f" · {'; '.join(filters)}" if filters else "")
    summary = summarize(data.rows)
    cards = [
        (str(data.event_count), "events"),
        (str(sum(e["count"] for e in summary.values())), "individuals counted (ΣMaxN)"),
        (str(len(summary)), "labels"),
        (str(len({d.key for d in data.deployments})), "deployments"),
        (str(sum(1 for m in data.models if m["events"])), "model versions used"),
    ]
    sections = [_totals_section(data, colours, taxa)]
    if data.rows:
        sections.append(
            _chart_section(
                "Counts per day",
                "Sum of MaxN per label and day, in each trap's local time.",
                counts_per_day_chart(data, colours),
                "counts per day per label",
            )
        )
        sections.append(
            _chart_section(
                "Activity by hour of day",
                "Events per label by the local hour they started in (night shaded).",
                hour_of_day_chart(data, colours),
                "activity by hour of day per label",
            )
        )
    sections += [_events_section(data, colours), _models_section(data), _health_section(data)]
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    card_html = "".join(
        f'<div class="card"><div class="value">{escape(v)}</div>'
        f'<div class="name">{escape(n)}</div></div>'
        for v, n in cards
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<header><div class="wrap"><h1>{escape(title)}</h1>'
        f"<p>{escape(subtitle)}</p></div></header>"
        f'<main class="wrap"><div class="cards">{card_html}</div>'
        f"{''.join(sections)}</main>"
        f'<footer class="wrap">Generated {escape(generated)} by trapcount {escape(__version__)} '
        f"from {len(data.sources)} database(s). Counts are machine classifications; "
        "review before publishing.</footer>"
        "</body></html>\n"
    )


def write_html(
    data: ReportData, path: Path, taxa: TaxonMap | None = None, title: str | None = None
) -> Path:
    """Write the page to ``path`` (its folder is created)."""
    path = Path(path)
    html = render_html(data, taxa, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
