"""Idempotent consumers: a handler claims (consumer, event id) in its own transaction.

If the claim already exists the event was handled before (a redelivery after a crash, a
replay from the DLQ) and the handler does nothing. Because the claim commits with the
handler's writes, a crash before the commit leaves no claim and the redelivery redoes it.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ProcessedEvent
from shared.metrics import DUPLICATES_SKIPPED


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
