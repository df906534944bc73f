"""Fleet sync: push a trap's rows to a central database (PostgreSQL via psycopg).

The central database has the trap's own schema (the same models and Alembic migrations), so
``trapcount report --db postgresql+psycopg://...`` reads the fleet with the code that reads
one trap. Deployments, events and heartbeats carry ``origin`` (the trap database's name in
that central database, a random id made at its first sync) and ``origin_id`` (the row's id
on the trap): the key of every upsert. Observations travel with their event, counts per
interval (keyed by deployment, interval and label), model versions by their sha256 (traps
running one model share its row).

What to push comes from the trap's change log (``sync_changes``, written by SQLite triggers,
revision 0003): one row per changed *unit* (an event with its observations, one interval's
counts, a deployment, a model version, a heartbeat), ordered by ``seq``. A sync reads a
batch of changes and the current rows of those units in one read transaction, writes them
to the central database in one transaction (deleting what the trap deleted, so a
``process`` rerun never leaves duplicates), then moves the trap's high-water mark
(``sync_state.mark``) past the batch. Stopped anywhere (network down, server restarted,
``kill -9``), the next sync resends at most the batch in flight, and upserts make that
harmless. The first sync to a new central database queues every existing row.

Passwords never reach a log line, an error message or the trap's database: URLs are shown
with ``***`` and stored without their password.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, create_engine, delete, func, select, text, tuple_, update
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from edge_agent.store.database import Store
from edge_agent.store.errors import StoreError
from edge_agent.store.models import (
    Count,
    Deployment,
    Event,
    Heartbeat,
    ModelVersion,
    Observation,
    SyncChange,
    SyncState,
    utc_now,
)

if TYPE_CHECKING:
    from edge_agent.config import Settings

log = logging.getLogger("trapcount.sync")

DEFAULT_URL_ENV = "TRAPCOUNT_SYNC_URL"
INSERT_CHUNK = 500  # rows per INSERT statement (PostgreSQL allows 65535 parameters)
MIGRATION_LOCK = 0x74726170  # pg_advisory_lock key: one trap migrates the central schema
KINDS = ("deployment", "model", "event", "count", "heartbeat")

DEPLOYMENTS: Table = Deployment.__table__  # type: ignore[assignment]
MODELS: Table = ModelVersion.__table__  # type: ignore[assignment]
EVENTS: Table = Event.__table__  # type: ignore[assignment]
OBSERVATIONS: Table = Observation.__table__  # type: ignore[assignment]
COUNTS: Table = Count.__table__  # type: ignore[assignment]
HEARTBEATS: Table = Heartbeat.__table__  # type: ignore[assignment]
CHANGES: Table = SyncChange.__table__  # type: ignore[assignment]
STATES: Table = SyncState.__table__  # type: ignore[assignment]

# The trap's existing rows as change-log units, queued when a new target is first synced.
SEED_UNITS = (
    "SELECT 'deployment:' || id FROM deployments ORDER BY id",
    "SELECT 'model:' || id FROM model_versions ORDER BY id",
    "SELECT 'event:' || id FROM events ORDER BY id",
    "SELECT DISTINCT 'count:' || deployment_id || ':' || interval_start FROM counts",
    "SELECT 'heartbeat:' || id FROM heartbeats ORDER BY id",
)


class SyncError(StoreError):
    """A sync that could not run or finish; one line, never a password."""


# -- where to -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncTarget:
    """A central database: the URL to connect with (password included), what to show."""

    url: URL

    @property
    def shown(self) -> str:
        """The URL for logs and messages: the password as ***."""
        return self.url.render_as_string(hide_password=True)

    @property
    def key(self) -> str:
        """The target's name on the trap (``sync_state.target``): backend, user, host,
        port and database; no password, no query options."""
        url = URL.create(
            self.url.get_backend_name(),
            username=self.url.username,
            host=self.url.host,
            port=self.url.port,
            database=self.url.database,
        )  # (URL.set(password=None) would keep the password)
        return url.render_as_string(hide_password=False)


def parse_url(value: str, password: str | None = None) -> SyncTarget:
    """A database URL as a target; ``postgresql://`` and ``postgres://`` mean psycopg 3."""
    try:
        url = make_url(value.strip())
    except ArgumentError:
        raise SyncError("the sync URL is not a database URL (postgresql+psycopg://...)") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("postgresql", "sqlite"):
        raise SyncError(f"cannot sync to a {url.get_backend_name()} database; use PostgreSQL")
    if password is not None:
        url = url.set(password=password)
    return SyncTarget(url)


def read_password_file(path: Path) -> str:
    """The first line of ``path``. Refused, unread, when others (not owner, not group) have
    any access to it, as ssh refuses such a key and libpq such a ~/.pgpass: a warning in a
    log nobody reads protects nothing. 0600, or 0640 for a group such as ``trapcount``
    (deploy/ writes it root:trapcount 0640), are fine."""
    try:
        info = path.stat()
    except OSError as exc:
        raise SyncError(f"cannot read password file {path}: {exc.strerror or exc}") from None
    if info.st_mode & 0o007:
        raise SyncError(
            f"password file {path} is open to everyone (mode {info.st_mode & 0o777:04o}); "
            f"chmod 0600 {path} (or 0640 to share it with its group)"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SyncError(f"cannot read password file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SyncError(f"password file {path} is not UTF-8 text") from None
    if not lines or not lines[0].strip():
        raise SyncError(f"password file {path} is empty")
    return lines[0].strip()


def resolve_target(
    settings: Settings | None,
    *,
    url: str | None = None,
    password_file: Path | str | None = None,
    environ: dict[str, str] | None = None,
) -> SyncTarget | None:
    """Where to sync: ``url`` (``--to``), else the ``sync.url_env`` variable, else
    ``sync.url``; the password from ``password_file``, else ``sync.password_file`` (relative
    to the config file), else the URL itself (or libpq's ~/.pgpass). None: no sync set up."""
    environ = dict(os.environ) if environ is None else environ
    section = settings.sync if settings is not None else None
    env_name = section.url_env if section is not None else DEFAULT_URL_ENV
    chosen = url or environ.get(env_name) or (section.url if section is not None else "")
    if not chosen:
        return None
    if password_file is None and section is not None and section.password_file:
        password_file = settings.resolve(section.password_file)  # type: ignore[union-attr]
    password = read_password_file(Path(password_file)) if password_file else None
    return parse_url(chosen, password)


# -- results ------------------------------------------------------------------------------


@dataclass
class SyncResult:
    target: str  # shown form
    units: int = 0
    batches: int = 0
    deleted: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    complete: bool = False  # False when stopped before the change log was empty
    seconds: float = 0.0

    def describe(self) -> str:
        if not self.units:
            return f"{self.target}: up to date"
        kinds = ", ".join(f"{kind}s {self.kinds[kind]}" for kind in KINDS if self.kinds[kind])
        state = "" if self.complete else " (stopped before the end; the next sync resumes)"
        return (
            f"{self.target}: {self.units} change(s) in {self.batches} batch(es) "
            f"in {self.seconds:.1f} s: {kinds}{state}"
        )


BatchCallback = Callable[[int, int], None]  # (batch number, units in it)


# -- the trap side ------------------------------------------------------------------------


def _check_trap(store: Store) -> None:
    if store.engine.dialect.name != "sqlite":
        raise SyncError(f"{store.where} is not a trap database (sync pushes a SQLite file)")


def ensure_state(store: Store, target: SyncTarget, now: datetime | None = None) -> dict[str, Any]:
    """The trap's sync state for ``target``, made on first use: a new origin id, and every
    existing row queued in the change log (the triggers log only while a target exists)."""
    _check_trap(store)
    key = target.key
    with store.write() as session:
        row = session.execute(select(STATES).where(STATES.c.target == key)).mappings().first()
        if row is not None:
            return dict(row)
        mark = session.scalar(select(func.coalesce(func.max(CHANGES.c.seq), 0)))
        state = {
            "target": key,
            "origin": uuid.uuid4().hex,
            "mark": int(mark or 0),
            "pushed": 0,
            "created": now or utc_now(),
            "last_sync": None,
        }
        session.execute(STATES.insert().values(**state))
        for query in SEED_UNITS:
            session.execute(text(f"INSERT OR REPLACE INTO sync_changes (unit) {query}"))
        queued = session.scalar(select(func.count()).where(CHANGES.c.seq > state["mark"]))
    log.info("sync: new target %s, %d existing row(s) queued", target.shown, queued or 0)
    return state


def pending_changes(store: Store, target: SyncTarget) -> int | None:
    """Changes not yet pushed to ``target``; None when it was never synced."""
    with store.read() as session:
        mark = session.scalar(select(STATES.c.mark).where(STATES.c.target == target.key))
        if mark is None:
            return None
        return int(session.scalar(select(func.count()).where(CHANGES.c.seq > mark)) or 0)


@dataclass
class Batch:
    """A batch of changed units with the trap's current rows for them."""

    last_seq: int
    units: int
    kinds: Counter[str]
    models: dict[int, dict[str, Any]]  # local id -> row (referenced or changed)
    deployments: dict[int, dict[str, Any]]  # local id -> row (referenced or changed)
    deleted_deployments: list[int]
    events: list[dict[str, Any]]
    observations: list[dict[str, Any]]
    deleted_events: list[int]
    count_keys: list[tuple[int, datetime]]  # (local deployment id, interval start)
    counts: list[dict[str, Any]]
    heartbeats: list[dict[str, Any]]
    deleted_heartbeats: list[int]


def _parse_unit(unit: str) -> tuple[str, int, datetime | None]:
    kind, _, rest = unit.partition(":")
    if kind == "count":
        dep, _, when = rest.partition(":")
        return kind, int(dep), datetime.fromisoformat(when).replace(tzinfo=UTC)
    return kind, int(rest), None


def _rows(session: Any, table: Table, column: Any, ids: Iterable[Any]) -> list[dict[str, Any]]:
    ids = sorted(set(ids))
    found: list[dict[str, Any]] = []
    for chunk in _chunks(ids, INSERT_CHUNK):
        found += [
            dict(r) for r in session.execute(select(table).where(column.in_(chunk))).mappings()
        ]
    return found


def read_batch(store: Store, mark: int, size: int) -> Batch | None:
    """The next ``size`` changes after ``mark`` and the rows they name, from one snapshot."""
    with store.read() as session:
        changes = session.execute(
            select(CHANGES.c.seq, CHANGES.c.unit)
            .where(CHANGES.c.seq > mark)
            .order_by(CHANGES.c.seq)
            .limit(size)
        ).all()
        if not changes:
            return None
        wanted: dict[str, set[Any]] = {kind: set() for kind in KINDS}
        for _seq, unit in changes:
            kind, ref, when = _parse_unit(unit)
            wanted[kind].add((ref, when) if kind == "count" else ref)

        events = _rows(session, EVENTS, EVENTS.c.id, wanted["event"])
        observations = _rows(session, OBSERVATIONS, OBSERVATIONS.c.event_id, wanted["event"])
        count_keys = sorted(wanted["count"])
        counts = [
            row
            for row in _rows(session, COUNTS, COUNTS.c.interval_start, {t for _, t in count_keys})
            if (row["deployment_id"], row["interval_start"]) in wanted["count"]
        ]
        heartbeats = _rows(session, HEARTBEATS, HEARTBEATS.c.id, wanted["heartbeat"])
        dep_ids = set(wanted["deployment"])
        dep_ids |= {row["deployment_id"] for row in events} | {dep for dep, _ in count_keys}
        dep_ids |= {row["deployment_id"] for row in heartbeats if row["deployment_id"]}
        deployments = {
            row["id"]: row for row in _rows(session, DEPLOYMENTS, DEPLOYMENTS.c.id, dep_ids)
        }
        model_ids = set(wanted["model"]) | {
            row["model_version_id"] for row in events if row["model_version_id"] is not None
        }
        models = {row["id"]: row for row in _rows(session, MODELS, MODELS.c.id, model_ids)}

    found_events = {row["id"] for row in events}
    found_beats = {row["id"] for row in heartbeats}
    return Batch(
        last_seq=changes[-1][0],
        units=len(changes),
        kinds=Counter(_parse_unit(unit)[0] for _seq, unit in changes),
        models=models,
        deployments=deployments,
        deleted_deployments=sorted(wanted["deployment"] - set(deployments)),
        events=events,
        observations=observations,
        deleted_events=sorted(wanted["event"] - found_events),
        count_keys=count_keys,
        counts=counts,
        heartbeats=heartbeats,
        deleted_heartbeats=sorted(wanted["heartbeat"] - found_beats),
    )


def advance(store: Store, target: SyncTarget, last_seq: int, units: int) -> None:
    """Record that the changes up to ``last_seq`` reached ``target``; forget the changes
    every target has."""
    with store.write() as session:
        session.execute(
            update(STATES)
            .where(STATES.c.target == target.key)
            .values(
                mark=func.max(STATES.c.mark, last_seq),
                pushed=STATES.c.pushed + units,
                last_sync=utc_now(),
            )
        )
        lowest = select(func.min(STATES.c.mark)).scalar_subquery()
        session.execute(delete(CHANGES).where(CHANGES.c.seq <= lowest))


# -- the central side ---------------------------------------------------------------------


def _connect_args(timeout_s: float) -> dict[str, Any]:
    """libpq settings for a flaky link: a connect timeout, TCP keepalives, and a statement
    and TCP user timeout, so a dead link fails a sync instead of hanging it."""
    millis = int(timeout_s * 1000)
    return {
        "connect_timeout": max(1, int(timeout_s)),
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": millis,
        "options": f"-c statement_timeout={millis}",
        "application_name": "trapcount-sync",
    }


def open_central(target: SyncTarget, timeout_s: float = 30.0) -> Store:
    """Connect to the central database and bring its schema to this trapcount's head
    (one trap at a time: a PostgreSQL advisory lock)."""
    url = target.url
    if url.get_backend_name() == "sqlite":
        return Store.open(url.render_as_string(hide_password=False))
    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=_connect_args(timeout_s))
    except ImportError:
        raise SyncError("no PostgreSQL driver: pip install 'trapcount[fleet]'") from None
    store = Store(engine)
    try:
        with engine.connect() as connection:
            connection.execute(select(func.pg_advisory_lock(MIGRATION_LOCK)))
            try:
                store.upgrade("head")
            finally:
                connection.execute(select(func.pg_advisory_unlock(MIGRATION_LOCK)))
                connection.commit()
    except SQLAlchemyError as exc:
        engine.dispose()
        raise SyncError(f"central database {target.shown}: {_one_line(exc, target)}") from None
    except StoreError as exc:
        engine.dispose()
        raise SyncError(_scrub(str(exc), target)) from None
    return store


def _insert(connection: Connection, table: Table) -> Any:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def _upsert_by_origin(
    connection: Connection, table: Table, rows: list[dict[str, Any]]
) -> dict[int, int]:
    """Insert or update rows keyed by (origin, origin_id); return {origin_id: central id}."""
    ids: dict[int, int] = {}
    for chunk in _chunks(rows, INSERT_CHUNK):
        statement = _insert(connection, table).values(chunk)
        columns = [c for c in chunk[0] if c not in ("origin", "origin_id")]
        statement = statement.on_conflict_do_update(
            index_elements=["origin", "origin_id"],
            set_={c: statement.excluded[c] for c in columns},
        ).returning(table.c.origin_id, table.c.id)
        ids.update({origin_id: central for origin_id, central in connection.execute(statement)})
    return ids


def _central_models(connection: Connection, models: dict[int, dict[str, Any]]) -> dict[int, int]:
    """Model versions by sha256 (shared by the traps that run them): {local id: central id}."""
    if not models:
        return {}
    rows = sorted(models.values(), key=lambda row: row["sha256"])  # one lock order for all
    statement = _insert(connection, MODELS).values(
        [{k: v for k, v in row.items() if k != "id"} for row in rows]
    )
    connection.execute(statement.on_conflict_do_nothing(index_elements=["sha256"]))
    by_sha = dict(
        connection.execute(
            select(MODELS.c.sha256, MODELS.c.id).where(
                MODELS.c.sha256.in_([r["sha256"] for r in rows])
            )
        ).all()
    )
    return {row["id"]: by_sha[row["sha256"]] for row in rows}


def push_batch(connection: Connection, origin: str, batch: Batch) -> int:
    """Write one batch in the caller's transaction; return the central rows deleted."""
    if connection.dialect.name == "postgresql":
        # Two syncs of one trap (the service and a manual run) take turns.
        connection.execute(select(func.pg_advisory_xact_lock(func.hashtext(origin))))
    deleted = 0
    models = _central_models(connection, batch.models)

    if batch.deleted_deployments:
        deleted += connection.execute(
            delete(DEPLOYMENTS).where(
                DEPLOYMENTS.c.origin == origin,
                DEPLOYMENTS.c.origin_id.in_(batch.deleted_deployments),
            )
        ).rowcount
    deployments = _upsert_by_origin(
        connection,
        DEPLOYMENTS,
        [_with_origin(row, origin) for _id, row in sorted(batch.deployments.items())],
    )

    # Events: deletions first, and any stale central row holding a (deployment, footage,
    # start) that a different local event has now (a replaced event), so no constraint is
    # ever hit.
    if batch.deleted_events:
        deleted += connection.execute(
            delete(EVENTS).where(
                EVENTS.c.origin == origin, EVENTS.c.origin_id.in_(batch.deleted_events)
            )
        ).rowcount
    event_rows = [
        _with_origin(
            row,
            origin,
            deployment_id=deployments[row["deployment_id"]],
            model_version_id=models.get(row["model_version_id"]),
        )
        for row in sorted(batch.events, key=lambda r: r["id"])
    ]
    for chunk in _chunks(event_rows, INSERT_CHUNK):
        deleted += connection.execute(
            delete(EVENTS).where(
                EVENTS.c.origin == origin,
                tuple_(EVENTS.c.deployment_id, EVENTS.c.source_key, EVENTS.c.start_time).in_(
                    [(r["deployment_id"], r["source_key"], r["start_time"]) for r in chunk]
                ),
                EVENTS.c.origin_id.not_in([r["origin_id"] for r in chunk]),
            )
        ).rowcount
    events = _upsert_by_origin(connection, EVENTS, event_rows)
    if events:
        for chunk in _chunks(sorted(events.values()), INSERT_CHUNK):
            connection.execute(delete(OBSERVATIONS).where(OBSERVATIONS.c.event_id.in_(chunk)))
        observations = [
            {**{k: v for k, v in row.items() if k != "id"}, "event_id": events[row["event_id"]]}
            for row in batch.observations
            if row["event_id"] in events
        ]
        for chunk in _chunks(observations, INSERT_CHUNK):
            connection.execute(OBSERVATIONS.insert(), chunk)

    # Counts: each changed interval is replaced as a whole.
    keys = [(deployments[dep], when) for dep, when in batch.count_keys if dep in deployments]
    for chunk in _chunks(keys, INSERT_CHUNK):
        connection.execute(
            delete(COUNTS).where(tuple_(COUNTS.c.deployment_id, COUNTS.c.interval_start).in_(chunk))
        )
    counts = [
        {
            **{k: v for k, v in row.items() if k != "id"},
            "deployment_id": deployments[row["deployment_id"]],
        }
        for row in batch.counts
    ]
    for chunk in _chunks(counts, INSERT_CHUNK):
        connection.execute(COUNTS.insert(), chunk)

    if batch.deleted_heartbeats:
        deleted += connection.execute(
            delete(HEARTBEATS).where(
                HEARTBEATS.c.origin == origin, HEARTBEATS.c.origin_id.in_(batch.deleted_heartbeats)
            )
        ).rowcount
    _upsert_by_origin(
        connection,
        HEARTBEATS,
        [
            _with_origin(
                row,
                origin,
                deployment_id=deployments.get(row["deployment_id"])
                if row["deployment_id"]
                else None,
            )
            for row in sorted(batch.heartbeats, key=lambda r: r["id"])
        ],
    )
    return deleted


def _with_origin(row: dict[str, Any], origin: str, **changes: Any) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "id"}
    out.update(changes, origin=origin, origin_id=row["id"])
    return out


# -- one sync -----------------------------------------------------------------------------


def sync(
    store: Store,
    target: SyncTarget,
    *,
    batch_size: int = 500,
    timeout_s: float = 30.0,
    stop_event: threading.Event | None = None,
    on_batch: BatchCallback | None = None,
) -> SyncResult:
    """Push the trap's changes to ``target`` until the change log is empty (or
    ``stop_event`` is set: then it stops between two batches). Raises SyncError."""
    began = time.monotonic()
    result = SyncResult(target=target.shown)
    try:
        state = ensure_state(store, target)
    except SyncError:
        raise
    except StoreError as exc:
        raise SyncError(f"trap database: {exc}") from None
    central = open_central(target, timeout_s)
    try:
        mark = int(state["mark"])
        while stop_event is None or not stop_event.is_set():
            try:
                batch = read_batch(store, mark, batch_size)
            except StoreError as exc:
                raise SyncError(f"trap database: {exc}") from None
            if batch is None:
                result.complete = True
                break
            try:
                with central.engine.begin() as connection:
                    result.deleted += push_batch(connection, state["origin"], batch)
            except SQLAlchemyError as exc:
                raise SyncError(
                    f"sync to {target.shown} failed after {result.units} change(s): "
                    f"{_one_line(exc, target)}"
                ) from None
            try:
                advance(store, target, batch.last_seq, batch.units)
            except StoreError as exc:  # pushed but not recorded: resent (harmlessly) next time
                raise SyncError(f"trap database: {exc}") from None
            mark = batch.last_seq
            result.units += batch.units
            result.batches += 1
            result.kinds.update(batch.kinds)
            if on_batch is not None:
                on_batch(result.batches, batch.units)
    finally:
        central.close()
        result.seconds = time.monotonic() - began
    return result


# -- small helpers ------------------------------------------------------------------------


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _scrub(message: str, target: SyncTarget) -> str:
    password = target.url.password
    return message.replace(str(password), "***") if password else message


def _one_line(exc: BaseException, target: SyncTarget) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        lines = str(exc.orig).strip().splitlines()
    else:
        lines = str(exc).strip().splitlines()
    return _scrub(lines[0] if lines else type(exc).__name__, target)


__all__ = [
    "SyncError",
    "SyncResult",
    "SyncTarget",
    "ensure_state",
    "open_central",
    "parse_url",
    "pending_changes",
    "read_password_file",
    "resolve_target",
    "sync",
]
