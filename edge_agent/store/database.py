"""The trap's database: opening it, short transactions, the schema's migrations.

SQLite (the trap) and PostgreSQL (a fleet server) share one schema (``models``). On SQLite
the file is opened in WAL mode, so a report reading the database never blocks the agent
writing it, with foreign keys on, a busy timeout, and ``synchronous=FULL``: events are rare
and each one is written in its own short transaction, so an fsync per commit costs nothing
and a power cut loses nothing that was committed. ``kill -9`` loses only the events still
open in memory.

The schema is versioned by Alembic (``edge_agent/store/migrations``): :meth:`Store.open`
upgrades an older database to the current head and refuses one made by a newer trapcount.
:class:`Store` gets its writes from ``writes`` and its queries from ``queries``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, event, inspect, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from edge_agent.store.errors import SchemaTooNewError, StoreError
from edge_agent.store.models import Base
from edge_agent.store.queries import Queries
from edge_agent.store.writes import Writes

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The schema revision this trapcount's migrations end at (a test keeps it equal to their
# head). A database already there is opened without importing Alembic, whose migration
# scripts stay resident for the life of the process (12 MiB): on a trap, every start after
# the first (docs/benchmarks.md, "Peak memory").
SCHEMA_HEAD = "0008"
BUSY_TIMEOUT_MS = 10_000


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


class Store(Writes, Queries):
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
        if revision == SCHEMA_HEAD:
            return
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
        if revision in ("head", SCHEMA_HEAD) and self.schema_revision() == SCHEMA_HEAD:
            return  # the usual case on a trap: nothing to migrate, Alembic not needed
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
