"""Offset commits gathered per consumer: a handled record's offset is committed within
`kafka_commit_interval_ms`, together with everything else its consumer handled meanwhile,
instead of one OffsetCommit round trip per record or batch.

Why it is safe: a record is marked for commit only once its handler returned (handled, or
parked in the DLQ), never before, so a crash can only commit less than was handled, never
more: the records handled since the last commit are delivered again, which every consumer
already absorbs (idempotency claims, send intents, the forward-only projection) since a
crash between a handler's end and its commit always could do that. What it saves: on this
machine an OffsetCommit costs the client and the broker about as much as a small
handler's transaction (docs/BENCHMARKS.md), and at low rates every batch holds one record.

The offsets committed are the handled records' own (offset + 1 per partition), not the
consumer's positions, so records fetched but not yet handled are never committed. A
partition revoked by a rebalance before its commit went out is dropped from it: its new
owner starts from the last commit and handles the rest again (idempotently). Before a
consumer stops, what it gathered is committed (`stop` is wrapped), so a graceful restart
redelivers nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from weakref import WeakKeyDictionary

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from shared.platform.logs import get_logger

log = get_logger(__name__)


class GatheredCommits:
    """One consumer's handled offsets, committed at most once per interval."""

    def __init__(self, consumer: AIOKafkaConsumer, interval_s: float) -> None:
        self._consumer = consumer
        self._interval_s = interval_s
        self._pending: dict[TopicPartition, int] = {}
        self._flusher: asyncio.Task[None] | None = None

    def add(self, records: Iterable[ConsumerRecord[Any, Any]]) -> None:
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            self._pending[tp] = max(self._pending.get(tp, 0), record.offset + 1)
        if self._pending and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self._interval_s)
        finally:
            self._flusher = None
        await self.flush()

    async def flush(self) -> None:
        """Commit what was gathered; partitions no longer assigned are left to their owner."""
        offsets, self._pending = self._pending, {}
        assigned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # A rebalance took the partitions (CommitFailedError) or the broker is away:
            # the records come again from the last commit, and their handlers are idempotent.
            log.info(
                "offset commit skipped; records after the last commit come again",
                error=type(exc).__name__,
            )

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()


_GATHERED: WeakKeyDictionary[AIOKafkaConsumer, GatheredCommits] = WeakKeyDictionary()


def gathered(consumer: AIOKafkaConsumer, interval_s: float) -> GatheredCommits:
    """The consumer's gatherer, made on first use (and its `stop` wrapped to flush first)."""
    commits = _GATHERED.get(consumer)
    if commits is None:
        commits = _GATHERED[consumer] = GatheredCommits(consumer, interval_s)
        _flush_before_stop(consumer, commits)
    return commits


def _flush_before_stop(consumer: AIOKafkaConsumer, commits: GatheredCommits) -> None:
    stop: Callable[[], Awaitable[None]] = consumer.stop

    async def flushed_stop() -> None:
        with contextlib.suppress(Exception):  # stopping must not fail on a last commit
            await commits.close()
        await stop()

    consumer.stop = flushed_stop
