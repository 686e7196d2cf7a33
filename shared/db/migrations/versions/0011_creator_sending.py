"""creator's sending controls: their own pacing, and a pause switch that covers every account

Revision ID: 0011_creator_sending
Revises: 0008_reconciliation, 0010_echo_reconciliation
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_creator_sending"
down_revision: str | Sequence[str] | None = ("0008_reconciliation", "0010_echo_reconciliation")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREATOR_MADE = "paused by the creator"


def upgrade() -> None:
    op.add_column("creators", sa.Column("dm_pace_per_h", sa.Integer(), nullable=True))
    # The settings page used to pause each connected account; it now pauses the creator,
    # which also covers accounts connected later. Carry existing creator pauses over.
    op.execute(
        sa.text(
            "INSERT INTO sending_pauses (scope, reason, paused_by, paused_at) "
            "SELECT DISTINCT ON (a.creator_id) 'creator:' || a.creator_id, p.reason, "
            "p.paused_by, p.paused_at FROM sending_pauses p "
            "JOIN social_accounts a ON p.scope = a.id::text WHERE p.reason = :reason "
            "ORDER BY a.creator_id, p.paused_at ON CONFLICT DO NOTHING"
        ).bindparams(reason=CREATOR_MADE)
    )
    op.execute(
        sa.text(
            "DELETE FROM sending_pauses p USING social_accounts a "
            "WHERE p.scope = a.id::text AND p.reason = :reason"
        ).bindparams(reason=CREATOR_MADE)
    )


def downgrade() -> None:
    # Back to a pause per connected account, so nothing paused starts sending.
    op.execute(
        sa.text(
            "INSERT INTO sending_pauses (scope, reason, paused_by, paused_at) "
            "SELECT a.id::text, p.reason, p.paused_by, p.paused_at FROM sending_pauses p "
            "JOIN social_accounts a ON p.scope = 'creator:' || a.creator_id "
            "ON CONFLICT DO NOTHING"
        )
    )
    op.execute(sa.text("DELETE FROM sending_pauses WHERE scope LIKE 'creator:%'"))
    op.drop_column("creators", "dm_pace_per_h")
