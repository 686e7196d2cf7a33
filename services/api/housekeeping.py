"""The API's housekeeping: forget what can no longer matter, so these tables stay small.

- Idempotency keys older than their TTL: a retry that late is a new request anyway.
- Redeemed OAuth `state` nonces older than a state's lifetime: an older state is refused
  for its expiry before its nonce is looked at.
- Lead-form counters of windows before the previous one: the sliding estimate reads only
  this window and the one before.
- Published outbox rows older than `outbox` retention (kept a while to be looked at).
- Consumers' claims of processed events older than any topic keeps its records: no
  redelivery can bring such an event back.

The last two tables are written by every service; the API (always deployed) sweeps them
for all. How rows are deleted: shared/db/retention.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.web.form_limits import WINDOW, window_start
from shared.db.models import (
    FormRateCount,
    IdempotencyKey,
    OAuthStateUse,
    OutboxRecord,
    ProcessedEvent,
)
from shared.db.retention import Sweep, delete_batched
from shared.topics import TOPICS

# A claim must outlive every record that could redeliver its event.
PROCESSED_EVENT_RETENTION = timedelta(
    milliseconds=max(spec.retention_ms for spec in TOPICS)
) + timedelta(days=1)


@dataclass(frozen=True)
class Retention:
    idempotency_keys: timedelta
    oauth_states: timedelta
    published_outbox: timedelta
    processed_events: timedelta = PROCESSED_EVENT_RETENTION


def api_sweeps(retention: Retention) -> dict[str, Sweep]:
    """The sweeps the API runs, by table."""

    async def idempotency_keys(s: async_sessionmaker[AsyncSession], now: datetime) -> int:
        old = IdempotencyKey.created_at < now - retention.idempotency_keys
        return await delete_batched(s, IdempotencyKey, old)

    async def oauth_state_uses(s: async_sessionmaker[AsyncSession], now: datetime) -> int:
        old = OAuthStateUse.used_at < now - retention.oauth_states
        return await delete_batched(s, OAuthStateUse, old)

    async def form_rate_counts(s: async_sessionmaker[AsyncSession], now: datetime) -> int:
        old = FormRateCount.window_start < window_start(now) - WINDOW
        return await delete_batched(s, FormRateCount, old)

    async def outbox(s: async_sessionmaker[AsyncSession], now: datetime) -> int:
        # Unpublished rows are never old enough: `published_at` is NULL until the relay
        # has handed them to Kafka.
        old = OutboxRecord.published_at < now - retention.published_outbox
        return await delete_batched(s, OutboxRecord, old)

    async def processed_events(s: async_sessionmaker[AsyncSession], now: datetime) -> int:
        old = ProcessedEvent.processed_at < now - retention.processed_events
        return await delete_batched(s, ProcessedEvent, old)

    return {
        "idempotency_keys": idempotency_keys,
        "oauth_state_uses": oauth_state_uses,
        "form_rate_counts": form_rate_counts,
        "outbox": outbox,
        "processed_events": processed_events,
    }
