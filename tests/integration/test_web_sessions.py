"""Web sessions on real PostgreSQL: a session is who signed in until sign-out or expiry,
a new sign-in replaces the browser's old session, and housekeeping drops expired rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.auth import Principal, Role
from services.api.http.web.web_sessions import WebSessions, token_hash
from services.api.workers.housekeeping import Retention, api_sweeps
from shared.db.models import WebSession
from shared.db.retention import sweep_all
from shared.messaging.unit_of_work import UnitOfWorkFactory

pytestmark = pytest.mark.integration


async def test_a_session_lasts_until_sign_out(sessions: async_sessionmaker[AsyncSession]) -> None:
    store = WebSessions(UnitOfWorkFactory(sessions))
    user = Principal("web-user", Role.CREATOR, uuid4())
    token = await store.start(user, 3600)
    assert await store.user(token) == user
    async with sessions() as db:  # only the token's hash is stored
        assert await db.get(WebSession, token) is None
        assert await db.get(WebSession, token_hash(token)) is not None
    assert await store.user(token + "x") is None

    await store.end(token)
    assert await store.user(token) is None


async def test_a_new_sign_in_replaces_the_old_session(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = WebSessions(UnitOfWorkFactory(sessions))
    old = await store.start(Principal("a", Role.ADMIN), 3600)
    new = await store.start(Principal("a", Role.ADMIN), 3600, replacing=old)
    assert new != old
    assert await store.user(old) is None
    assert await store.user(new) == Principal("a", Role.ADMIN)


async def test_an_expired_session_is_refused_and_swept(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = WebSessions(UnitOfWorkFactory(sessions))
    expired = await store.start(Principal("late", Role.CREATOR, uuid4()), 1)
    live = await store.start(Principal("live", Role.CREATOR, uuid4()), 3600)
    async with sessions.begin() as db:
        row = await db.get(WebSession, token_hash(expired))
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    assert await store.user(expired) is None

    sweeps = api_sweeps(Retention(timedelta(hours=1), timedelta(hours=1), timedelta(hours=1)))
    assert (await sweep_all(sessions, sweeps, datetime.now(UTC)))["web_sessions"] >= 1
    async with sessions() as db:
        left = set(
            await db.scalars(
                select(WebSession.token_hash).where(
                    WebSession.token_hash.in_([token_hash(expired), token_hash(live)])
                )
            )
        )
    assert left == {token_hash(live)}
