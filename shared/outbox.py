"""Transactional outbox: an event is stored with the state change that caused it, in the
same transaction, and a relay publishes it to Kafka afterwards.

The relay claims a batch with `FOR UPDATE SKIP LOCKED`, so several relays (API replicas)
share the work without publishing a row twice at the same time; a crash between publish
and stamp republishes the batch, which consumers absorb by event id (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker
from opentelemetry.trace import SpanKind
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.broker import event_headers
from shared.db.models import OutboxRecord
from shared.events import Envelope
from shared.logs import get_logger
from shared.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED
from shared.outage_log import OutageLog
from shared.outages import is_outage
from shared.tracing import H_REPLAYED_TRACE, continued, traceparent_for

log = get_logger(__name__)


def add_to_outbox(session: AsyncSession, topic: str, key: str, event: Envelope) -> None:
    session.add(
        OutboxRecord(
            topic=topic,
            key=key,
            payload=event.model_dump_json().encode(),
            headers=event_headers(event),
            correlation_id=event.correlation_id,
            traceparent=traceparent_for(event.correlation_id),
        )
    )


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        broker: KafkaBroker,
        batch_size: int,
        poll_interval_s: float,
        backlog_interval_s: float = 15.0,
    ) -> None:
        self._sessions = sessions
        self._broker = broker
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._backlog_interval_s = backlog_interval_s
        self._backlog_due = 0.0
        # Set by writers in this process so a new row goes out at once instead of at the
        # next poll; the poll still catches rows written by other replicas.
        self.wake = asyncio.Event()
        self._outages = OutageLog("outbox_relay")

    async def run_forever(self) -> None:
        while True:
            try:
                published = await self.publish_batch()
            except Exception as exc:
                self._outages.failed(exc, "outbox relay batch failed; retrying")
                published = 0
                await asyncio.sleep(1.0)
            else:
                self._outages.succeeded()
            await self._refresh_backlog()
            if published < self._batch_size:
                await self._wait()

    async def _refresh_backlog(self) -> None:
        # A count per batch would double the relay's queries; every few seconds is enough
        # for the backlog alert and costs one indexed query.
        if time.monotonic() < self._backlog_due:
            return
        self._backlog_due = time.monotonic() + self._backlog_interval_s
        try:
            await self.backlog()
        except Exception as exc:
            if not is_outage(exc):  # an outage is the relay's to report, once
                log.warning("outbox backlog query failed", exc_info=True)

    async def _wait(self) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation that
        # arrives as the wake-up completes, and the relay then outlived its service's
        # shutdown (a hang seen in the test suite).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._poll_interval_s):
                await self.wake.wait()
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
        futures = [await self._send(row) for row in rows]
        await asyncio.gather(*futures)

    async def _send(self, row: OutboxRecord) -> Any:
        # The row's own trace (the request that wrote it), not one trace per batch; a
        # replayed dead letter links to the trace it failed in.
        with continued(
            f"{row.topic} outbox relay",
            row.traceparent,
            links=[row.headers.get(H_REPLAYED_TRACE)],
            kind=SpanKind.PRODUCER,
        ):
            return await self._broker.publish(
                row.payload,
                row.topic,
                key=row.key.encode(),
                headers=row.headers,
                correlation_id=row.correlation_id,
                no_confirm=True,
            )

    async def backlog(self) -> int:
        """Count unpublished records and set the backlog gauges (count, oldest age)."""
        async with self._sessions() as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(OutboxRecord.created_at)).where(
                        OutboxRecord.published_at.is_(None)
                    )
                )
            ).one()
        OUTBOX_BACKLOG.set(count or 0)
        OUTBOX_OLDEST_AGE.set(_age_s(oldest))
        return int(count or 0)


def _age_s(created_at: datetime | None) -> float:
    if created_at is None:
        return 0.0
    if created_at.tzinfo is None:  # server_default now() stored without a zone: UTC
        created_at = created_at.replace(tzinfo=UTC)
    return max((datetime.now(UTC) - created_at).total_seconds(), 0.0)
