"""The lead ingress on the real stack: a separate producer publishes `lead.submitted` to
Kafka (no HTTP), and the lead gets its DM; the same event twice makes one lead; a producer
publishing for a creator it may not gets nothing created and a DLQ entry saying why."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar
from uuid import UUID, uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from demo import DemoCreator, settings_from, user_messages
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from stack import Stack

from shared.contracts.events import utcnow
from shared.db.models import DeadLetter, Lead
from shared.db.session import make_engine, make_sessionmaker
from tests.e2e.conftest import INGRESS_PARTNER, INGRESS_PRODUCER
from tests.e2e.test_backbone import sandbox_messages, settle

pytestmark = pytest.mark.e2e
T = TypeVar("T")


@pytest.fixture
async def sessions(stack: Stack) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(settings_from(stack.env))
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def producer(stack: Stack) -> AsyncIterator[AIOKafkaProducer]:
    # What another team's service does (README, "The lead ingress"): a plain aiokafka producer.
    kafka = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{stack.ports.kafka}", acks="all")
    await kafka.start()
    yield kafka
    await kafka.stop()


def _submitted(creator: UUID, igsid: str, event_id: UUID, correlation: str) -> bytes:
    lead = {
        "name": "Ingrid",
        "message": "saw your post",
        "instagram": {
            "username": "ingrid.i",
            "igsid": igsid,
            "last_inbound_at": utcnow().isoformat(),
        },
    }
    event = {
        "id": str(event_id),
        "type": "lead.submitted",
        "version": 1,
        "correlation_id": correlation,
        "creator_id": str(creator),
        "payload": lead,
    }
    return json.dumps(event).encode()


async def _publish(kafka: AIOKafkaProducer, creator: UUID, value: bytes, producer: str) -> None:
    headers = [("x-autodm-producer", producer.encode())]
    await kafka.send_and_wait("leads.submitted", value, key=str(creator).encode(), headers=headers)


async def _eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 20
) -> T:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"never saw {what}")


async def _leads_of(sessions: async_sessionmaker[AsyncSession], creator: UUID, igsid: str) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).where(Lead.creator_id == creator, Lead.igsid == igsid)
        )
    return int(count or 0)


async def test_a_published_lead_gets_its_dm_once_however_often_it_is_published(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    producer: AIOKafkaProducer,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    igsid = await user_messages(sandbox, creator, "ingrid.i")
    value = _submitted(creator.creator_id, igsid, uuid4(), f"crm-{uuid4().hex[:8]}")
    await _publish(producer, creator.creator_id, value, INGRESS_PRODUCER)
    await _publish(producer, creator.creator_id, value, INGRESS_PRODUCER)  # re-published

    async def lead_id() -> str | None:
        async with sessions() as session:
            found = await session.scalar(
                select(Lead.id).where(Lead.creator_id == creator.creator_id, Lead.igsid == igsid)
            )
        return str(found) if found else None

    lead = await settle(api, await _eventually(lead_id, "the lead"), "sent")
    assert lead["dm"]["route"] == "ig_dm"
    await asyncio.sleep(2)  # time for a second lead, were the re-published event to make one
    assert await _leads_of(sessions, creator.creator_id, igsid) == 1
    texts = [m["text"] for m in await sandbox_messages(sandbox, creator)]
    assert texts == ["Hi Ingrid! Thanks for your interest, here is the guide."]


async def test_a_producer_publishing_for_another_creator_makes_nothing_and_is_parked(
    creator: DemoCreator,
    producer: AIOKafkaProducer,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    igsid = "9" + uuid4().hex[:12].translate(str.maketrans("abcdef", "123456"))
    event_id = uuid4()
    value = _submitted(creator.creator_id, igsid, event_id, "partner-overreach")
    await _publish(producer, creator.creator_id, value, INGRESS_PARTNER)

    async def parked() -> DeadLetter | None:
        async with sessions() as session:
            rows = await session.scalars(
                select(DeadLetter).where(DeadLetter.original_topic == "leads.submitted")
            )
            return next((d for d in rows if str(event_id) in d.payload.decode()), None)

    entry = await _eventually(parked, "the DLQ entry")
    assert entry.reason == "producer_refused"
    assert entry.detail is not None
    assert INGRESS_PARTNER in entry.detail and str(creator.creator_id) in entry.detail
    assert await _leads_of(sessions, creator.creator_id, igsid) == 0
