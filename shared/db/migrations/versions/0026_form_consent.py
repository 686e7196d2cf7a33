"""the public form's consent rule: where a lead came from, where its WhatsApp opt-in came
from and when its owner proved the number; single-use form tokens

Revision ID: 0026_form_consent
Revises: 0018_comment_leads
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026_form_consent"
down_revision: str | Sequence[str] | None = "0018_comment_leads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding them rewrites nothing; NULL means "not the public form"
    # (every lead so far came through a token the creator or a service held, or the form).
    op.add_column("leads", sa.Column("origin", sa.String(16), nullable=True))
    op.add_column("leads", sa.Column("whatsapp_consent_source", sa.String(200), nullable=True))
    op.add_column("leads", sa.Column("contact_proven_at", sa.DateTime(timezone=True)))
    op.create_table(
        "lead_form_token_uses",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_lead_form_token_uses_used_at", "lead_form_token_uses", ["used_at"])


def downgrade() -> None:
    op.drop_index("ix_lead_form_token_uses_used_at", table_name="lead_form_token_uses")
    op.drop_table("lead_form_token_uses")
    op.drop_column("leads", "contact_proven_at")
    op.drop_column("leads", "whatsapp_consent_source")
    op.drop_column("leads", "origin")
