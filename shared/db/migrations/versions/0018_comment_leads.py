"""comment to DM: a creator's comment trigger and keywords; a person's recent leads

Revision ID: 0018_comment_leads
Revises: 0017_retention
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0018_comment_leads"
down_revision: str | Sequence[str] | None = "0017_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_leads_creator_igsid"


def upgrade() -> None:
    op.add_column(
        "creators",
        sa.Column("comment_trigger", sa.String(16), nullable=False, server_default="off"),
    )
    op.add_column(
        "creators",
        sa.Column(
            "comment_keywords", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")
        ),
    )
    # CONCURRENTLY: `leads` is written on every lead in a running deployment.
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="leads", postgresql_concurrently=True, if_exists=True)
        op.create_index(
            INDEX,
            "leads",
            ["creator_id", "igsid", "created_at"],
            postgresql_concurrently=True,
            postgresql_where=sa.text("igsid IS NOT NULL"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="leads", postgresql_concurrently=True, if_exists=True)
    op.drop_column("creators", "comment_keywords")
    op.drop_column("creators", "comment_trigger")
