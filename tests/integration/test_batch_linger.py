"""A batch consumer with AUTODM_KAFKA_BATCH_LINGER_MS takes records that come during its
wait into the same batch (shared/messaging/batch_polling.py), on the real broker."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer

from shared.messaging import batch_polling
from shared.messaging.batches import records_of
from shared.messaging.broker import Message, make_broker, subscribe
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


async def test_records_that_come_during_the_linger_join_the_batch(
    settings: AllSettings, producer: AIOKafkaProducer, topic: str
) -> None:
    batches: list[list[bytes]] = []
    broker = make_broker(settings.model_copy(update={"kafka_batch_linger_ms": 1000}), "t")

    @subscribe(
        broker, topic, group=f"g-{uuid4().hex[:8]}", title="t", description="t", batch_size=10
    )
    async def handle(msg: Message) -> None:
        batches.append([record.value for record in records_of(msg)])

    async def handled(count: int) -> None:
        for _ in range(400):
            if sum(map(len, batches)) >= count:
                return
            await asyncio.sleep(0.05)

    await broker.start()
    try:
        await producer.send_and_wait(topic, b"ready", key=b"k")
        await handled(1)  # assigned and idle now
        await producer.send_and_wait(topic, b"first", key=b"k")
        await asyncio.sleep(0.3)  # without a linger, "first" is handled alone by now
        await producer.send_and_wait(topic, b"second", key=b"k")
        await handled(3)
    finally:
        await broker.stop()
        batch_polling.linger_s = 0.0  # module state: leave it as the next test's broker would
    assert batches == [[b"ready"], [b"first", b"second"]]
