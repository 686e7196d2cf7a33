"""WhatsApp Cloud API: connected numbers and their limits, approved templates, contacts
(customer-service window, pair pacing, daily tier), accepted messages by wamid, statuses
that arrived early, deferred sends.

Revision ID: 0005_whatsapp
Revises: 0001
Create Date: 2026-11-28 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_whatsapp"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _account_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["account_id"], ["social_accounts.id"], ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "whatsapp_numbers",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("display_phone_number", sa.String(32), nullable=True),
        sa.Column("waba_id", sa.String(64), nullable=True),
        sa.Column("daily_limit", sa.Integer(), nullable=False),
        sa.Column("messages_per_second", sa.Integer(), nullable=False),
        _account_fk(),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "whatsapp_templates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", TZ, server_default=sa.text("now()"), nullable=False),
        _account_fk(),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_whatsapp_templates_account_name_lang",
        "whatsapp_templates",
        ["account_id", "name", "language"],
        unique=True,
    )
    op.create_index(op.f("ix_whatsapp_templates_account_id"), "whatsapp_templates", ["account_id"])
    op.create_table(
        "whatsapp_contacts",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("wa_id", sa.String(20), nullable=False),
        sa.Column("profile_name", sa.String(200), nullable=True),
        sa.Column("last_inbound_at", TZ, nullable=True),
        sa.Column("next_send_at", TZ, nullable=True),
        sa.Column("tier_counted_at", TZ, nullable=True),
        _account_fk(),
        sa.PrimaryKeyConstraint("account_id", "wa_id"),
    )
    op.create_index(
        "ix_whatsapp_contacts_tier", "whatsapp_contacts", ["account_id", "tier_counted_at"]
    )
    op.create_table(
        "whatsapp_messages",
        sa.Column("wamid", sa.String(128), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("creator_id", sa.Uuid(), nullable=False),
        sa.Column("route", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("wa_id", sa.String(20), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        _account_fk(),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("wamid"),
    )
    op.create_index(
        "ix_whatsapp_messages_account_wa_id", "whatsapp_messages", ["account_id", "wa_id"]
    )
    op.create_index(op.f("ix_whatsapp_messages_lead_id"), "whatsapp_messages", ["lead_id"])
    op.create_table(
        "whatsapp_status_backlog",
        sa.Column("wamid", sa.String(128), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("item", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("received_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("wamid", "event_id"),
    )
    op.create_table(
        "whatsapp_deferred_sends",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("route", sa.String(32), nullable=False),
        sa.Column("not_before", TZ, nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("lead_id", "route"),
    )
    op.create_index("ix_whatsapp_deferred_not_before", "whatsapp_deferred_sends", ["not_before"])


def downgrade() -> None:
    for table in (
        "whatsapp_deferred_sends",
        "whatsapp_status_backlog",
        "whatsapp_messages",
        "whatsapp_contacts",
        "whatsapp_templates",
        "whatsapp_numbers",
    ):
        op.drop_table(table)
