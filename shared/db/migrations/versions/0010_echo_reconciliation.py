"""reconciliation of ambiguous sends: what a send intent was, to match Instagram's echo

Revision ID: 0010_echo_reconciliation
Revises: 0007_web_pages
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_echo_reconciliation"
down_revision: str | Sequence[str] | None = "0007_web_pages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("dm_sends", sa.Column("account_id", sa.Uuid(), nullable=True))
    op.add_column("dm_sends", sa.Column("recipient_igsid", sa.String(32), nullable=True))
    op.add_column("dm_sends", sa.Column("text_sha256", sa.String(64), nullable=True))
    # Only intents whose outcome is not known are ever matched: a small partial index.
    op.create_index(
        "ix_dm_sends_unreconciled",
        "dm_sends",
        ["account_id", "recipient_igsid", "text_sha256"],
        postgresql_where=sa.text("state IN ('sending', 'unknown')"),
    )


def downgrade() -> None:
    op.drop_index("ix_dm_sends_unreconciled", table_name="dm_sends")
    op.drop_column("dm_sends", "text_sha256")
    op.drop_column("dm_sends", "recipient_igsid")
    op.drop_column("dm_sends", "account_id")
