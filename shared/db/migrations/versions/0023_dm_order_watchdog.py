"""paced WhatsApp DMs keep each person's order; the stuck-DM watchdog's index

Revision ID: 0023_dm_order_watchdog
Revises: 0018_comment_leads
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_dm_order_watchdog"
down_revision: str | Sequence[str] | None = "0018_comment_leads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECIPIENT_INDEX = "ix_whatsapp_deferred_recipient"
IN_PROGRESS_INDEX = "ix_leads_in_progress_updated"


def upgrade() -> None:
    # Whom a deferred send is for and when its lead came: a later lead to the same person
    # waits behind it (rows deferred before this revision have none and are not ordered).
    op.add_column("whatsapp_deferred_sends", sa.Column("account_id", sa.Uuid(), nullable=True))
    op.add_column("whatsapp_deferred_sends", sa.Column("wa_id", sa.String(20), nullable=True))
    op.add_column(
        "whatsapp_deferred_sends",
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        RECIPIENT_INDEX, "whatsapp_deferred_sends", ["account_id", "wa_id", "queued_at"]
    )
    # CONCURRENTLY: `leads` is written on every lead in a running deployment. The watchdog
    # reads only the DMs still in progress, oldest first.
    with op.get_context().autocommit_block():
        op.create_index(
            IN_PROGRESS_INDEX,
            "leads",
            ["updated_at"],
            postgresql_concurrently=True,
            postgresql_where=sa.text("dm_status IN ('queued', 'sending')"),
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            IN_PROGRESS_INDEX, table_name="leads", postgresql_concurrently=True, if_exists=True
        )
    op.drop_index(RECIPIENT_INDEX, table_name="whatsapp_deferred_sends")
    op.drop_column("whatsapp_deferred_sends", "queued_at")
    op.drop_column("whatsapp_deferred_sends", "wa_id")
    op.drop_column("whatsapp_deferred_sends", "account_id")
