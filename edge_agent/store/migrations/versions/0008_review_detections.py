"""Reviewed counts and the boxes behind them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

- ``observations`` gain a reviewer's decision, kept beside the machine's (never over it):
  ``reviewed_label`` (the label a person gave the observation; ``empty`` for nothing there),
  ``reviewed_count`` (the MaxN they counted), ``reviewed_by`` and ``reviewed_at``. NULL: not
  reviewed. ``reviewed_counted`` says whose number ``reviewed_count`` is: true when the
  reviewer gave it, false when it follows from the machine's MaxN by the review rules
  (``edge_agent.store.reviews``; docs/reports.md). Reports and exports read the reviewed
  values where present and can show either.
- ``detections``: the boxes of an event's counted tracks on the frames they were seen in, as
  MegaDetector writes them (normalised ``x, y, w, h`` from the top-left corner, a category
  ``animal``, ``person`` or ``vehicle``), with the source ``file`` (a photo of a folder,
  relative to it; NULL for a clip or a camera) or the ``frame`` index in a clip, the track,
  its label and confidence, and what found the box (``detector``: ``motion`` or
  ``megadetector``, with its confidence). Deleted with their event. Every photo's boxes are
  kept; in a clip or from a camera one box per track per second plus its largest once
  counted (the frame the media keeper keeps), so long footage stays bounded
  (``edge_agent.counting.sightings``). Not sent by fleet sync: they stay on the trap.

Adding nullable columns and a table needs no copy of ``observations``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

REVIEW = ("reviewed_label", "reviewed_count", "reviewed_by", "reviewed_at", "reviewed_counted")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("observations") as batch:
        batch.add_column(sa.Column("reviewed_label", sa.String(64), nullable=True))
        batch.add_column(sa.Column("reviewed_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reviewed_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("reviewed_at", _utc(), nullable=True))
        batch.add_column(sa.Column("reviewed_counted", sa.Boolean(), nullable=True))
    op.create_table(
        "detections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("time", _utc(), nullable=False),
        sa.Column("file", sa.String(1000), nullable=True),
        sa.Column("frame", sa.Integer(), nullable=True),
        sa.Column("track", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("w", sa.Float(), nullable=False),
        sa.Column("h", sa.Float(), nullable=False),
        sa.Column("detector", sa.String(32), nullable=False),
        sa.Column("detector_confidence", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name="fk_detections_event_id_events",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_detections"),
    )
    op.create_index("ix_detections_event_id", "detections", ["event_id"])
    op.create_index("ix_detections_file", "detections", ["file"])


def downgrade() -> None:
    op.drop_index("ix_detections_file", table_name="detections")
    op.drop_index("ix_detections_event_id", table_name="detections")
    op.drop_table("detections")
    if op.get_bind().dialect.name == "sqlite":
        # In place (SQLite 3.35+): a batch copy of observations is safe, but needless.
        for name in reversed(REVIEW):
            op.execute(f"ALTER TABLE observations DROP COLUMN {name}")
    else:
        for name in reversed(REVIEW):
            op.drop_column("observations", name)
