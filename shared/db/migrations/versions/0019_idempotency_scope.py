"""idempotency keys scoped to (tenant, caller): the creator a request acts for joins the key

Revision ID: 0019_idempotency_scope
Revises: 0018_comment_leads
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_idempotency_scope"
down_revision: str | Sequence[str] | None = "0018_comment_leads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "idempotency_keys"
PKEY = "idempotency_keys_pkey"


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("creator_id", sa.Uuid(), nullable=True))
    # An answered send names its creator in its stored response; a key without one (still in
    # flight, or never answered) is dropped: its client's retry acts as a new request.
    op.execute(
        "UPDATE idempotency_keys SET creator_id = (response_body->>'creator_id')::uuid "
        "WHERE response_body ? 'creator_id'"
    )
    op.execute("DELETE FROM idempotency_keys WHERE creator_id IS NULL")
    op.alter_column(TABLE, "creator_id", nullable=False)
    op.drop_constraint(PKEY, TABLE, type_="primary")
    op.create_primary_key(PKEY, TABLE, ["creator_id", "owner", "key"])


def downgrade() -> None:
    # Two creators' keys may share (owner, key) now; keep the newest of each.
    op.execute(
        "DELETE FROM idempotency_keys a USING idempotency_keys b "
        "WHERE a.owner = b.owner AND a.key = b.key "
        "AND (a.created_at, a.creator_id) < (b.created_at, b.creator_id)"
    )
    op.drop_constraint(PKEY, TABLE, type_="primary")
    op.create_primary_key(PKEY, TABLE, ["owner", "key"])
    op.drop_column(TABLE, "creator_id")
