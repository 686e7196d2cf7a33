"""The token refresher on real PostgreSQL against the sandbox's token rules (in-process):
only eligible tokens, never twice with two replicas, 190 -> reconnect, an expired token ->
reconnect at once, an unknown expiry learned by refreshing, key rotation."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbox.app import create_app as create_sandbox
from sandbox.settings import SandboxSettings
from services.token_refresher.refreshing import RefresherDeps, RefreshPolicy, refresh_due
from services.token_refresher.rotation import reencrypt_tokens
from shared.accounts.token_health import unrefreshed_tokens
from shared.contracts.events import utcnow
from shared.db.models import Lead, OutboxRecord, SocialAccount
from shared.delivery.reasons import ACCESS_EXPIRED
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.crypto import TokenCipher
from shared.providers.instagram_auth import AppCredentials, InstagramAuthClient
from tests.integration.conftest import connect_instagram
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

DAY = 24 * 3600


@pytest.fixture
async def sandbox(settings: AllSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_sandbox(
        SandboxSettings(app_secret=settings.instagram_app_secret.get_secret_value())
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


def _deps(
    settings: AllSettings, sandbox: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> RefresherDeps:
    credentials = AppCredentials(
        settings.instagram_app_id, settings.instagram_app_secret.get_secret_value(), "http://x/cb"
    )
    return RefresherDeps(
        uow=UnitOfWorkFactory(sessions),
        client=InstagramAuthClient(sandbox, sandbox, settings.graph_api_version, credentials),
        cipher=TokenCipher.from_settings(settings),
        policy=RefreshPolicy(window=timedelta(days=7), lease=timedelta(minutes=5), batch_size=3),
    )


async def _account(
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
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
    settings: AllSettings,
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
    # accounts.events is retired (nothing read it): a refresh publishes nothing.
    assert await _events(sessions, due) == []
    assert await _events(sessions, fresh) == [] and await _events(sessions, young) == []


async def test_two_refreshers_at_once_refresh_each_token_exactly_once(
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
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
        assert await _events(sessions, account_id) == []


async def test_a_revoked_token_flags_the_account_for_reconnection(
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
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
    assert row.token_refresh_error is not None and " 190:" in row.token_refresh_error
    assert await _events(sessions, account_id) == []  # accounts.events is retired


async def test_reencrypt_moves_every_token_to_the_new_key(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    from cryptography.fernet import Fernet

    old_key = settings.token_encryption_keys[0].get_secret_value()
    new_key = Fernet.generate_key().decode()
    ig_id = str(17841400000000000 + secrets.randbelow(10**12))
    account_id = await connect_instagram(sessions, settings, creator, ig_id, "rot", "tok-1")

    await reencrypt_tokens(UnitOfWorkFactory(sessions), TokenCipher([new_key, old_key]))

    async with sessions() as session:
        row = await session.get(SocialAccount, account_id)
    assert row is not None
    assert TokenCipher([new_key]).decrypt(row.access_token_encrypted or b"") == "tok-1"
    # Put the shared test database back under the configured key for the other tests.
    await reencrypt_tokens(UnitOfWorkFactory(sessions), TokenCipher([old_key, new_key]))


async def _pending_lead(
    sessions: async_sessionmaker[AsyncSession], creator: UUID, account_id: UUID
) -> UUID:
    """A DM waiting for the lead to open its ig.me link, on this account."""
    lead_id = uuid4()
    async with sessions.begin() as session:
        session.add(
            Lead(
                id=lead_id,
                creator_id=creator,
                name="Wendy",
                message="",
                instagram_username="wendy.waits",
                ref=lead_id.hex,
                dm_status="awaiting_contact",
                dm_route="ig_link",
                dm_provider="instagram",
                dm_account_id=account_id,
            )
        )
    return lead_id


async def test_a_token_past_its_expiry_needs_reconnecting_at_once_and_its_dms_say_why(
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
    creator: UUID,
) -> None:
    ig_id = str(17841400000000000 + secrets.randbelow(10**12))
    account_id = await connect_instagram(sessions, settings, creator, ig_id, "late", "tok-late")
    async with sessions.begin() as session:
        row = await session.get(SocialAccount, account_id)
        assert row is not None
        row.token_refreshed_at = utcnow() - timedelta(days=61)
        row.token_expires_at = utcnow() - timedelta(days=1)
    lead_id = await _pending_lead(sessions, creator, account_id)

    await refresh_due(_deps(settings, sandbox, sessions))

    async with sessions() as session:
        row = await session.get(SocialAccount, account_id)
    assert row is not None and row.status == "reconnect_required"
    assert row.token_refresh_error is not None and "expired" in row.token_refresh_error
    assert await _events(sessions, account_id) == []  # accounts.events is retired
    (skipped,) = await _events(sessions, lead_id)
    assert skipped["type"] == "dm.status"
    assert skipped["payload"]["status"] == "skipped"
    assert skipped["payload"]["reason"] == ACCESS_EXPIRED
    assert "Reconnect Instagram" in ACCESS_EXPIRED


async def test_a_token_without_a_recorded_expiry_is_refreshed_once_old_enough(
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
    creator: UUID,
) -> None:
    """Accounts `make run` seeds (and older connections) have no expiry on record: the
    refresher must not skip them until they die at 60 days."""
    old, old_ig = await _account(
        sandbox, sessions, settings, creator, age_days=20, expires_in_days=40
    )
    young, young_ig = await _account(
        sandbox, sessions, settings, creator, age_days=0.5, expires_in_days=59
    )
    async with sessions.begin() as session:
        for account_id in (old, young):
            row = await session.get(SocialAccount, account_id)
            assert row is not None
            row.token_expires_at = None

    await refresh_due(_deps(settings, sandbox, sessions))

    assert len(await _tokens(sandbox, old_ig)) == 2
    assert len(await _tokens(sandbox, young_ig)) == 1  # not before Meta's 24 h
    async with sessions() as session:
        row = await session.get(SocialAccount, old)
        young_row = await session.get(SocialAccount, young)
    assert row is not None and row.status == "connected"
    assert row.token_expires_at is not None  # learned from the refresh answer
    assert row.token_expires_at - utcnow() > timedelta(days=59)
    assert young_row is not None and young_row.token_expires_at is None
    assert young_row.status == "connected"


async def test_a_failed_refresh_is_kept_for_the_admin_and_cleared_by_a_success(
    sandbox: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
    creator: UUID,
) -> None:
    account_id, ig_user_id = await _account(
        sandbox, sessions, settings, creator, age_days=56, expires_in_days=4
    )
    fault = {"error": "5xx", "scope": "instagram", "http_status": 500}
    (await sandbox.put("/_sandbox/faults", json=fault)).raise_for_status()
    try:
        await refresh_due(_deps(settings, sandbox, sessions))
    finally:
        await sandbox.delete("/_sandbox/faults")

    async with sessions() as session:
        row = await session.get(SocialAccount, account_id)
        listed = await unrefreshed_tokens(session, utcnow(), timedelta(days=7))
    assert row is not None and row.status == "connected"
    assert row.token_refresh_failed_at is not None and row.token_refresh_error
    mine = next(t for t in listed if t.account_id == account_id)
    assert mine.last_error == row.token_refresh_error

    async with sessions.begin() as session:
        row = await session.get(SocialAccount, account_id)
        assert row is not None
        row.token_refresh_lease_until = None  # the lease is the backoff: skip waiting it out
    await refresh_due(_deps(settings, sandbox, sessions))

    assert len(await _tokens(sandbox, ig_user_id)) == 2
    async with sessions() as session:
        row = await session.get(SocialAccount, account_id)
        listed = await unrefreshed_tokens(session, utcnow(), timedelta(days=7))
    assert row is not None and row.token_refresh_error is None
    assert account_id not in {t.account_id for t in listed}
