"""Sampled steps are stored with the epoch they belong to (``job_epochs.steps``)
instead of rewriting the whole list on the job row every epoch; the job row keeps
the status change that started its current run (``run_status_seq``/``_high``), so
that its ``running`` event can be replayed.

Jobs recorded before keep their list in ``jobs.steps``; the curves read either.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_epochs") as batch:
        batch.add_column(sa.Column("steps", sa.JSON))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("run_status_seq", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("run_status_high", sa.Integer, nullable=False, server_default="0"))
    # Rows from before: their run started with the status change before the last one.
    op.execute("UPDATE jobs SET run_status_seq = CASE WHEN status = 'running' THEN status_seq "
               "ELSE status_seq - 1 END, run_status_high = 0 WHERE run > 0")


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("run_status_high")
        batch.drop_column("run_status_seq")
    with op.batch_alter_table("job_epochs") as batch:
        batch.drop_column("steps")
