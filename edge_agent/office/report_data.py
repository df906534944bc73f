"""Reading reports' data from one or several databases (each trap's SQLite, or a fleet's
PostgreSQL next to a trap's file).

Each deployment gets a name unique across the databases read together (its trap id, or the
trap id and its start date when a trap has moved), and a row found in two of them (an
event of the same trap, footage and start: a trap's file and the fleet copy of it; a
heartbeat; an interval's count) is taken once, from the first database given.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from edge_agent.office.windows import Window, local_iso, zone_of
from edge_agent.store.database import Store
from edge_agent.store.errors import StoreError
from edge_agent.store.models import interval_floor
from edge_agent.store.queries import (
    DeploymentRow,
    EventRow,
    effective_rows,
    event_written_times,
    has_table,
    heartbeat_rows,
    unprocessed_rows,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Deployment:
    """A deployment as reports and exports name it: the store's row (``trap_id``,
    ``timezone``, ``start``... read through), with ``key``, its name unique across the
    databases read together (Camtrap DP deploymentID), and ``source``, the database."""

    key: str
    source: str
    row: DeploymentRow

    def __getattr__(self, name: str) -> Any:
        if name == "row":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.row, name)


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
    # Footage nothing could be looked for in: deployment, trap_id, reason, frames (per
    # deployment and reason).
    unprocessed: list[dict[str, Any]] = field(default_factory=list)
    # Whose counts the rows carry: "reviewed" (a reviewer's where an event was reviewed,
    # else the machine's) or "machine" (docs/reports.md, "Reviewed counts").
    count_mode: str = "reviewed"

    @property
    def reviewed_events(self) -> int:
        """Events whose counts are a reviewer's."""
        return len({(r.deployment.key, r.event_id) for r in self.rows if r.counted_by != "machine"})

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


class _FirstCopies:
    """Rows that several databases may each hold a copy of: per key, the copies of the
    first database that has it are kept (one database may hold several rows of one key:
    an event with two labels), a later database's copies are dropped and remembered."""

    def __init__(self) -> None:
        self.seen: set[Hashable] = set()
        self.dropped: set[Hashable] = set()

    def take(self, items: Iterable[T], key: Callable[[T], Hashable]) -> Iterator[T]:
        """One database's ``items``, without the keys an earlier database had."""
        taken: set[Hashable] = set()
        for item in items:
            ident = key(item)
            if ident in self.seen and ident not in taken:
                self.dropped.add(ident)
                continue
            taken.add(ident)
            yield item
        self.seen |= taken


def load(
    stores: Store | Sequence[Store],
    window: Window | None = None,
    labels: Iterable[str] = (),
    deployment_id: int | None = None,
    *,
    counts: str = "reviewed",
) -> ReportData:
    """Read the events in ``window`` (and with one of ``labels``, when given), with the
    reviewer's counts where an event was reviewed (``counts="reviewed"``) or the machine's
    (``"machine"``); the roll-up follows: stored (it follows reviews), or for the machine's
    counts summed from the events into the same intervals."""
    stores = [stores] if isinstance(stores, Store) else list(stores)
    window = window or Window()
    wanted = tuple(sorted(set(labels)))
    coarse_since, coarse_until = window.coarse()

    # Deployments: the same deployment in two databases is one.
    raw: list[tuple[str, DeploymentRow]] = []
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
        (source, dep.id): Deployment(names[(source, dep.id)], source, dep) for source, dep in raw
    }

    def deployment(source: str, dep_id: int) -> Deployment:
        return deployments[alias[(source, dep_id)]]

    def shown(source: str, dep_id: int, when: datetime, label: str | None = None) -> bool:
        zone = deployment(source, dep_id).timezone
        return window.contains(when, zone) and not (wanted and label not in wanted)

    rows: list[Row] = []
    models: dict[str, dict[str, Any]] = {}
    heartbeats: dict[str, list[dict[str, Any]]] = defaultdict(list)
    counts_found: list[dict[str, Any]] = []
    stored: dict[str, Any] = {}  # per deployment key, its roll-up's interval length
    events, beats, intervals = _FirstCopies(), _FirstCopies(), _FirstCopies()
    for store in stores:
        here = store.where
        written = event_written_times(store, since=coarse_since, until=coarse_until)
        found = effective_rows(
            store.event_rows(since=coarse_since, until=coarse_until, deployment_id=deployment_id),
            counts,
        )
        for event in events.take(
            (e for e in found if shown(here, e.deployment_id, e.start, e.label)),
            lambda e, src=here: (deployment(src, e.deployment_id).trap_id, e.source_key, e.start),
        ):
            rows.append(
                Row(deployment(here, event.deployment_id), event, written.get(event.event_id))
            )

        for model in store.model_versions():
            entry = models.setdefault(model["sha256"], {**model, "events": 0})
            entry.pop("id", None)

        placed = [
            (dep, beat)
            for beat in heartbeat_rows(store, since=coarse_since, until=coarse_until)
            if (dep := _deployment_at(deployments, alias, here, beat)) is not None
            and window.contains(beat["time"], dep.timezone)
        ]
        for dep, beat in beats.take(placed, lambda item: (item[0].trap_id, item[1]["time"])):
            heartbeats[dep.trap_id].append(beat)

        found_counts = store.counts(
            since=coarse_since, until=coarse_until, deployment_id=deployment_id
        )
        for count in intervals.take(
            (c for c in found_counts if shown(here, c.deployment_id, c.interval_start, c.label)),
            lambda c, src=here: (deployment(src, c.deployment_id).key, c.interval_start, c.label),
        ):
            dep = deployment(here, count.deployment_id)
            stored.setdefault(dep.key, count.interval_end - count.interval_start)
            counts_found.append(
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

    unprocessed = _unprocessed(stores, deployments, alias, window, deployment_id)
    rows.sort(key=lambda r: (r.start, r.deployment.key, r.event_id, r.label))
    counts_list = _machine_counts(rows, stored) if counts == "machine" else counts_found
    events_per_model: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for row in rows:
        if row.model_sha256:
            events_per_model[row.model_sha256].add((row.deployment.key, row.event_id))
    for sha, entry in models.items():
        entry["events"] = len(events_per_model.get(sha, ()))
    for beat_list in heartbeats.values():
        beat_list.sort(key=lambda b: b["time"])
    listed = sorted(deployments.values(), key=lambda d: (d.trap_id, d.start))
    if deployment_id is not None:
        listed = [d for d in listed if d.id == deployment_id]
    return ReportData(
        sources=[store.where for store in stores],
        window=window,
        labels=wanted,
        deployments=listed,
        rows=rows,
        models=sorted(models.values(), key=lambda m: m["first_seen"]),
        heartbeats=dict(sorted(heartbeats.items())),
        counts=counts_list,
        schema_revisions=[store.schema_revision() for store in stores],
        duplicate_events=len(events.dropped),
        unprocessed=unprocessed,
        count_mode=counts,
    )


def _machine_counts(rows: list[Row], lengths: dict[str, Any]) -> list[dict[str, Any]]:
    """The roll-up of the machine's counts: per deployment, interval (of the length its
    stored roll-up has; none stored, none made) and label, the sum of MaxN and the events,
    as the agent's roll-up would be without reviews."""
    buckets: dict[tuple[str, datetime, str], list[Any]] = {}
    for row in rows:
        step = lengths.get(row.deployment.key)
        if step is None:
            continue
        begin = interval_floor(row.start, max(int(step.total_seconds() // 60), 1))
        key = (row.deployment.key, begin, row.label)
        bucket = buckets.setdefault(key, [row, step, 0, 0])
        bucket[2] += row.max_n
        bucket[3] += 1
    counts = []
    for (key, begin, label), (row, step, total, events) in sorted(
        buckets.items(), key=lambda item: (item[0][1], item[0][0], item[0][2])
    ):
        dep = row.deployment
        counts.append(
            {
                "deployment": key,
                "deployment_id": dep.id,
                "trap_id": dep.trap_id,
                "interval_start": local_iso(begin, dep.timezone),
                "interval_end": local_iso(begin + step, dep.timezone),
                "label": label,
                "count": total,
                "events": events,
            }
        )
    return counts


def _unprocessed(
    stores: Sequence[Store],
    deployments: dict[tuple[str, int], Deployment],
    alias: dict[tuple[str, int], tuple[str, int]],
    window: Window,
    deployment_id: int | None,
) -> list[dict[str, Any]]:
    """Frames per deployment and reason that could not be counted (a copy of the same
    frame in two databases once)."""
    since, until = window.coarse()
    seen: set[tuple[str, str, datetime, str]] = set()
    frames: dict[tuple[str, str], int] = defaultdict(int)
    for store in stores:
        if not has_table(store, "unprocessed"):
            continue  # read-only, older schema: nothing recorded
        for dep_id, time, source_key, reason in unprocessed_rows(
            store, since=since, until=until, deployment_id=deployment_id
        ):
            dep = deployments[alias[(store.where, dep_id)]]
            ident = (dep.key, source_key, time, reason)
            if not window.contains(time, dep.timezone) or ident in seen:
                continue
            seen.add(ident)
            frames[(dep.key, reason)] += 1
    trap_of = {dep.key: dep.trap_id for dep in deployments.values()}
    return [
        {"deployment": key, "trap_id": trap_of[key], "reason": reason, "frames": count}
        for (key, reason), count in sorted(frames.items())
    ]


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
