"""Operations on the real broker and database: readiness, the offsets/token collector and
the outbox backlog gauge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from services.api.workers.ops_collector import OpsCollector
from shared.contracts.events import utcnow
from shared.contracts.topics import DLQ
from shared.db.models import OutboxRecord, SocialAccount
from shared.messaging.outbox import OutboxRelay
from shared.platform.service_http import add_operational_routes, broker_check, database_check
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def readyz(engine: AsyncEngine, broker: KafkaBroker) -> httpx.Response:
    app = FastAPI()
    add_operational_routes(app, {"kafka": broker_check(broker), "database": database_check(engine)})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as client:
        assert (await client.get("/healthz")).status_code == 200
        return await client.get("/readyz")


@pytest.fixture
async def started_broker(settings: AllSettings) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(settings.kafka_bootstrap)
    await broker.start()
    yield broker
    await broker.stop()


async def test_ready_only_when_broker_and_database_answer(
    engine: AsyncEngine, started_broker: KafkaBroker
) -> None:
    ready = await readyz(engine, started_broker)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "failed": {}}

    # Nothing listens on port 9: the database check fails, the broker one still passes.
    dead_db = create_async_engine("postgresql+asyncpg://autodm:autodm@127.0.0.1:9/autodm")
    try:
        not_ready = await readyz(dead_db, started_broker)
    finally:
        await dead_db.dispose()
    assert not_ready.status_code == 503
    assert set(not_ready.json()["failed"]) == {"database"}


async def test_not_ready_when_the_broker_is_unreachable(engine: AsyncEngine) -> None:
    unreachable = KafkaBroker("127.0.0.1:9")  # never connected: ping fails
    not_ready = await readyz(engine, unreachable)
    assert not_ready.status_code == 503
    assert set(not_ready.json()["failed"]) == {"kafka"}


@pytest.fixture
async def kafka_clients(
    settings: AllSettings,
) -> AsyncIterator[tuple[AIOKafkaAdminClient, AIOKafkaConsumer]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    offsets = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await offsets.start()
    yield admin, offsets
    await offsets.stop()
    await admin.close()


async def commit_behind(settings: AllSettings, group: str, behind: int) -> None:
    """Commit a group on DLQ partition 0 `behind` records before its end."""
    tp = TopicPartition(DLQ, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(end - behind, "")})
    finally:
        await consumer.stop()


async def test_collector_reports_dlq_depth_and_group_lag(
    settings: AllSettings,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    kafka_clients: tuple[AIOKafkaAdminClient, AIOKafkaConsumer],
) -> None:
    collector = OpsCollector(settings.kafka_bootstrap, sessions, interval_s=60)
    await collector.collect(*kafka_clients)
    depth_before = sample("autodm_topic_records", topic=DLQ)
    for i in range(5):
        await producer.send_and_wait(DLQ, b"poison %d" % i, partition=0)
    group = f"autodm-ops-test-{uuid4().hex[:8]}"
    await commit_behind(settings, group, behind=3)

    await collector.collect(*kafka_clients)
    assert sample("autodm_topic_records", topic=DLQ) == depth_before + 5
    # Partition 0 is 3 behind; the other DLQ partitions were never committed: counted whole.
    depth = sample("autodm_topic_records", topic=DLQ)
    others = depth - await _partition_depth(kafka_clients[1], TopicPartition(DLQ, 0))
    assert sample("autodm_consumer_lag_records", group=group, topic=DLQ) == 3 + others
    assert sample("autodm_ops_collector_last_success_timestamp_seconds") > 0


async def _partition_depth(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    start = (await consumer.beginning_offsets([tp]))[tp]
    end = (await consumer.end_offsets([tp]))[tp]
    return int(end - start)


async def test_collector_buckets_token_expiry_without_a_series_per_account(
    settings: AllSettings,
    sessions: async_sessionmaker[AsyncSession],
    creator: UUID,
    kafka_clients: tuple[AIOKafkaAdminClient, AIOKafkaConsumer],
) -> None:
    collector = OpsCollector(settings.kafka_bootstrap, sessions, interval_s=60)
    await collector.collect(*kafka_clients)
    within_7 = sample("autodm_token_expiry_accounts", provider="instagram", within_days="7")
    within_60 = sample("autodm_token_expiry_accounts", provider="instagram", within_days="60")
    now = utcnow()
    soon, later = uuid4(), uuid4()
    async with sessions.begin() as session:
        for account_id, left in ((soon, timedelta(days=-3650)), (later, timedelta(days=40))):
            session.add(
                SocialAccount(
                    id=account_id,
                    creator_id=creator,
                    provider="instagram",
                    external_id=f"ig-{account_id.hex[:12]}",
                    status="connected",
                    token_expires_at=now + left,
                )
            )
    try:
        await collector.collect(*kafka_clients)
        labels = {"provider": "instagram"}
        assert sample("autodm_token_expiry_accounts", **labels, within_days="7") == within_7 + 1
        assert sample("autodm_token_expiry_accounts", **labels, within_days="60") == within_60 + 2
        soonest = sample("autodm_token_expiry_soonest_seconds", **labels, account_id=str(soon))
        assert soonest < -3649 * 86400
        series = [
            s
            for m in REGISTRY.collect()
            if m.name == "autodm_token_expiry_soonest_seconds"
            for s in m.samples
        ]
        assert len(series) <= 5
    finally:
        async with sessions.begin() as session:
            await session.execute(delete(SocialAccount).where(SocialAccount.id.in_([soon, later])))


async def test_outbox_backlog_gauge_counts_unpublished_records(
    sessions: async_sessionmaker[AsyncSession], started_broker: KafkaBroker
) -> None:
    relay = OutboxRelay(sessions, started_broker, batch_size=500, poll_interval_s=0.1)
    before = await relay.backlog()
    async with sessions.begin() as session:
        record = OutboxRecord(
            topic=DLQ, key="k", payload=b"{}", headers={}, correlation_id="backlog-test"
        )
        session.add(record)
    try:
        assert await relay.backlog() == before + 1
        assert sample("autodm_outbox_backlog") == before + 1
        assert sample("autodm_outbox_oldest_age_seconds") >= 0
    finally:
        async with sessions.begin() as session:
            await session.execute(delete(OutboxRecord).where(OutboxRecord.id == record.id))
