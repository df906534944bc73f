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

Several databases (each trap's SQLite, or a fleet's PostgreSQL next to a trap's file) are
read together. Each deployment gets a name that is unique across them (its trap id, or
the trap id and its start date when a trap has moved), and an event found in two of them
(same trap, same start: a trap's file and the fleet copy of it) is counted once.
"""

from __future__ import annotations

import csv
import io
import os
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge_agent import __version__
from edge_agent.store.database import Store
from edge_agent.store.errors import StoreError
from edge_agent.store.queries import EventRow, event_written_times, heartbeat_rows
from edge_agent.text import format_table

PERIODS = ("hour", "day", "week")
GROUPINGS = ("event", *PERIODS, "deployment")
# Local bounds are resolved per trap; a query first takes this much more on each side.
_WIDEST_OFFSET = timedelta(hours=26)


# -- time ---------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def zone_of(name: str) -> ZoneInfo:
    """The IANA zone ``name``; UTC for a name this system does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_iso(value: datetime | None, zone: str = "UTC") -> str | None:
    """``value`` (aware) as ISO 8601 in ``zone``, with its offset, to the second."""
    if value is None:
        return None
    precision = "milliseconds" if value.microsecond else "seconds"
    return value.astimezone(zone_of(zone)).isoformat(timespec=precision)


@dataclass(frozen=True)
class TimeBound:
    """A ``--since``/``--until`` bound: one instant for every trap, or a wall-clock time
    (a naive ``local``) that each trap reads in its own time zone."""

    instant: datetime | None = None
    local: datetime | None = None

    def at(self, zone: str) -> datetime:
        """The bound as a UTC instant for a trap in ``zone``."""
        if self.instant is not None:
            return self.instant.astimezone(UTC)
        assert self.local is not None
        return self.local.replace(tzinfo=zone_of(zone)).astimezone(UTC)

    def describe(self) -> str:
        if self.instant is not None:
            return self.instant.isoformat()
        assert self.local is not None
        return f"{self.local.isoformat()} (each trap's local time)"

    @classmethod
    def of(cls, value: datetime | TimeBound | None) -> TimeBound | None:
        if value is None or isinstance(value, TimeBound):
            return value
        if value.tzinfo is None:
            return cls(local=value)
        return cls(instant=value)


def parse_bound(text: str, *, end: bool = False) -> TimeBound:
    """A date (YYYY-MM-DD: the trap's local day; as an end bound the whole day is included)
    or an ISO 8601 time (with an offset: an instant; without: the trap's local time)."""
    text = text.strip()
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is not None:
        start = datetime.combine(day, time())
        return TimeBound(local=start + timedelta(days=1) if end else start)
    parsed = datetime.fromisoformat(text)  # ValueError for the caller to word
    return TimeBound.of(parsed)  # type: ignore[return-value]


@dataclass(frozen=True)
class Window:
    """Events starting in [since, until), each bound read in the event's trap's zone."""

    since: TimeBound | None = None
    until: TimeBound | None = None

    def coarse(self) -> tuple[datetime | None, datetime | None]:
        """UTC bounds wide enough for every zone, for the database query."""
        since = until = None
        if self.since is not None:
            since = self.since.at("UTC")
            if self.since.local is not None:
                since -= _WIDEST_OFFSET
        if self.until is not None:
            until = self.until.at("UTC")
            if self.until.local is not None:
                until += _WIDEST_OFFSET
        return since, until

    def contains(self, value: datetime, zone: str) -> bool:
        if self.since is not None and value < self.since.at(zone):
            return False
        return not (self.until is not None and value >= self.until.at(zone))

    def describe(self) -> dict[str, str | None]:
        return {
            "since": self.since.describe() if self.since else None,
            "until": self.until.describe() if self.until else None,
        }


def period_of(value: datetime, zone: str, period: str) -> str:
    """The local hour ("2024-06-01T05:00+02:00"), day ("2024-06-01") or ISO week
    ("2024-W22") holding ``value`` at a trap in ``zone``."""
    local = value.astimezone(zone_of(zone))
    if period == "hour":
        return local.replace(minute=0, second=0, microsecond=0).isoformat(timespec="minutes")
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    raise ValueError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """A deployment as reports and exports name it."""

    key: str  # unique across the databases read together (Camtrap DP deploymentID)
    source: str  # the database it came from
    id: int  # its id in that database
    trap_id: str
    location_name: str
    latitude: float | None
    longitude: float | None
    camera_model: str
    timezone: str
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class Row:
    """One event x label."""

    deployment: Deployment
    event: EventRow
    written_at: datetime | None

    def __getattr__(self, name: str) -> Any:  # the EventRow's fields: start, label, max_n...
        if name == "event":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.event, name)

    @property
    def timezone(self) -> str:
        return self.deployment.timezone

    def local(self, value: datetime | None = None) -> datetime:
        return (value or self.event.start).astimezone(zone_of(self.deployment.timezone))


@dataclass
class ReportData:
    """Everything a report shows, read from one or several databases."""

    sources: list[str]
    window: Window
    labels: tuple[str, ...]
    deployments: list[Deployment]
    rows: list[Row]
    models: list[dict[str, Any]]
    heartbeats: dict[str, list[dict[str, Any]]]  # per trap id, oldest first
    counts: list[dict[str, Any]]  # the rolled-up intervals
    schema_revisions: list[str | None] = field(default_factory=list)
    duplicate_events: int = 0

    @property
    def event_count(self) -> int:
        return len({(r.deployment.key, r.event_id) for r in self.rows})


def open_for_reading(target: str) -> Store:
    """Open a trapcount database without creating one: a missing file, a file that is not
    a database, or a database that trapcount did not make is a one-line ``StoreError``.
    An older trapcount schema is upgraded, as the agent would do. A file this process
    cannot write (read-only media, another user's file) is read without writing to it;
    then an older schema is an error that says to copy it somewhere writable."""
    if not _is_writable_file(target):
        store = Store.open_read_only(target)
    else:
        store = Store.open(target, create=False, migrate=False)
    try:
        revision = store.schema_revision()
        if revision is None:
            raise StoreError(f"{store.where} is not a trapcount database (no schema version)")
        if store.read_only:
            store.check_schema_is_current(revision)
        else:
            store.upgrade("head")  # refuses a newer schema; a no-op at the head
    except BaseException:
        store.close()
        raise
    return store


def _is_writable_file(target: str) -> bool:
    """Whether ``target`` (a SQLite path; URLs are servers: True) and its folder can be
    written by this process: SQLite in WAL mode writes lock files beside the database.
    ``access`` also says no on a read-only filesystem, even to root."""
    if "://" in target:
        return True
    path = Path(target).expanduser()
    if not path.exists():
        return True  # Store.open says it is missing
    return os.access(path, os.W_OK) and os.access(path.resolve().parent, os.W_OK)


@contextmanager
def open_stores(targets: Iterable[str]) -> Iterator[list[Store]]:
    with ExitStack() as stack:
        yield [stack.enter_context(open_for_reading(str(t))) for t in targets]


def _deployment_keys(rows: list[tuple[str, Any]]) -> dict[tuple[str, int], str]:
    """{(source, id): name}: the trap id, or the trap id and the local start date when
    the trap has several deployments (a numeric suffix if it moved twice in a day)."""
    by_trap: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for source, dep in rows:
        by_trap[dep.trap_id].append((source, dep))
    names: dict[tuple[str, int], str] = {}
    for trap_id, deps in by_trap.items():
        if len(deps) == 1:
            source, dep = deps[0]
            names[(source, dep.id)] = trap_id
            continue
        used: set[str] = set()
        for source, dep in sorted(deps, key=lambda item: item[1].start):
            base = f"{trap_id}-{dep.start.astimezone(zone_of(dep.timezone)):%Y%m%d}"
            name, n = base, 1
            while name in used:
                n += 1
                name = f"{base}-{n}"
            used.add(name)
            names[(source, dep.id)] = name
    return names


def _identity(dep: Any) -> tuple[Any, ...]:
    """What makes two databases' deployment records the same deployment."""
    return (dep.trap_id, dep.start, dep.location_name, dep.latitude, dep.longitude)


def load(
    stores: Store | Sequence[Store],
    window: Window | None = None,
    labels: Iterable[str] = (),
    deployment_id: int | None = None,
) -> ReportData:
    """Read the events in ``window`` (and with one of ``labels``, when given)."""
    stores = [stores] if isinstance(stores, Store) else list(stores)
    window = window or Window()
    wanted = tuple(sorted(set(labels)))
    coarse_since, coarse_until = window.coarse()

    # Deployments: the same deployment in two databases is one.
    raw: list[tuple[str, Any]] = []
    seen: dict[tuple[Any, ...], tuple[str, int]] = {}
    alias: dict[tuple[str, int], tuple[str, int]] = {}
    for store in stores:
        for dep in store.deployments():
            ident = _identity(dep)
            if ident in seen:
                alias[(store.where, dep.id)] = seen[ident]
                continue
            seen[ident] = (store.where, dep.id)
            alias[(store.where, dep.id)] = (store.where, dep.id)
            raw.append((store.where, dep))
    names = _deployment_keys(raw)
    deployments = {
        (source, dep.id): Deployment(
            key=names[(source, dep.id)],
            source=source,
            id=dep.id,
            trap_id=dep.trap_id,
            location_name=dep.location_name,
            latitude=dep.latitude,
            longitude=dep.longitude,
            camera_model=dep.camera_model,
            timezone=dep.timezone,
            start=dep.start,
            end=dep.end,
        )
        for source, dep in raw
    }

    rows: list[Row] = []
    seen_events: set[tuple[str, datetime]] = set()
    duplicates: set[tuple[str, datetime]] = set()
    models: dict[str, dict[str, Any]] = {}
    heartbeats: dict[str, list[dict[str, Any]]] = defaultdict(list)
    counts: list[dict[str, Any]] = []
    seen_beats: set[tuple[str, datetime]] = set()
    seen_counts: set[tuple[str, datetime, str]] = set()
    for store in stores:
        written = event_written_times(store, since=coarse_since, until=coarse_until)
        taken: set[tuple[str, datetime]] = set()
        for event in store.event_rows(
            since=coarse_since, until=coarse_until, deployment_id=deployment_id
        ):
            dep = deployments[alias[(store.where, event.deployment_id)]]
            if not window.contains(event.start, dep.timezone):
                continue
            if wanted and event.label not in wanted:
                continue
            key = (dep.trap_id, event.start)
            if key in seen_events and key not in taken:
                duplicates.add(key)
                continue
            taken.add(key)
            rows.append(Row(dep, event, written.get(event.event_id)))
        seen_events |= taken

        for model in store.model_versions():
            entry = models.setdefault(model["sha256"], {**model, "events": 0})
            entry.pop("id", None)
        for beat in heartbeat_rows(store, since=coarse_since, until=coarse_until):
            dep = _deployment_at(deployments, alias, store.where, beat)
            if dep is None or not window.contains(beat["time"], dep.timezone):
                continue
            if (dep.trap_id, beat["time"]) not in seen_beats:  # a fleet copy of it
                seen_beats.add((dep.trap_id, beat["time"]))
                heartbeats[dep.trap_id].append(beat)
        for count in store.counts(
            since=coarse_since, until=coarse_until, deployment_id=deployment_id
        ):
            dep = deployments[alias[(store.where, count.deployment_id)]]
            if not window.contains(count.interval_start, dep.timezone):
                continue
            if wanted and count.label not in wanted:
                continue
            if (dep.key, count.interval_start, count.label) in seen_counts:
                continue
            seen_counts.add((dep.key, count.interval_start, count.label))
            counts.append(
                {
                    "deployment": dep.key,
                    "deployment_id": count.deployment_id,
                    "trap_id": dep.trap_id,
                    "interval_start": local_iso(count.interval_start, dep.timezone),
                    "interval_end": local_iso(count.interval_end, dep.timezone),
                    "label": count.label,
                    "count": count.count,
                    "events": count.events,
                }
            )

    rows.sort(key=lambda r: (r.start, r.deployment.key, r.event_id, r.label))
    events_per_model: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for row in rows:
        if row.model_sha256:
            events_per_model[row.model_sha256].add((row.deployment.key, row.event_id))
    for sha, entry in models.items():
        entry["events"] = len(events_per_model.get(sha, ()))
    for beats in heartbeats.values():
        beats.sort(key=lambda b: b["time"])
    shown = sorted(deployments.values(), key=lambda d: (d.trap_id, d.start))
    if deployment_id is not None:
        shown = [d for d in shown if d.id == deployment_id]
    return ReportData(
        sources=[store.where for store in stores],
        window=window,
        labels=wanted,
        deployments=shown,
        rows=rows,
        models=sorted(models.values(), key=lambda m: m["first_seen"]),
        heartbeats=dict(sorted(heartbeats.items())),
        counts=counts,
        schema_revisions=[store.schema_revision() for store in stores],
        duplicate_events=len(duplicates),
    )


def _deployment_at(
    deployments: dict[tuple[str, int], Deployment],
    alias: dict[tuple[str, int], tuple[str, int]],
    source: str,
    beat: dict[str, Any],
) -> Deployment | None:
    """The deployment a heartbeat belongs to: its own, else the source's deployment that
    was running at that time, else the source's latest."""
    if beat.get("deployment_id") is not None:
        key = alias.get((source, beat["deployment_id"]))
        if key is not None:
            return deployments[key]
    candidates = [deployments[key] for (src, _), key in alias.items() if src == source]
    if not candidates:
        return None
    running = [
        d for d in candidates if d.start <= beat["time"] and (d.end or beat["time"]) >= beat["time"]
    ]
    return max(running or candidates, key=lambda d: d.start)


# -- figures ------------------------------------------------------------------------------


def summarize(rows: Iterable[Row]) -> dict[str, dict[str, Any]]:
    """Per label: events, count (sum of MaxN), largest MaxN, mean confidence."""
    summary: dict[str, dict[str, Any]] = {}
    confidences: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        entry = summary.setdefault(row.label, {"events": 0, "count": 0, "max_n": 0})
        entry["events"] += 1
        entry["count"] += row.max_n
        entry["max_n"] = max(entry["max_n"], row.max_n)
        confidences[row.label].append(row.mean_confidence)
    for label, entry in summary.items():
        entry["confidence"] = round(statistics.fmean(confidences[label]), 4)
    return dict(sorted(summary.items()))


def group_rows(rows: Iterable[Row], by: Sequence[str]) -> list[dict[str, Any]]:
    """Counts per (deployment, period, label) for the groupings in ``by`` ("deployment"
    and at most one of hour, day, week): events, count (sum of MaxN), largest MaxN."""
    periods = [b for b in by if b in PERIODS]
    if len(periods) > 1:
        raise ValueError(f"group by one period at a time, not {' and '.join(periods)}")
    unknown = set(by) - set(PERIODS) - {"deployment"}
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
        key += (row.label,)
        entry["label"] = row.label
        group = groups.setdefault(key, {**entry, "events": 0, "count": 0, "max_n": 0})
        group["events"] += 1
        group["count"] += row.max_n
        group["max_n"] = max(group["max_n"], row.max_n)

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
    return [*columns, "label", "events", "count", "max_n"]


def event_dict(row: Row) -> dict[str, Any]:
    """One event x label as the JSON report lists it (the keys the agent defined)."""
    return {
        "id": row.event_id,
        "deployment_id": row.deployment_id,
        "trap_id": row.deployment.trap_id,
        "start": local_iso(row.start, row.timezone),
        "end": local_iso(row.end, row.timezone),
        "label": row.label,
        "max_n": row.max_n,
        "frames": row.frames,
        "confidence": round(row.mean_confidence, 4),
        "tracks": row.tracks,
        "model": row.model_sha256[:12] if row.model_sha256 else None,
    }


def event_record(row: Row) -> dict[str, Any]:
    """One event x label for CSV: the JSON entry and the deployment's report name."""
    return {"deployment": row.deployment.key, **event_dict(row)}


# -- trap health --------------------------------------------------------------------------


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


# -- the JSON document --------------------------------------------------------------------


def build_report(
    stores: Store | Sequence[Store] | ReportData,
    *,
    since: datetime | TimeBound | None = None,
    until: datetime | TimeBound | None = None,
    deployment_id: int | None = None,
    labels: Iterable[str] = (),
    by: Sequence[str] = (),
) -> dict[str, Any]:
    """The report as plain data (what ``--format json`` prints): "totals" ({label:
    count}), "labels" (per label: events, count, max_n, confidence), "events" (one entry
    per event and label), "counts" (the rolled-up intervals), "deployments", and with
    ``by`` a "groups" list."""
    if isinstance(stores, ReportData):
        data = stores
    else:
        window = Window(TimeBound.of(since), TimeBound.of(until))
        data = load(stores, window, labels, deployment_id=deployment_id)
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
    }
    grouping = [b for b in by if b != "event"]
    if grouping:
        report["by"] = list(grouping)
        report["groups"] = group_rows(data.rows, grouping)
    return report


# -- text and CSV -------------------------------------------------------------------------


def summary_table(summary: dict[str, dict[str, int]]) -> str:
    """label | events | count (sum of MaxN) | largest MaxN."""
    rows = [
        [label, entry["events"], entry["count"], entry["max_n"]] for label, entry in summary.items()
    ]
    return format_table(["label", "events", "count", "max_n"], rows)


EVENT_COLUMNS = ["event", "trap", "start", "end", "label", "max_n", "frames", "confidence"]


def _event_cells(event: dict[str, Any]) -> list[Any]:
    return [
        event["id"],
        event["trap_id"],
        event["start"],
        event["end"],
        event["label"],
        event["max_n"],
        event["frames"],
        f"{event['confidence']:.2f}",
    ]


def render_table(report: dict[str, Any], by: Sequence[str] = ()) -> str:
    """The report as text: the per-label summary and the events (no ``by``), the events
    (``by`` event), or the grouped counts. An empty range gives the headers alone."""
    events = report["events"]
    if "event" in by:
        return format_table(EVENT_COLUMNS, [_event_cells(e) for e in events])
    if report.get("groups") is not None:
        columns = group_columns(report["by"])
        return format_table(columns, [[g[c] for c in columns] for g in report["groups"]])
    parts = [summary_table(report["labels"])]
    if events:
        parts += ["", format_table(EVENT_COLUMNS, [_event_cells(e) for e in events])]
    return "\n".join(parts)


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
    return to_csv(CSV_EVENT_COLUMNS[1:], report["events"])
