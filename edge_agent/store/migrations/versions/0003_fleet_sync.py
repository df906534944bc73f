"""Fleet sync: a change log and sync state on the trap, origin keys in the central database.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03

``trapcount sync`` pushes a trap's rows to a central database with the same schema
(``edge_agent.sync``). Two sides of one schema:

- **Trap** (SQLite): ``sync_state`` holds, per central database, the trap database's name
  there (``origin``) and how far the change log was pushed (``mark``). ``sync_changes`` is the
  change log, filled by the triggers below while a sync target exists: one row per changed
  *unit* ("event:12" = event 12 with its observations, "count:3:<interval start>" = one
  interval's counts, "deployment:3", "model:2", "heartbeat:40"). A unit changed again
  replaces its row and takes a new ``seq`` (AUTOINCREMENT never reuses one), so the log is
  at most one row per unit and a sync resumes exactly after the last ``seq`` it pushed.
  Updates and deletions are logged too: ``process`` rewrites and deletes events, the
  roll-up deletes and rewrites counts.
- **Central** (PostgreSQL): deployments, events and heartbeats gain ``origin`` and
  ``origin_id`` (the trap database and the row's id there), unique together: the key of
  the idempotent upserts. Observations and counts are replaced per event / interval, and
  model versions are shared by sha256. NULL on a trap.

Unique *indexes*, not constraints: adding a constraint would make SQLite copy the table,
and dropping the old ``events`` table with foreign keys on would cascade-delete every
observation. Adding columns and indexes needs no copy.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ORIGIN_TABLES = ("deployments", "events", "heartbeats")

# (table, unit expression with {row} = NEW or OLD) for the trap's change-log triggers.
UNITS = {
    "deployments": "'deployment:' || {row}.id",
    "model_versions": "'model:' || {row}.id",
    "events": "'event:' || {row}.id",
    "observations": "'event:' || {row}.event_id",
    "counts": "'count:' || {row}.deployment_id || ':' || {row}.interval_start",
    "heartbeats": "'heartbeat:' || {row}.id",
}


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _triggers() -> list[tuple[str, str]]:
    """(name, CREATE TRIGGER statement) for every table and operation."""
    statements = []
    for table, unit in UNITS.items():
        for operation, rows in (
            ("insert", ["NEW"]),
            ("update", ["OLD", "NEW"]),
            ("delete", ["OLD"]),
        ):
            name = f"sync_log_{table}_{operation}"
            inserts = " ".join(
                f"INSERT OR REPLACE INTO sync_changes (unit) VALUES ({unit.format(row=row)});"
                for row in rows
            )
            statements.append(
                (
                    name,
                    f"CREATE TRIGGER {name} AFTER {operation.upper()} ON {table} "
                    f"WHEN EXISTS (SELECT 1 FROM sync_state) BEGIN {inserts} END",
                )
            )
    return statements


def upgrade() -> None:
    op.create_table(
        "sync_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("mark", sa.BigInteger(), nullable=False),
        sa.Column("pushed", sa.BigInteger(), nullable=False),
        sa.Column("created", _utc(), nullable=False),
        sa.Column("last_sync", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sync_state"),
        sa.UniqueConstraint("target", name="uq_sync_state_target"),
    )
    op.create_table(
        "sync_changes",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_sync_changes"),
        sa.UniqueConstraint("unit", name="uq_sync_changes_unit"),
        sqlite_autoincrement=True,
    )
    for table in ORIGIN_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("origin", sa.String(64), nullable=True))
            batch.add_column(sa.Column("origin_id", sa.Integer(), nullable=True))
        op.create_index(f"uq_{table}_origin", table, ["origin", "origin_id"], unique=True)
    if op.get_bind().dialect.name == "sqlite":
        for _name, statement in _triggers():
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name, _statement in _triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in reversed(ORIGIN_TABLES):
        op.drop_index(f"uq_{table}_origin", table_name=table)
        for column in ("origin_id", "origin"):
            if sqlite:
                # In place (SQLite 3.35+): a batch copy of events would cascade-delete the
                # observations when it drops the old table.
                op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
            else:
                op.drop_column(table, column)
    op.drop_table("sync_changes")
    op.drop_table("sync_state")
