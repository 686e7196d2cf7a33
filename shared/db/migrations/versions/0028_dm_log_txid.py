"""dm_log.txid: the writing transaction's id, for the live status stream's gap-free resume
(services/api/http/status_stream.py)

The column is added without a default first (no table rewrite: rows written before it
stay NULL and are never streamed), then given its default for new rows; the index is
built CONCURRENTLY, as dm_log is written on every status change.

Revision ID: 0028_dm_log_txid
Revises: 0027_merge_heads
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028_dm_log_txid"
down_revision: str | Sequence[str] | None = "0027_merge_heads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("dm_log", sa.Column("txid", sa.BigInteger(), nullable=True))
    op.alter_column(
        "dm_log", "txid", server_default=sa.text("(pg_current_xact_id())::text::bigint")
    )
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_dm_log_txid", table_name="dm_log", postgresql_concurrently=True, if_exists=True
        )
        op.create_index(
            "ix_dm_log_txid",
            "dm_log",
            ["txid", "id"],
            postgresql_concurrently=True,
            postgresql_where=sa.text("txid IS NOT NULL"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_dm_log_txid", table_name="dm_log", postgresql_concurrently=True, if_exists=True
        )
    op.drop_column("dm_log", "txid")
