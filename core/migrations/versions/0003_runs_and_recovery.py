"""Runs and recovery: a run counter that fences a worker's writes, the status
sequence and progress that live event ids derive from, runtime across runs,
and the upload a job trains on as its own column.

``attempts`` changes meaning from "starts" to "lost workers": existing rows
keep their starts in ``run`` and start with no lost worker.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("run", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("status_seq", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("status_high", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("runtime_used_s", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("dataset_id", sa.String(32)))
        batch.create_index("ix_jobs_dataset_id", ["dataset_id"])
    jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("request", sa.JSON),
                    sa.column("attempts", sa.Integer), sa.column("run", sa.Integer),
                    sa.column("status", sa.String), sa.column("status_seq", sa.Integer),
                    sa.column("status_high", sa.Integer), sa.column("progress_epoch", sa.Integer),
                    sa.column("dataset_id", sa.String))
    bind = op.get_bind()
    for job_id, request, attempts, status, progress in bind.execute(
            sa.select(jobs.c.id, jobs.c.request, jobs.c.attempts, jobs.c.status, jobs.c.progress_epoch)).all():
        dataset_id = ((request or {}).get("dataset") or {}).get("id")
        runs = int(attempts or 0)
        bind.execute(sa.update(jobs).where(jobs.c.id == job_id).values(
            run=runs, attempts=0, dataset_id=dataset_id,
            status_seq=0 if status == "queued" and runs == 0 else 2 * runs + (status != "running"),
            status_high=int(progress or 0)))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_dataset_id")
        for column in ("dataset_id", "runtime_used_s", "status_high", "status_seq", "run"):
            batch.drop_column(column)
