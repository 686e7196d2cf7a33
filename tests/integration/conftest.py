"""Fixtures on the real broker and database: a migrated schema, topics, helpers to read
topics back, and services run in-process through their own app factories."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from local_issuer.app import create_app as create_issuer
from local_issuer.settings import IssuerSettings
from shared.contracts.topics import BY_NAME
from shared.db.models import Creator, SocialAccount
from shared.db.session import make_engine, make_sessionmaker
from shared.messaging.topic_admin import provision_topics
from shared.platform.crypto import TokenCipher
from tests.conftest import ROOT
from tests.integration.issuer import Issuer
from tests.integration.served import free_port, served
from tests.settings import AllSettings, get_all_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def issuer() -> Iterator[Issuer]:
    """The local issuer on a free port; the API under test trusts only it."""
    port = free_port()
    config = IssuerSettings(port=port, issuer=f"http://127.0.0.1:{port}")
    app = create_issuer(config)
    with served(app, port) as url:
        yield Issuer(url, app.state.keys, config.audience, "autodm-services")


@pytest.fixture(scope="session")
def settings(issuer: Issuer) -> AllSettings:
    return get_all_settings().model_copy(
        update={
            "jwks_url": issuer.jwks_url,
            "jwt_issuer": issuer.base_url,
            "jwt_audience": issuer.audience,
            "jwt_service_audience": issuer.service_audience,
            # Tests rotate keys back to back; production keeps the cooldown.
            "jwks_refresh_cooldown_s": 0.0,
        }
    )


@pytest.fixture(scope="session", autouse=True)
def _schema_and_topics(settings: AllSettings) -> None:
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "heads"], cwd=ROOT, check=True)
    asyncio.run(provision_topics(settings.kafka_bootstrap))


@pytest.fixture(scope="session")
async def engine(settings: AllSettings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture(scope="session")
async def producer(settings: AllSettings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    yield producer
    await producer.stop()


class TopicReader:
    """Reads a topic from its current end, so a test sees only what it caused."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._topic = topic
        self.records: list[Any] = []

    async def start(self) -> None:
        await self._consumer.start()
        partitions = [
            TopicPartition(self._topic, p) for p in range(BY_NAME[self._topic].partitions)
        ]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the lazy seek now, before the test produces
            await self._consumer.position(tp)

    async def wait_for(self, predicate: Callable[[Any], bool], timeout_s: float = 20.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout_s
        for record in self.records:
            if predicate(record):
                return record
        while asyncio.get_running_loop().time() < deadline:
            batch = await self._consumer.getmany(timeout_ms=200)
            fresh = [record for records in batch.values() for record in records]
            self.records.extend(fresh)  # keep the whole batch: later waits may want the rest
            for record in fresh:
                if predicate(record):
                    return record
        raise AssertionError(f"no matching record on {self._topic} within {timeout_s}s")

    async def stop(self) -> None:
        await self._consumer.stop()


@pytest.fixture
async def read_topic(settings: AllSettings) -> AsyncIterator[Callable[[str], Any]]:
    readers: list[TopicReader] = []

    async def open_reader(topic: str) -> TopicReader:
        reader = TopicReader(settings.kafka_bootstrap, topic)
        await reader.start()
        readers.append(reader)
        return reader

    yield open_reader
    for reader in readers:
        await reader.stop()


def running(app: FastAPI) -> AbstractAsyncContextManager[None]:
    """Run a service in-process: its real lifespan (broker, consumers, relay)."""
    return app.router.lifespan_context(app)  # type: ignore[return-value]


@pytest.fixture
async def creator(sessions: async_sessionmaker[AsyncSession]) -> UUID:
    creator_id = uuid4()
    async with sessions.begin() as session:
        session.add(
            Creator(
                id=creator_id,
                name="Test Creator",
                slug=f"c-{creator_id.hex[:12]}",
                dm_template="Hi {name}, here is the guide!",
            )
        )
    return creator_id


async def connect_instagram(
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
    creator_id: UUID,
    ig_user_id: str,
    username: str,
    token: str,
) -> UUID:
    account_id = uuid4()
    async with sessions.begin() as session:
        session.add(
            SocialAccount(
                id=account_id,
                creator_id=creator_id,
                provider="instagram",
                external_id=ig_user_id,
                username=username,
                status="connected",
                access_token_encrypted=TokenCipher.from_settings(settings).encrypt(token),
            )
        )
    return account_id


@pytest.fixture
async def topic(settings: AllSettings) -> AsyncIterator[str]:
    """A one-partition topic of the test's own, deleted after it."""
    name = f"test.topic.{uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()
