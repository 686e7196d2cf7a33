"""The unit of work on PostgreSQL: the outbox row commits with the change, the relay is
woken after the commit (NOTIFY inside the transaction, delivered only once it commits), and
a unit that fails leaves neither rows nor a wake."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import asyncpg  # type: ignore[import-untyped]  # no stubs
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.events import DmStatusChanged, DmStatusPayload
from shared.contracts.lifecycle import DmStatus
from shared.db.models import OutboxRecord
from shared.db.session import driver_dsn
from shared.messaging.outbox import OUTBOX_CHANNEL
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.settings import Settings

pytestmark = pytest.mark.integration


def _event(key: UUID) -> DmStatusChanged:
    return DmStatusChanged(
        correlation_id=f"uow-{key}",
        creator_id=uuid4(),
        payload=DmStatusPayload(lead_id=key, status=DmStatus.SENT),
    )


async def _rows(sessions: async_sessionmaker[AsyncSession], key: UUID) -> int:
    async with sessions() as session:
        query = select(func.count()).where(OutboxRecord.key == str(key))
        return int(await session.scalar(query) or 0)


async def test_a_published_event_commits_with_the_unit_and_wakes_the_relay_after(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    wakes: list[int] = []
    key = uuid4()
    uow = UnitOfWorkFactory(sessions, lambda: wakes.append(1))
    async with uow() as work:
        work.publish("dm.status", str(key), _event(key))
        assert wakes == []  # not before the commit
    assert wakes == [1]
    assert await _rows(sessions, key) == 1

    async with uow() as work:  # nothing published: no wake
        await work.session.execute(select(1))
    assert wakes == [1]


async def test_a_failing_unit_publishes_nothing_and_wakes_nobody(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    wakes: list[int] = []
    key = uuid4()
    uow = UnitOfWorkFactory(sessions, lambda: wakes.append(1))
    with pytest.raises(RuntimeError):
        async with uow() as work:
            work.publish("dm.status", str(key), _event(key))
            raise RuntimeError("after the publish")
    assert wakes == []
    assert await _rows(sessions, key) == 0


async def test_notify_reaches_a_listener_only_for_a_committed_unit(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(driver_dsn(settings))
    await listener.add_listener(OUTBOX_CHANNEL, lambda *args: heard.put_nowait(args[2]))
    try:
        uow = UnitOfWorkFactory(sessions, notify=True)
        with pytest.raises(RuntimeError):
            async with uow() as work:
                work.publish("dm.status", "k", _event(uuid4()))
                raise RuntimeError("rolled back")
        async with uow() as work:
            work.publish("dm.status", "k", _event(uuid4()))
        assert await asyncio.wait_for(heard.get(), timeout=30) == OUTBOX_CHANNEL
        await asyncio.sleep(0.5)
        assert heard.empty()  # the rolled-back unit's NOTIFY was never delivered
    finally:
        await listener.close()
