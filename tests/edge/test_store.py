"""The store on real SQLite files: WAL, permissions, UTC, one transaction per event,
idempotent writes and roll-ups, readers that never block the writer."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from edge_agent.config import TrapSettings
from edge_agent.counting.events import ClosedEvent, LabelObservation
from edge_agent.manifest import Manifest, TensorSpec
from edge_agent.store.database import Store
from edge_agent.store.errors import SchemaTooNewError, StoreError
from edge_agent.store.models import interval_floor
from tests.helpers.schema import HEAD

T0 = datetime(2024, 6, 1, 4, 0, 0, tzinfo=UTC)
SHA = "ab" * 32


def event(start_s: float, duration_s: float = 5.0, sha: str | None = SHA, **counts: int):
    start = T0 + timedelta(seconds=start_s)
    observations = tuple(
        LabelObservation(label=label, max_n=n, frames=10 * n, mean_confidence=0.8, tracks=n)
        for label, n in sorted(counts.items())
    )
    return ClosedEvent(
        start=start,
        end=start + timedelta(seconds=duration_s),
        frames=int(duration_s * 10),
        observations=observations,
        model_sha256=sha,
    )


def manifest(sha: str = SHA) -> Manifest:
    return Manifest(
        labels=["deer", "fox"],
        input=TensorSpec([-1, 32, 32, 3], "uint8", 1.0, 0),
        output=TensorSpec([-1, 2], "uint8", 1 / 256, 0),
        sha256=sha,
        arch="test",
        accuracy={"float": 0.9, "int8": 0.88},
    )


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "trap.sqlite") as s:
        yield s


@pytest.fixture
def deployment(store):
    store.register_model(manifest())
    return store.ensure_deployment(TrapSettings(id="trap-a"))


def test_new_database_is_private_wal_and_at_the_head_revision(tmp_path):
    path = tmp_path / "new" / "folder" / "trap.sqlite"
    with Store.open(path) as store:
        store.ensure_deployment(TrapSettings())
        assert store.schema_revision() == HEAD
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():  # SQLite gives them the database file's mode
                assert stat.S_IMODE(side.stat().st_mode) & 0o077 == 0
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_missing_database_is_not_created_when_create_is_false(tmp_path):
    with pytest.raises(StoreError, match="no database at"):
        Store.open(tmp_path / "absent.sqlite", create=False)
    assert not (tmp_path / "absent.sqlite").exists()


def test_a_file_that_is_not_a_database_gives_one_line(tmp_path):
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("these are not the tables you are looking for\n" * 100)
    with pytest.raises(StoreError) as info:
        Store.open(bogus)
    assert "\n" not in str(info.value)
    assert "notes.sqlite" in str(info.value)


def test_timestamps_are_stored_in_utc_and_come_back_aware(store, deployment):
    zurich_summer = timezone(timedelta(hours=2))
    local_start = datetime(2024, 6, 1, 6, 0, 0, tzinfo=zurich_summer)  # 04:00 UTC
    closed = ClosedEvent(
        start=local_start,
        end=local_start + timedelta(seconds=3),
        frames=30,
        observations=(LabelObservation("deer", 1, 30, 0.9, 1),),
        model_sha256=SHA,
    )
    store.write_event(closed, deployment)
    (row,) = store.event_rows()
    assert row.start == T0 and row.start.tzinfo is not None
    assert row.start.utcoffset() == timedelta(0)
    raw = sqlite3.connect(store.path).execute("SELECT start_time FROM events").fetchone()[0]
    assert raw.startswith("2024-06-01 04:00:00")  # UTC text, sorts correctly
    with pytest.raises(ValueError, match="naive"):
        store.write_heartbeat(deployment, time=datetime(2024, 1, 1), frames=0, fps=0, open_events=0)


def test_event_and_observations_are_written_and_rewriting_replaces_them(store, deployment):
    first = store.write_event(event(10, deer=2, fox=1), deployment)
    assert store.totals() == {"deer": 2, "fox": 1}
    # The same event written again (a rerun after a crash) replaces the old one.
    again = store.write_event(event(10, deer=3), deployment)
    assert again == first
    assert store.event_count() == 1
    assert store.totals() == {"deer": 3}
    rows = store.event_rows()
    assert [(r.label, r.max_n, r.frames, r.tracks) for r in rows] == [("deer", 3, 30, 3)]
    assert rows[0].model_sha256 == SHA


def test_event_of_an_unregistered_model_is_kept_without_a_model_version(store, deployment):
    store.write_event(event(0, sha="cd" * 32, deer=1), deployment)
    (row,) = store.event_rows()
    assert row.model_sha256 is None
    assert store.totals() == {"deer": 1}


def test_old_footage_extends_the_deployment_back_in_time(store):
    deployment = store.ensure_deployment(TrapSettings(id="trap-a"), now=T0 + timedelta(days=30))
    store.write_event(event(0, deer=1), deployment)
    (dep,) = store.deployments()
    assert dep.start == T0


def test_rollup_counts_are_the_sum_of_maxn_per_interval_and_idempotent(store, deployment):
    # 15-minute intervals: [04:00, 04:15) gets two events, [04:15, 04:30) one, 05:00 one.
    store.write_event(event(60, deer=2, fox=1), deployment)
    store.write_event(event(600, deer=1), deployment)
    store.write_event(event(15 * 60 + 5, fox=3), deployment)
    store.write_event(event(60 * 60 + 1, deer=4, unknown=1), deployment)
    assert store.rollup(minutes=15) == 5
    counts = {(c.interval_start, c.label): (c.count, c.events) for c in store.counts()}
    assert counts == {
        (T0, "deer"): (3, 2),
        (T0, "fox"): (1, 1),
        (T0 + timedelta(minutes=15), "fox"): (3, 1),
        (T0 + timedelta(hours=1), "deer"): (4, 1),
        (T0 + timedelta(hours=1), "unknown"): (1, 1),
    }
    assert all(c.interval_end - c.interval_start == timedelta(minutes=15) for c in store.counts())
    # The roll-up total equals the sum of per-event MaxN, straight from the events.
    rolled: dict[str, int] = {}
    for c in store.counts():
        rolled[c.label] = rolled.get(c.label, 0) + c.count
    assert rolled == store.totals() == {"deer": 7, "fox": 4, "unknown": 1}
    # Idempotent: again gives the same rows, not doubled ones.
    store.rollup(minutes=15)
    assert {(c.interval_start, c.label): (c.count, c.events) for c in store.counts()} == counts


def test_rollup_limited_to_new_intervals_keeps_the_others(store, deployment):
    store.write_event(event(60, deer=2), deployment)
    store.rollup(minutes=15)
    late = event(2 * 3600, fox=1)
    store.write_event(late, deployment)
    store.write_event(event(120, deer=1), deployment)  # arrives late for an old interval
    store.rollup(late.start + timedelta(seconds=1), since=late.start, minutes=15)
    counts = {(c.interval_start, c.label): c.count for c in store.counts()}
    # Only the interval holding `since`..`until` was recomputed; the 04:00 row is the old one.
    assert counts == {(T0, "deer"): 2, (T0 + timedelta(hours=2), "fox"): 1}
    store.rollup(minutes=15)
    assert {(c.interval_start, c.label): c.count for c in store.counts()}[(T0, "deer")] == 3


def test_rollup_until_covers_whole_intervals(store, deployment):
    store.write_event(event(60, deer=1), deployment)
    store.write_event(event(14 * 60, deer=1), deployment)
    store.rollup(T0 + timedelta(minutes=5), minutes=15)  # the interval is counted whole
    assert [(c.label, c.count) for c in store.counts()] == [("deer", 2)]


def test_interval_floor_is_epoch_aligned():
    assert interval_floor(T0 + timedelta(minutes=29, seconds=59), 15) == T0 + timedelta(minutes=15)
    assert interval_floor(T0 + timedelta(hours=5), 1440) == T0 - timedelta(hours=4)


def test_deployment_is_reused_and_a_moved_trap_starts_a_new_one(store):
    trap = TrapSettings(id="trap-a", location_name="meadow", latitude=47.0, longitude=8.0)
    first = store.ensure_deployment(trap, now=T0)
    assert store.ensure_deployment(trap, now=T0 + timedelta(hours=1)) == first
    moved = trap.model_copy(update={"location_name": "forest edge", "latitude": 47.1})
    second = store.ensure_deployment(moved, now=T0 + timedelta(days=2))
    assert second != first
    old, new = store.deployments()
    assert old.end == T0 + timedelta(days=2) and new.end is None
    assert new.location_name == "forest edge"


def test_register_model_is_idempotent(store):
    assert store.register_model(manifest()) == store.register_model(manifest())
    (row,) = store.model_versions()
    assert row["sha256"] == SHA and row["labels"] == ["deer", "fox"] and row["accuracy"] == 0.88


def test_heartbeats_are_written_and_unknown_fields_refused(store, deployment):
    store.write_heartbeat(
        deployment,
        frames=100,
        fps=9.5,
        open_events=1,
        model_sha256=SHA,
        free_disk_bytes=10**9,
        motion_frames=20,
        capturing=True,
        uptime_s=12.0,
    )
    (beat,) = store.heartbeats()
    assert beat["frames"] == 100 and beat["capturing"] is True and beat["time"].tzinfo
    with pytest.raises(ValueError, match="bogus"):
        store.write_heartbeat(deployment, frames=1, fps=1, open_events=0, bogus=1)


def test_foreign_keys_are_enforced(store):
    with pytest.raises(StoreError, match="FOREIGN KEY"):
        store.write_event(event(0, deer=1), deployment_id=999)
    assert store.event_count() == 0  # the failed transaction left nothing behind


def test_a_reader_holding_a_transaction_does_not_block_the_writer(store, deployment):
    store.write_event(event(0, deer=1), deployment)
    reader = sqlite3.connect(store.path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM events").fetchone() == (1,)
    began = time.monotonic()
    store.write_event(event(100, fox=1), deployment)  # WAL: no wait for the reader
    assert time.monotonic() - began < 1.0
    # The reader still sees its snapshot; a new read sees the new event.
    assert reader.execute("SELECT count(*) FROM events").fetchone() == (1,)
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM events").fetchone() == (2,)
    reader.close()


def test_concurrent_writers_in_threads_and_another_connection_all_succeed(store, deployment):
    other = Store.open(store.path)
    errors: list[BaseException] = []

    def write(target: Store, offset: int) -> None:
        try:
            for i in range(10):
                target.write_event(event(offset + 20 * i, deer=1), deployment)
                target.write_heartbeat(deployment, frames=i, fps=1.0, open_events=0)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(store, 0)),
        threading.Thread(target=write, args=(store, 5)),
        threading.Thread(target=write, args=(other, 10)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()
    assert not errors
    assert store.event_count() == 30
    assert store.integrity_check() == "ok"


def test_check_writable_fails_on_a_read_only_file(tmp_path):
    path = tmp_path / "trap.sqlite"
    Store.open(path).close()
    for side in tmp_path.glob("trap.sqlite-*"):
        side.unlink()
    os.chmod(path, 0o400)
    try:
        if os.access(path, os.W_OK):
            pytest.skip("running as a user that can write read-only files (root)")
        with Store.open(path, migrate=False) as store, pytest.raises(StoreError):
            store.check_writable()
    finally:
        os.chmod(path, 0o600)


def test_schema_too_new_error_is_a_store_error():
    assert issubclass(SchemaTooNewError, StoreError)


def test_the_models_compile_for_postgresql_with_timestamptz():
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    from edge_agent.store.models import Base, UTCDateTime

    dialect = postgresql.dialect()
    for table in Base.metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=dialect))
        if table.name == "events":
            assert "start_time TIMESTAMP WITH TIME ZONE NOT NULL" in ddl
    value = datetime(2024, 6, 1, 6, 0, tzinfo=timezone(timedelta(hours=2)))
    stored = UTCDateTime().process_bind_param(value, dialect)
    assert stored == T0 and stored.tzinfo is not None  # timestamptz keeps the zone
