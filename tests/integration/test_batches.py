"""Batch consumption (shared.batches) on the real database: a poison record among good
ones is parked alone, duplicates in one batch count once, order within a lead holds."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.leads import create_lead
from services.api.projection import project_statuses
from services.api.schemas import LeadIn
from shared.batches import BatchWork
from shared.db.models import Lead
from shared.events import DmStatusChanged, DmStatusPayload
from shared.lifecycle import DmStatus
from tests.records import consumer_record

pytestmark = pytest.mark.integration


def _record(offset: int, value: bytes) -> ConsumerRecord[Any, Any]:
    return consumer_record(value, offset)


class _Batch:
    """What the decoder reads of faststream's message: the batch's records."""

    def __init__(self, records: tuple[ConsumerRecord[Any, Any], ...]) -> None:
        self.raw_message = records


def _status(creator: UUID, lead_id: UUID, status: DmStatus) -> DmStatusChanged:
    return DmStatusChanged(
        correlation_id="batch-test",
        creator_id=creator,
        payload=DmStatusPayload(lead_id=lead_id, status=status),
    )


async def _lead(sessions: async_sessionmaker[AsyncSession], creator: UUID) -> UUID:
    async with sessions.begin() as session:
        lead = await create_lead(
            session, LeadIn(creator_id=creator, name="Bea", phone="+14155550123"), "batch-test"
        )
    return lead.id


async def test_one_poison_record_is_parked_alone_and_the_rest_is_projected(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    first, second = await _lead(sessions, creator), await _lead(sessions, creator)
    sending = _status(creator, first, DmStatus.SENDING)
    events = [
        sending,
        _status(creator, uuid4(), DmStatus.SENT),  # no such lead: poison
        _status(creator, second, DmStatus.SENDING),
        sending,  # the same event twice in one batch: applied once
        _status(creator, first, DmStatus.SENT),  # after `sending` of the same lead
    ]
    records = [_record(i, e.model_dump_json().encode()) for i, e in enumerate(events)]
    records.insert(2, _record(99, b"{not json"))
    parked: list[tuple[int, str]] = []

    async def park(record: ConsumerRecord[Any, Any], exc: BaseException) -> None:
        parked.append((record.offset, type(exc).__name__))

    work = BatchWork(DmStatusChanged, sessions, project_statuses, park)
    await work.run(await work.decoder(_Batch(tuple(records))), records)

    assert sorted(parked) == [(1, "PoisonMessage"), (99, "ValidationError")]
    async with sessions() as session:
        a, b = await session.get(Lead, first), await session.get(Lead, second)
    assert a is not None and b is not None
    assert (a.dm_status, a.dm_attempts) == (DmStatus.SENT, 1)
    assert b.dm_status == DmStatus.SENDING


async def test_a_redelivered_batch_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    lead_id = await _lead(sessions, creator)
    events = [_status(creator, lead_id, DmStatus.SENDING), _status(creator, lead_id, DmStatus.SENT)]
    async with sessions.begin() as session:
        assert await project_statuses(session, events) == 2
    async with sessions.begin() as session:
        assert await project_statuses(session, events) == 0
