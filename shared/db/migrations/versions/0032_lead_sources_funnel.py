"""lead sources, a message per source, tracked link clicks (issue 16, sections 3 and 5)

Revision ID: 0032_lead_sources_funnel
Revises: 0029_api_rate_limits
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0032_lead_sources_funnel"
down_revision: str | Sequence[str] | None = "0030_deferred_sends"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("leads", sa.Column("source", sa.String(16), nullable=True))
    op.add_column("leads", sa.Column("source_post", sa.String(64), nullable=True))
    op.add_column(
        "leads", sa.Column("link_clicks", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("leads", sa.Column("link_clicked_at", sa.DateTime(timezone=True), nullable=True))
    # Leads from before sources: what their rows still tell (a form's origin, a comment).
    op.execute(
        "UPDATE leads SET source = CASE WHEN origin = 'form' THEN 'form' "
        "WHEN comment_id IS NOT NULL THEN 'comment' ELSE 'api' END"
    )
    op.alter_column("leads", "source", nullable=False, server_default="api")
    op.create_index("ix_leads_creator_source", "leads", ["creator_id", "source", "created_at"])
    # The funnel across creators (admin) reads leads by day.
    op.create_index("ix_leads_created", "leads", ["created_at"])
    op.add_column(
        "creators",
        sa.Column(
            "source_templates", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
    )


def downgrade() -> None:
    op.drop_column("creators", "source_templates")
    op.drop_index("ix_leads_created", table_name="leads")
    op.drop_index("ix_leads_creator_source", table_name="leads")
    for column in ("link_clicked_at", "link_clicks", "source_post", "source"):
        op.drop_column("leads", column)
