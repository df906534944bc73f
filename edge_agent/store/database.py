"""The trap's database: SQLAlchemy 2.0 models, short write transactions, queries.

SQLite (the trap) and PostgreSQL (a fleet server) share these models. On SQLite the file is
opened in WAL mode, so a report reading the database never blocks the agent writing it, with
foreign keys on, a busy timeout, and ``synchronous=FULL``: events are rare and each one is
written in its own short transaction, so an fsync per commit costs nothing and a power cut
loses nothing that was committed. ``kill -9`` loses only the events still open in memory.

Timestamps are stored in UTC (naive UTC text on SQLite, ``timestamptz`` on PostgreSQL) and
always come back as timezone-aware UTC ``datetime`` objects.

The schema is versioned by Alembic (``edge_agent/migrations``); :meth:`Store.open` upgrades
an older database to the current head and refuses one made by a newer trapcount.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from edge_agent.config import TrapSettings
    from edge_agent.counting.events import ClosedEvent
    from edge_agent.manifest import Manifest

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BUSY_TIMEOUT_MS = 10_000
# Event.source_key of events counted from a live camera (never reprocessed).
LIVE_SOURCE = "live"
# Event.source_key of events written before revision 0005 (their footage is not known).
LEGACY_SOURCE = "legacy"


class StoreError(RuntimeError):
    """The database cannot be opened or used; the message is one line."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer trapcount than this one."""


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

    event: Mapped[Event] = relationship(back_populates="observations")


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
    """A kept crop or frame (revision 0004): for retraining and review (``edge_agent.service.media``)."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    time: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(16))  # crop or frame
    path: Mapped[str] = mapped_column(String(1000), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str] = mapped_column(String(64), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    disagreed: Mapped[bool] = mapped_column()
    privacy_status: Mapped[str] = mapped_column(String(16))  # clear, blurred, unchecked
    reviewed_label: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime]


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


# -- query results ------------------------------------------------------------------------


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


# -- opening ------------------------------------------------------------------------------


def _is_url(target: str) -> bool:
    return "://" in target


def _prepare_sqlite_file(path: Path, create: bool) -> None:
    """Create the file (0600) and its folder (0700) ourselves, so they are never
    world-readable; SQLite gives the -wal and -shm files the database file's mode."""
    if path.exists():
        if not path.is_file():
            raise StoreError(f"database path {path} is not a file")
        return
    if not create:
        raise StoreError(f"no database at {path}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        pass  # another process created it between our check and open
    except OSError as exc:
        raise StoreError(f"cannot create database {path}: {exc.strerror or exc}") from None


def _configure_sqlite(engine: Engine, *, read_only: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below), so the driver must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not read_only:  # both write to the file
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front (BEGIN IMMEDIATE): a deferred transaction
        # that reads first and then writes can fail at once with SQLITE_BUSY in WAL mode.
        if connection.get_execution_options().get("trapcount_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig).splitlines()[0]
    return (str(exc).splitlines() or [type(exc).__name__])[0]


class Store:
    """The trap's database. Use :meth:`open`; usable as a context manager."""

    def __init__(self, engine: Engine, *, path: Path | None = None) -> None:
        self.engine = engine
        self.path = path
        self._write_engine = engine.execution_options(trapcount_write=True)
        self._read_sessions = sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        # One writer at a time inside this process; other processes wait on busy_timeout.
        self._write_lock = threading.Lock()
        self._model_ids: dict[str, int] = {}
        self.read_only = False  # opened with open_read_only

    # -- lifecycle ------------------------------------------------------------------------

    @classmethod
    def open(cls, target: str | Path, *, create: bool = True, migrate: bool = True) -> Store:
        """Open a SQLite file (created 0600 when missing and ``create``) or a database URL,
        and upgrade its schema to the current head."""
        target_str = str(target)
        path: Path | None = None
        try:
            if _is_url(target_str):
                url = make_url(target_str)
            else:
                path = Path(target_str).expanduser().resolve()
                _prepare_sqlite_file(path, create)
                url = URL.create("sqlite+pysqlite", database=str(path))
            engine = create_engine(url)
        except ArgumentError as exc:
            raise StoreError(f"bad database URL {target_str!r}: {exc}") from None
        except ImportError as exc:
            raise StoreError(f"no driver for {target_str!r}: {exc}") from None
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine)
        store = cls(engine, path=path)
        try:
            store._check_connects()
            if migrate:
                store.upgrade("head")
        except BaseException:
            engine.dispose()
            raise
        return store

    @classmethod
    def open_read_only(cls, path: str | Path) -> Store:
        """Open a SQLite file that this process cannot or must not write: a card or a
        backup mounted read-only, a file of another user. SQLite's read-only mode first
        (it still sees what a running agent writes), else ``immutable`` (no lock or
        ``-shm`` file is needed, which a read-only folder cannot hold; the file is taken
        as unchanging). Nothing is migrated: the schema must be this trapcount's."""
        path = Path(path).expanduser().resolve()
        _prepare_sqlite_file(path, create=False)
        failure: StoreError | None = None
        for options in ("mode=ro", "mode=ro&immutable=1"):
            url = URL.create(
                "sqlite+pysqlite", database=f"file:{path}?{options}", query={"uri": "true"}
            )
            engine = create_engine(url)
            _configure_sqlite(engine, read_only=True)
            store = cls(engine, path=path)
            try:
                store._check_connects()
                store.schema_revision()
            except (StoreError, SQLAlchemyError) as exc:
                engine.dispose()
                failure = exc if isinstance(exc, StoreError) else StoreError(_one_line(exc))
                continue
            store.read_only = True
            return store
        assert failure is not None
        raise failure

    def _check_connects(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
                if self.engine.dialect.name == "sqlite":
                    # A non-SQLite file fails here ("file is not a database").
                    connection.exec_driver_sql("PRAGMA schema_version").fetchone()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open database {self.where}: {_one_line(exc)}") from None

    @property
    def where(self) -> str:
        return str(self.path) if self.path else self.engine.url.render_as_string()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A short write transaction: committed on success, rolled back on error."""
        with self._write_lock:
            session = self._write_sessions()
            try:
                with session.begin():
                    yield session
            except SQLAlchemyError as exc:
                raise StoreError(f"database write failed ({self.where}): {_one_line(exc)}") from exc
            finally:
                session.close()

    @contextmanager
    def read(self) -> Iterator[Session]:
        session = self._read_sessions()
        try:
            with session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(f"database read failed ({self.where}): {_one_line(exc)}") from exc
        finally:
            session.close()

    def schema_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return _current_revision(connection)

    def _too_new(self, revision: str, head: str | None) -> SchemaTooNewError:
        return SchemaTooNewError(
            f"database {self.where} has schema revision {revision}, newer than this "
            f"trapcount understands (head {head}); upgrade trapcount"
        )

    def check_schema_is_current(self, revision: str | None) -> None:
        """For a database that is not migrated (read-only): a one-line error unless its
        schema ``revision`` is this trapcount's head."""
        _config, script = _migrations()
        head = script.get_current_head()
        if revision == head:
            return
        if revision is not None and not _known_revision(script, revision):
            raise self._too_new(revision, head)
        raise StoreError(
            f"database {self.where} is read-only and has schema revision {revision}, older "
            f"than this trapcount's ({head}): copy it to writable storage and read the copy, "
            "which is upgraded"
        )

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema forward to ``revision`` (Alembic), in one transaction."""
        from alembic import command

        config, script = _migrations()
        head = script.get_current_head()
        with self._write_lock:
            try:
                # BEGIN IMMEDIATE: two processes opening a fresh file migrate one at a time.
                with self._write_engine.begin() as connection:
                    current = _current_revision(connection)
                    if current is not None and not _known_revision(script, current):
                        raise self._too_new(current, head)
                    if current is None and _has_tables(connection, Base.metadata):
                        raise StoreError(
                            f"database {self.where} has trapcount tables but no schema version; "
                            "refusing to guess its schema"
                        )
                    if current == revision or (revision == "head" and current == head):
                        return
                    config.attributes["connection"] = connection
                    command.upgrade(config, revision)
                    log.info(
                        "database %s: schema %s -> %s",
                        self.where,
                        current or "new",
                        _current_revision(connection),
                    )
            except SQLAlchemyError as exc:
                raise StoreError(
                    f"cannot migrate database {self.where}: {_one_line(exc)}"
                ) from None

    def check_writable(self) -> None:
        """Write to the database and roll back: proves the file and its folder are writable."""
        with self._write_lock, self._write_engine.connect() as connection:
            try:
                transaction = connection.begin()
                connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
                transaction.rollback()
            except SQLAlchemyError as exc:
                raise StoreError(
                    f"database {self.where} is not writable: {_one_line(exc)}"
                ) from None

    def integrity_check(self) -> str:
        """SQLite ``PRAGMA integrity_check`` ('ok' when healthy); 'ok' on other backends."""
        if self.engine.dialect.name != "sqlite":
            return "ok"
        with self.engine.connect() as connection:
            rows = connection.exec_driver_sql("PRAGMA integrity_check").fetchall()
        return "; ".join(str(row[0]) for row in rows)

    # -- writes ---------------------------------------------------------------------------

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
        """The model_versions id for this manifest's model, inserting it when new."""
        if manifest.sha256 in self._model_ids:
            return self._model_ids[manifest.sha256]
        with self.write() as session:
            row = session.scalar(select(ModelVersion).where(ModelVersion.sha256 == manifest.sha256))
            if row is None:
                accuracy = manifest.accuracy.get("int8", manifest.accuracy.get("float"))
                row = ModelVersion(
                    sha256=manifest.sha256,
                    labels=list(manifest.labels),
                    arch=manifest.arch,
                    accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
                    manifest=manifest.to_dict(),
                    first_seen=as_utc(now or utc_now()),
                )
                session.add(row)
                session.flush()
            model_id = row.id
        self._model_ids[manifest.sha256] = model_id
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
        """Write one closed event and its observations in one transaction; return its id.

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
                session.flush()  # delete the old observations before inserting their successors
            row.end = end
            row.frames = int(closed.frames)
            row.model_version_id = model_version_id
            row.written_at = as_utc(now or utc_now())
            row.observations.extend(
                Observation(
                    label=obs.label,
                    max_n=int(obs.max_n),
                    frames=int(obs.frames),
                    mean_confidence=float(obs.mean_confidence),
                    tracks=int(obs.tracks),
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
        return starts

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
        query = select(Event.deployment_id, Event.start, Observation.label, Observation.max_n).join(
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
            for dep_id, start, label, max_n in session.execute(query):
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

    # -- queries --------------------------------------------------------------------------

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

    # -- media (revision 0004) ------------------------------------------------------------

    def add_media(self, **fields: Any) -> int:
        """Record one kept file; return its id."""
        fields["time"] = as_utc(fields["time"])
        fields.setdefault("created", utc_now())
        with self.write() as session:
            row = Media(**fields)
            session.add(row)
            session.flush()
            return row.id

    def media(
        self,
        *,
        deployment_id: int | None = None,
        label: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[Media]:
        """Kept media, oldest first (detached rows)."""
        query = select(Media).order_by(Media.time, Media.id)
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
                        path=row.path,
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


def _migrations() -> tuple[Any, Any]:
    """Alembic's config and script directory for ``edge_agent/migrations``."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config, ScriptDirectory.from_config(config)


def _current_revision(connection: Any) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _known_revision(script: Any, revision: str) -> bool:
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    try:
        return script.get_revision(revision) is not None
    except (CommandError, RevisionError):
        return False


def _has_tables(connection: Any, metadata: MetaData) -> bool:
    existing = set(inspect(connection).get_table_names())
    return bool(existing & set(metadata.tables))


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
    store: Store, *, since: datetime | None = None, until: datetime | None = None
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
    store: Store, *, since: datetime | None = None, until: datetime | None = None
) -> dict[int, datetime]:
    """{event id: when it was written} for events starting in [since, until): the time the
    model's classification was recorded (Camtrap DP's classificationTimestamp)."""
    query = _time_filter(select(Event.id, Event.written_at), Event.start, since, until)
    with store.read() as session:
        return {event_id: written for event_id, written in session.execute(query)}


def has_table(store: Store, name: str) -> bool:
    """Whether the database has table ``name`` (tables that later migrations add)."""
    with store.engine.connect() as connection:
        return inspect(connection).has_table(name)
