"""Heartbeat health fields and report indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

Heartbeats gain what a field visit needs to diagnose a trap without logging in: motion
frames (is the gate seeing anything?), events written, whether the camera was capturing,
uptime (did it restart?) and the SoC temperature (a Pi in a sunny box throttles). Reports
filter by label and plot heartbeats over time, so both get an index. Existing rows keep
NULL in the new columns: nothing is invented for the past.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("heartbeats") as batch:
        batch.add_column(sa.Column("motion_frames", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("events_written", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("capturing", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("uptime_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("cpu_temp_c", sa.Float(), nullable=True))
    op.create_index("ix_heartbeats_time", "heartbeats", ["time"])
    op.create_index("ix_observations_label", "observations", ["label"])


def downgrade() -> None:
    op.drop_index("ix_observations_label", table_name="observations")
    op.drop_index("ix_heartbeats_time", table_name="heartbeats")
    with op.batch_alter_table("heartbeats") as batch:
        for column in ("cpu_temp_c", "uptime_s", "capturing", "events_written", "motion_frames"):
            batch.drop_column(column)
