"""an index on leads.comment_id: the router looks up a comment's private reply by comment,
whichever lead sent it (services/api/service_layer/routing_facts.py)

Built CONCURRENTLY: `leads` is written on every accepted lead.

Revision ID: 0021_comment_reply_lookup
Revises: 0018_comment_leads
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0021_comment_reply_lookup"
down_revision: str | Sequence[str] | None = "0018_comment_leads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        # An interrupted concurrent build leaves an invalid index behind: drop it first.
        op.drop_index(
            "ix_leads_comment_id", table_name="leads", postgresql_concurrently=True, if_exists=True
        )
        op.create_index(
            "ix_leads_comment_id",
            "leads",
            ["comment_id"],
            postgresql_concurrently=True,
            postgresql_where=text("comment_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_leads_comment_id", table_name="leads", postgresql_concurrently=True, if_exists=True
        )
