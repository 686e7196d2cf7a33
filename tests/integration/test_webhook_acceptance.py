"""A signed webhook is accepted with Kafka alone: while PostgreSQL is unreachable,
webhook_ingest still answers 200 and the notification waits on `webhooks.received`,
from where the resolver handles it as the account's `instagram.webhook` once the
database answers (on real Kafka and PostgreSQL)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
from collections.abc import AsyncIterator
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select

from services.webhook_ingest.app import create_app as create_ingest
from shared.contracts import topics
from shared.db.models import InstagramContact, ProcessedEvent
from tests.integration.conftest import connect_instagram, running
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

# Nothing listens on port 9: every database call fails to connect.
DEAD_DATABASE = "postgresql+asyncpg://autodm:autodm@127.0.0.1:9/autodm"


@pytest.fixture
async def ingest_without_database(settings: AllSettings) -> AsyncIterator[httpx.AsyncClient]:
    dead = settings.model_copy(update={"database_url": SecretStr(DEAD_DATABASE)})
    app = create_ingest(dead)
    # The producer only: consumers without a database would hold partitions of the shared
    # test broker's groups (the resolver is exercised by the running app below).
    broker = app.state.broker
    await broker.connect()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield client
    finally:
        await broker.stop()


@pytest.fixture
async def ingest(settings: AllSettings) -> AsyncIterator[FastAPI]:
    app = create_ingest(settings)
    async with running(app):
        yield app


def _signed(payload: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": f"sha256={digest}"}


def _message(ig_id: str, mid: str) -> dict[str, Any]:
    item = {"sender": {"id": "5550001"}, "recipient": {"id": ig_id}, "timestamp": 1_000}
    item["message"] = {"mid": mid, "text": "hi"}
    return {"object": "instagram", "entry": [{"id": ig_id, "time": 1, "messaging": [item]}]}


async def test_a_signed_webhook_is_accepted_while_postgresql_is_down(
    ingest_without_database: httpx.AsyncClient, settings: AllSettings, read_topic: Any
) -> None:
    received = await read_topic(topics.WEBHOOKS_RECEIVED)
    ig_id = str(random.randint(17_841_400_000_000_000, 17_841_499_999_999_999))
    body, headers = _signed(
        _message(ig_id, "m_while_pg_down"), settings.instagram_app_secret.get_secret_value()
    )
    post = ingest_without_database.post
    answer = await post("/webhooks/instagram", content=body, headers=headers)
    assert (answer.status_code, answer.json()) == (200, {"published": 1})
    record = await received.wait_for(lambda r: r.key == ig_id.encode())
    payload = json.loads(record.value)["payload"]
    assert payload["item"]["message"]["mid"] == "m_while_pg_down"

    whatsapp = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "metadata": {"phone_number_id": "106540352242922"},
                            "statuses": [{"id": "wamid.PGDOWN", "status": "read"}],
                        },
                    }
                ],
            }
        ],
    }
    body, headers = _signed(whatsapp, settings.whatsapp_app_secret.get_secret_value())
    answer = await post("/webhooks/whatsapp", content=body, headers=headers)
    assert (answer.status_code, answer.json()) == (200, {"published": 1})


async def test_ready_without_the_database(ingest_without_database: httpx.AsyncClient) -> None:
    # Readiness is Kafka's: a database outage must not take every replica out of service.
    ready = await ingest_without_database.get("/readyz")
    assert ready.status_code == 200, ready.text


async def test_the_resolver_handles_the_accounts_item_in_place_and_drops_unknown_accounts(
    ingest: FastAPI,
    settings: AllSettings,
    sessions: Any,
    creator: UUID,
    read_topic: Any,
) -> None:
    webhooks = await read_topic(topics.WEBHOOKS_INSTAGRAM)
    ig_id = str(random.randint(17_841_400_000_000_000, 17_841_499_999_999_999))
    stranger = str(random.randint(17_841_400_000_000_000, 17_841_499_999_999_999))
    account = await connect_instagram(sessions, settings, creator, ig_id, "acc", "token")
    secret = settings.instagram_app_secret.get_secret_value()
    transport = httpx.ASGITransport(app=ingest)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        for note in (_message(stranger, "m_stranger"), _message(ig_id, "m_ours")):
            body, headers = _signed(note, secret)
            answer = await client.post("/webhooks/instagram", content=body, headers=headers)
            assert answer.is_success
    # The account's item was handled (its writer is a contact now, its event id claimed)
    # straight from webhooks.received: no second record on webhooks.instagram (issue #20).
    ours = uuid5(NAMESPACE_URL, f"instagram:{ig_id}:message:m_ours")
    theirs = uuid5(NAMESPACE_URL, f"instagram:{stranger}:message:m_stranger")
    for _ in range(150):
        async with sessions() as session:
            contact = await session.get(InstagramContact, (account, "5550001"))
        if contact is not None:
            break
        await asyncio.sleep(0.1)
    assert contact is not None and contact.last_inbound_at is not None
    async with sessions() as session:
        claimed = set(
            await session.scalars(
                select(ProcessedEvent.event_id).where(ProcessedEvent.event_id.in_([ours, theirs]))
            )
        )
    assert claimed == {ours}
    # Whatever was published on webhooks.instagram came before the handling: read it all.
    with pytest.raises(AssertionError, match="no matching record"):
        await webhooks.wait_for(lambda _: False, timeout_s=1.0)
    assert not [r for r in webhooks.records if b"m_ours" in r.value or b"m_stranger" in r.value]
