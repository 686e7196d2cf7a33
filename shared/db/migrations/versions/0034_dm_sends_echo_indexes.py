"""indexes for an echo's look-ups on dm_sends (services/webhook_ingest/echoes.py, takeover)

An Instagram echo asks whether AutoDM sent it: a send with the echo's message id, or one of
the same account with the same text. Without these, every echo scanned the whole table.

Revision ID: 0034_dm_sends_echo_indexes
Revises: 0033_outbox_trace
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0034_dm_sends_echo_indexes"
down_revision: str | Sequence[str] | None = "0033_outbox_trace"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_dm_sends_account_message", "dm_sends", ["account_id", "provider_message_id"]
    )
    op.create_index("ix_dm_sends_account_text", "dm_sends", ["account_id", "text_sha256"])


def downgrade() -> None:
    op.drop_index("ix_dm_sends_account_text", table_name="dm_sends")
    op.drop_index("ix_dm_sends_account_message", table_name="dm_sends")
