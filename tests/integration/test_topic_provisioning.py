"""Provisioning on a real broker retires topics the registry dropped: an empty one and one
its readers finished are deleted; one holding records nobody read is kept and reported
until the operator says `--delete-retired`; registry topics are never touched."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.contracts.topics import RETIRED, TOPICS
from shared.messaging.topic_admin import provision_topics
from shared.platform.settings import Settings

pytestmark = pytest.mark.integration


async def _make(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 2, 1) for n in names])
    finally:
        await admin.close()


async def _present(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _gone(bootstrap: str, *names: str) -> bool:
    """Deleted topics leave the metadata shortly after the controller answered."""
    for _ in range(50):
        if not set(names) & await _present(bootstrap):
            return True
        await asyncio.sleep(0.2)
    return False


async def _write(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, b"x", key=str(i).encode())
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str, group: str) -> None:
    """A group reads the topic to its end and commits."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(2)]
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        await consumer.commit(dict(end))
    finally:
        await consumer.stop()


async def test_retired_topics_go_only_when_nothing_unread_is_lost(settings: Settings) -> None:
    bootstrap = settings.kafka_bootstrap
    tag = secrets.token_hex(4)
    empty, finished, unread = (f"retired.{kind}.{tag}" for kind in ("empty", "finished", "unread"))
    retired = {empty: "test", finished: "test", unread: "test"}
    await _make(bootstrap, empty, finished, unread)
    await _write(bootstrap, finished, 5)
    await _write(bootstrap, unread, 3)
    await _read_all(bootstrap, finished, f"autodm-test-reader-{tag}")

    result = await provision_topics(bootstrap, TOPICS, retired)

    assert sorted(result.deleted) == sorted([empty, finished])
    assert list(result.kept) == [unread] and "3 record(s)" in result.kept[unread]
    assert await _gone(bootstrap, empty, finished)
    present = await _present(bootstrap)
    assert unread in present
    assert {spec.name for spec in TOPICS} <= present  # the registry's own stay

    forced = await provision_topics(bootstrap, TOPICS, retired, delete_retired=True)

    assert forced.deleted == [unread] and forced.kept == {}
    assert await _gone(bootstrap, unread)


async def test_the_registry_no_longer_provisions_its_retired_topics(settings: Settings) -> None:
    result = await provision_topics(settings.kafka_bootstrap)

    assert not set(RETIRED) & set(result.created + result.existing)
    assert not set(RETIRED) & await _present(settings.kafka_bootstrap)
