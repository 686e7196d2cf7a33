"""Idempotent consumers: a handler claims (consumer, event id) in its own transaction.

If the claim already exists the event was handled before (a redelivery after a crash, a
replay from the DLQ) and the handler does nothing. Because the claim commits with the
handler's writes, a crash before the commit leaves no claim and the redelivery redoes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ProcessedEvent
from shared.platform.metrics import DUPLICATES_SKIPPED


async def claim_event(session: AsyncSession, consumer: str, event_id: UUID) -> bool:
    """True if this consumer has not processed the event yet (and now owns it)."""
    stmt = (
        insert(ProcessedEvent)
        .values(consumer=consumer, event_id=event_id)
        .on_conflict_do_nothing()
        .returning(ProcessedEvent.event_id)
    )
    claimed = (await session.execute(stmt)).scalar_one_or_none() is not None
    if not claimed:
        DUPLICATES_SKIPPED.labels(consumer=consumer).inc()
    return claimed


async def claim_events(
    session: AsyncSession, consumer: str, event_ids: Sequence[UUID]
) -> set[UUID]:
    """`claim_event` for a batch in one statement: the ids not processed before."""
    unique = list(dict.fromkeys(event_ids))
    if not unique:
        return set()
    stmt = (
        insert(ProcessedEvent)
        .values([{"consumer": consumer, "event_id": event_id} for event_id in unique])
        .on_conflict_do_nothing()
        .returning(ProcessedEvent.event_id)
    )
    claimed = set((await session.scalars(stmt)).all())
    if len(claimed) < len(unique):
        DUPLICATES_SKIPPED.labels(consumer=consumer).inc(len(unique) - len(claimed))
    return claimed
