"""A malformed record on each consumed topic lands in the DLQ with its reason and origin,
and the next good record on the same partition is still processed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.schemas import LeadIn
from services.api.service_layer.leads import create_lead
from services.instagram_sender.app import create_app as instagram_app
from services.whatsapp_sender.app import create_app as whatsapp_app
from shared.contracts import topics
from shared.contracts.events import (
    DmRequested,
    DmRequestedPayload,
    DmStatusChanged,
    DmStatusPayload,
    Envelope,
    Recipient,
)
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.db.models import Lead
from shared.messaging.broker import event_headers
from tests.api_app import create_app as api_app
from tests.fake_uow import SessionWork
from tests.integration.conftest import running
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

MALFORMED = [
    b"{not json",
    b'{"type": "lead.created", "version": 1}',
    "\udcff".encode(errors="surrogatepass"),
]


@pytest.fixture
async def services(settings: AllSettings) -> AsyncIterator[None]:
    apps = [api_app(settings), instagram_app(settings), whatsapp_app(settings)]
    async with running(apps[0]), running(apps[1]), running(apps[2]):
        yield


async def _send(
    producer: AIOKafkaProducer, topic: str, key: str, value: bytes, event: Envelope | None = None
) -> None:
    headers = [(k, v.encode()) for k, v in event_headers(event).items()] if event else []
    await producer.send_and_wait(topic, value, key=key.encode(), headers=headers)


async def _new_lead(sessions: async_sessionmaker[AsyncSession], creator: UUID, phone: str) -> UUID:
    async with sessions.begin() as session:
        lead = await create_lead(
            SessionWork(session), LeadIn(creator_id=creator, name="Dee", phone=phone), "corr-dlq"
        )
    return lead.id


@pytest.mark.parametrize("poison", MALFORMED, ids=["not-json", "wrong-shape", "not-utf8"])
async def test_poison_on_every_consumed_topic_is_parked_and_the_partition_moves_on(
    services: None,
    producer: AIOKafkaProducer,
    read_topic: Any,
    creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
    poison: bytes,
) -> None:
    dlq = await read_topic(topics.DLQ)
    statuses = await read_topic(topics.DM_STATUS)
    lead_id = await _new_lead(sessions, creator, "+14155550123")

    # dm.status: poison, then a good status for the same lead (same key, same partition).
    good_status = DmStatusChanged(
        correlation_id="c",
        creator_id=creator,
        payload=DmStatusPayload(lead_id=lead_id, status=DmStatus.SKIPPED, reason="test"),
    )
    await _send(producer, topics.DM_STATUS, str(lead_id), poison)
    await _send(
        producer,
        topics.DM_STATUS,
        str(lead_id),
        good_status.model_dump_json().encode(),
        good_status,
    )

    # dm.requested.*: poison, then a good request on the same key.
    account = str(uuid4())
    wa_request = _request(creator, lead_id, Route.WA_LINK, None, Recipient(phone="+14155550123"))
    ig_request = _request(creator, lead_id, Route.IG_DM, UUID(account), Recipient(igsid="1"))
    for topic, request in (
        (topics.DM_REQUESTED_WHATSAPP, wa_request),
        (topics.DM_REQUESTED_INSTAGRAM, ig_request),
    ):
        await _send(producer, topic, account, poison)
        await _send(producer, topic, account, request.model_dump_json().encode(), request)

    # leads.created: poison keyed like the relay's records (creator id) before the real event.
    await _send(producer, topics.LEADS_CREATED, str(creator), poison)

    for topic in (
        topics.DM_STATUS,
        topics.DM_REQUESTED_WHATSAPP,
        topics.DM_REQUESTED_INSTAGRAM,
        topics.LEADS_CREATED,
    ):
        parked = await dlq.wait_for(
            lambda r, t=topic: (
                dict(r.headers).get("x-original-topic") == t.encode() and r.value == poison
            )
        )
        headers = {k: v.decode() for k, v in parked.headers}
        assert headers["x-error-reason"] in {"invalid_contract", "undecodable"}
        assert headers["x-original-partition"].isdigit() and headers["x-original-offset"].isdigit()
        assert headers["x-consumer"]
        assert headers["x-error-detail"]

    # The good records behind the poison were handled.
    await statuses.wait_for(lambda r: _is(r, lead_id, "link_ready"))
    await statuses.wait_for(lambda r: _is(r, lead_id, "skipped") and b"not connected" in r.value)
    await _wait_lead(sessions, lead_id, lambda lead: lead.dm_route == "wa_link")


def _request(
    creator: UUID, lead_id: UUID, route: Route, account: UUID | None, recipient: Recipient
) -> DmRequested:
    provider = route.provider
    assert provider is not None
    return DmRequested(
        correlation_id="c",
        creator_id=creator,
        payload=DmRequestedPayload(
            lead_id=lead_id,
            route=route,
            provider=Provider(provider),
            account_id=account,
            recipient=recipient,
            text="hello",
        ),
    )


def _is(record: Any, lead_id: UUID, status: str) -> bool:
    try:
        payload = json.loads(record.value)["payload"]
    except (ValueError, KeyError):
        return False  # the poison itself
    return bool(payload["lead_id"] == str(lead_id) and payload["status"] == status)


async def _wait_lead(sessions: async_sessionmaker[AsyncSession], lead_id: UUID, check: Any) -> None:
    import asyncio

    for _ in range(100):
        async with sessions() as session:
            lead = await session.get(Lead, lead_id)
            if lead is not None and check(lead):
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"lead {lead_id} never reached the expected state")
