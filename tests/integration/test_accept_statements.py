"""Accepting a lead on PostgreSQL in one statement (UnitOfWork.insert_new): the lead, its
`queued` log line and its lead.created outbox row commit together, the relay hears of them
only once they committed, an unknown creator leaves nothing, and a unit that also changes
rows falls back to the ORM's flush."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import asyncpg  # type: ignore[import-untyped]  # no stubs
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.api.http.schemas import LeadIn
from services.api.service_layer.leads import UnknownCreator, create_lead
from shared.contracts.lifecycle import DmStatus
from shared.contracts.topics import LEADS_CREATED
from shared.db.models import Creator, DmLogEntry, Lead, OutboxRecord
from shared.db.session import driver_dsn
from shared.messaging import batched_insert
from shared.messaging.outbox import OUTBOX_CHANNEL
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.settings import Settings
from tests.sql_statements import statements

pytestmark = pytest.mark.integration


def _lead(creator_id: UUID, name: str) -> LeadIn:
    return LeadIn(creator_id=creator_id, name=name, phone="+44 20 7946 0958")


async def _written(sessions: async_sessionmaker[AsyncSession], lead_id: UUID) -> tuple[int, ...]:
    async with sessions() as session:
        counts = [
            await session.scalar(select(func.count()).where(Lead.id == lead_id)),
            await session.scalar(select(func.count()).where(DmLogEntry.lead_id == lead_id)),
            await session.scalar(
                select(func.count()).where(
                    OutboxRecord.topic == LEADS_CREATED,
                    OutboxRecord.payload.contains(str(lead_id).encode()),
                )
            ),
        ]
    return tuple(int(n or 0) for n in counts)


async def test_a_lead_is_accepted_in_one_statement_and_the_relay_hears_after_commit(
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings: Settings,
    creator: UUID,
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(driver_dsn(settings))
    await listener.add_listener(OUTBOX_CHANNEL, lambda *args: heard.put_nowait(args[2]))
    wakes: list[int] = []
    try:
        uow = UnitOfWorkFactory(sessions, lambda: wakes.append(1), notify=True)
        with statements(engine) as sent:
            async with uow() as work:
                lead = await create_lead(work, _lead(creator, "Ann"), "one")
                await asyncio.sleep(0.3)
                assert heard.empty()  # not before the commit
        # The lead, its log line, its outbox row and the relay's wake: one statement (the
        # ORM's flush took three, and NOTIFY a fourth).
        assert len(sent) == 1, sent
        assert await asyncio.wait_for(heard.get(), timeout=30) == OUTBOX_CHANNEL
        assert wakes == [1]
    finally:
        await listener.close()
    assert await _written(sessions, lead.id) == (1, 1, 1)
    async with sessions() as session:
        stored = await session.get(Lead, lead.id)
        log = await session.scalar(select(DmLogEntry).where(DmLogEntry.lead_id == lead.id))
        outbox = await session.scalar(
            select(OutboxRecord).where(OutboxRecord.payload.contains(str(lead.id).encode()))
        )
    assert stored is not None and stored.dm_status == DmStatus.QUEUED and stored.name == "Ann"
    assert stored.whatsapp_opt_in is False and stored.ref == lead.ref
    assert log is not None and log.status == DmStatus.QUEUED and log.detail == {}
    assert log.txid is not None  # server-side defaults still apply
    assert outbox is not None and outbox.key == str(creator) and outbox.published_at is None
    assert outbox.headers  # the event's headers, as the ORM wrote them
    # What the API answers from is the object as written, no read back.
    assert lead.dm_status == DmStatus.QUEUED and lead.created_at is not None


async def test_an_unknown_creator_writes_nothing_and_wakes_nobody(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(driver_dsn(settings))
    await listener.add_listener(OUTBOX_CHANNEL, lambda *args: heard.put_nowait(args[2]))
    wakes: list[int] = []
    try:
        uow = UnitOfWorkFactory(sessions, lambda: wakes.append(1), notify=True)
        with pytest.raises(UnknownCreator):
            async with uow() as work:
                await create_lead(work, _lead(uuid4(), "Nobody's"), "none")
        await asyncio.sleep(0.5)
        assert heard.empty() and wakes == []
    finally:
        await listener.close()


async def test_a_unit_that_fails_after_the_insert_rolls_it_back(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    uow = UnitOfWorkFactory(sessions, notify=True)
    with pytest.raises(RuntimeError):
        async with uow() as work:
            lead = await create_lead(work, _lead(creator, "Gone"), "gone")
            raise RuntimeError("after the insert")
    assert await _written(sessions, lead.id) == (0, 0, 0)


async def test_changed_rows_fall_back_to_the_orm_flush(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    uow = UnitOfWorkFactory(sessions)
    async with uow() as work:
        owner = await work.get(Creator, creator)
        assert owner is not None
        owner.name = "Renamed"  # a changed row: not an insert-only unit
        lead = await create_lead(work, _lead(creator, "Bo"), "mixed")
        assert lead in work.session  # flushed by the ORM, still in the session
    assert await _written(sessions, lead.id) == (1, 1, 1)
    async with sessions() as session:
        assert (await session.get(Creator, creator)).name == "Renamed"  # type: ignore[union-attr]


async def test_an_accept_of_a_known_shape_reuses_its_statement(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    uow = UnitOfWorkFactory(sessions, notify=True)
    async with uow() as work:
        await create_lead(work, _lead(creator, "First"), "shape")
    shapes = set(batched_insert._STATEMENTS)
    async with uow() as work:
        await create_lead(work, _lead(creator, "Second"), "shape")
    # The same columns, other values: no statement built (the accept's CPU: issue 20).
    assert shapes == set(batched_insert._STATEMENTS)


async def test_two_rows_of_one_table_keep_their_order_by_the_orm(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    uow = UnitOfWorkFactory(sessions)
    async with uow() as work:
        lead = await create_lead(work, _lead(creator, "Two lines"), "order")
    async with uow() as work:
        for status in (DmStatus.SENDING, DmStatus.SENT):
            work.add(
                DmLogEntry(
                    lead_id=lead.id,
                    event_id=uuid4(),
                    status=status,
                    attempt=1,
                    detail={},
                    occurred_at=lead.created_at,
                )
            )
        await work.insert_new()  # one statement's CTEs have no order: the ORM's flush
    async with sessions() as session:
        rows = await session.scalars(
            select(DmLogEntry.status).where(DmLogEntry.lead_id == lead.id).order_by(DmLogEntry.id)
        )
        assert list(rows) == [DmStatus.QUEUED, DmStatus.SENDING, DmStatus.SENT]
