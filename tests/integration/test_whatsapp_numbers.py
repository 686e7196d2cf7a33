"""Connecting a WhatsApp number through the API: Meta (the in-process sandbox) is asked
whether the token may use the number before anything else, so a caller without the token
cannot learn whether another creator has connected it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbox.app import create_app as create_sandbox
from sandbox.settings import SandboxSettings
from shared.db.models import Creator, SocialAccount
from shared.providers.whatsapp import WhatsAppClient
from tests.api_app import create_app as create_api
from tests.integration.conftest import running
from tests.integration.issuer import Issuer
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def sandbox(settings: AllSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_sandbox(
        SandboxSettings(
            app_id=settings.instagram_app_id,
            app_secret=settings.instagram_app_secret.get_secret_value(),
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


@pytest.fixture(scope="module")
async def api(
    settings: AllSettings, sandbox: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_api(settings)
    app.state.whatsapp_graph = WhatsAppClient(sandbox, settings.graph_api_version)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


@pytest.fixture
async def other_creator(sessions: async_sessionmaker[AsyncSession]) -> UUID:
    creator_id = uuid4()
    async with sessions.begin() as session:
        session.add(Creator(id=creator_id, name="Other", slug=f"o-{creator_id.hex[:12]}"))
    return creator_id


async def _number(sandbox: httpx.AsyncClient) -> dict[str, Any]:
    made = await sandbox.post("/_sandbox/whatsapp/numbers", json={"display_phone_number": "+1555"})
    made.raise_for_status()
    return dict(made.json())


def _body(phone_number_id: str, token: str) -> dict[str, str]:
    return {"phone_number_id": phone_number_id, "access_token": token}


async def test_the_token_is_checked_before_anyone_learns_the_number_is_taken(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    other_creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    number = await _number(sandbox)
    mine = await api.post(
        "/api/whatsapp/numbers",
        json=_body(number["phone_number_id"], number["access_token"]),
        headers=issuer.creator(creator),
    )
    assert mine.status_code == 201, mine.text
    assert mine.json()["display_phone_number"] == "+1555"  # Meta's, when none is given

    # Somebody without the number's token: the same answer for a taken number as for a free
    # one, and never "connected to another creator".
    probing = issuer.creator(other_creator)
    free = await _number(sandbox)
    answers = [
        await api.post("/api/whatsapp/numbers", json=_body(n, "guessed"), headers=probing)
        for n in (number["phone_number_id"], free["phone_number_id"])
    ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert answer.json()["type"] == "https://autodm.dev/problems/whatsapp-token-refused"
        assert "another creator" not in answer.text
    assert answers[0].json()["detail"].replace(number["phone_number_id"], "N") == answers[1].json()[
        "detail"
    ].replace(free["phone_number_id"], "N")

    # Whoever holds the token may be told where the number is.
    holder = await api.post(
        "/api/whatsapp/numbers",
        json=_body(number["phone_number_id"], number["access_token"]),
        headers=probing,
    )
    assert holder.status_code == 409, holder.text

    async with sessions() as session:
        rows = await session.scalars(
            select(SocialAccount).where(SocialAccount.external_id == number["phone_number_id"])
        )
        assert [a.creator_id for a in rows] == [creator]
        none = await session.scalar(
            select(SocialAccount).where(SocialAccount.external_id == free["phone_number_id"])
        )
        assert none is None
