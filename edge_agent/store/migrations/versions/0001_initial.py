"""The first schema: deployments, model versions, events, observations, counts, heartbeats.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Frozen: a migration describes the schema as it was, so it never imports the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trap_id", sa.String(64), nullable=False),
        sa.Column("location_name", sa.String(200), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("camera_model", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("start_time", _utc(), nullable=False),
        sa.Column("end_time", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
    )
    op.create_index("ix_deployments_trap_id", "deployments", ["trap_id"])

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("arch", sa.String(64), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("first_seen", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("sha256", name="uq_model_versions_sha256"),
    )

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("start_time", _utc(), nullable=False),
        sa.Column("end_time", _utc(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("written_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name="fk_events_deployment_id_deployments",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name="fk_events_model_version_id_model_versions",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint(
            "deployment_id", "start_time", name="uq_events_deployment_id_start_time"
        ),
    )
    op.create_index("ix_events_deployment_id", "events", ["deployment_id"])
    op.create_index("ix_events_start_time", "events", ["start_time"])

    op.create_table(
        "observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("max_n", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("mean_confidence", sa.Float(), nullable=False),
        sa.Column("tracks", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name="fk_observations_event_id_events",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_observations"),
        sa.UniqueConstraint("event_id", "label", name="uq_observations_event_id_label"),
    )

    op.create_table(
        "counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("interval_start", _utc(), nullable=False),
        sa.Column("interval_end", _utc(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name="fk_counts_deployment_id_deployments",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_counts"),
        sa.UniqueConstraint(
            "deployment_id",
            "interval_start",
            "label",
            name="uq_counts_deployment_id_interval_start_label",
        ),
    )

    op.create_table(
        "heartbeats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", _utc(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column("frames", sa.BigInteger(), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("open_events", sa.Integer(), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=True),
        sa.Column("free_disk_bytes", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name="fk_heartbeats_deployment_id_deployments",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_heartbeats"),
    )


def downgrade() -> None:
    for table in ("heartbeats", "counts", "observations", "events", "model_versions"):
        op.drop_table(table)
    op.drop_index("ix_deployments_trap_id", table_name="deployments")
    op.drop_table("deployments")
