"""WhatsApp contacts identified by business-scoped user id (BSUID) first, phone second

Meta identifies every WhatsApp user to a business by a BSUID and may omit the phone number
of a username user (issue 19). A contact keeps its key (`wa_id`: the phone of contacts
known before, the BSUID of new ones) for life, so its window, pacing and history survive
an identity change; `user_id` and `phone` are what it is matched by.

Revision ID: 0030_whatsapp_bsuid
Revises: 0029_api_rate_limits
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030_whatsapp_bsuid"
down_revision: str | Sequence[str] | None = "0029_api_rate_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A BSUID is "CC." plus up to 128 alphanumerics (a parent one has ".ENT." in it).
KEY = sa.String(160)


def upgrade() -> None:
    for table in ("whatsapp_contacts", "whatsapp_messages", "whatsapp_deferred_sends"):
        op.alter_column(table, "wa_id", type_=KEY, existing_type=sa.String(20))
    op.add_column("whatsapp_contacts", sa.Column("user_id", KEY, nullable=True))
    op.add_column("whatsapp_contacts", sa.Column("phone", sa.String(20), nullable=True))
    op.add_column("whatsapp_contacts", sa.Column("username", sa.String(100), nullable=True))
    op.add_column("whatsapp_contacts", sa.Column("parent_user_id", KEY, nullable=True))
    # Every contact so far was keyed by its phone number.
    op.execute("UPDATE whatsapp_contacts SET phone = wa_id")
    op.create_index(
        "uq_whatsapp_contacts_user_id",
        "whatsapp_contacts",
        ["account_id", "user_id"],
        unique=True,
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )
    op.create_index(
        "uq_whatsapp_contacts_phone",
        "whatsapp_contacts",
        ["account_id", "phone"],
        unique=True,
        postgresql_where=sa.text("phone IS NOT NULL"),
    )
    op.add_column("leads", sa.Column("whatsapp_user_id", KEY, nullable=True))


def downgrade() -> None:
    op.drop_column("leads", "whatsapp_user_id")
    op.drop_index("uq_whatsapp_contacts_phone", table_name="whatsapp_contacts")
    op.drop_index("uq_whatsapp_contacts_user_id", table_name="whatsapp_contacts")
    for column in ("parent_user_id", "username", "phone", "user_id"):
        op.drop_column("whatsapp_contacts", column)
    # Contacts known by BSUID alone have no phone key to go back to.
    op.execute("DELETE FROM whatsapp_contacts WHERE length(wa_id) > 20")
    op.execute("DELETE FROM whatsapp_deferred_sends WHERE length(wa_id) > 20")
    op.execute("UPDATE whatsapp_messages SET wa_id = '' WHERE length(wa_id) > 20")
    for table in ("whatsapp_contacts", "whatsapp_messages", "whatsapp_deferred_sends"):
        op.alter_column(table, "wa_id", type_=sa.String(20), existing_type=KEY)
