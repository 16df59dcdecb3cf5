"""The baseline: the schema lrbot made with ``metadata.create_all`` before migrations.

Written out in full, never derived from ``bot.store.metadata``: a revision must make the
same tables forever, whatever the metadata becomes. A database made by ``create_all`` before
this revision existed is adopted by ``lrbot db upgrade``, which stamps it with this revision
when its tables and columns are exactly these.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _when(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.String(32), primary_key=True),
        _when("created_at", nullable=False),
        _when("updated_at", nullable=False),
        sa.Column("requester", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("machine_id", sa.String(40), nullable=False),
        sa.Column("machine_name", sa.String(255), nullable=False),
        sa.Column("machine", sa.JSON, nullable=False),
        sa.Column("commands", sa.JSON, nullable=False),
        sa.Column("justification", sa.Text, nullable=False),
        sa.Column("ticket", sa.String(200)),
        sa.Column("state", sa.String(32), nullable=False),
        _when("expires_at", nullable=False),
        sa.Column("decided_by", sa.String(32)),
        _when("decided_at"),
        sa.Column("message_ts", sa.String(32)),
        sa.Column("action_id", sa.String(64)),
        sa.Column("action_status", sa.String(32)),
        _when("submitted_at"),
        _when("started_at"),
        _when("finished_at"),
        sa.Column("cancelled_by", sa.String(32)),
        sa.Column("note", sa.Text),
        sa.Column("digest", sa.String(64)),
        sa.Column("library", sa.JSON),
        sa.Column("approvals_needed", sa.Integer, nullable=False),
    )
    op.create_index("ix_requests_state", "requests", ["state"])
    op.create_index("ix_requests_action_id", "requests", ["action_id"])

    op.create_table(
        "approvals",
        sa.Column("request_id", sa.String(32), sa.ForeignKey("requests.id"), primary_key=True),
        sa.Column("user", sa.String(32), primary_key=True),
        _when("at", nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
    )

    op.create_table(
        "command_states",
        sa.Column("request_id", sa.String(32), sa.ForeignKey("requests.id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("errors", sa.Text),
    )

    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(32), nullable=False),
        _when("at", nullable=False),
        sa.Column("actor", sa.String(64)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON),
    )
    op.create_index("ix_events_request_id", "events", ["request_id"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        _when("created_at", nullable=False),
        _when("not_before", nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _when("done_at"),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_outbox_done_at", "outbox", ["done_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.Integer, nullable=False),
        _when("at", nullable=False),
        sa.Column("request_id", sa.String(32)),
        sa.Column("actor", sa.String(64)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("action_id", sa.String(64)),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("seq"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_request_id", "audit_log", ["request_id"])

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "audit_head",
        "audit_log",
        "outbox",
        "events",
        "command_states",
        "approvals",
        "requests",
    ):
        op.drop_table(table)
