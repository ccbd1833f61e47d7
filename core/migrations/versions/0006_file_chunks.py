"""Files kept in the database (``TRAINRX_STORAGE=database``, core/storage.py): the
``file_chunks`` table holds weights, exported models, checkpoints and uploaded arrays
as chunks under their storage keys, so that worker hosts share no filesystem.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file_chunks",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("file_chunks")
