"""merge the branches of the parallel issues into one head

Revision ID: 0006_merge_heads
Revises: 0002_api_gateway, 0003_instagram_lifecycle, 0004_delivery, 0005_whatsapp
Create Date: 2026-11-28
"""

from collections.abc import Sequence

revision: str = "0006_merge_heads"
down_revision: str | Sequence[str] | None = (
    "0002_api_gateway",
    "0003_instagram_lifecycle",
    "0004_delivery",
    "0005_whatsapp",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: the branches touch disjoint tables."""


def downgrade() -> None:
    """Nothing to change."""
