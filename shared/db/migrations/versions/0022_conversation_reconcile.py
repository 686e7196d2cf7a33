"""active reconciliation: how often an `unknown` Instagram DM was looked up in its
conversation (services/webhook_ingest/conversations.py)

Revision ID: 0022_conversation_reconcile
Revises: 0018_comment_leads
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_conversation_reconcile"
down_revision: str | Sequence[str] | None = "0018_comment_leads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds it without rewriting the table.
    op.add_column(
        "dm_sends",
        sa.Column("reconcile_checks", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("dm_sends", "reconcile_checks")
