"""Upgrade step: Instagram DMs deferred on `dm.retry.instagram` by an earlier version are
moved into `deferred_sends`, where the Instagram sender's poller re-requests them.

The retry topic is retired (shared.contracts.topics.RETIRED), and nothing else reads it
any more, so a record left there at the upgrade would leave its DM `deferred` for good.
The Instagram sender runs this once at start: it reads the topic in the old retry
consumer's group from where that group stopped, writes each record as a deferral row (its
due time, reason and delivery headers as they were), commits, and ends once it has reached
the end of every partition. The topic then holds nothing unread, and the next `autodm
topics provision` deletes it. A record moved twice (a crash before the commit) is one row;
a DM already sent is re-announced, never resent (the send intent decides).
Remove this module once every installation has run a version with it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.events import DmRequested
from shared.delivery import deferrals
from shared.messaging.delayed_retries import H_DEFERRED_FOR, H_NOT_BEFORE
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.logs import get_logger

log = get_logger(__name__)

RETRY_TOPIC = "dm.retry.instagram"
RETRY_GROUP = "autodm-instagram-sender-retry"


async def drain_retry_topic(
    bootstrap: str,
    sessions: async_sessionmaker[AsyncSession],
    topic: str = RETRY_TOPIC,
    group: str = RETRY_GROUP,
) -> int | None:
    """Move what the retired retry topic still holds into deferred_sends; how many (None
    once the topic is gone: nothing will ever be left there again)."""
    partitions = await _partitions(bootstrap, topic)
    if not partitions:
        return None
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=f"{group}-drain",
    )
    await consumer.start()
    try:
        return await _drain(consumer, UnitOfWorkFactory(sessions), partitions)
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="autodm-drain")
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return []
        (described,) = await admin.describe_topics([topic])
        return [TopicPartition(topic, int(p["partition"])) for p in described["partitions"]]
    finally:
        await admin.close()


async def _drain(
    consumer: AIOKafkaConsumer, uow: UnitOfWorkFactory, partitions: list[TopicPartition]
) -> int:
    consumer.assign(partitions)
    end = await consumer.end_offsets(partitions)
    moved = 0
    while await _behind(consumer, end):
        batch = await consumer.getmany(timeout_ms=1000, max_records=500)
        async with uow() as work:
            for records in batch.values():
                for record in records:
                    moved += await _move(work.session, record.value, record.headers)
        await consumer.commit()
    if moved:
        log.warning("deferred Instagram DMs moved from the retired retry topic", moved=moved)
    return moved


async def _behind(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, last in end.items():
        if await consumer.position(tp) < last:
            return True
    return False


async def _move(
    session: AsyncSession, value: bytes | None, raw: tuple[tuple[str, bytes], ...] | None
) -> int:
    headers = {k: v.decode(errors="replace") for k, v in raw or ()}
    try:
        request = DmRequested.model_validate_json(value or b"")
    except ValueError:
        log.warning("unreadable record on the retired retry topic: skipped")
        return 0
    due = datetime.fromtimestamp(float(headers.get(H_NOT_BEFORE) or 0), UTC)
    reason = headers.get(H_DEFERRED_FOR, "transient")
    await deferrals.defer(session, request, due, reason, headers=headers)
    return 1


async def drain_until_gone(
    bootstrap: str, sessions: async_sessionmaker[AsyncSession], every_s: float = 60.0
) -> None:
    """The Instagram sender's background task: a pass now and then (an old sender may
    still write there during a rolling upgrade, and its live group refuses our commits
    until it has left), until the provisioning has deleted the topic."""
    while True:
        try:
            if await drain_retry_topic(bootstrap, sessions) is None:
                return
        except Exception as exc:  # Kafka or the database away, the old group still live
            log.info("retired retry topic not drained yet", error=repr(exc))
        await asyncio.sleep(every_s)
