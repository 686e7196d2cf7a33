"""A batch consumer's writes in one statement (UnitOfWork.write_all) on PostgreSQL: the
status projection's lead updates and log lines, the router's routes and requests, each
batch's writes one statement after its reads; a changed row gone from under the unit
fails it, as the ORM's flush does; deletes fall back to the ORM."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import delete, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from services.api.http.schemas import LeadIn
from services.api.service_layer.lead_routing import RouterConfig, route_leads
from services.api.service_layer.leads import create_lead
from services.api.workers.status_projection import project_statuses
from shared.contracts.events import (
    DmStatusChanged,
    DmStatusPayload,
    LeadCreatedPayloadV2,
    LeadCreatedV2,
    utcnow,
)
from shared.contracts.lead_sources import LeadSource
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.route_choice import RoutingRules
from shared.db.models import DmLogEntry, Lead, OutboxRecord
from shared.messaging.unit_of_work import UnitOfWorkFactory
from tests.fake_uow import SessionWork

pytestmark = pytest.mark.integration


@contextmanager
def writes(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements sent while inside that write (claims of processed events aside)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith("SELECT") and "processed_events" not in (
            statement
        ):
            sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def _leads(sessions: async_sessionmaker[AsyncSession], creator: UUID, n: int) -> list[Lead]:
    leads = []
    async with sessions.begin() as session:
        for i in range(n):
            data = LeadIn(creator_id=creator, name=f"Lead {i}", phone="+44 20 7946 0958")
            leads.append(await create_lead(SessionWork(session), data, "batch-writes"))
    return leads


def _status(creator: UUID, lead_id: UUID, status: DmStatus, **fields: Any) -> DmStatusChanged:
    return DmStatusChanged(
        correlation_id="batch-writes",
        creator_id=creator,
        payload=DmStatusPayload(
            lead_id=lead_id, status=status, route=Route.WA_TEMPLATE, provider=Provider.WHATSAPP
        ).model_copy(update=fields),
    )


async def _log(sessions: async_sessionmaker[AsyncSession], lead_id: UUID) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(
            select(DmLogEntry.status).where(DmLogEntry.lead_id == lead_id).order_by(DmLogEntry.id)
        )
        return list(rows)


async def test_a_projection_batch_writes_its_leads_and_log_in_one_statement(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine, creator: UUID
) -> None:
    one, two = await _leads(sessions, creator, 2)
    batch = [
        _status(creator, one.id, DmStatus.SENDING),
        _status(creator, one.id, DmStatus.SENT, provider_message_id="wamid.1"),
        _status(creator, two.id, DmStatus.SENDING),
    ]
    uow = UnitOfWorkFactory(sessions)
    with writes(engine) as sent:
        async with uow() as work:
            assert await project_statuses(work, batch) == 3
    # Two lead UPDATEs of different columns and three log lines: one statement (the ORM's
    # flush sent an UPDATE per set of columns and an INSERT).
    assert len(sent) == 1, sent
    async with sessions() as session:
        first, second = await session.get(Lead, one.id), await session.get(Lead, two.id)
    assert first is not None and second is not None
    assert (first.dm_status, first.provider_message_id, first.dm_attempts) == (
        DmStatus.SENT,
        "wamid.1",
        1,
    )
    assert first.sent_at == batch[1].occurred_at and first.dm_route == Route.WA_TEMPLATE
    assert (second.dm_status, second.dm_attempts, second.sent_at) == (DmStatus.SENDING, 1, None)
    assert await _log(sessions, one.id) == ["queued", "sending", "sent"]
    assert await _log(sessions, two.id) == ["queued", "sending"]

    # Redelivered and stale: nothing moves, nothing is written.
    with writes(engine) as sent:
        async with uow() as work:
            assert await project_statuses(work, batch) == 0
        async with uow() as work:
            late = _status(creator, one.id, DmStatus.SENDING)
            assert await project_statuses(work, [late]) == 0
    assert sent == []
    assert await _log(sessions, one.id) == ["queued", "sending", "sent"]


def _created(creator: UUID, leads: list[Lead]) -> list[LeadCreatedV2]:
    return [
        LeadCreatedV2(
            correlation_id="batch-writes",
            creator_id=creator,
            payload=LeadCreatedPayloadV2(
                lead_id=lead.id, name=lead.name, message="", source=LeadSource.API
            ),
        )
        for lead in leads
    ]


async def _routed(sessions: async_sessionmaker[AsyncSession], leads: list[Lead]) -> list[Any]:
    """What routing left of each lead: its DM's state, its log, the requests it published."""
    found = []
    async with sessions() as session:
        for lead in leads:
            stored = await session.get(Lead, lead.id)
            assert stored is not None
            requests = await session.scalar(
                select(func.count()).where(
                    OutboxRecord.topic.like("dm.requested%"),
                    OutboxRecord.payload.contains(str(lead.id).encode()),
                )
            )
            state = (stored.dm_status, stored.dm_route, stored.dm_provider, stored.dm_reason)
            found.append((state, await _log(sessions, lead.id), requests))
    return found


async def test_a_router_batch_writes_its_routes_and_requests_in_one_statement(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine, creator: UUID
) -> None:
    config, now = RouterConfig(RoutingRules()), utcnow()
    by_orm = await _leads(sessions, creator, 3)
    async with sessions.begin() as session:  # the ORM's flush, as a reference
        assert await route_leads(SessionWork(session), _created(creator, by_orm), config, now) == 3
    leads = await _leads(sessions, creator, 3)
    with writes(engine) as sent:
        async with UnitOfWorkFactory(sessions)() as work:
            assert await route_leads(work, _created(creator, leads), config, now) == 3
    assert len(sent) == 1, sent  # routes, log lines, requests: one statement
    assert await _routed(sessions, leads) == await _routed(sessions, by_orm)
    assert all(state[1] is not None for state, _, _ in await _routed(sessions, leads))


async def test_a_changed_row_gone_from_under_the_unit_fails_it(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    (lead,) = await _leads(sessions, creator, 1)
    with pytest.raises(StaleDataError):
        async with UnitOfWorkFactory(sessions)() as work:
            loaded = await work.get(Lead, lead.id)  # not locked: another unit may delete it
            assert loaded is not None
            async with sessions.begin() as other:
                await other.execute(delete(Lead).where(Lead.id == lead.id))
            loaded.name = "Changed"
            await work.write_all()


async def test_a_delete_falls_back_to_the_orm_flush(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    one, two = await _leads(sessions, creator, 2)
    async with UnitOfWorkFactory(sessions)() as work:
        first, second = await work.get(Lead, one.id), await work.get(Lead, two.id)
        assert first is not None and second is not None
        await work.session.delete(first)
        second.name = "Kept"
        await work.write_all()
        assert second in work.session  # the ORM's flush: still in the session
    async with sessions() as session:
        assert await session.get(Lead, one.id) is None
        assert (await session.get(Lead, two.id)).name == "Kept"  # type: ignore[union-attr]
