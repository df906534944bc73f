"""Reading the trap's database: the rows reports list, and the queries that make them.

:class:`Queries` is mixed into :class:`~edge_agent.store.database.Store` (its ``read()``
sessions); the module's functions are the read-only helpers reports and exports share.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from edge_agent.store.models import (
    LIVE_SOURCE,
    Count,
    Deployment,
    Event,
    Heartbeat,
    Media,
    MediaDeletion,
    ModelVersion,
    Observation,
    Unprocessed,
    as_utc,
)


@dataclass(frozen=True)
class EventRow:
    """One event x label, as reports list them."""

    event_id: int
    deployment_id: int
    trap_id: str
    timezone: str
    start: datetime
    end: datetime
    event_frames: int
    label: str
    max_n: int
    frames: int
    mean_confidence: float
    tracks: int
    model_sha256: str | None
    source_key: str = LIVE_SOURCE
    illumination: str | None = None  # colour, ir; None for events before revision 0006
    suppressed: int | None = None  # tracks whose images were withheld; None before 0007


@dataclass(frozen=True)
class CountRow:
    deployment_id: int
    trap_id: str
    interval_start: datetime
    interval_end: datetime
    label: str
    count: int
    events: int


@dataclass(frozen=True)
class DeploymentRow:
    id: int
    trap_id: str
    location_name: str
    latitude: float | None
    longitude: float | None
    camera_model: str
    timezone: str
    start: datetime
    end: datetime | None


class Queries:
    """The store's queries, mixed into ``Store``, which provides the engine and ``read()``
    (a read transaction); the module's functions take any ``Queries``, that is a Store."""

    engine: Engine

    def read(self) -> AbstractContextManager[Session]:  # Store's own comes first in its MRO
        raise NotImplementedError

    def deployments(self) -> list[DeploymentRow]:
        with self.read() as session:
            rows = session.scalars(select(Deployment).order_by(Deployment.id)).all()
            return [
                DeploymentRow(
                    id=d.id,
                    trap_id=d.trap_id,
                    location_name=d.location_name,
                    latitude=d.latitude,
                    longitude=d.longitude,
                    camera_model=d.camera_model,
                    timezone=d.timezone,
                    start=d.start,
                    end=d.end,
                )
                for d in rows
            ]

    def event_rows(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        deployment_id: int | None = None,
        event_ids: list[int] | None = None,
    ) -> list[EventRow]:
        """Events x labels in time order (events starting in [since, until))."""
        query = (
            select(Event, Observation, Deployment, ModelVersion.sha256)
            .join(Observation, Observation.event_id == Event.id)
            .join(Deployment, Deployment.id == Event.deployment_id)
            .outerjoin(ModelVersion, ModelVersion.id == Event.model_version_id)
            .order_by(Event.start, Event.id, Observation.label)
        )
        query = _time_filter(query, Event.start, since, until)
        if deployment_id is not None:
            query = query.where(Event.deployment_id == deployment_id)
        if event_ids is not None:
            query = query.where(Event.id.in_(event_ids))
        with self.read() as session:
            return [
                EventRow(
                    event_id=ev.id,
                    deployment_id=dep.id,
                    trap_id=dep.trap_id,
                    timezone=dep.timezone,
                    start=ev.start,
                    end=ev.end,
                    event_frames=ev.frames,
                    label=obs.label,
                    max_n=obs.max_n,
                    frames=obs.frames,
                    mean_confidence=obs.mean_confidence,
                    tracks=obs.tracks,
                    model_sha256=sha,
                    source_key=ev.source_key,
                    illumination=ev.illumination,
                    suppressed=obs.suppressed,
                )
                for ev, obs, dep, sha in session.execute(query)
            ]

    def totals(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        deployment_id: int | None = None,
    ) -> dict[str, int]:
        """Per label, the sum of per-event MaxN (straight from the events, not the roll-up)."""
        query = (
            select(Observation.label, func.sum(Observation.max_n))
            .join(Event, Event.id == Observation.event_id)
            .group_by(Observation.label)
            .order_by(Observation.label)
        )
        query = _time_filter(query, Event.start, since, until)
        if deployment_id is not None:
            query = query.where(Event.deployment_id == deployment_id)
        with self.read() as session:
            return {label: int(total) for label, total in session.execute(query)}

    def event_count(self) -> int:
        with self.read() as session:
            return int(session.scalar(select(func.count(Event.id))) or 0)

    def counts(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        deployment_id: int | None = None,
    ) -> list[CountRow]:
        query = (
            select(Count, Deployment.trap_id)
            .join(Deployment, Deployment.id == Count.deployment_id)
            .order_by(Count.interval_start, Count.deployment_id, Count.label)
        )
        query = _time_filter(query, Count.interval_start, since, until)
        if deployment_id is not None:
            query = query.where(Count.deployment_id == deployment_id)
        with self.read() as session:
            return [
                CountRow(
                    deployment_id=c.deployment_id,
                    trap_id=trap_id,
                    interval_start=c.interval_start,
                    interval_end=c.interval_end,
                    label=c.label,
                    count=c.count,
                    events=c.events,
                )
                for c, trap_id in session.execute(query)
            ]

    def heartbeats(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest heartbeats, newest first, as plain dicts."""
        with self.read() as session:
            rows = session.scalars(
                select(Heartbeat).order_by(Heartbeat.time.desc(), Heartbeat.id.desc()).limit(limit)
            ).all()
            return [
                {c.key: getattr(row, c.key) for c in Heartbeat.__table__.columns} for row in rows
            ]

    def model_versions(self) -> list[dict[str, Any]]:
        with self.read() as session:
            rows = session.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()
            return [
                {
                    "id": m.id,
                    "sha256": m.sha256,
                    "labels": list(m.labels),
                    "arch": m.arch,
                    "accuracy": m.accuracy,
                    "first_seen": m.first_seen,
                }
                for m in rows
            ]

    def media(
        self,
        *,
        deployment_id: int | None = None,
        label: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        files_only: bool = False,
    ) -> list[Media]:
        """Kept media, oldest first (detached rows); ``files_only``: without the records of
        withheld tracks, which have no file."""
        query = select(Media).order_by(Media.time, Media.id)
        if files_only:
            query = query.where(Media.path.is_not(None))
        if deployment_id is not None:
            query = query.where(Media.deployment_id == deployment_id)
        if label is not None:
            query = query.where(Media.label == label)
        if kind is not None:
            query = query.where(Media.kind == kind)
        query = _time_filter(query, Media.time, since, until)
        if limit is not None:
            query = query.limit(limit)
        with self.read() as session:
            return list(session.scalars(query).all())

    def media_deletions(self) -> list[MediaDeletion]:
        with self.read() as session:
            query = select(MediaDeletion).order_by(MediaDeletion.id)
            return list(session.scalars(query).all())

    def latest_timestamp(self) -> datetime | None:
        """The newest time recorded anywhere (a clock that reads earlier went backwards)."""
        with self.read() as session:
            candidates = [
                session.scalar(select(func.max(Heartbeat.time))),
                session.scalar(select(func.max(Event.written_at))),
                session.scalar(select(func.max(ModelVersion.first_seen))),
            ]
        # func.max bypasses the type decorator's result processing on SQLite.
        values = [_coerce_utc(value) for value in candidates if value is not None]
        return max(values) if values else None


def _coerce_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def chunked(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of at most ``size`` (bound parameters per statement are limited)."""
    for begin in range(0, len(items), size):
        yield list(items[begin : begin + size])


def _time_filter(query: Any, column: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        query = query.where(column >= as_utc(since))
    if until is not None:
        query = query.where(column < as_utc(until))
    return query


def summarize_rows(rows: list[EventRow]) -> Mapping[str, dict[str, int]]:
    """Per label: events, total (sum of MaxN) and the largest MaxN."""
    summary: dict[str, dict[str, int]] = {}
    for row in rows:
        entry = summary.setdefault(row.label, {"events": 0, "count": 0, "max_n": 0})
        entry["events"] += 1
        entry["count"] += row.max_n
        entry["max_n"] = max(entry["max_n"], row.max_n)
    return dict(sorted(summary.items()))


# -- read-only helpers for reports and exports ----------------------------------------------


def heartbeat_rows(
    store: Queries, *, since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """Heartbeats with ``since <= time < until``, oldest first, as plain dicts."""
    query = select(Heartbeat).order_by(Heartbeat.time, Heartbeat.id)
    query = _time_filter(query, Heartbeat.time, since, until)
    with store.read() as session:
        return [
            {c.key: getattr(row, c.key) for c in Heartbeat.__table__.columns}
            for row in session.scalars(query)
        ]


def event_written_times(
    store: Queries, *, since: datetime | None = None, until: datetime | None = None
) -> dict[int, datetime]:
    """{event id: when it was written} for events starting in [since, until): the time the
    model's classification was recorded (Camtrap DP's classificationTimestamp)."""
    query = _time_filter(select(Event.id, Event.written_at), Event.start, since, until)
    with store.read() as session:
        return {event_id: written for event_id, written in session.execute(query)}


def has_table(store: Queries, name: str) -> bool:
    """Whether the database has table ``name`` (tables that later migrations add)."""
    with store.engine.connect() as connection:
        return inspect(connection).has_table(name)


def unprocessed_rows(
    store: Queries,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    deployment_id: int | None = None,
) -> list[tuple[int, datetime, str, str]]:
    """``(deployment id, time, source_key, reason)`` of footage that could not be counted,
    with ``since <= time < until``, oldest first."""
    query = select(
        Unprocessed.deployment_id, Unprocessed.time, Unprocessed.source_key, Unprocessed.reason
    ).order_by(Unprocessed.time, Unprocessed.id)
    query = _time_filter(query, Unprocessed.time, since, until)
    if deployment_id is not None:
        query = query.where(Unprocessed.deployment_id == deployment_id)
    with store.read() as session:
        return [tuple(row) for row in session.execute(query)]  # type: ignore[misc]
