"""GET /app/events on the real app and database: the pages' status stream, signed in by the
session cookie. It starts at the cursor the page was read at (`since`), so what happened
between the page and the stream is not lost; a creator hears only their own DMs, an admin
every creator's; without a session there is no stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.auth import Principal, Role
from services.api.http.status_stream import start_cursor
from services.api.http.web.web_sessions import WebSessions
from shared.db.models import Creator
from shared.messaging.unit_of_work import UnitOfWorkFactory
from tests.api_app import create_app
from tests.integration.issuer import Issuer
from tests.integration.served import free_port, served
from tests.settings import AllSettings
from tests.sse import sse_events

pytestmark = pytest.mark.integration


@pytest.fixture
def app(settings: AllSettings) -> FastAPI:
    fast = {"status_stream_poll_s": 0.1, "status_stream_heartbeat_s": 0.5}
    return create_app(settings.model_copy(update=fast))


@pytest.fixture
def app_url(app: FastAPI) -> Iterator[str]:
    with served(app, free_port()) as url:
        yield url


async def _cookie(app: FastAPI, sessions: async_sessionmaker[AsyncSession], user: Principal) -> Any:
    token = await WebSessions(UnitOfWorkFactory(sessions)).start(user, 3600)
    return {app.state.web.security.session_cookie: token}


async def _page_events(url: str, cookies: Any, since: str, idle_s: float) -> list[dict[str, Any]]:
    """The events' data of /app/events?since=... until none came for `idle_s`."""
    async with httpx.AsyncClient(base_url=url, cookies=cookies, timeout=30) as client:
        events = await sse_events(client, "/app/events", idle_s=idle_s, params={"since": since})
    return [e["data"] for e in events]


async def _post_lead(url: str, headers: dict[str, str], name: str) -> str:
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        answer = await client.post("/api/leads", json={"name": name, "phone": "+14155550177"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def _other_creator(sessions: async_sessionmaker[AsyncSession]) -> UUID:
    other = uuid4()
    async with sessions.begin() as session:
        session.add(Creator(id=other, name="O", slug=f"o-{other.hex[:12]}", dm_template="Hi"))
    return other


async def test_a_creators_page_stream_has_their_changes_since_the_page(
    app: FastAPI,
    app_url: str,
    issuer: Issuer,
    creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    other = await _other_creator(sessions)
    async with sessions() as session:
        since = str(await start_cursor(session))  # the page is read here
    # Before the page's stream opens: these must not be lost.
    mine = {await _post_lead(app_url, issuer.creator(creator), "Ann")}
    theirs = {await _post_lead(app_url, issuer.creator(other), "Zed")}

    cookie = await _cookie(app, sessions, Principal("c", Role.CREATOR, creator))
    events = await _page_events(app_url, cookie, since, idle_s=2.5)
    assert {e["lead_id"] for e in events} == mine

    admin = await _cookie(app, sessions, Principal("a", Role.ADMIN))
    everyone = {e["lead_id"] for e in await _page_events(app_url, admin, since, idle_s=2.5)}
    assert mine | theirs <= everyone  # the overview hears every creator


async def test_no_session_no_stream(app: FastAPI, app_url: str) -> None:
    made_up = {app.state.web.security.session_cookie: "made-up"}
    async with httpx.AsyncClient(base_url=app_url, cookies=made_up) as client:
        answer = await client.get("/app/events")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login")
