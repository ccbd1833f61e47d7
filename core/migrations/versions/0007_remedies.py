"""Verified remedies (issue 11): the ``remedies`` table, one per parent job, and two links on
``jobs``: ``remedy_id`` on a child (the remedy it is an attempt of, indexed: the worker that
ran the child finds its remedy by it), ``own_remedy_id`` on the parent (so reading a job
links its remedy without another query) and ``auto_remedy_pending`` (the request asked for
``auto_remedy`` and its remedy is not decided yet: the recovery sweep finds it by this after a
crash).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "remedies",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("before", sa.JSON),
        sa.Column("attempts", sa.JSON, nullable=False),
        sa.Column("best", sa.JSON),
        sa.Column("seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("job_id", name="uq_remedies_job_id"),
    )
    op.create_index("ix_remedies_owner", "remedies", ["owner"])
    op.create_index("ix_remedies_status", "remedies", ["status"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("remedy_id", sa.String(32)))
        batch.add_column(sa.Column("own_remedy_id", sa.String(32)))
        batch.add_column(sa.Column("auto_remedy_pending", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.create_index("ix_jobs_remedy_id", ["remedy_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_remedy_id")
        batch.drop_column("auto_remedy_pending")
        batch.drop_column("own_remedy_id")
        batch.drop_column("remedy_id")
    op.drop_index("ix_remedies_status", "remedies")
    op.drop_index("ix_remedies_owner", "remedies")
    op.drop_table("remedies")
