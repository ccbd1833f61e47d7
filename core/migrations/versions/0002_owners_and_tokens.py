"""Owners and API tokens: a ``tokens`` table; every job and upload has an owner
(rows made before belong to ``admin``); idempotency keys are unique per owner.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LEGACY_OWNER = "admin"  # the value of core.db.LEGACY_OWNER when this migration was written
# SQLite's inline UNIQUE has no name; batch mode names reflected constraints with this.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("label", sa.String(100)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_tokens_owner", "tokens", ["owner"])
    for table in ("jobs", "datasets"):
        op.execute(sa.text(f"UPDATE {table} SET owner = :owner WHERE owner IS NULL").bindparams(owner=LEGACY_OWNER))
    unique_keys = [u["name"] or "uq_jobs_idempotency_key"
                   for u in sa.inspect(op.get_bind()).get_unique_constraints("jobs")
                   if u["column_names"] == ["idempotency_key"]]
    with op.batch_alter_table("jobs", naming_convention=NAMING) as batch:
        for name in unique_keys:
            batch.drop_constraint(name, type_="unique")
        batch.alter_column("owner", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_jobs_owner_idempotency_key", ["owner", "idempotency_key"])
    with op.batch_alter_table("datasets") as batch:
        batch.alter_column("owner", existing_type=sa.String(64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.alter_column("owner", existing_type=sa.String(64), nullable=True)
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_owner_idempotency_key", type_="unique")
        batch.alter_column("owner", existing_type=sa.String(64), nullable=True)
        batch.create_unique_constraint("uq_jobs_idempotency_key", ["idempotency_key"])
    op.drop_table("tokens")
