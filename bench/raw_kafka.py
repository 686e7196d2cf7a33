"""The raw limit: aiokafka produce -> consume round trips on this machine, no AutoDM code.

Same producer settings as AutoDM's brokers (idempotent, acks=all, linger 2 ms), records of
an event envelope's size, 12 partitions; one producer and one consumer in this process.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.stats import percentiles

TOPIC = "bench.raw"
PARTITIONS = 12
PAYLOAD = b"x" * 600  # a lead.created envelope is ~600 bytes


@dataclass(frozen=True)
class RawResult:
    messages_per_s: float
    flat_out_p50_ms: float
    flat_out_p99_ms: float
    at_100_p50_ms: float
    at_100_p99_ms: float


async def _ensure_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if TOPIC not in await admin.list_topics():
            await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    finally:
        await admin.close()


async def _consume(consumer: AIOKafkaConsumer, count: int, latencies: list[float]) -> None:
    while len(latencies) < count:
        batch = await consumer.getmany(timeout_ms=100)
        now = time.perf_counter()
        for records in batch.values():
            latencies.extend(now - struct.unpack("d", r.value[:8])[0] for r in records)


async def _run(bootstrap: str, count: int, rate: float | None) -> tuple[float, list[float]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=2)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)
    latencies: list[float] = []
    reader = asyncio.create_task(_consume(consumer, count, latencies))
    started = time.perf_counter()
    pending = []
    for i in range(count):
        if rate is not None:
            await asyncio.sleep(max(started + i / rate - time.perf_counter(), 0))
        value = struct.pack("d", time.perf_counter()) + PAYLOAD
        pending.append(await producer.send(TOPIC, value, key=str(i % 1000).encode()))
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    await asyncio.wait_for(reader, timeout=120)
    elapsed = time.perf_counter() - started
    await consumer.stop()
    await producer.stop()
    return count / elapsed, latencies


async def measure(bootstrap: str, count: int = 30_000) -> RawResult:
    await _ensure_topic(bootstrap)
    await _run(bootstrap, 2_000, None)  # warm-up: connections, metadata, JIT of the broker
    throughput, flat = await _run(bootstrap, count, None)
    _, paced = await _run(bootstrap, 500, 100.0)
    flat_p = percentiles(flat)
    paced_p = percentiles(paced)
    return RawResult(throughput, flat_p[50], flat_p[99], paced_p[50], paced_p[99])
