"""GET/PUT /api/settings on real Kafka/PostgreSQL: what the settings page edits, for a
frontend of its own. The saved template is the next DM's text; bad input is a field error
that changes nothing; a creator reaches only their own settings."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts import topics
from shared.contracts.events import utcnow
from shared.db.models import SendingPause
from shared.delivery.kill_switch import pause_scope
from tests.api_app import create_app
from tests.integration.conftest import connect_instagram, running
from tests.integration.issuer import Issuer
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

NEW = {
    "dm_template": "  Hey {name}! You said: {message}  ",
    "route_order": "whatsapp_first",
    "dm_pace_per_h": 120,
    "paused": True,
    "comment_trigger": "keywords",
    "comment_keywords": ["Guide", " send   it ", "guide"],
}


@pytest.fixture
async def api(settings: AllSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def test_a_creator_reads_and_replaces_their_settings(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID
) -> None:
    mine = issuer.creator(creator)
    before = (await api.get("/api/settings", headers=mine)).json()
    assert before == {
        "creator_id": str(creator),
        "dm_template": "Hi {name}, here is the guide!",
        "route_order": "instagram_first",
        "dm_pace_per_h": None,
        "paused": False,
        "comment_trigger": "off",
        "comment_keywords": [],
        "source_templates": {},
        "paused_by_operator": None,
    }

    saved = await api.put("/api/settings", json=NEW, headers=mine)

    assert saved.status_code == 200, saved.text
    expected = NEW | {
        "dm_template": "Hey {name}! You said: {message}",
        "comment_keywords": ["Guide", "send it"],
        "creator_id": str(creator),
        "source_templates": {},
        "paused_by_operator": None,
    }
    assert saved.json() == expected
    assert (await api.get("/api/settings", headers=mine)).json() == expected
    resumed = await api.put("/api/settings", json=NEW | {"paused": False}, headers=mine)
    assert resumed.json()["paused"] is False


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"comment_keywords": []}, "comment_keywords"),  # `keywords` needs a keyword
        ({"dm_pace_per_h": 0}, "dm_pace_per_h"),
        ({"dm_pace_per_h": 3601}, "dm_pace_per_h"),
        ({"dm_template": "   "}, "dm_template"),
        ({"dm_template": "é" * 501}, "dm_template"),  # 1,002 bytes: Meta's limit is 1,000
        ({"dm_template": "Hi {first_name}!"}, "dm_template"),  # would reach leads literally
        ({"comment_keywords": [f"k{i}" for i in range(21)]}, "comment_keywords"),
        ({"comment_trigger": "sometimes"}, "comment_trigger"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_bad_settings_are_field_errors_and_change_nothing(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID, change: dict[str, Any], field: str
) -> None:
    mine = issuer.creator(creator)
    before = (await api.get("/api/settings", headers=mine)).json()
    answer = await api.put("/api/settings", json=NEW | change, headers=mine)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert field in {error["field"] for error in answer.json()["errors"]}
    assert (await api.get("/api/settings", headers=mine)).json() == before


async def test_an_unknown_placeholder_is_refused_naming_the_ones_that_exist(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID
) -> None:
    bad = NEW | {"dm_template": "Hi {first_name}, see {link}"}
    answer = await api.put("/api/settings", json=bad, headers=issuer.creator(creator))
    assert answer.status_code == 422
    [error] = [e for e in answer.json()["errors"] if e["field"] == "dm_template"]
    for named in ("{first_name}", "{link}", "{name}", "{message}"):
        assert named in error["message"], error


async def test_a_creator_reaches_only_their_own_settings(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID
) -> None:
    other = {"creator_id": str(uuid4())}
    mine = issuer.creator(creator)
    assert (await api.get("/api/settings", headers=mine, params=other)).status_code == 403
    assert (await api.put("/api/settings", json=NEW, headers=mine, params=other)).status_code == 403
    assert (await api.get("/api/settings")).status_code == 401
    # Admins and services name the creator; an unknown one is 404.
    assert (await api.get("/api/settings", headers=issuer.admin())).status_code == 422
    for_creator = {"creator_id": str(creator)}
    admin = await api.get("/api/settings", headers=issuer.admin(), params=for_creator)
    assert admin.json()["creator_id"] == str(creator)
    unknown = await api.get("/api/settings", headers=issuer.service(), params=other)
    assert unknown.status_code == 404


async def test_the_saved_template_is_the_next_dms_text_and_an_operator_pause_shows(
    api: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    settings: AllSettings,
    sessions: async_sessionmaker[AsyncSession],
    read_topic: Any,
) -> None:
    ig_user = str(secrets.randbelow(10**16) + 17841400000000000)
    account = await connect_instagram(sessions, settings, creator, ig_user, "shop", "tok")
    mine = issuer.creator(creator)
    template = NEW | {"paused": False, "route_order": "instagram_first"}
    assert (await api.put("/api/settings", json=template, headers=mine)).status_code == 200
    requests = await read_topic(topics.DM_REQUESTED_INSTAGRAM)
    warm = {"igsid": "5550002", "last_inbound_at": (utcnow() - timedelta(hours=1)).isoformat()}
    lead = await api.post(
        "/api/leads", json={"name": "Ann", "message": "guide?", "instagram": warm}, headers=mine
    )
    lead_id = lead.json()["id"]
    request = await requests.wait_for(
        lambda r: json.loads(r.value)["payload"]["lead_id"] == lead_id
    )
    assert json.loads(request.value)["payload"]["text"] == "Hey Ann! You said: guide?"

    async with sessions.begin() as session:
        session.add(SendingPause(scope=pause_scope(account), reason="maintenance", paused_by="ops"))
    shown = (await api.get("/api/settings", headers=mine)).json()
    assert (shown["paused"], shown["paused_by_operator"]) == (False, "maintenance")
    # The creator's switch does not lift an operator's pause.
    await api.put("/api/settings", json=template | {"paused": True}, headers=mine)
    await api.put("/api/settings", json=template, headers=mine)
    assert (await api.get("/api/settings", headers=mine)).json()[
        "paused_by_operator"
    ] == "maintenance"
    async with sessions.begin() as session:
        await session.delete(await session.get(SendingPause, pause_scope(account)))
