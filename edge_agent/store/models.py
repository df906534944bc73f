"""The trap's tables (SQLAlchemy 2.0 ORM) and the time helpers they rest on.

SQLite (the trap) and PostgreSQL (a fleet server) share these models. Timestamps are stored
in UTC (naive UTC text on SQLite, ``timestamptz`` on PostgreSQL) and always come back as
timezone-aware UTC ``datetime`` objects. The schema is versioned by Alembic
(``edge_agent/store/migrations``): a change here needs a migration there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Event.source_key of events counted from a live camera (never reprocessed).
LIVE_SOURCE = "live"
# Event.source_key of events written before revision 0005 (their footage is not known).
LEGACY_SOURCE = "legacy"


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """An aware datetime converted to UTC; a naive one is refused (it is ambiguous)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} is ambiguous; give a time zone")
    return value.astimezone(UTC)


def interval_floor(value: datetime, minutes: int) -> datetime:
    """Start of the ``minutes``-long interval holding ``value``, aligned to the UTC epoch."""
    step = timedelta(minutes=minutes)
    return EPOCH + ((as_utc(value) - EPOCH) // step) * step


def interval_ceil(value: datetime, minutes: int) -> datetime:
    floor = interval_floor(value, minutes)
    return floor if floor == as_utc(value) else floor + timedelta(minutes=minutes)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware UTC datetimes; refuses naive ones on the way in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        # SQLite has no time zone type: store naive UTC text, which sorts correctly.
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Constraint names are fixed so that migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012 (SQLAlchemy's API)


class Deployment(Base):
    """A camera at a location for a period (Camtrap DP's deployment)."""

    __tablename__ = "deployments"
    __table_args__ = (Index("uq_deployments_origin", "origin", "origin_id", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trap_id: Mapped[str] = mapped_column(String(64), index=True)
    location_name: Mapped[str] = mapped_column(String(200), default="")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    camera_model: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    start: Mapped[datetime] = mapped_column("start_time")
    end: Mapped[datetime | None] = mapped_column("end_time")
    # Fleet sync (revision 0003): in a central database, the trap database a row came from
    # and its id there (edge_agent.store.sync); NULL on a trap.
    origin: Mapped[str | None] = mapped_column(String(64))
    origin_id: Mapped[int | None] = mapped_column(Integer)


class ModelVersion(Base):
    """A classifier model the agent has run, identified by the sha256 of its .tflite."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    labels: Mapped[list[str]] = mapped_column(JSON)
    arch: Mapped[str] = mapped_column(String(64), default="unknown")
    accuracy: Mapped[float | None] = mapped_column(Float)  # int8 accuracy from the manifest
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_seen: Mapped[datetime]


class Event(Base):
    """A burst of activity; one per (deployment, source, start), so reprocessing the same
    footage replaces it and other footage never does (revision 0005)."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("deployment_id", "source_key", "start_time"),
        Index("uq_events_origin", "origin", "origin_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    start: Mapped[datetime] = mapped_column("start_time", index=True)
    end: Mapped[datetime] = mapped_column("end_time")
    frames: Mapped[int] = mapped_column(Integer)
    written_at: Mapped[datetime]
    # Fleet sync (revision 0003): in a central database, the trap database a row came from
    # and its id there (edge_agent.store.sync); NULL on a trap.
    origin: Mapped[str | None] = mapped_column(String(64))
    origin_id: Mapped[int | None] = mapped_column(Integer)
    # The footage the event was found in (revision 0005): the file's content identity for a
    # recording or a photo (edge_agent.sources.file_identity), ``live`` for a camera,
    # ``legacy`` for events written before the revision. A rerun of ``process`` replaces
    # the events of the files it read, and nothing else.
    source_key: Mapped[str] = mapped_column(
        String(80), default=LIVE_SOURCE, server_default=LEGACY_SOURCE
    )
    # How most of its frames were lit (revision 0006): "colour" or "ir" (infrared, grey);
    # NULL for events written before.
    illumination: Mapped[str | None] = mapped_column(String(16))

    observations: Mapped[list[Observation]] = relationship(
        back_populates="event", cascade="all, delete-orphan", order_by="Observation.label"
    )
    model_version: Mapped[ModelVersion | None] = relationship()
    deployment: Mapped[Deployment] = relationship()


class Observation(Base):
    """One label within one event: its MaxN and how it was seen."""

    __tablename__ = "observations"
    __table_args__ = (UniqueConstraint("event_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(64), index=True)  # index: revision 0002
    max_n: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(Integer)
    mean_confidence: Mapped[float] = mapped_column(Float)
    tracks: Mapped[int] = mapped_column(Integer)
    # Of those tracks, how many had their images withheld by the privacy guard's write gate
    # (revision 0007; NULL before).
    suppressed: Mapped[int | None] = mapped_column(Integer)
    # A reviewer's decision beside the machine's (revision 0008; NULL: not reviewed).
    reviewed_label: Mapped[str | None] = mapped_column(String(64))
    reviewed_count: Mapped[int | None] = mapped_column(Integer)
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[datetime | None] = mapped_column()
    # Whose number reviewed_count is: the reviewer's (true) or the review rules' default
    # from the machine's MaxN (false); edge_agent.store.reviews.
    reviewed_counted: Mapped[bool | None] = mapped_column()

    event: Mapped[Event] = relationship(back_populates="observations")


class Detection(Base):
    """A counted track's box on one frame, as MegaDetector writes boxes (revision 0008):
    normalised ``x, y, w, h`` from the top-left corner, category animal/person/vehicle.
    Every photo's boxes; in a clip or from a camera one per track per second plus its
    largest once counted (``edge_agent.counting.sightings``). Stays on the trap (no sync)."""

    __tablename__ = "detections"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    time: Mapped[datetime]
    file: Mapped[str | None] = mapped_column(String(1000), index=True)  # a photo of a folder
    frame: Mapped[int | None] = mapped_column(Integer)  # the frame index in a clip
    track: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    category: Mapped[str] = mapped_column(String(16))  # animal, person or vehicle
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    w: Mapped[float] = mapped_column(Float)
    h: Mapped[float] = mapped_column(Float)
    detector: Mapped[str] = mapped_column(String(32))  # motion or megadetector
    detector_confidence: Mapped[float | None] = mapped_column(Float)


class Count(Base):
    """Roll-up: per interval, label and deployment, the sum of MaxN of events starting in it."""

    __tablename__ = "counts"
    __table_args__ = (UniqueConstraint("deployment_id", "interval_start", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    interval_start: Mapped[datetime]
    interval_end: Mapped[datetime]
    label: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)


class Heartbeat(Base):
    """The service's periodic health record."""

    __tablename__ = "heartbeats"
    __table_args__ = (Index("uq_heartbeats_origin", "origin", "origin_id", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(index=True)  # index: revision 0002
    deployment_id: Mapped[int | None] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE")
    )
    frames: Mapped[int] = mapped_column(BigInteger)  # processed since the service started
    fps: Mapped[float] = mapped_column(Float)  # since the previous heartbeat
    open_events: Mapped[int] = mapped_column(Integer)
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    free_disk_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # Added by revision 0002.
    motion_frames: Mapped[int | None] = mapped_column(BigInteger)
    events_written: Mapped[int | None] = mapped_column(Integer)
    capturing: Mapped[bool | None] = mapped_column()
    uptime_s: Mapped[float | None] = mapped_column(Float)
    cpu_temp_c: Mapped[float | None] = mapped_column(Float)
    # Added by revision 0004: the disk guard had stopped media writes (None: no media kept).
    media_paused: Mapped[bool | None] = mapped_column()
    # Fleet sync (revision 0003): in a central database, the trap database a row came from
    # and its id there (edge_agent.store.sync); NULL on a trap.
    origin: Mapped[str | None] = mapped_column(String(64))
    origin_id: Mapped[int | None] = mapped_column(Integer)


class Media(Base):
    """A kept crop or frame (revision 0004), for retraining and review
    (``edge_agent.service.media``); or (revision 0007) a ``record`` of a track whose images
    the privacy guard withheld: no file, but its label, time, box and confidence."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    time: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(16))  # crop, frame or record
    path: Mapped[str | None] = mapped_column(String(1000), unique=True)  # None: a record
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str] = mapped_column(String(64), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    disagreed: Mapped[bool] = mapped_column()
    # clear, blurred, unchecked; suppressed for a record
    privacy_status: Mapped[str] = mapped_column(String(16))
    reviewed_label: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime]
    # The track's box on its frame, in frame pixels (revision 0007; NULL before).
    box_x: Mapped[int | None] = mapped_column(Integer)
    box_y: Mapped[int | None] = mapped_column(Integer)
    box_w: Mapped[int | None] = mapped_column(Integer)
    box_h: Mapped[int | None] = mapped_column(Integer)


class MediaDeletion(Base):
    """A kept file that was deleted, and why: retention, disk or quota (revision 0004)."""

    __tablename__ = "media_deletions"

    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int | None] = mapped_column(Integer)
    deployment_id: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime]
    deleted_at: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(String(16))


class Unprocessed(Base):
    """Footage the agent could not count, and why (revision 0006): a photo with nothing to
    compare it with (``no reference``) is not a photo with nothing in it. Keyed like events
    by deployment, footage and time, so a rerun replaces its rows."""

    __tablename__ = "unprocessed"
    __table_args__ = (UniqueConstraint("deployment_id", "source_key", "time", "reason"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    time: Mapped[datetime] = mapped_column(index=True)
    source_key: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(String(32))
    written_at: Mapped[datetime]


class SyncState(Base):
    """Fleet sync, trap side: per central database, how far the trap's changes went."""

    __tablename__ = "sync_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(String(500), unique=True)  # the URL without password
    origin: Mapped[str] = mapped_column(String(64))  # this database's name in the target
    mark: Mapped[int] = mapped_column(BigInteger)  # sync_changes.seq pushed so far
    pushed: Mapped[int] = mapped_column(BigInteger)  # units pushed, all syncs together
    created: Mapped[datetime]
    last_sync: Mapped[datetime | None]


class SyncChange(Base):
    """Fleet sync, trap side: what changed since the last sync, one row per unit (an event
    with its observations, one interval's counts, a deployment, ...). SQLite triggers
    (revision 0003) write it while a sync target exists; a new change of the same unit
    replaces the row and so takes the next ``seq`` (AUTOINCREMENT: never reused)."""

    __tablename__ = "sync_changes"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy's API)

    seq: Mapped[int] = mapped_column(primary_key=True)
    unit: Mapped[str] = mapped_column(String(200), unique=True)


HEARTBEAT_FIELDS = frozenset(
    c.key
    for c in Heartbeat.__table__.columns
    if c.key not in {"id", "time", "deployment_id", "origin", "origin_id"}
)
