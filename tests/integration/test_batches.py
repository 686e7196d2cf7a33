"""Batch consumption (shared.messaging.batches) on the real database: a poison record among good
ones is parked alone, duplicates in one batch count once, order within a lead holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import ConsumerRecord
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.api.http.schemas import LeadIn
from services.api.service_layer.lead_routing import RouterConfig, route_leads
from services.api.service_layer.leads import create_lead
from services.api.workers.status_projection import project_statuses
from services.webhook_ingest.inbound import handle_webhooks
from shared.contracts.events import (
    DmStatusChanged,
    DmStatusPayload,
    InstagramWebhookPayload,
    InstagramWebhookReceived,
    LeadCreated,
    LeadCreatedPayload,
    utcnow,
)
from shared.contracts.lifecycle import DmStatus, Route
from shared.contracts.route_choice import RoutingRules
from shared.db.models import Creator, InstagramContact, Lead
from shared.messaging.batches import BatchWork
from shared.messaging.unit_of_work import UnitOfWorkFactory
from tests.fake_uow import SessionWork
from tests.integration.conftest import connect_instagram
from tests.records import consumer_record
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


def _record(offset: int, value: bytes) -> ConsumerRecord[Any, Any]:
    return consumer_record(value, offset)


class _Batch:
    """What the decoder reads of faststream's message: the batch's records."""

    def __init__(self, records: tuple[ConsumerRecord[Any, Any], ...]) -> None:
        self.raw_message = records


def _status(creator: UUID, lead_id: UUID, status: DmStatus) -> DmStatusChanged:
    return DmStatusChanged(
        correlation_id="batch-test",
        creator_id=creator,
        payload=DmStatusPayload(lead_id=lead_id, status=status),
    )


async def _lead(sessions: async_sessionmaker[AsyncSession], creator: UUID) -> UUID:
    async with sessions.begin() as session:
        lead = await create_lead(
            SessionWork(session),
            LeadIn(creator_id=creator, name="Bea", phone="+14155550123"),
            "batch-test",
        )
    return lead.id


async def test_one_poison_record_is_parked_alone_and_the_rest_is_projected(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    first, second = await _lead(sessions, creator), await _lead(sessions, creator)
    sending = _status(creator, first, DmStatus.SENDING)
    events = [
        sending,
        _status(creator, uuid4(), DmStatus.SENT),  # no such lead: poison
        _status(creator, second, DmStatus.SENDING),
        sending,  # the same event twice in one batch: applied once
        _status(creator, first, DmStatus.SENT),  # after `sending` of the same lead
    ]
    records = [_record(i, e.model_dump_json().encode()) for i, e in enumerate(events)]
    records.insert(2, _record(99, b"{not json"))
    parked: list[tuple[int, str]] = []

    async def park(record: ConsumerRecord[Any, Any], exc: BaseException) -> None:
        parked.append((record.offset, type(exc).__name__))

    work = BatchWork(DmStatusChanged, UnitOfWorkFactory(sessions), project_statuses, park)
    await work.run(await work.decoder(_Batch(tuple(records))), records)

    assert sorted(parked) == [(1, "PoisonMessage"), (99, "ValidationError")]
    async with sessions() as session:
        a, b = await session.get(Lead, first), await session.get(Lead, second)
    assert a is not None and b is not None
    assert (a.dm_status, a.dm_attempts) == (DmStatus.SENT, 1)
    assert b.dm_status == DmStatus.SENDING


async def test_a_redelivered_batch_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    lead_id = await _lead(sessions, creator)
    events = [_status(creator, lead_id, DmStatus.SENDING), _status(creator, lead_id, DmStatus.SENT)]
    async with sessions.begin() as session:
        assert await project_statuses(SessionWork(session), events) == 2
    async with sessions.begin() as session:
        assert await project_statuses(SessionWork(session), events) == 0


async def _creator(sessions: async_sessionmaker[AsyncSession]) -> UUID:
    creator_id = uuid4()
    async with sessions.begin() as session:
        slug = f"c-{creator_id.hex[:12]}"
        session.add(Creator(id=creator_id, name="C", slug=slug, dm_template="Hi {name}"))
    return creator_id


async def _created(
    sessions: async_sessionmaker[AsyncSession], creator: UUID, data: dict[str, Any]
) -> LeadCreated:
    async with sessions.begin() as session:
        lead = await create_lead(
            SessionWork(session), LeadIn(creator_id=creator, **data), "route-batch"
        )
    return LeadCreated(
        correlation_id="route-batch",
        creator_id=creator,
        payload=LeadCreatedPayload(lead_id=lead.id, name=lead.name, message=""),
    )


async def test_a_batch_of_leads_of_several_creators_is_routed_with_a_few_reads(
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings: AllSettings,
) -> None:
    """The router reads creators, accounts and contacts once per batch (routing_facts):
    each lead still gets the route of its own creator's accounts and its own window."""
    warm, cold, phone_only = [await _creator(sessions) for _ in range(3)]
    warm_account = await connect_instagram(sessions, settings, warm, uuid4().hex[:16], "w", "t")
    cold_account = await connect_instagram(sessions, settings, cold, uuid4().hex[:16], "c", "t")
    wrote = datetime.now(UTC) - timedelta(hours=1)
    async with sessions.begin() as session:
        session.add(InstagramContact(account_id=warm_account, igsid="901", last_inbound_at=wrote))
    events = [
        await _created(sessions, warm, {"name": "A", "instagram": {"igsid": "901"}}),
        await _created(sessions, cold, {"name": "B", "instagram": {"username": "bee"}}),
        await _created(sessions, phone_only, {"name": "C", "phone": "+14155550123"}),
        await _created(sessions, warm, {"name": "D", "instagram": {"igsid": "902"}}),
    ]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with sessions.begin() as session:
            assert (
                await route_leads(
                    SessionWork(session), events, RouterConfig(RoutingRules()), utcnow()
                )
                == 4
            )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)

    async with sessions() as session:
        leads = [await session.get(Lead, e.payload.lead_id) for e in events]
    routes = [(lead.dm_route, lead.dm_status) for lead in leads if lead is not None]
    assert routes == [
        (Route.IG_DM, DmStatus.QUEUED),
        (Route.IG_LINK, DmStatus.AWAITING_CONTACT),
        (Route.WA_LINK, DmStatus.QUEUED),
        (Route.IG_LINK, DmStatus.AWAITING_CONTACT),  # no window for this IGSID
    ]
    assert leads[1] is not None and leads[1].dm_account_id == cold_account
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    # lead lock, creators, accounts, Instagram contacts, and the opt-out/takeover guard's
    # suppressions and takeovers (one UNION ALL): not five per lead
    assert len(reads) == 5, reads


def _message(creator: UUID, account: UUID, ig_id: str, igsid: str) -> InstagramWebhookReceived:
    return InstagramWebhookReceived(
        correlation_id="webhook-batch",
        creator_id=creator,
        payload=InstagramWebhookPayload(
            account_id=account,
            ig_account_id=ig_id,
            kind="messaging",
            field="message",
            item={
                "sender": {"id": igsid},
                "recipient": {"id": ig_id},
                "timestamp": 1_764_300_000_000,
                "message": {"mid": f"m_{uuid4().hex}", "text": "hi"},
            },
            entry_time=1_764_300_000,
        ),
    )


async def test_a_webhook_batch_claims_once_and_handles_a_repeated_item_once(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    ig_id = str(uuid4().int)[:17]
    account = await connect_instagram(sessions, settings, creator, ig_id, "shop", "t")
    first = _message(creator, account, ig_id, "801")
    second = _message(creator, account, ig_id, "802")
    async with sessions.begin() as session:
        assert await handle_webhooks(SessionWork(session), [first, second, first]) == 2
    async with sessions.begin() as session:
        assert (
            await handle_webhooks(SessionWork(session), [second, first]) == 0
        )  # a redelivered batch
    async with sessions() as session:
        contacts = [await session.get(InstagramContact, (account, i)) for i in ("801", "802")]
    assert all(c is not None and c.last_inbound_at is not None for c in contacts)
