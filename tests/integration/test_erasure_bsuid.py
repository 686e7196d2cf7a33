"""Data deletion reaches a WhatsApp contact known only by its business-scoped user id: a
username user who never showed a phone (issue #19) is found through their leads' BSUID."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.webhook_ingest.erasure import erase_subject
from shared.db.models import Lead, SocialAccount, WhatsAppContact

pytestmark = pytest.mark.integration


async def test_a_contact_keyed_by_bsuid_is_erased_with_the_person(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    now = datetime.now(UTC)
    igsid = f"17{secrets.randbelow(10**14):014d}"
    bsuid = f"US.{secrets.randbelow(10**19):019d}"
    account_id = uuid4()
    async with sessions.begin() as session:
        session.add(
            SocialAccount(
                id=account_id,
                creator_id=creator,
                provider="whatsapp",
                external_id=f"pn{secrets.randbelow(10**9)}",
                username="+15550001111",
                status="connected",
            )
        )
        await session.flush()
        session.add_all(
            [
                Lead(
                    id=uuid4(),
                    creator_id=creator,
                    name="Ana",
                    message="",
                    ref=secrets.token_urlsafe(12),
                    igsid=igsid,
                    whatsapp_user_id=bsuid,
                    dm_status="sent",
                    created_at=now,
                    updated_at=now,
                ),
                WhatsAppContact(account_id=account_id, wa_id=bsuid, user_id=bsuid),
            ]
        )
    async with sessions.begin() as session:
        summary = await erase_subject(session, igsid)
    assert summary["whatsapp_contacts"] == 1
    async with sessions() as session:
        left = await session.scalars(select(WhatsAppContact).where(WhatsAppContact.wa_id == bsuid))
        assert left.all() == []
