"""Reading the trap's database: the rows reports list, and the queries that make them.

:class:`Queries` is mixed into :class:`~edge_agent.store.database.Store` (its ``read()``
sessions); the module's functions are the read-only helpers reports and exports share.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
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
    # A reviewer's decision (revision 0008; None: not reviewed): the label, the count, who,
    # when, and whether the count is the reviewer's own number (else the rules' default).
    reviewed_label: str | None = None
    reviewed_count: int | None = None
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    reviewed_counted: bool | None = None
    # Set by effective_rows: who the count is from ("machine" or "reviewer"), and the
    # machine's (label, MaxN) of the observations the row stands for.
    counted_by: str = "machine"
    machine: tuple[tuple[str, int], ...] = ()


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
                    reviewed_label=obs.reviewed_label,
                    reviewed_count=obs.reviewed_count,
                    reviewed_by=obs.reviewed_by,
                    reviewed_at=obs.reviewed_at,
                    reviewed_counted=obs.reviewed_counted,
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
        """Per label, the sum of per-event MaxN (straight from the events, not the roll-up),
        the reviewer's where an event was reviewed (:func:`effective_rows`)."""
        query = select(Event.id, *REVIEW_COLUMNS).join(Event, Event.id == Observation.event_id)
        query = _time_filter(query, Event.start, since, until)
        if deployment_id is not None:
            query = query.where(Event.deployment_id == deployment_id)
        totals: dict[str, int] = defaultdict(int)
        with self.read() as session:
            for _key, label, count in event_counts(session.execute(query)):
                if label != EMPTY:
                    totals[label] += count
        return dict(sorted(totals.items()))

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


# -- reviewed counts: how a reader takes them ------------------------------------------------
#
# The rule every reader follows (reports, exports, the roll-up; docs/reports.md "Reviewed
# counts"); the writer is edge_agent.store.reviews. An observation row is the machine's
# (``label``, ``max_n``) and, once its event was reviewed, the reviewer's
# (``reviewed_label``, ``reviewed_count``). Read per event, never per row: the reviewed
# count of label X in an event is the sum of ``reviewed_count`` over its rows reviewed as X
# (a row holds its label's number, the others of that label 0), an unreviewed row counting
# its machine MaxN. A label whose count is 0 is left out, unless nothing is left: then the
# event is one ``empty`` observation (count 0): the reviewer saw no animal. Rows the writer
# added for a label the machine never saw (max_n 0, tracks 0) are no machine observation.

EMPTY = "empty"  # a reviewer's label for "no animal here"
MACHINE = "machine"
REVIEWER = "reviewer"
COUNT_MODES = ("reviewed", "machine")
REVIEW_COLUMNS = (
    Observation.label,
    Observation.max_n,
    Observation.tracks,
    Observation.reviewed_label,
    Observation.reviewed_count,
)


def is_machine_row(row: Any) -> bool:
    """Whether an observation row is the machine's (not one the review writer added)."""
    return bool(row.tracks or row.max_n)


def _merged(rows: Sequence[Any]) -> list[tuple[str, int, list[Any]]]:
    """One event's rows as ``(label, count, rows)`` per label, by the rule above."""
    groups: dict[str, list[Any]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.reviewed_label is None:
            if not is_machine_row(row):
                continue
            label, count = row.label, row.max_n
        else:
            label, count = row.reviewed_label, row.reviewed_count or 0
        groups[label].append(row)
        counts[label] += count
    kept = [(label, counts[label], groups[label]) for label in sorted(groups) if counts[label] > 0]
    if not kept and groups:
        return [(EMPTY, 0, [row for label in sorted(groups) for row in groups[label]])]
    return kept


def event_counts(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[tuple[Any, ...], str, int]]:
    """``(event key, label, count)`` from rows of an event key (the event's id first, then
    whatever the caller needs) followed by :data:`REVIEW_COLUMNS`: reviewed counts where an
    event was reviewed."""
    per_event: dict[tuple[Any, ...], list[_Obs]] = defaultdict(list)
    for *key, label, max_n, tracks, reviewed_label, reviewed_count in rows:
        per_event[tuple(key)].append(_Obs(label, max_n, tracks, reviewed_label, reviewed_count))
    for event, obs in per_event.items():
        for label, count, _members in _merged(obs):
            yield event, label, count


@dataclass(frozen=True)
class _Obs:
    label: str
    max_n: int
    tracks: int
    reviewed_label: str | None
    reviewed_count: int | None


def effective_rows(rows: Iterable[EventRow], counts: str = "reviewed") -> list[EventRow]:
    """Events x labels as a report shows them: with ``counts="reviewed"`` the reviewer's
    label and count where an event was reviewed (``counted_by="reviewer"``, the machine's
    labels and MaxN in ``machine``, frames, tracks and confidence the machine's of those
    observations), else the machine's; ``counts="machine"``: the machine's rows only."""
    if counts not in COUNT_MODES:
        raise ValueError(f"counts: {counts!r} is not one of {', '.join(COUNT_MODES)}")
    per_event: dict[int, list[EventRow]] = {}
    for row in rows:
        per_event.setdefault(row.event_id, []).append(row)
    out: list[EventRow] = []
    for event_rows in per_event.values():
        reviewed = counts == "reviewed" and any(r.reviewed_label for r in event_rows)
        if not reviewed:
            out += [
                replace(r, counted_by=MACHINE, machine=((r.label, r.max_n),))
                for r in event_rows
                if is_machine_row(r)
            ]
            continue
        for label, count, members in _merged(event_rows):
            out.append(_reviewed_row(label, count, members))
    return out


def _reviewed_row(label: str, count: int, members: list[EventRow]) -> EventRow:
    seen = [m for m in members if is_machine_row(m)]
    tracks = sum(m.tracks for m in seen)
    confidence = sum(m.mean_confidence * m.tracks for m in seen) / (tracks or 1)
    suppressed = [m.suppressed for m in seen if m.suppressed is not None]
    by_reviewer = [m for m in members if m.reviewed_label is not None]
    if not by_reviewer:  # an unreviewed row beside reviewed ones (not written so)
        return replace(members[0], counted_by=MACHINE, machine=((label, count),))
    latest = max(by_reviewer, key=lambda m: m.reviewed_at or datetime.min.replace(tzinfo=UTC))
    return replace(
        members[0],
        label=label,
        max_n=count,
        frames=max((m.frames for m in seen), default=0),
        mean_confidence=confidence,
        tracks=tracks,
        suppressed=sum(suppressed) if suppressed else None,
        reviewed_label=label,
        reviewed_count=count,
        reviewed_by=latest.reviewed_by,
        reviewed_at=latest.reviewed_at,
        reviewed_counted=any(m.reviewed_counted for m in members),
        counted_by=REVIEWER,
        machine=tuple((m.label, m.max_n) for m in seen),
    )


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
