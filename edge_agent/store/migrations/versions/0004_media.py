"""Kept media (crops and frames for retraining) and the log of their deletions.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04

``media``: one row per kept file (``edge_agent.media``): where it is (``path``), its
``sha256``, when it was taken (``time``), the event it belongs to (SET NULL when the event
is reprocessed away: the file is still a labelled example), the track's ``label`` and mean
``confidence``, whether its crops disagreed, ``kind`` (``crop`` or ``frame``), the
``privacy_status`` (``clear``, ``blurred``, ``unchecked``; only ``clear`` is public in
exports) and a reviewer's ``reviewed_label``. The column names are those the Camtrap DP
export reads (``edge_agent.camtrap.media_records``).

``media_deletions``: every file the retention job, the disk guard or the daily quota
deleted, with why (``retention``, ``disk``, ``quota``) and when. Counts, events and the
database itself are never deleted by them.

``heartbeats.media_paused``: whether the disk guard had stopped media writes (NULL: no media
kept, or written before this revision).

Media stays on the trap: neither table is in the fleet sync's change log (revision 0003's
triggers cover the tables they name only), so ``trapcount sync`` is unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("heartbeats") as batch:
        batch.add_column(sa.Column("media_paused", sa.Boolean(), nullable=True))
    op.create_table(
        "media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("time", _utc(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("disagreed", sa.Boolean(), nullable=False),
        sa.Column("privacy_status", sa.String(16), nullable=False),
        sa.Column("reviewed_label", sa.String(64), nullable=True),
        sa.Column("created", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name="fk_media_deployment_id_deployments",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name="fk_media_event_id_events", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_media"),
        sa.UniqueConstraint("path", name="uq_media_path"),
    )
    op.create_index("ix_media_time", "media", ["time"])
    op.create_index("ix_media_label", "media", ["label"])
    op.create_table(
        "media_deletions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.Integer(), nullable=True),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("time", _utc(), nullable=False),
        sa.Column("deleted_at", _utc(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_media_deletions"),
    )
    op.create_index("ix_media_deletions_deleted_at", "media_deletions", ["deleted_at"])


def downgrade() -> None:
    op.drop_index("ix_media_deletions_deleted_at", table_name="media_deletions")
    op.drop_table("media_deletions")
    op.drop_index("ix_media_label", table_name="media")
    op.drop_index("ix_media_time", table_name="media")
    op.drop_table("media")
    if op.get_bind().dialect.name == "sqlite":
        # In place (SQLite 3.35+), like revision 0003's downgrade.
        op.execute("ALTER TABLE heartbeats DROP COLUMN media_paused")
    else:
        op.drop_column("heartbeats", "media_paused")
