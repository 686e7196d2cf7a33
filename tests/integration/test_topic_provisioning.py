"""Provisioning on a real broker retires topics the registry dropped: an empty one and one
its readers finished are deleted; one holding records nobody read is kept and reported
until the operator says `--delete-retired`; registry topics are never touched. The retired
Instagram retry topic is drained into deferred_sends first, so no waiting DM is lost."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.schemas import LeadIn
from services.api.service_layer.leads import create_lead
from shared.contracts.events import DmRequested, DmRequestedPayload, Recipient
from shared.contracts.lifecycle import Provider, Route
from shared.contracts.topics import RETIRED, TOPICS
from shared.db.models import DeferredSend
from shared.delivery.retry_topic_drain import drain_retry_topic
from shared.messaging.dead_letters import H_ATTEMPTS
from shared.messaging.delayed_retries import H_DEFERRED_FOR, H_NOT_BEFORE
from shared.messaging.topic_admin import provision_topics
from shared.platform.settings import Settings
from tests.fake_uow import SessionWork

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


async def test_an_upgrade_moves_dms_waiting_on_the_old_retry_topic_into_deferred_sends(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    """What an earlier version deferred on dm.retry.instagram is not lost with the topic:
    the Instagram sender moves it into deferred_sends (due time, reason, attempts as they
    were), after which the topic holds nothing unread and provisioning deletes it."""
    bootstrap = settings.kafka_bootstrap
    tag = secrets.token_hex(4)
    topic, group = f"retired.retry.{tag}", f"autodm-test-retry-{tag}"
    await _make(bootstrap, topic)
    async with sessions.begin() as session:
        lead = await create_lead(
            SessionWork(session),
            LeadIn(creator_id=creator, name="Old", instagram={"igsid": "77"}),
            "u",
        )
    request = DmRequested(
        correlation_id="upgrade",
        creator_id=creator,
        payload=DmRequestedPayload(
            lead_id=lead.id,
            route=Route.IG_DM,
            provider=Provider.INSTAGRAM,
            account_id=uuid4(),
            recipient=Recipient(igsid="77"),
            text="Hi",
        ),
    )
    due = datetime.now(UTC) + timedelta(minutes=5)
    headers = {
        H_ATTEMPTS: "2",
        H_NOT_BEFORE: f"{due.timestamp():.3f}",
        H_DEFERRED_FOR: "throttled",
        "x-original-topic": "dm.requested.instagram",
    }
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            request.model_dump_json().encode(),
            key=b"k",
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
    finally:
        await producer.stop()

    assert await drain_retry_topic(bootstrap, sessions, topic, group) == 1
    assert await drain_retry_topic(bootstrap, sessions, topic, group) == 0  # committed

    async with sessions() as session:
        row = await session.get(DeferredSend, (lead.id, Route.IG_DM))
    assert row is not None and row.reason == "throttled"
    assert abs((row.not_before - due).total_seconds()) < 0.01
    assert row.headers[H_ATTEMPTS] == "2"
    assert DmRequested.model_validate(row.request) == request

    result = await provision_topics(bootstrap, TOPICS, {topic: "test"})
    assert result.deleted == [topic]  # read to its end by the drain: nothing lost
    assert await _gone(bootstrap, topic)
    assert await drain_retry_topic(bootstrap, sessions, topic, group) is None
