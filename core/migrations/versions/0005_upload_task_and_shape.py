"""Uploads declare their task and input shape: ``datasets.task`` (classification or
regression; every upload before this one is classification), ``datasets.input_shape``
(the shape of a row for convolutions, null when none was given) and ``datasets.target``
(a regression upload's target range and spread).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("task", sa.String(16), nullable=False, server_default="classification"))
        batch.add_column(sa.Column("input_shape", sa.JSON))
        batch.add_column(sa.Column("target", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("target")
        batch.drop_column("input_shape")
        batch.drop_column("task")
