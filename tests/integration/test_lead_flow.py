"""POST /api/leads -> outbox -> leads.created -> router -> dm.requested, on real Kafka/PG."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts import topics
from shared.db.models import Lead, OutboxRecord
from tests.api_app import create_app
from tests.integration.conftest import connect_instagram, running
from tests.integration.issuer import Issuer
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(settings: AllSettings, issuer: Issuer) -> AsyncIterator[httpx.AsyncClient]:
    # A service caller: it may name any creator_id, as these tests do.
    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers=issuer.service()
        ) as client:
            yield client


def _ig_id() -> str:
    return str(secrets.randbelow(10**16) + 17841400000000000)


def _value(record: Any) -> dict[str, Any]:
    return json.loads(record.value)  # type: ignore[no-any-return]


async def test_malformed_lead_is_rejected_with_field_errors_and_nothing_is_stored(
    api: httpx.AsyncClient, creator: UUID, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # This creator's events only: leftovers of earlier tests may still be relayed meanwhile.
    of_creator = OutboxRecord.headers["creator-id"].astext == str(creator)
    async with sessions() as session:
        outbox_before = await session.scalar(select(func.count()).where(of_creator))
    response = await api.post(
        "/api/leads",
        json={"creator_id": str(creator), "name": "", "phone": "call me", "surprise": 1},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"name", "phone", "surprise"} <= fields
    async with sessions() as session:
        assert await session.scalar(select(func.count()).where(Lead.creator_id == creator)) == 0
        assert await session.scalar(select(func.count()).where(of_creator)) == outbox_before


async def test_lead_without_any_contact_is_rejected(api: httpx.AsyncClient, creator: UUID) -> None:
    response = await api.post("/api/leads", json={"creator_id": str(creator), "name": "Jo"})
    assert response.status_code == 422
    assert "Instagram handle" in response.text


async def test_unknown_creator_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/leads",
        json={
            "creator_id": "00000000-0000-0000-0000-000000000000",
            "name": "Jo",
            "phone": "+14155550100",
        },
    )
    assert response.status_code == 404
    assert response.json()["type"].endswith("/not-found")


async def test_warm_instagram_lead_is_requested_as_a_dm_by_igsid(
    api: httpx.AsyncClient,
    creator: UUID,
    settings: AllSettings,
    sessions: async_sessionmaker[AsyncSession],
    read_topic: Any,
) -> None:
    account = await connect_instagram(sessions, settings, creator, _ig_id(), "shop", "tok")
    requests = await read_topic(topics.DM_REQUESTED_INSTAGRAM)
    created = await read_topic(topics.LEADS_CREATED)
    recent = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    response = await api.post(
        "/api/leads",
        json={
            "creator_id": str(creator),
            "name": "Ann",
            "instagram": {"username": "ann", "igsid": "5550001", "last_inbound_at": recent},
        },
    )
    assert response.status_code == 201, response.text
    lead_id = response.json()["id"]
    assert response.headers["location"] == f"/api/leads/{lead_id}"

    event = await created.wait_for(lambda r: _value(r)["payload"]["lead_id"] == lead_id)
    assert event.key == str(creator).encode()
    assert _value(event)["type"] == "lead.created"

    request = await requests.wait_for(lambda r: _value(r)["payload"]["lead_id"] == lead_id)
    body = _value(request)
    assert request.key == str(account).encode()  # keyed by sending account: one owner each
    assert body["payload"]["route"] == "ig_dm"
    assert body["payload"]["recipient"] == {
        "igsid": "5550001",
        "comment_id": None,
        "phone": None,
        "whatsapp_user_id": None,
    }
    assert body["payload"]["text"] == "Hi Ann, here is the guide!"
    assert body["correlation_id"] == response.headers["x-correlation-id"]


async def test_cold_instagram_lead_waits_with_an_ig_me_link(
    api: httpx.AsyncClient,
    creator: UUID,
    settings: AllSettings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await connect_instagram(sessions, settings, creator, _ig_id(), "shop2", "tok")
    response = await api.post(
        "/api/leads",
        json={"creator_id": str(creator), "name": "Bo", "instagram": {"username": "bo"}},
    )
    lead_id = response.json()["id"]
    lead = await _wait_status(api, lead_id, "awaiting_contact")
    async with sessions() as session:
        ref = (await session.get(Lead, UUID(lead_id))).ref  # type: ignore[union-attr]
    assert lead["dm"]["link"] == f"https://ig.me/m/shop2?ref={ref}"
    assert lead["dm"]["route"] == "ig_link"
    assert [e["status"] for e in lead["dm"]["log"]] == ["queued", "awaiting_contact"]


async def _wait_status(api: httpx.AsyncClient, lead_id: str, status: str) -> dict[str, Any]:
    import asyncio

    for _ in range(100):
        lead: dict[str, Any] = (await api.get(f"/api/leads/{lead_id}")).json()
        if lead["dm"]["status"] == status:
            return lead
        await asyncio.sleep(0.1)
    raise AssertionError(f"lead {lead_id} stuck at {lead['dm']['status']}, wanted {status}")
