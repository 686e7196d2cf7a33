"""A signed webhook is accepted with Kafka alone: while PostgreSQL is unreachable,
webhook_ingest still answers 200 and the notification waits on `webhooks.received`,
from where the resolver turns it into the account's `instagram.webhook` once the
database answers (on real Kafka and PostgreSQL)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from services.webhook_ingest.app import create_app as create_ingest
from shared.contracts import topics
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


async def test_the_resolver_publishes_the_accounts_event_and_drops_unknown_accounts(
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
    record = await webhooks.wait_for(lambda r: r.key == str(account).encode())
    event = json.loads(record.value)
    assert (event["type"], event["creator_id"]) == ("instagram.webhook", str(creator))
    assert event["payload"]["item"]["message"]["mid"] == "m_ours"
    assert not [r for r in webhooks.records if b"m_stranger" in r.value]
