"""Day and night, and what could not be counted.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

``events.illumination``: how most of an event's frames were lit, ``colour`` or ``ir`` (the
infrared lamp: grey frames), from ``edge_agent.vision.illumination``; NULL for events written
before. Reports count day and night apart: the classifier sees them differently.

``unprocessed``: footage the agent could not count and why, e.g. ``no reference`` for a
single photo from a camera with no empty view to compare it with: it is reported as such,
never a silent 0. Keyed by deployment, footage (``source_key``), time and reason, so a rerun
of ``process`` replaces its rows. It stays on the trap, like media: the fleet sync's change
log (revision 0003) does not cover it.

Adding a nullable column and a table needs no copy of ``events``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("illumination", sa.String(16), nullable=True))
    op.create_table(
        "unprocessed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("time", _utc(), nullable=False),
        sa.Column("source_key", sa.String(80), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("written_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name="fk_unprocessed_deployment_id_deployments",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_unprocessed"),
        sa.UniqueConstraint(
            "deployment_id",
            "source_key",
            "time",
            "reason",
            name="uq_unprocessed_deployment_id_source_key_time_reason",
        ),
    )
    op.create_index("ix_unprocessed_time", "unprocessed", ["time"])


def downgrade() -> None:
    op.drop_index("ix_unprocessed_time", table_name="unprocessed")
    op.drop_table("unprocessed")
    if op.get_bind().dialect.name == "sqlite":
        # In place (SQLite 3.35+): a batch copy of events would cascade-delete observations.
        op.execute("ALTER TABLE events DROP COLUMN illumination")
    else:
        op.drop_column("events", "illumination")
