"""merge WhatsApp reconciliation with the creator-sending / form-limits / housekeeping line

Revision ID: 0015_merge_heads
Revises: 0012_whatsapp_reconciliation, 0014_housekeeping
Create Date: 2026-11-28
"""

from collections.abc import Sequence

revision: str = "0015_merge_heads"
down_revision: str | Sequence[str] | None = ("0012_whatsapp_reconciliation", "0014_housekeeping")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: the branches touch disjoint columns."""


def downgrade() -> None:
    """Nothing to change."""
