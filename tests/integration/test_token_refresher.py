"""The token refresher on real PostgreSQL against the sandbox's token rules (in-process):
only eligible tokens, never twice with two replicas, 190 -> reconnect, key rotation."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbox.app import create_app as create_sandbox
from sandbox.settings import SandboxSettings
from services.token_refresher.refreshing import RefresherDeps, RefreshPolicy, refresh_due
from services.token_refresher.rotation import reencrypt_tokens
from shared.crypto import TokenCipher
from shared.db.models import OutboxRecord, SocialAccount
from shared.events import utcnow
from shared.providers.instagram_auth import AppCredentials, InstagramAuthClient
from shared.settings import Settings
from tests.integration.conftest import connect_instagram

pytestmark = pytest.mark.integration

DAY = 24 * 3600


@pytest.fixture
async def sandbox(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_sandbox(
        SandboxSettings(app_secret=settings.instagram_app_secret.get_secret_value())
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


def _deps(
    settings: Settings, sandbox: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> RefresherDeps:
    credentials = AppCredentials(
        settings.instagram_app_id, settings.instagram_app_secret.get_secret_value(), "http://x/cb"
    )
    return RefresherDeps(
        sessions=sessions,
        client=InstagramAuthClient(sandbox, sandbox, settings.graph_api_version, credentials),
        cipher=TokenCipher.from_settings(settings),
        policy=RefreshPolicy(window=timedelta(days=7), lease=timedelta(minutes=5), batch_size=3),
    )


async def _account(
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    creator: UUID,
    *,
    age_days: float,
    expires_in_days: float,
) -> tuple[UUID, str]:
    """An account connected `age_days` ago whose token ends in `expires_in_days`, in the
    sandbox and in AutoDM alike."""
    username = f"tok{secrets.token_hex(6)}"
    made = (await sandbox.post("/_sandbox/instagram/accounts", json={"username": username})).json()
    await sandbox.patch(
        "/_sandbox/instagram/tokens",
        json={
            "access_token": made["access_token"],
            "age_seconds": age_days * DAY,
            "expires_in": expires_in_days * DAY,
        },
    )
    account_id = await connect_instagram(
        sessions, settings, creator, made["ig_user_id"], username, made["access_token"]
    )
    now = utcnow()
    async with sessions.begin() as session:
        row = await session.get(SocialAccount, account_id)
        assert row is not None
        row.token_refreshed_at = now - timedelta(days=age_days)
        row.token_expires_at = now + timedelta(days=expires_in_days)
    return account_id, made["ig_user_id"]


async def _tokens(sandbox: httpx.AsyncClient, ig_user_id: str) -> list[str]:
    accounts = (await sandbox.get("/_sandbox/instagram/accounts")).json()["data"]
    return next(a["tokens"] for a in accounts if a["ig_user_id"] == ig_user_id)


async def _events(
    sessions: async_sessionmaker[AsyncSession], account_id: UUID
) -> list[dict[str, Any]]:
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxRecord)
            .where(OutboxRecord.key == str(account_id))
            .order_by(OutboxRecord.id)
        )
        return [json.loads(r.payload) for r in rows]


async def test_only_old_enough_tokens_near_expiry_are_refreshed(
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    creator: UUID,
) -> None:
    due, due_ig = await _account(
        sandbox, sessions, settings, creator, age_days=55, expires_in_days=5
    )
    fresh, fresh_ig = await _account(
        sandbox, sessions, settings, creator, age_days=2, expires_in_days=58
    )
    young, young_ig = await _account(
        sandbox, sessions, settings, creator, age_days=0.5, expires_in_days=3
    )

    await refresh_due(_deps(settings, sandbox, sessions))

    assert len(await _tokens(sandbox, due_ig)) == 2
    assert len(await _tokens(sandbox, fresh_ig)) == 1
    assert len(await _tokens(sandbox, young_ig)) == 1  # Meta refuses < 24 h with a 190
    async with sessions() as session:
        row = await session.get(SocialAccount, due)
    assert row is not None and row.token_expires_at is not None
    assert row.token_expires_at - utcnow() > timedelta(days=59)
    new_token = TokenCipher.from_settings(settings).decrypt(row.access_token_encrypted or b"")
    assert new_token == (await _tokens(sandbox, due_ig))[-1]
    (event,) = await _events(sessions, due)
    assert event["type"] == "token.refreshed"
    assert new_token not in json.dumps(event)
    assert await _events(sessions, fresh) == [] and await _events(sessions, young) == []


async def test_two_refreshers_at_once_refresh_each_token_exactly_once(
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    creator: UUID,
) -> None:
    accounts = [
        await _account(sandbox, sessions, settings, creator, age_days=50 + i, expires_in_days=4)
        for i in range(7)
    ]
    replica_a = _deps(settings, sandbox, sessions)
    replica_b = _deps(settings, sandbox, sessions)
    refreshed = await asyncio.gather(refresh_due(replica_a), refresh_due(replica_b))

    assert sum(refreshed) == 7
    for account_id, ig_user_id in accounts:
        assert len(await _tokens(sandbox, ig_user_id)) == 2, account_id
        assert [e["type"] for e in await _events(sessions, account_id)] == ["token.refreshed"]


async def test_a_revoked_token_flags_the_account_for_reconnection(
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    creator: UUID,
) -> None:
    account_id, ig_user_id = await _account(
        sandbox, sessions, settings, creator, age_days=58, expires_in_days=1
    )
    await sandbox.post(f"/_sandbox/instagram/accounts/{ig_user_id}/revoke", json={"subcode": 460})

    await refresh_due(_deps(settings, sandbox, sessions))

    async with sessions() as session:
        row = await session.get(SocialAccount, account_id)
    assert row is not None and row.status == "reconnect_required"
    (event,) = await _events(sessions, account_id)
    assert event["type"] == "token.refresh_failed"
    assert event["payload"]["reconnect_required"] is True
    assert event["payload"]["code"] == 190


async def test_reencrypt_moves_every_token_to_the_new_key(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, creator: UUID
) -> None:
    from cryptography.fernet import Fernet

    old_key = settings.token_encryption_keys[0].get_secret_value()
    new_key = Fernet.generate_key().decode()
    ig_id = str(17841400000000000 + secrets.randbelow(10**12))
    account_id = await connect_instagram(sessions, settings, creator, ig_id, "rot", "tok-1")

    await reencrypt_tokens(sessions, TokenCipher([new_key, old_key]))

    async with sessions() as session:
        row = await session.get(SocialAccount, account_id)
    assert row is not None
    assert TokenCipher([new_key]).decrypt(row.access_token_encrypted or b"") == "tok-1"
    # Put the shared test database back under the configured key for the other tests.
    await reencrypt_tokens(sessions, TokenCipher([old_key, new_key]))
