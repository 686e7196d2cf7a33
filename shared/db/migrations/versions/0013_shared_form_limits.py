"""the public lead form's limits, shared by every API process

Revision ID: 0013_shared_form_limits
Revises: 0011_creator_sending
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_shared_form_limits"
down_revision: str | Sequence[str] | None = "0011_creator_sending"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Counters that live two minutes: not worth the write-ahead log (lost on a crash, which
    # at worst lets a minute's worth of submissions more through).
    op.create_table(
        "form_rate_counts",
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start"),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("form_rate_counts")
