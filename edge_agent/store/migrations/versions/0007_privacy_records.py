"""Privacy records: tracks whose images were withheld, kept as records a reviewer can see.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

The privacy guard's write gate withholds every image of a track in which any detector saw
something like a person, while the track keeps its animal label (``edge_agent.vision.privacy``).
Such a track is still reviewable:

- ``media`` rows of kind ``record`` hold it without a file: ``path`` becomes nullable (NULL for
  a record), ``privacy_status`` ``suppressed``; every media row gets the track's box on the
  frame (``box_x``, ``box_y``, ``box_w``, ``box_h``, frame pixels; NULL before this revision).
- ``observations.suppressed``: how many of an observation's tracks had their images withheld
  (NULL before this revision), for reports and exports.

SQLite cannot make a column nullable in place, so ``media`` is copied (Alembic's batch mode);
no table refers to it, so the copy deletes nothing else.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BOX = ("box_x", "box_y", "box_w", "box_h")


def upgrade() -> None:
    with op.batch_alter_table("observations") as batch:
        batch.add_column(sa.Column("suppressed", sa.Integer(), nullable=True))
    with op.batch_alter_table("media", recreate="always") as batch:
        batch.alter_column("path", existing_type=sa.String(1000), nullable=True)
        for name in BOX:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM media WHERE path IS NULL")  # records have no file to keep
    with op.batch_alter_table("media", recreate="always") as batch:
        for name in reversed(BOX):
            batch.drop_column(name)
        batch.alter_column("path", existing_type=sa.String(1000), nullable=False)
    if op.get_bind().dialect.name == "sqlite":
        # In place: a batch copy of observations is safe, but needless.
        op.execute("ALTER TABLE observations DROP COLUMN suppressed")
    else:
        op.drop_column("observations", "suppressed")
