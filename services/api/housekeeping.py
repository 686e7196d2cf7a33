"""The API's housekeeping: forget what can no longer matter, so these tables stay small.

- Idempotency keys older than their TTL: a retry that late is a new request anyway.
- Redeemed OAuth `state` nonces older than a state's lifetime: an older state is refused
  for its expiry before its nonce is looked at.
- Lead-form counters of windows before the previous one: the sliding estimate reads only
  this window and the one before.

Every replica sweeps (a duplicate sweep deletes nothing); deletes go in batches so no sweep
holds many row locks at once. A failed sweep is logged and retried at the next interval.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.web.form_limits import WINDOW, window_start
from shared.db.models import FormRateCount, IdempotencyKey, OAuthStateUse
from shared.events import utcnow
from shared.logs import get_logger

log = get_logger(__name__)
BATCH = 1000


@dataclass(frozen=True)
class Retention:
    idempotency_keys: timedelta
    oauth_states: timedelta


async def _delete_batched(
    sessions: async_sessionmaker[AsyncSession],
    model: type[IdempotencyKey] | type[OAuthStateUse] | type[FormRateCount],
    expired: ColumnElement[bool],
) -> int:
    primary_key = model.__mapper__.primary_key
    removed = 0
    while True:
        batch = select(*primary_key).where(expired).limit(BATCH)
        async with sessions.begin() as session:
            result = await session.execute(delete(model).where(tuple_(*primary_key).in_(batch)))
        count = int(getattr(result, "rowcount", 0) or 0)
        removed += count
        if count < BATCH:
            return removed


async def sweep(
    sessions: async_sessionmaker[AsyncSession], retention: Retention, now: datetime
) -> dict[str, int]:
    """Delete what has expired; how many rows of each table."""
    return {
        "idempotency_keys": await _delete_batched(
            sessions, IdempotencyKey, IdempotencyKey.created_at < now - retention.idempotency_keys
        ),
        "oauth_state_uses": await _delete_batched(
            sessions, OAuthStateUse, OAuthStateUse.used_at < now - retention.oauth_states
        ),
        "form_rate_counts": await _delete_batched(
            sessions, FormRateCount, FormRateCount.window_start < window_start(now) - WINDOW
        ),
    }


@dataclass
class Housekeeping:
    sessions: async_sessionmaker[AsyncSession]
    retention: Retention
    interval_s: float

    async def run_forever(self) -> None:
        while True:
            try:
                removed = await sweep(self.sessions, self.retention, utcnow())
                if any(removed.values()):
                    log.info("housekeeping", **removed)
            except Exception:
                log.exception("housekeeping failed; trying again at the next interval")
            await asyncio.sleep(self.interval_s)
