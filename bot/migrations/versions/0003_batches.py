"""Batch requests: one request for many devices, each device an ordinary request.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requester", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("message_ts", sa.String(32)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    with op.batch_alter_table("requests") as table:
        table.add_column(sa.Column("batch_id", sa.String(32)))
    op.create_index("ix_requests_batch_id", "requests", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_requests_batch_id", table_name="requests")
    with op.batch_alter_table("requests") as table:
        table.drop_column("batch_id")
    op.drop_table("batches")
