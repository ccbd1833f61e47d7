"""Exports run after the job (workers/model_export.py): ``jobs.model_status`` says where a
finished job's exported model is (``pending``, ``ready``, ``failed``; null when the job left
no weights, or finished before this revision: read as ready when it has weights),
``model_error`` why it failed, and ``model_claimed_at`` / ``model_attempts`` let the
recovery sweep re-publish an export whose message or worker was lost.

Revision ID: 0009
Revises: 0006 (the lead re-chains it after 0007 and 0008)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("model_status", sa.String(16)))
        batch.add_column(sa.Column("model_error", sa.Text))
        batch.add_column(sa.Column("model_claimed_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("model_attempts", sa.Integer, nullable=False, server_default="0"))
        batch.create_index("ix_jobs_model_status", ["model_status"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_model_status")
        batch.drop_column("model_attempts")
        batch.drop_column("model_claimed_at")
        batch.drop_column("model_error")
        batch.drop_column("model_status")
