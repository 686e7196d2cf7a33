"""trace context on outbox rows and leads (distributed tracing, shared/platform/tracing.py)

Revision ID: 0033_outbox_trace
Revises: 0029_api_rate_limits
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033_outbox_trace"
down_revision: str | Sequence[str] | None = "0031_opt_out_takeover"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding them rewrites nothing (PostgreSQL 11+).
    op.add_column("outbox", sa.Column("traceparent", sa.String(55), nullable=True))
    op.add_column("leads", sa.Column("traceparent", sa.String(55), nullable=True))


def downgrade() -> None:
    op.drop_column("leads", "traceparent")
    op.drop_column("outbox", "traceparent")
