"""web pages: a creator's route order (the AutoDM settings page)

Revision ID: 0007_web_pages
Revises: 0006_merge_heads
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_web_pages"
down_revision: str | Sequence[str] | None = "0006_merge_heads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "creators",
        sa.Column("route_order", sa.String(32), nullable=False, server_default="instagram_first"),
    )


def downgrade() -> None:
    op.drop_column("creators", "route_order")
