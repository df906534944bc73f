"""Writing the trap's database: deployments, models, events, roll-ups, heartbeats, media.

:class:`Writes` is mixed into :class:`~edge_agent.store.database.Store`: every method is one
short transaction (``write()``), so a report reading the database never waits long and
``kill -9`` loses only what was never committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from edge_agent.store.errors import StoreError
from edge_agent.store.models import (
    HEARTBEAT_FIELDS,
    LEGACY_SOURCE,
    LIVE_SOURCE,
    Count,
    Deployment,
    Detection,
    Event,
    Heartbeat,
    Media,
    MediaDeletion,
    ModelVersion,
    Observation,
    Unprocessed,
    as_utc,
    interval_ceil,
    interval_floor,
    utc_now,
)
from edge_agent.store.queries import EMPTY, REVIEW_COLUMNS, chunked, event_counts

if TYPE_CHECKING:
    from edge_agent.config import TrapSettings
    from edge_agent.counting.events import ClosedEvent
    from edge_agent.manifest import Manifest


class Writes:
    """The store's writes (mixed into ``Store``, which provides ``write()`` and the model
    id cache ``_model_ids``)."""

    def ensure_deployment(self, trap: TrapSettings, now: datetime | None = None) -> int:
        """The id of the trap's open deployment, starting a new one when the trap moved or
        its camera changed (the old one is closed at ``now``)."""
        now = as_utc(now or utc_now())
        with self.write() as session:
            current = session.scalar(
                select(Deployment)
                .where(Deployment.trap_id == trap.id, Deployment.end.is_(None))
                .order_by(Deployment.start.desc(), Deployment.id.desc())
                .limit(1)
            )
            wanted = {
                "location_name": trap.location_name,
                "latitude": trap.latitude,
                "longitude": trap.longitude,
                "camera_model": trap.camera_model,
            }
            if current is not None:
                if all(getattr(current, key) == value for key, value in wanted.items()):
                    current.timezone = trap.timezone  # metadata, not a new deployment
                    return current.id
                current.end = max(now, current.start)
            deployment = Deployment(trap_id=trap.id, timezone=trap.timezone, start=now, **wanted)
            session.add(deployment)
            session.flush()
            return deployment.id

    def register_model(self, manifest: Manifest, now: datetime | None = None) -> int:
        """The model_versions id for this manifest's model, inserting it when new. A model is
        known by ``manifest.identity`` (its file's sha256, or both networks' for a model with
        a grey companion)."""
        identity = manifest.identity
        if identity in self._model_ids:
            return self._model_ids[identity]
        with self.write() as session:
            row = session.scalar(select(ModelVersion).where(ModelVersion.sha256 == identity))
            if row is None:
                accuracy = manifest.accuracy.get("int8", manifest.accuracy.get("float"))
                row = ModelVersion(
                    sha256=identity,
                    labels=list(manifest.labels),
                    arch=manifest.arch,
                    accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
                    manifest=manifest.to_dict(),
                    first_seen=as_utc(now or utc_now()),
                )
                session.add(row)
                session.flush()
            model_id = row.id
        self._model_ids[identity] = model_id
        return model_id

    def model_version_id(self, sha256: str | None) -> int | None:
        if sha256 is None:
            return None
        if sha256 not in self._model_ids:
            with self.read() as session:
                found = session.scalar(select(ModelVersion.id).where(ModelVersion.sha256 == sha256))
            if found is None:
                return None
            self._model_ids[sha256] = found
        return self._model_ids[sha256]

    def write_event(
        self,
        closed: ClosedEvent,
        deployment_id: int,
        model_version_id: int | None = None,
        now: datetime | None = None,
        *,
        source_key: str = LIVE_SOURCE,
    ) -> int:
        """Write one closed event, its observations and its counted tracks' boxes
        (``detections``, from ``counting.sightings``) in one transaction; return its id.

        An event is identified by (deployment, ``source_key``, start): writing it again
        (reprocessing the same footage after a crash) replaces it instead of counting it
        twice, while an event of other footage that happens to start at the same time (two
        clips copied off one SD card get the same file time) is a different event.
        """
        if model_version_id is None:
            model_version_id = self.model_version_id(closed.model_sha256)
        start, end = as_utc(closed.start), as_utc(closed.end)
        with self.write() as session:
            row = session.scalar(
                select(Event).where(
                    Event.deployment_id == deployment_id,
                    Event.source_key == source_key,
                    Event.start == start,
                )
            )
            if row is None:
                row = Event(deployment_id=deployment_id, source_key=source_key, start=start)
                session.add(row)
            else:
                row.observations.clear()
                session.execute(delete(Detection).where(Detection.event_id == row.id))
                session.flush()  # delete the old observations before inserting their successors
            row.end = end
            row.frames = int(closed.frames)
            row.illumination = closed.illumination
            row.model_version_id = model_version_id
            row.written_at = as_utc(now or utc_now())
            row.observations.extend(
                Observation(
                    label=obs.label,
                    max_n=int(obs.max_n),
                    frames=int(obs.frames),
                    mean_confidence=float(obs.mean_confidence),
                    tracks=int(obs.tracks),
                    suppressed=int(obs.suppressed),
                )
                for obs in closed.observations
            )
            deployment = session.get(Deployment, deployment_id)
            if deployment is None:
                raise StoreError(f"no deployment with id {deployment_id}")
            if start < deployment.start:
                # Footage older than the deployment record (a processed recording): the
                # deployment covers everything attributed to it.
                deployment.start = start
            session.flush()
            session.add_all(detection_rows(closed, row.id))
            session.flush()
            return row.id

    def delete_stale_events(
        self,
        deployment_id: int,
        source_keys: Iterable[str],
        keep: Iterable[int],
        *,
        until: datetime | None = None,
    ) -> list[datetime]:
        """Delete the deployment's events found in the footage ``source_keys`` except
        ``keep`` (and, with ``until``, except those starting after it): what an earlier run
        over the same files found and this run did not (other settings, a newer model).
        Events of any other footage are never touched. Returns the start times of the
        deleted events (their intervals need a roll-up)."""
        keys = sorted(set(source_keys) - {LIVE_SOURCE, LEGACY_SOURCE})
        keep_ids = set(keep)
        starts: list[datetime] = []
        with self.write() as session:
            for chunk in chunked(keys, 500):
                query = select(Event).where(
                    Event.deployment_id == deployment_id, Event.source_key.in_(chunk)
                )
                if until is not None:
                    query = query.where(Event.start <= as_utc(until))
                stale = session.scalars(query).all()
                for event in stale:
                    if event.id not in keep_ids:
                        starts.append(event.start)
                        session.delete(event)
                gone = delete(Unprocessed).where(
                    Unprocessed.deployment_id == deployment_id, Unprocessed.source_key.in_(chunk)
                )
                if until is not None:
                    gone = gone.where(Unprocessed.time <= as_utc(until))
                session.execute(gone)
        return starts

    def record_unprocessed(
        self,
        deployment_id: int,
        items: Iterable[tuple[datetime, str, str]],
        now: datetime | None = None,
    ) -> int:
        """Record footage that could not be counted: ``(time, source_key, reason)`` each,
        a row already there kept as it is (a rerun of the same footage). Returns how many
        rows are new."""
        written = as_utc(now or utc_now())
        added = 0
        with self.write() as session:
            for time, source_key, reason in items:
                exists = session.scalar(
                    select(Unprocessed.id).where(
                        Unprocessed.deployment_id == deployment_id,
                        Unprocessed.source_key == source_key,
                        Unprocessed.time == as_utc(time),
                        Unprocessed.reason == reason,
                    )
                )
                if exists is None:
                    session.add(
                        Unprocessed(
                            deployment_id=deployment_id,
                            time=as_utc(time),
                            source_key=source_key,
                            reason=reason,
                            written_at=written,
                        )
                    )
                    added += 1
        return added

    def rollup(
        self,
        until: datetime | None = None,
        *,
        since: datetime | None = None,
        minutes: int = 15,
        deployment_id: int | None = None,
    ) -> int:
        """Recompute the counts of every interval that starts before ``until`` (all of them
        when ``None``) and at or after the interval holding ``since``.

        Idempotent: a row is the sum of MaxN (and the number) of the events written so far
        that start in its interval, so running it again, or after more events arrived,
        gives the right answer. Intervals are aligned to the UTC epoch. Returns the rows
        written.
        """
        if minutes < 1:
            raise ValueError("minutes must be at least 1")
        step = timedelta(minutes=minutes)
        # Per event and label, the reviewer's count where the event was reviewed
        # (queries.event_counts: the rule every reader follows).
        query = select(Event.id, Event.deployment_id, Event.start, *REVIEW_COLUMNS).join(
            Observation, Observation.event_id == Event.id
        )
        stale = delete(Count)
        if until is not None:
            upper = interval_ceil(until, minutes)
            query = query.where(Event.start < upper)
            stale = stale.where(Count.interval_start < upper)
        if since is not None:
            lower = interval_floor(since, minutes)
            query = query.where(Event.start >= lower)
            stale = stale.where(Count.interval_start >= lower)
        if deployment_id is not None:
            query = query.where(Event.deployment_id == deployment_id)
            stale = stale.where(Count.deployment_id == deployment_id)

        with self.write() as session:
            buckets: dict[tuple[int, datetime, str], list[int]] = {}
            for (_id, dep_id, start), label, max_n in event_counts(session.execute(query)):
                if label == EMPTY:
                    continue  # a reviewer saw no animal: nothing to count
                key = (dep_id, interval_floor(start, minutes), label)
                bucket = buckets.setdefault(key, [0, 0])
                bucket[0] += max_n
                bucket[1] += 1
            session.execute(stale)
            session.add_all(
                Count(
                    deployment_id=dep_id,
                    interval_start=begin,
                    interval_end=begin + step,
                    label=label,
                    count=total,
                    events=events,
                )
                for (dep_id, begin, label), (total, events) in sorted(buckets.items())
            )
        return len(buckets)

    def write_heartbeat(
        self,
        deployment_id: int | None,
        *,
        time: datetime | None = None,
        **fields: Any,
    ) -> int:
        unknown = set(fields) - HEARTBEAT_FIELDS
        if unknown:
            raise ValueError(f"unknown heartbeat fields: {', '.join(sorted(unknown))}")
        with self.write() as session:
            row = Heartbeat(deployment_id=deployment_id, time=as_utc(time or utc_now()), **fields)
            session.add(row)
            session.flush()
            return row.id

    def add_media(self, **fields: Any) -> int:
        """Record one kept file; return its id."""
        fields["time"] = as_utc(fields["time"])
        fields.setdefault("created", utc_now())
        with self.write() as session:
            row = Media(**fields)
            session.add(row)
            session.flush()
            return row.id

    def set_reviewed_label(self, media_id: int, label: str | None) -> None:
        with self.write() as session:
            row = session.get(Media, media_id)
            if row is None:
                raise StoreError(f"no media with id {media_id}")
            row.reviewed_label = label

    def delete_media(self, rows: Iterable[Media], reason: str, now: datetime | None = None) -> int:
        """Delete the rows of media whose files are gone, each recorded in
        ``media_deletions`` with ``reason``; return how many."""
        rows = list(rows)
        when = as_utc(now or utc_now())
        with self.write() as session:
            for row in rows:
                session.add(
                    MediaDeletion(
                        media_id=row.id,
                        deployment_id=row.deployment_id,
                        path=row.path or "",  # a record of a withheld track has none
                        sha256=row.sha256,
                        bytes=row.bytes,
                        label=row.label,
                        time=as_utc(row.time),
                        deleted_at=when,
                        reason=reason,
                    )
                )
                session.execute(delete(Media).where(Media.id == row.id))
        return len(rows)


def detection_rows(closed: ClosedEvent, event_id: int) -> list[Detection]:
    """The ``detections`` rows of an event: each counted track's kept boxes
    (``counting.sightings``: every photo's; a clip's once a second and its best), with
    the track's label and confidence. A box no detector categorised is ``person`` or
    ``vehicle`` when the track is, else ``animal``."""
    from edge_agent.counting.sightings import sightings_of

    rows = []
    for track in closed.tracks:
        label = track.label
        confidence = round(float(track.confidence), 4)
        fallback = label if label in ("person", "vehicle") else "animal"
        for sighting in sightings_of(track):
            x, y, w, h = (float(v) for v in sighting.bbox)
            rows.append(
                Detection(
                    event_id=event_id,
                    time=as_utc(sighting.time),
                    file=sighting.file,
                    frame=None if sighting.file is not None else int(sighting.frame),
                    track=int(track.id),
                    label=label,
                    confidence=confidence,
                    category=sighting.category or fallback,
                    x=x,
                    y=y,
                    w=w,
                    h=h,
                    detector=sighting.detector,
                    detector_confidence=sighting.score,
                )
            )
    return rows
