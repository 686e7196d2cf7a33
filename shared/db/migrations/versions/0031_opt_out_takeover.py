"""opt-out (suppressed contacts per creator) and human takeover (conversations in the
creator's hands), with the creator's settings for both

Revision ID: 0031_opt_out_takeover
Revises: 0029_api_rate_limits
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0031_opt_out_takeover"
down_revision: str | Sequence[str] | None = "0032_lead_sources_funnel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "creators",
        sa.Column(
            "opt_out_words",
            postgresql.JSONB(),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "creators",
        sa.Column("takeover_hours", sa.Integer(), server_default="24", nullable=False),
    )
    op.create_table(
        "suppressed_contacts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("creator_id", sa.Uuid(), nullable=False),
        sa.Column("igsid", sa.String(32), nullable=True),
        sa.Column("whatsapp", sa.String(64), nullable=True),
        sa.Column("handle", sa.String(64), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["creator_id"], ["creators.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("igsid", "whatsapp", "handle"):
        op.create_index(
            f"ix_suppressed_contacts_{column}",
            "suppressed_contacts",
            ["creator_id", column],
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
        )
    op.create_table(
        "conversation_takeovers",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("igsid", sa.String(32), nullable=False),
        sa.Column("creator_id", sa.Uuid(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_id", sa.String(128), nullable=True),
        sa.Column("handed_back_by", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(["creator_id"], ["creators.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "igsid"),
    )


def downgrade() -> None:
    op.drop_table("conversation_takeovers")
    op.drop_table("suppressed_contacts")
    op.drop_column("creators", "takeover_hours")
    op.drop_column("creators", "opt_out_words")
