"""Schema versions: a database made by the first schema upgrades without losing data; the
models match the migrated schema; a database from a newer trapcount is refused."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from edge_agent.store import database
from edge_agent.store.database import Store
from edge_agent.store.errors import SchemaTooNewError, StoreError
from edge_agent.store.models import Base
from tests.helpers.media import run_trapcount
from tests.helpers.schema import HEAD

SHA = "ef" * 32


def test_the_models_match_the_migrated_schema(tmp_path):
    with Store.open(tmp_path / "trap.sqlite") as store, store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def _fill_first_schema(path):
    """Rows as trapcount 0001 wrote them (plain SQL, the old heartbeat columns only)."""
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "INSERT INTO deployments (id, trap_id, location_name, latitude, longitude, "
            "camera_model, timezone, start_time) VALUES "
            "(1, 'trap-old', 'meadow', 47.1, 8.2, 'cam', 'Europe/Zurich', "
            "'2024-05-01 20:00:00.000000')"
        )
        db.execute(
            "INSERT INTO model_versions (id, sha256, labels, arch, accuracy, manifest, "
            "first_seen) VALUES (1, ?, ?, 'seed', 0.8, '{}', '2024-05-01 20:00:00.000000')",
            (SHA, json.dumps(["deer", "fox"])),
        )
        for i, (start, label, max_n) in enumerate(
            [("2024-05-01 21:00:05.000000", "deer", 2), ("2024-05-01 21:40:00.000000", "fox", 1)],
            start=1,
        ):
            db.execute(
                "INSERT INTO events (id, deployment_id, model_version_id, start_time, end_time, "
                "frames, written_at) VALUES (?, 1, 1, ?, ?, 40, ?)",
                (i, start, start, start),
            )
            db.execute(
                "INSERT INTO observations (event_id, label, max_n, frames, mean_confidence, "
                "tracks) VALUES (?, ?, ?, 30, 0.75, ?)",
                (i, label, max_n, max_n),
            )
        db.execute(
            "INSERT INTO counts (deployment_id, interval_start, interval_end, label, count, "
            "events) VALUES (1, '2024-05-01 21:00:00.000000', '2024-05-01 21:15:00.000000', "
            "'deer', 2, 1)"
        )
        db.execute(
            "INSERT INTO heartbeats (time, deployment_id, frames, fps, open_events, "
            "model_sha256, free_disk_bytes) VALUES "
            "('2024-05-01 21:01:00.000000', 1, 600, 10.0, 1, ?, 123456789)",
            (SHA,),
        )
    db.close()


def test_a_database_made_by_the_first_schema_upgrades_with_its_data(tmp_path):
    path = tmp_path / "field-trap.sqlite"
    with Store.open(path, migrate=False) as store:
        store.upgrade("0001")
        assert store.schema_revision() == "0001"
    _fill_first_schema(path)
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(heartbeats)")}
    assert "motion_frames" not in columns

    with Store.open(path) as store:  # opening upgrades to the head
        assert store.schema_revision() == HEAD
        assert store.integrity_check() == "ok"
        (dep,) = store.deployments()
        assert (dep.trap_id, dep.location_name, dep.timezone) == (
            "trap-old",
            "meadow",
            "Europe/Zurich",
        )
        assert store.totals() == {"deer": 2, "fox": 1}
        assert [(r.event_id, r.label, r.model_sha256) for r in store.event_rows()] == [
            (1, "deer", SHA),
            (2, "fox", SHA),
        ]
        assert [(c.label, c.count) for c in store.counts()] == [("deer", 2)]
        (beat,) = store.heartbeats()
        assert beat["frames"] == 600 and beat["free_disk_bytes"] == 123456789
        assert beat["motion_frames"] is None and beat["uptime_s"] is None  # not invented
        # The new columns and indexes work.
        store.write_heartbeat(1, frames=700, fps=9.0, open_events=0, motion_frames=5, uptime_s=3.5)
        assert store.heartbeats()[0]["motion_frames"] == 5
        store.rollup(minutes=15)
        assert {c.label: c.count for c in store.counts()} == {"deer": 2, "fox": 1}
    indexes = {row[1] for row in sqlite3.connect(path).execute("PRAGMA index_list(heartbeats)")}
    assert "ix_heartbeats_time" in indexes


def _from_the_future(path):
    Store.open(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
    db.close()


def test_a_database_from_a_newer_trapcount_is_refused_in_one_line(tmp_path):
    path = tmp_path / "trap.sqlite"
    _from_the_future(path)
    with pytest.raises(SchemaTooNewError) as info:
        Store.open(path)
    message = str(info.value)
    assert "\n" not in message
    assert "0099" in message and "newer" in message and "upgrade trapcount" in message


def test_the_cli_reports_a_newer_schema_as_one_line_error(tmp_path):
    path = tmp_path / "trap.sqlite"
    _from_the_future(path)
    result = run_trapcount("report", "--db", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "newer" in lines[0]


def test_tables_without_a_schema_version_are_not_guessed_at(tmp_path):
    path = tmp_path / "trap.sqlite"
    Store.open(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("DROP TABLE alembic_version")
    db.close()
    with pytest.raises(StoreError, match="no schema version"):
        Store.open(path)


def test_0005_keeps_events_observations_media_links_and_the_sync_log(tmp_path):
    """0005 copies the events table (a new unique key); the copy must not cascade-delete
    observations, unlink kept media or lose the fleet sync's triggers on events."""
    path = tmp_path / "trap-0004.sqlite"
    with Store.open(path, migrate=False) as store:
        store.upgrade("0004")
    _fill_first_schema(path)
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "INSERT INTO media (id, deployment_id, event_id, time, kind, path, sha256, bytes, "
            "label, confidence, disagreed, privacy_status, created) VALUES (7, 1, 2, "
            "'2024-05-01 21:40:00.000000', 'crop', '/m/fox.jpg', ?, 10, 'fox', 0.7, 0, 'clear', "
            "'2024-05-01 21:40:00.000000')",
            ("ab" * 32,),
        )
        db.execute(
            "INSERT INTO sync_state (target, origin, mark, pushed, created) VALUES "
            "('postgresql+psycopg://central/db', 'o1', 0, 0, '2024-05-01 22:00:00.000000')"
        )
    db.close()

    with Store.open(path) as store:
        assert store.schema_revision() == HEAD
        assert store.integrity_check() == "ok"
        assert store.totals() == {"deer": 2, "fox": 1}
        assert {r.source_key for r in store.event_rows()} == {"legacy"}
        (kept,) = store.media()
        assert kept.event_id == 2
        # The change-log triggers on events are back: an update is logged for the next sync.
        with store.write() as session:
            session.execute(text("DELETE FROM sync_changes"))
            session.execute(text("UPDATE events SET frames = 41 WHERE id = 1"))
            logged = session.execute(text("SELECT unit FROM sync_changes")).scalars().all()
        assert logged == ["event:1"]
    indexes = {row[1] for row in sqlite3.connect(path).execute("PRAGMA index_list(events)")}
    assert {"ix_events_start_time", "ix_events_deployment_id", "uq_events_origin"} <= indexes


def test_the_head_the_store_knows_is_the_migrations_head():
    _config, script = database._migrations()
    assert database.SCHEMA_HEAD == script.get_current_head() == HEAD


def test_a_database_at_the_head_opens_without_alembic(tmp_path):
    """Alembic's scripts cost memory for the whole run: a trap opening its own database
    (already migrated) must not load them; a new file is migrated with them."""
    probe = (
        "import sys; from edge_agent.store.database import Store; "
        "store = Store.open(sys.argv[1]); print(store.schema_revision(), "
        "any(name.startswith('alembic') for name in sys.modules)); store.close()"
    )
    path = tmp_path / "trap.sqlite"
    runs = [
        subprocess.run(
            [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    assert runs == [[HEAD, "True"], [HEAD, "False"]]
