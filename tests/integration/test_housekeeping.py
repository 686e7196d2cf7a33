"""The API's housekeeping on real PostgreSQL: what expired goes, what may still matter stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.housekeeping import Retention, sweep
from shared.db.models import FormRateCount, IdempotencyKey, OAuthStateUse

pytestmark = pytest.mark.integration

RETENTION = Retention(idempotency_keys=timedelta(hours=24), oauth_states=timedelta(minutes=10))


def _key(owner: str, created_at: datetime) -> IdempotencyKey:
    return IdempotencyKey(
        owner=owner,
        key=uuid4().hex,
        request_hash="0" * 64,
        state="done",
        status_code=201,
        response_body={},
        locked_at=created_at,
        created_at=created_at,
    )


async def test_a_sweep_deletes_only_what_expired(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    owner = f"housekeeping-{uuid4().hex[:8]}"
    fresh_nonce, old_nonce = uuid4().hex, uuid4().hex
    async with sessions.begin() as session:
        session.add_all([_key(owner, now - timedelta(hours=25)) for _ in range(3)])
        session.add(kept := _key(owner, now - timedelta(hours=23)))
        session.add(
            OAuthStateUse(nonce=old_nonce, creator_id=uuid4(), used_at=now - timedelta(minutes=11))
        )
        session.add(
            OAuthStateUse(nonce=fresh_nonce, creator_id=uuid4(), used_at=now - timedelta(minutes=9))
        )
        for minutes_ago in (0, 1, 2, 3):
            start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
            session.add(FormRateCount(key=f"creator:{owner}", window_start=start, hits=1))

    removed = await sweep(sessions, RETENTION, now)

    assert removed["idempotency_keys"] >= 3 and removed["oauth_state_uses"] >= 1
    async with sessions() as session:
        keys = set(
            await session.scalars(select(IdempotencyKey.key).where(IdempotencyKey.owner == owner))
        )
        nonces = set(
            await session.scalars(
                select(OAuthStateUse.nonce).where(OAuthStateUse.nonce.in_([old_nonce, fresh_nonce]))
            )
        )
        windows = (
            await session.scalars(
                select(FormRateCount.window_start).where(FormRateCount.key == f"creator:{owner}")
            )
        ).all()
    assert keys == {kept.key}
    assert nonces == {fresh_nonce}
    assert len(windows) == 2  # this window and the previous one: the sliding estimate's
    assert await sweep(sessions, RETENTION, now) == {
        "idempotency_keys": 0,
        "oauth_state_uses": 0,
        "form_rate_counts": 0,
    }
