"""indexes for deleting published outbox rows, old processed-event claims and stale
WhatsApp statuses (shared/db/retention.py)

Built CONCURRENTLY: `outbox` and `processed_events` are large and written on every DM in
a running deployment, and a plain CREATE INDEX would block those writes while it builds.

Revision ID: 0017_retention
Revises: 0015_merge_heads
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0017_retention"
down_revision: str | Sequence[str] | None = "0015_merge_heads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_outbox_published_at", "outbox", "published_at", "published_at IS NOT NULL"),
    ("ix_processed_events_processed_at", "processed_events", "processed_at", None),
    ("ix_whatsapp_status_backlog_received_at", "whatsapp_status_backlog", "received_at", None),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, column, where in INDEXES:
            # An interrupted concurrent build leaves an invalid index behind: drop it first.
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
            op.create_index(
                name,
                table,
                [column],
                postgresql_concurrently=True,
                postgresql_where=text(where) if where else None,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, _column, _where in INDEXES:
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
