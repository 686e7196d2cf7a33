"""Transactional outbox: an event is stored with the state change that caused it, in the
same transaction, and a relay publishes it to Kafka afterwards.

Writers in another process wake the relay with PostgreSQL's `NOTIFY` on `OUTBOX_CHANNEL`,
sent inside their transaction by the unit of work (shared/messaging/unit_of_work.py); the
relay LISTENs, and still polls in case a notification was missed while its listening
connection was down.

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

import asyncpg  # type: ignore[import-untyped]  # no stubs
from faststream.kafka import KafkaBroker
from opentelemetry.trace import SpanKind
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.events import Envelope
from shared.db.models import OutboxRecord
from shared.messaging.broker import event_headers
from shared.platform.logs import get_logger
from shared.platform.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED
from shared.platform.outage_log import OutageLog
from shared.platform.outages import is_outage
from shared.platform.tracing import H_REPLAYED_TRACE, continued, traceparent_for

log = get_logger(__name__)

OUTBOX_CHANNEL = "autodm_outbox"
_HAS_ROWS = "autodm_outbox_rows"
LISTEN_CHECK_S = 10.0  # how often a quiet listening connection is checked for life


def has_outbox_rows(session: AsyncSession) -> bool:
    """Whether this session added outbox rows (the unit of work wakes the relay if so)."""
    return bool(session.info.get(_HAS_ROWS))


# An idle relay's poll interval doubles after each empty poll up to this. Rows written in
# this process wake it at once whatever the interval; the poll is for rows of processes
# that don't wake it, and every service's relay polls the same table, so with four of
# them an unwoken row waits ~0.4 s on average, at most this. Idle, the four relays ran
# 20 claiming transactions a second between them; now ~2.5.
IDLE_POLL_MAX_S = 1.6


def mark_outbox_rows(session: AsyncSession) -> None:
    """Say that this session added outbox rows by hand (a DLQ replay's raw record)."""
    session.info[_HAS_ROWS] = True


def add_to_outbox(session: AsyncSession, topic: str, key: str, event: Envelope) -> None:
    mark_outbox_rows(session)
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
        listen_dsn: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._broker = broker
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._interval_s = poll_interval_s  # the next wait: grows while polls find nothing
        self._backlog_interval_s = backlog_interval_s
        self._backlog_due = 0.0
        # Set by writers in this process so a new row goes out at once instead of at the
        # next poll; the poll still catches rows written by other replicas.
        self.wake = asyncio.Event()
        self._outages = OutageLog("outbox_relay")
        self._listen_dsn = listen_dsn
        self._listen_outages = OutageLog("outbox_listener")

    async def listen_forever(self) -> None:
        """Wake on `NOTIFY autodm_outbox` from writers in other processes."""
        if self._listen_dsn is None:
            return
        while True:
            try:
                await self._listen_once(self._listen_dsn)
            except Exception as exc:
                self._listen_outages.failed(exc, "outbox listener lost its connection")
            await asyncio.sleep(1.0)

    async def _listen_once(self, dsn: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.add_listener(OUTBOX_CHANNEL, self._notified)
            self._listen_outages.succeeded()
            self.wake.set()  # rows committed while nobody listened
            while not conn.is_closed():
                await asyncio.sleep(LISTEN_CHECK_S)
                await conn.execute("SELECT 1")  # a dead socket is only noticed on use
        finally:
            await conn.close(timeout=2)

    def _notified(self, *_: Any) -> None:
        self.wake.set()

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
                await self._wait(idle=not published)

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

    async def _wait(self, idle: bool) -> None:
        self._interval_s = (
            min(self._interval_s * 2, max(IDLE_POLL_MAX_S, self._poll_interval_s))
            if idle
            else self._poll_interval_s
        )
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation that
        # arrives as the wake-up completes, and the relay then outlived its service's
        # shutdown (a hang seen in the test suite).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._interval_s):
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
