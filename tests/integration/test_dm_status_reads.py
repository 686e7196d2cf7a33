"""What a DM's status answer reads (POST /api/dm/send answers with it for every new lead):
a DM still on its way has its retry verdict from its status alone, and one that failed reads
the routing facts once for both its route now and the lead's last message."""

from __future__ import annotations

import random
from uuid import UUID, uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.api.http.schemas import LeadIn
from services.api.service_layer.dm_requests import RetryContext, dm_status
from services.api.service_layer.leads import create_lead
from services.api.service_layer.principals import Principal, Role
from shared.contracts.events import utcnow
from shared.contracts.lifecycle import DmStatus
from shared.contracts.route_choice import RoutingRules
from shared.db.models import DmLogEntry, Lead
from tests.fake_uow import SessionWork
from tests.integration.conftest import connect_instagram
from tests.settings import AllSettings
from tests.sql_statements import selects_from, statements

pytestmark = pytest.mark.integration


async def _new_lead(sessions: async_sessionmaker[AsyncSession], creator: UUID) -> UUID:
    data = LeadIn.model_validate(
        {"creator_id": creator, "name": "Ana", "instagram": {"username": "ana", "igsid": "77"}}
    )
    async with sessions.begin() as session:
        lead = await create_lead(SessionWork(session), data, "status-reads-test")
    return lead.id


async def _status_reads(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine, creator: UUID, lead_id: UUID
) -> tuple[bool, str, list[str]]:
    """The retry verdict of the lead's status answer, and the statements it took."""
    principal = Principal("creator", Role.CREATOR, creator)
    async with sessions() as session:
        with statements(engine) as sent:
            out = await dm_status(
                session, principal, lead_id, RetryContext(RoutingRules(), utcnow())
            )
    return out.retry.allowed, out.retry.detail, sent


async def test_a_dm_on_its_way_is_answered_without_reading_the_routing_facts(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine, creator: UUID
) -> None:
    lead_id = await _new_lead(sessions, creator)
    allowed, detail, sent = await _status_reads(sessions, engine, creator, lead_id)
    assert (allowed, detail) == (False, "the DM is still on its way")
    assert selects_from("creators", sent) == []  # the routing facts begin with the creator
    assert selects_from("dm_sends", sent) == []


async def test_a_failed_dm_reads_the_routing_facts_once_for_its_verdict(
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings: AllSettings,
    creator: UUID,
) -> None:
    ig_id = str(random.randint(17_841_400_000_000_000, 17_841_499_999_999_999))
    await connect_instagram(sessions, settings, creator, ig_id, f"sr{ig_id[-6:]}", "t")
    lead_id = await _new_lead(sessions, creator)
    async with sessions.begin() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        lead.dm_status = DmStatus.FAILED
        session.add(
            DmLogEntry(
                lead_id=lead.id,
                event_id=uuid4(),
                status=DmStatus.FAILED,
                attempt=lead.dm_attempt,
                detail={"error": {"error_class": "transient"}},
                occurred_at=utcnow(),
            )
        )
    allowed, detail, sent = await _status_reads(sessions, engine, creator, lead_id)
    assert (allowed, detail) == (True, "the provider was unavailable; a new attempt may succeed")
    assert len(selects_from("creators", sent)) == 1
