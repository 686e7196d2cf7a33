"""Conditional GETs on the real app and database: a lead's and a DM status's answer carry
an ETag; the same ETag in If-None-Match gets 304 without a body until the DM moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import Lead
from tests.api_app import create_app
from tests.integration.conftest import running
from tests.integration.issuer import Issuer
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(settings: AllSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def _settled_lead(api: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """A phone-only lead of a creator without WhatsApp, once it has stopped moving: routed
    to `wa_link` (no sender runs here to take it further), its answers alike for a second."""
    body = {"name": "Eta", "phone": "+14155550199"}
    lead_id = str((await api.post("/api/leads", json=body, headers=headers)).json()["id"])
    urls = (f"/api/leads/{lead_id}", f"/api/dm/status/{lead_id}")
    seen: list[tuple[str, ...]] = []
    for _ in range(100):
        seen.append(tuple([(await api.get(url, headers=headers)).text for url in urls]))
        if len(seen) >= 5 and len(set(seen[-5:])) == 1 and '"wa_link"' in seen[-1][0]:
            return lead_id
        await asyncio.sleep(0.2)
    raise AssertionError(f"the lead never settled: {seen[-2:]}")


@pytest.mark.parametrize("path", ["/api/leads/{id}", "/api/dm/status/{id}"])
async def test_an_unchanged_answer_is_304_and_a_changed_one_has_a_new_etag(
    api: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
    path: str,
) -> None:
    mine = issuer.creator(creator)
    lead_id = await _settled_lead(api, mine)
    url = path.format(id=lead_id)

    first = await api.get(url, headers=mine)
    tag = first.headers["etag"]
    assert first.status_code == 200 and tag.startswith('"')
    assert first.headers["cache-control"] == "private, no-cache"

    same = await api.get(url, headers=mine | {"If-None-Match": tag})
    assert same.status_code == 304 and same.content == b""
    assert same.headers["etag"] == tag
    weak_list = await api.get(url, headers=mine | {"If-None-Match": f'"other", W/{tag}'})
    assert weak_list.status_code == 304

    async with sessions.begin() as session:
        await session.execute(
            update(Lead).where(Lead.id == UUID(lead_id)).values(dm_reason="moved")
        )
    changed = await api.get(url, headers=mine | {"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != tag


async def test_another_creator_gets_404_whatever_the_etag(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID
) -> None:
    mine = issuer.creator(creator)
    created = await api.post(
        "/api/leads", json={"name": "Eta", "phone": "+14155550199"}, headers=mine
    )
    lead_id = created.json()["id"]
    tag = (await api.get(f"/api/leads/{lead_id}", headers=mine)).headers["etag"]
    other = issuer.creator(UUID(int=7))
    answer = await api.get(f"/api/leads/{lead_id}", headers=other | {"If-None-Match": tag})
    assert answer.status_code == 404
