"""per-caller rate limits of the JSON API, shared by every API process

Revision ID: 0029_api_rate_limits
Revises: 0028_dm_log_txid
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029_api_rate_limits"
down_revision: str | Sequence[str] | None = "0028_dm_log_txid"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Counters that live one window: not worth the write-ahead log (lost on a crash, which
    # at worst gives callers a fresh window).
    op.create_table(
        "api_rate_counts",
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("creator", sa.String(36), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "creator", "window_start"),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("api_rate_counts")
