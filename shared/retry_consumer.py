"""The consumer of a delayed-retry topic: each record is handled when its not-before time
has come, without one account's long wait holding up another's.

Why not faststream with pause/resume or a sleep: records of one retry partition are not
in due order (a 60 s throttle block sits in front of a 2 s retry of another account on
the same partition), so sleeping on the head, or pausing the partition until the head is
due, delays everything behind it. Instead this consumer reads eagerly, holds records in
memory in a heap ordered by due time, handles each when due, and commits per partition
only up to the oldest record it still holds. A crash loses nothing: held records were not
committed and are read again (the send intent absorbs any that were already handled).
Memory is bounded: past `max_held` records the partitions are paused until some are done.
A record whose handling fails because PostgreSQL or Kafka is unreachable (shared.outages)
stays held and is tried again shortly: it is not parked in the DLQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry.trace import SpanKind

from shared.logs import get_logger
from shared.metrics import RETRIES_HELD
from shared.outage_log import OutageLog
from shared.outages import is_outage
from shared.retries import H_NOT_BEFORE
from shared.tracing import continued, headers_traceparent

log = get_logger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]
# Handles a due record: None when done with it, or the time to look at it again.
Handle = Callable[[Record], Awaitable[datetime | None]]
Park = Callable[[Record, BaseException], Awaitable[None]]

IDLE_POLL_MS = 500
COMMIT_EVERY_S = 1.0
OUTAGE_RECHECK_S = 1.0


def _due(record: Record) -> float:
    for key, value in record.headers or ():
        if key == H_NOT_BEFORE:
            return float(value)
    return 0.0


@dataclass
class _Held:
    """Offsets read but not finished, per partition; the commit point is the oldest."""

    pending: dict[TopicPartition, set[int]] = field(default_factory=dict)
    next_offset: dict[TopicPartition, int] = field(default_factory=dict)
    generation: dict[TopicPartition, int] = field(default_factory=dict)

    def add(self, tp: TopicPartition, offset: int) -> None:
        self.pending.setdefault(tp, set()).add(offset)
        self.next_offset[tp] = max(self.next_offset.get(tp, 0), offset + 1)

    def done(self, tp: TopicPartition, offset: int) -> None:
        self.pending.get(tp, set()).discard(offset)

    def commit_points(self) -> dict[TopicPartition, int]:
        return {tp: min(self.pending.get(tp) or {nxt}) for tp, nxt in self.next_offset.items()}

    def drop(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self.pending.pop(tp, None)
            self.next_offset.pop(tp, None)
            self.generation[tp] = self.generation.get(tp, 0) + 1

    def count(self) -> int:
        return sum(len(offsets) for offsets in self.pending.values())


class RetryConsumer:
    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        group_id: str,
        handle: Handle,
        park: Park,
        provider: str,
        max_held: int,
    ) -> None:
        self._bootstrap, self._topic, self._group = bootstrap, topic, group_id
        self._handle, self._park = handle, park
        self._provider, self._max_held = provider, max_held
        self._heap: list[tuple[float, int, int, TopicPartition, Record]] = []
        self._seq = itertools.count()
        self._held = _Held()
        self._last_commit = 0.0
        self._outages = OutageLog(f"retry_consumer_{provider}")

    async def run_forever(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=self._group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                client_id=f"{self._group}-consumer",
            )
            try:
                await consumer.start()
                consumer.subscribe([self._topic], listener=_Rebalance(self, consumer))
                self._outages.succeeded()
                await self._loop(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._outages.failed(exc, f"retry consumer of {self._topic} failed; restarting")
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await self._commit(consumer, force=True)
                await consumer.stop()
                self._forget(set(self._held.next_offset))

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait_ms = IDLE_POLL_MS
            if self._heap:
                wait_ms = int(max(0.0, min(IDLE_POLL_MS / 1000, self._heap[0][0] - _now())) * 1000)
            batch = await consumer.getmany(timeout_ms=wait_ms, max_records=1000)
            for tp, records in batch.items():
                for record in records:
                    self._hold(tp, record, _due(record))
            await self._run_due()
            self._backpressure(consumer)
            if loop.time() - self._last_commit >= COMMIT_EVERY_S:
                await self._commit(consumer)

    def _hold(self, tp: TopicPartition, record: Record, due: float) -> None:
        if record.offset not in self._held.pending.get(tp, set()):
            self._held.add(tp, record.offset)
        generation = self._held.generation.get(tp, 0)
        heapq.heappush(self._heap, (due, next(self._seq), generation, tp, record))
        RETRIES_HELD.labels(provider=self._provider).set(self._held.count())

    async def _run_due(self) -> None:
        while self._heap and self._heap[0][0] <= _now():
            _, _, generation, tp, record = heapq.heappop(self._heap)
            if generation != self._held.generation.get(tp, 0):
                continue  # the partition was revoked meanwhile: its new owner reads it
            again = await self._handle_one(record)
            if again is None:
                self._held.done(tp, record.offset)
            else:
                self._hold(tp, record, again.timestamp())
        RETRIES_HELD.labels(provider=self._provider).set(self._held.count())

    async def _handle_one(self, record: Record) -> datetime | None:
        # Read by aiokafka directly (not faststream): the record's trace is continued here.
        with continued(
            f"{record.topic} process",
            headers_traceparent(record.headers),
            kind=SpanKind.CONSUMER,
        ):
            return await self._handle_traced(record)

    async def _handle_traced(self, record: Record) -> datetime | None:
        try:
            return await self._handle(record)
        except Exception as exc:
            if is_outage(exc):
                log.warning(
                    "dependency unavailable; holding", offset=record.offset, error=repr(exc)
                )
                return datetime.fromtimestamp(_now() + OUTAGE_RECHECK_S, UTC)
            try:
                await self._park(record, exc)
            except Exception:
                log.exception("could not park a retry record; holding it", offset=record.offset)
                return datetime.fromtimestamp(_now() + 1.0, UTC)
            return None

    def _backpressure(self, consumer: AIOKafkaConsumer) -> None:
        assigned = consumer.assignment()
        if self._held.count() >= self._max_held:
            consumer.pause(*assigned)
        elif consumer.paused():
            consumer.resume(*assigned)

    async def _commit(self, consumer: AIOKafkaConsumer, *, force: bool = False) -> None:
        self._last_commit = asyncio.get_running_loop().time()
        assigned = consumer.assignment()
        points = {tp: o for tp, o in self._held.commit_points().items() if tp in assigned}
        if not points:
            return
        try:
            await consumer.commit(points)
        except KafkaError as exc:
            if force:
                raise
            log.warning("retry offsets not committed yet", error=repr(exc))

    def _forget(self, tps: set[TopicPartition]) -> None:
        self._held.drop(tps)
        RETRIES_HELD.labels(provider=self._provider).set(self._held.count())


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: RetryConsumer, consumer: AIOKafkaConsumer) -> None:
        self._owner, self._consumer = owner, consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Commit what is finished, then forget the rest: the next owner reads it again.
        with contextlib.suppress(KafkaError):
            await self._owner._commit(self._consumer, force=True)
        self._owner._forget(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


def _now() -> float:
    return datetime.now(UTC).timestamp()
