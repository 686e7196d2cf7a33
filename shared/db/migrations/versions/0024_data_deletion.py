"""data deletion that deletes: signed requests remembered once, requests without the user id

An anonymised lead is marked (events still in topics about it are ignored). A deletion
request keeps no identifier of the user (the old rows' ids are dropped with the
column), a summary of what was removed and the state of its topic erasure.

Revision ID: 0024_data_deletion
Revises: 0018_comment_leads
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0024_data_deletion"
down_revision: str | Sequence[str] | None = "0018_comment_leads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signed_request_uses",
        sa.Column("callback", sa.String(16), primary_key=True),
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("confirmation_code", sa.String(32)),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_signed_request_uses_used_at", "signed_request_uses", ["used_at"])
    op.drop_column("data_deletion_requests", "app_scoped_user_id")
    # Nullable without default: a catalog change only, no rewrite of `leads`.
    op.add_column("leads", sa.Column("erased_at", sa.DateTime(timezone=True)))
    op.add_column(
        "data_deletion_requests",
        sa.Column("summary", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.add_column("data_deletion_requests", sa.Column("kafka_offsets", JSONB()))
    op.add_column(
        "data_deletion_requests",
        sa.Column("kafka_pass", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index(
        "ix_data_deletion_requests_pending",
        "data_deletion_requests",
        ["requested_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_data_deletion_requests_pending", table_name="data_deletion_requests")
    op.drop_column("leads", "erased_at")
    op.drop_column("data_deletion_requests", "kafka_pass")
    op.drop_column("data_deletion_requests", "kafka_offsets")
    op.drop_column("data_deletion_requests", "summary")
    # The ids are gone for good: old rows come back with an empty one.
    op.add_column(
        "data_deletion_requests",
        sa.Column("app_scoped_user_id", sa.String(64), nullable=False, server_default=""),
    )
    op.drop_index("ix_signed_request_uses_used_at", table_name="signed_request_uses")
    op.drop_table("signed_request_uses")
