"""merge the session's parallel lines: idempotency scope, web sessions, comment reply
lookup, conversation reconciliation, DM order and watchdog, data deletion, token expiry,
form consent

Revision ID: 0027_merge_heads
Revises: 0019_idempotency_scope, 0020_web_sessions, 0021_comment_reply_lookup,
    0022_conversation_reconcile, 0023_dm_order_watchdog, 0024_data_deletion,
    0025_token_expiry, 0026_form_consent
Create Date: 2026-12-03
"""

from collections.abc import Sequence

revision: str = "0027_merge_heads"
down_revision: str | Sequence[str] | None = (
    "0019_idempotency_scope",
    "0020_web_sessions",
    "0021_comment_reply_lookup",
    "0022_conversation_reconcile",
    "0023_dm_order_watchdog",
    "0024_data_deletion",
    "0025_token_expiry",
    "0026_form_consent",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: the lines touch disjoint tables and columns."""


def downgrade() -> None:
    """Nothing to change."""
