"""Gathered offset commits (shared/messaging/offset_commits.py) on the real broker: handled
records are committed within the interval (not at once), a graceful stop commits what was
handled, a record parked in the DLQ counts as handled, and a revoked partition is left to its
new owner."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker

from shared.messaging.batches import records_of
from shared.messaging.broker import Message, make_broker, subscribe
from shared.messaging.offset_commits import GatheredCommits
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


async def _committed(settings: AllSettings, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    meta = offsets.get(TopicPartition(topic, 0))
    return meta.offset if meta is not None else -1


def _broker(settings: AllSettings, interval_ms: int) -> KafkaBroker:
    return make_broker(settings.model_copy(update={"kafka_commit_interval_ms": interval_ms}), "t")


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def _produce(producer: AIOKafkaProducer, topic: str, values: list[bytes]) -> None:
    for value in values:
        await producer.send_and_wait(topic, value, key=b"k")


@pytest.mark.parametrize("batch_size", [None, 10], ids=["per-record", "batch"])
async def test_handled_records_are_committed_together_and_on_stop(
    settings: AllSettings, producer: AIOKafkaProducer, topic: str, batch_size: int | None
) -> None:
    group = f"test-commits-{uuid4().hex[:8]}"
    seen: list[bytes] = []
    # An interval no test run reaches: only the graceful stop can commit.
    broker = _broker(settings, interval_ms=600_000)

    @subscribe(broker, topic, group=group, title="t", description="t", batch_size=batch_size)
    async def handle(msg: Message) -> None:
        seen.extend(record.value for record in records_of(msg))

    await broker.start()
    try:
        await _produce(producer, topic, [b"1", b"2", b"3", b"4", b"5"])
        await _until(lambda: asyncio.sleep(0, len(seen) == 5))
        assert await _committed(settings, group, topic) == -1  # gathered, not committed
    finally:
        await broker.stop()
    assert await _committed(settings, group, topic) == 5


async def test_commits_go_out_within_the_interval_without_a_stop(
    settings: AllSettings, producer: AIOKafkaProducer, topic: str
) -> None:
    group = f"test-commits-{uuid4().hex[:8]}"
    broker = _broker(settings, interval_ms=200)

    @subscribe(broker, topic, group=group, title="t", description="t", batch_size=10)
    async def handle(msg: Message) -> None:
        return None

    await broker.start()
    try:
        await _produce(producer, topic, [b"1", b"2", b"3"])

        async def committed_all() -> bool:
            return await _committed(settings, group, topic) == 3

        await _until(committed_all)
    finally:
        await broker.stop()


async def test_a_parked_record_is_committed_with_the_others(
    settings: AllSettings, producer: AIOKafkaProducer, topic: str
) -> None:
    group = f"test-commits-{uuid4().hex[:8]}"
    broker = _broker(settings, interval_ms=600_000)
    handled: list[bytes] = []

    class Boom(Exception):
        """A handler's bug: the record is parked, not retried."""

    @subscribe(broker, topic, group=group, title="t", description="t")
    async def handle(msg: Message) -> None:
        (record,) = records_of(msg)
        if record.value == b"bad":
            raise Boom  # parked in the DLQ by the dead-letter middleware: handled too
        handled.append(record.value)

    await broker.start()
    try:
        await _produce(producer, topic, [b"1", b"bad", b"3"])
        await _until(lambda: asyncio.sleep(0, handled == [b"1", b"3"]))
    finally:
        await broker.stop()
    assert await _committed(settings, group, topic) == 3


async def test_only_handled_offsets_of_assigned_partitions_are_committed() -> None:
    committed: list[dict[TopicPartition, int]] = []

    class Consumer:
        def assignment(self) -> set[TopicPartition]:
            return {TopicPartition("a", 0)}

        async def commit(self, offsets: dict[TopicPartition, int]) -> None:
            committed.append(offsets)

    class Record:
        def __init__(self, topic: str, partition: int, offset: int) -> None:
            self.topic, self.partition, self.offset = topic, partition, offset

    commits = GatheredCommits(Consumer(), interval_s=600)
    commits.add([Record("a", 0, 7), Record("a", 0, 3), Record("b", 0, 9)])
    await commits.close()
    assert committed == [{TopicPartition("a", 0): 8}]  # "b" was revoked: left to its owner
