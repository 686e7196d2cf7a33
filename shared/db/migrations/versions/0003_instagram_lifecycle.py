"""Instagram account lifecycle: app-scoped ids, refresh leases, comments, data deletion,
OAuth state nonces, read-receipt lookup by message id.

Revision ID: 0003_instagram_lifecycle
Revises: 0001
Create Date: 2026-11-28 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_instagram_lifecycle"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("social_accounts", sa.Column("app_scoped_id", sa.String(64), nullable=True))
    op.add_column(
        "social_accounts",
        sa.Column("token_refresh_lease_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(op.f("ix_social_accounts_app_scoped_id"), "social_accounts", ["app_scoped_id"])
    op.create_index("ix_leads_provider_message_id", "leads", ["provider_message_id"])
    op.create_table(
        "instagram_comments",
        sa.Column("comment_id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("igsid", sa.String(32), nullable=False),
        sa.Column("username", sa.String(64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("media_id", sa.String(64), nullable=True),
        sa.Column("commented_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["account_id"], ["social_accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("comment_id"),
    )
    op.create_index(op.f("ix_instagram_comments_account_id"), "instagram_comments", ["account_id"])
    op.create_table(
        "data_deletion_requests",
        sa.Column("confirmation_code", sa.String(32), nullable=False),
        sa.Column("app_scoped_user_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("confirmation_code"),
    )
    op.create_table(
        "oauth_state_uses",
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("creator_id", sa.Uuid(), nullable=False),
        sa.Column(
            "used_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("nonce"),
    )


def downgrade() -> None:
    op.drop_table("oauth_state_uses")
    op.drop_table("data_deletion_requests")
    op.drop_index(op.f("ix_instagram_comments_account_id"), table_name="instagram_comments")
    op.drop_table("instagram_comments")
    op.drop_index("ix_leads_provider_message_id", table_name="leads")
    op.drop_index(op.f("ix_social_accounts_app_scoped_id"), table_name="social_accounts")
    op.drop_column("social_accounts", "token_refresh_lease_until")
    op.drop_column("social_accounts", "app_scoped_id")
