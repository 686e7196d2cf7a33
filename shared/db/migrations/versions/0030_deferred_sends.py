"""one deferral table for both senders: whatsapp_deferred_sends becomes deferred_sends, with
the delivery headers an Instagram deferral carries (attempts, origin, reason)

Revision ID: 0030_deferred_sends
Revises: 0029_api_rate_limits
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0030_deferred_sends"
down_revision: str | Sequence[str] | None = "0030_whatsapp_bsuid"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_whatsapp_deferred_not_before", "ix_deferred_sends_not_before"),
    ("ix_whatsapp_deferred_recipient", "ix_deferred_sends_recipient"),
)


def upgrade() -> None:
    # A rename keeps the WhatsApp rows waiting (and their order) through the upgrade.
    op.rename_table("whatsapp_deferred_sends", "deferred_sends")
    for old, new in INDEXES:
        op.execute(f"ALTER INDEX {old} RENAME TO {new}")
    op.add_column(
        "deferred_sends",
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("deferred_sends", "headers")
    for old, new in INDEXES:
        op.execute(f"ALTER INDEX {new} RENAME TO {old}")
    op.rename_table("deferred_sends", "whatsapp_deferred_sends")
