"""tokens that expire unnoticed: the last failed refresh, and when and why an account left

Revision ID: 0025_token_expiry
Revises: 0018_comment_leads
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025_token_expiry"
down_revision: str | Sequence[str] | None = "0018_comment_leads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    sa.Column("token_refresh_failed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("token_refresh_error", sa.String(500), nullable=True),
    sa.Column("disconnected_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("disconnect_reason", sa.String(200), nullable=True),
)


def upgrade() -> None:
    # Nullable, no default: a metadata-only change on a live table.
    for column in COLUMNS:
        op.add_column("social_accounts", column)


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column("social_accounts", column.name)
