"""reconciliation of ambiguous WhatsApp sends by the callback data their statuses echo

Revision ID: 0012_whatsapp_reconciliation
Revises: 0010_echo_reconciliation
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_whatsapp_reconciliation"
down_revision: str | Sequence[str] | None = "0010_echo_reconciliation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "whatsapp_messages",
        sa.Column("reconciled", sa.Boolean(), server_default="false", nullable=False),
    )
    op.add_column("whatsapp_status_backlog", sa.Column("send_ref", sa.String(128)))
    op.add_column("whatsapp_status_backlog", sa.Column("account_id", sa.Uuid()))
    # Only statuses that name a send of ours are ever looked up by it.
    op.create_index(
        "ix_whatsapp_status_backlog_send_ref",
        "whatsapp_status_backlog",
        ["send_ref"],
        postgresql_where=sa.text("send_ref IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_whatsapp_status_backlog_send_ref", table_name="whatsapp_status_backlog")
    op.drop_column("whatsapp_status_backlog", "account_id")
    op.drop_column("whatsapp_status_backlog", "send_ref")
    op.drop_column("whatsapp_messages", "reconciled")
