"""indexes for the API's housekeeping (expired idempotency keys and OAuth nonces)

Revision ID: 0014_housekeeping
Revises: 0013_shared_form_limits
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_housekeeping"
down_revision: str | Sequence[str] | None = "0013_shared_form_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.create_index("ix_oauth_state_uses_used_at", "oauth_state_uses", ["used_at"])


def downgrade() -> None:
    op.drop_index("ix_oauth_state_uses_used_at", table_name="oauth_state_uses")
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
