"""Transactional outbox: an event is stored with the state change that caused it, in the
same transaction, and a relay publishes it to Kafka afterwards.

The relay claims a batch with `FOR UPDATE SKIP LOCKED`, so several relays (API replicas)
share the work without publishing a row twice at the same time; a crash between publish
and stamp republishes the batch, which consumers absorb by event id (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

from faststream.kafka import KafkaBroker
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.broker import event_headers
from shared.db.models import OutboxRecord
from shared.events import Envelope
from shared.logs import get_logger
from shared.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED

log = get_logger(__name__)


def add_to_outbox(session: AsyncSession, topic: str, key: str, event: Envelope) -> None:
    session.add(
        OutboxRecord(
            topic=topic,
            key=key,
            payload=event.model_dump_json().encode(),
            headers=event_headers(event),
            correlation_id=event.correlation_id,
        )
    )


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        broker: KafkaBroker,
        batch_size: int,
        poll_interval_s: float,
    ) -> None:
        self._sessions = sessions
        self._broker = broker
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        # Set by writers in this process so a new row goes out at once instead of at the
        # next poll; the poll still catches rows written by other replicas.
        self.wake = asyncio.Event()

    async def run_forever(self) -> None:
        while True:
            try:
                published = await self.publish_batch()
            except Exception:
                log.exception("outbox relay batch failed; retrying")
                published = 0
                await asyncio.sleep(1.0)
            if published < self._batch_size:
                await self._wait()

    async def _wait(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=self._poll_interval_s)
        self.wake.clear()

    async def publish_batch(self) -> int:
        async with self._sessions.begin() as session:
            rows = (
                await session.scalars(
                    select(OutboxRecord)
                    .where(OutboxRecord.published_at.is_(None))
                    .order_by(OutboxRecord.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            await self._publish(rows)
            await session.execute(
                update(OutboxRecord)
                .where(OutboxRecord.id.in_([r.id for r in rows]))
                .values(published_at=datetime.now(UTC))
            )
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    async def _publish(self, rows: Sequence[OutboxRecord]) -> None:
        # Send all, then wait for all acks: one round trip per batch, not per record.
        futures = [
            await self._broker.publish(
                row.payload,
                row.topic,
                key=row.key.encode(),
                headers=row.headers,
                correlation_id=row.correlation_id,
                no_confirm=True,
            )
            for row in rows
        ]
        await asyncio.gather(*futures)

    async def backlog(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxRecord)
                .where(OutboxRecord.published_at.is_(None))
            )
        OUTBOX_BACKLOG.set(count or 0)
        return count or 0
