"""Why a DM waits: the send intent of a deferred DM names its reason and not-before time.

Revision ID: 0008_reconciliation
Revises: 0006_merge_heads
Create Date: 2026-11-28 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_reconciliation"
down_revision: str | Sequence[str] | None = "0006_merge_heads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("dm_sends", sa.Column("waiting_for", sa.String(32), nullable=True))
    op.add_column("dm_sends", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("dm_sends", "not_before")
    op.drop_column("dm_sends", "waiting_for")
