"""Events know the footage they were found in: ``events.source_key``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

``trapcount process`` used to treat every event of the deployment inside a rerun's media-time
span as "the same footage" and delete the ones it did not find again: two different clips
copied off one SD card (same file time) deleted each other's events. Now each event records
its footage, ``source_key`` (``edge_agent.sources.file_identity``: the content identity of
the recording or of the photo its event started in; ``live`` for a camera), and a rerun
replaces only the events of the files it read. The unique key of an event becomes
(deployment, source, start), so events of two clips that start at the same time are two
events.

Events written before this revision get ``legacy``: a rerun never removes them.

SQLite cannot drop a table constraint in place, so ``events`` is copied (Alembic's batch
mode). Dropping the old table with foreign keys on would cascade-delete every observation
and unlink every kept media file (revision 0003's note), so both are saved first and put
back, and the fleet sync's change-log triggers on ``events`` (dropped with the table) are
made again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OLD_UNIQUE = "uq_events_deployment_id_start_time"
NEW_UNIQUE = "uq_events_deployment_id_source_key_start_time"
LEGACY = "legacy"

# Revision 0003's change-log triggers on events, as it made them.
EVENT_TRIGGERS = {
    f"sync_log_events_{operation}": (
        f"CREATE TRIGGER sync_log_events_{operation} AFTER {operation.upper()} ON events "
        "WHEN EXISTS (SELECT 1 FROM sync_state) BEGIN "
        + " ".join(
            f"INSERT OR REPLACE INTO sync_changes (unit) VALUES ('event:' || {row}.id);"
            for row in rows
        )
        + " END"
    )
    for operation, rows in (("insert", ["NEW"]), ("update", ["OLD", "NEW"]), ("delete", ["OLD"]))
}


def _copy_events_keeping_children(change: object) -> None:
    """Run ``change(batch)`` on a copy of ``events`` (SQLite), with its observations, media
    links and change-log triggers kept."""
    op.execute("CREATE TEMP TABLE keep_observations AS SELECT * FROM observations")
    op.execute(
        "CREATE TEMP TABLE keep_media_events AS "
        "SELECT id, event_id FROM media WHERE event_id IS NOT NULL"
    )
    with op.batch_alter_table("events", recreate="always") as batch:
        change(batch)  # type: ignore[operator]
    op.execute("DELETE FROM observations")  # none are left; never two copies of one
    op.execute("INSERT INTO observations SELECT * FROM keep_observations")
    op.execute(
        "UPDATE media SET event_id = (SELECT k.event_id FROM keep_media_events k "
        "WHERE k.id = media.id) WHERE id IN (SELECT id FROM keep_media_events)"
    )
    op.execute("DROP TABLE keep_observations")
    op.execute("DROP TABLE keep_media_events")
    for name, statement in EVENT_TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(statement)


def _source_column() -> sa.Column:
    return sa.Column("source_key", sa.String(80), nullable=False, server_default=LEGACY)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.add_column("events", _source_column())
        op.drop_constraint(OLD_UNIQUE, "events", type_="unique")
        op.create_unique_constraint(
            NEW_UNIQUE, "events", ["deployment_id", "source_key", "start_time"]
        )
        return

    def change(batch: object) -> None:
        batch.add_column(_source_column())  # type: ignore[attr-defined]
        batch.drop_constraint(OLD_UNIQUE, type_="unique")  # type: ignore[attr-defined]
        batch.create_unique_constraint(  # type: ignore[attr-defined]
            NEW_UNIQUE, ["deployment_id", "source_key", "start_time"]
        )

    _copy_events_keeping_children(change)


def downgrade() -> None:
    clash = op.get_bind().execute(
        sa.text(
            "SELECT COUNT(*) FROM (SELECT 1 FROM events GROUP BY deployment_id, start_time "
            "HAVING COUNT(*) > 1) AS clashes"
        )
    )
    if clash.scalar():
        raise RuntimeError(
            "cannot downgrade below 0005: events of different footage share a start time"
        )
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(NEW_UNIQUE, "events", type_="unique")
        op.create_unique_constraint(OLD_UNIQUE, "events", ["deployment_id", "start_time"])
        op.drop_column("events", "source_key")
        return

    def change(batch: object) -> None:
        batch.drop_constraint(NEW_UNIQUE, type_="unique")  # type: ignore[attr-defined]
        batch.create_unique_constraint(  # type: ignore[attr-defined]
            OLD_UNIQUE, ["deployment_id", "start_time"]
        )
        batch.drop_column("source_key")  # type: ignore[attr-defined]

    _copy_events_keeping_children(change)
