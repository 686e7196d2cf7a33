"""The status projection on the fake unit of work (no database): forward-only, idempotent
by event id, and a status for an unknown lead is poison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from services.api.workers.status_projection import project_statuses
from shared.contracts.events import DmStatusChanged, DmStatusPayload
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.db.models import DmLogEntry, Lead
from shared.messaging.dead_letters import PoisonMessage
from tests.fake_uow import FakeUnitsOfWork

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _lead(creator_id: UUID) -> Lead:
    return Lead(
        id=uuid4(),
        creator_id=creator_id,
        dm_status=DmStatus.QUEUED,
        dm_route=Route.IG_DM,
        dm_provider=Provider.INSTAGRAM,
        dm_attempt=1,
        dm_attempts=0,
        created_at=T0,
        updated_at=T0,
    )


def _status(lead: Lead, status: DmStatus, minutes: int, **fields: object) -> DmStatusChanged:
    return DmStatusChanged(
        correlation_id="c",
        creator_id=lead.creator_id,
        occurred_at=T0 + timedelta(minutes=minutes),
        payload=DmStatusPayload(lead_id=lead.id, status=status, attempt=1, **fields),
    )


def _store(lead: Lead) -> FakeUnitsOfWork:
    uow = FakeUnitsOfWork()
    uow.put(lead)
    return uow


async def _project(uow: FakeUnitsOfWork, events: list[DmStatusChanged]) -> int:
    async with uow() as work:
        return await project_statuses(work, events)


async def test_statuses_move_the_lead_forward_and_are_logged() -> None:
    lead = _lead(uuid4())
    uow = _store(lead)
    sending = _status(lead, DmStatus.SENDING, 1)
    sent = _status(lead, DmStatus.SENT, 2, provider_message_id="m1")
    assert await _project(uow, [sending, sent]) == 2
    assert (lead.dm_status, lead.dm_attempts, lead.provider_message_id) == (
        DmStatus.SENT,
        1,
        "m1",
    )
    assert lead.sent_at == sent.occurred_at
    assert [e.status for e in uow.of(DmLogEntry)] == [DmStatus.SENDING, DmStatus.SENT]


async def test_a_redelivered_batch_changes_nothing() -> None:
    lead = _lead(uuid4())
    uow = _store(lead)
    events = [_status(lead, DmStatus.SENDING, 1), _status(lead, DmStatus.SENT, 2)]
    assert await _project(uow, events) == 2
    assert await _project(uow, events) == 0
    assert await _project(uow, [events[0], events[0]]) == 0
    assert len(uow.of(DmLogEntry)) == 2
    assert lead.dm_attempts == 1


async def test_a_stale_status_never_moves_the_lead_back() -> None:
    lead = _lead(uuid4())
    uow = _store(lead)
    assert await _project(uow, [_status(lead, DmStatus.READ, 3)]) == 1
    late = [_status(lead, DmStatus.SENDING, 1), _status(lead, DmStatus.DELIVERED, 2)]
    assert await _project(uow, late) == 0
    assert lead.dm_status == DmStatus.READ
    # What was read was sent, by then at the latest.
    assert lead.sent_at == T0 + timedelta(minutes=3)


async def test_a_late_sent_refines_the_sent_time_without_moving_the_status() -> None:
    lead = _lead(uuid4())
    uow = _store(lead)
    await _project(uow, [_status(lead, DmStatus.DELIVERED, 5)])
    late_sent = _status(lead, DmStatus.SENT, 4, provider_message_id="m9")
    assert await _project(uow, [late_sent]) == 0
    assert (lead.dm_status, lead.sent_at, lead.provider_message_id) == (
        DmStatus.DELIVERED,
        late_sent.occurred_at,
        "m9",
    )


async def test_a_status_for_an_unknown_lead_is_poison_and_claims_nothing() -> None:
    lead = _lead(uuid4())
    uow = _store(lead)
    stranger = _status(_lead(lead.creator_id), DmStatus.SENT, 1)
    with pytest.raises(PoisonMessage):
        await _project(uow, [stranger])
    assert uow.claimed == set()  # rolled back: a replay from the DLQ is handled afresh


async def test_an_erased_lead_takes_no_status() -> None:
    lead = _lead(uuid4())
    lead.erased_at = T0
    uow = _store(lead)
    assert await _project(uow, [_status(lead, DmStatus.SENT, 1)]) == 0
    assert lead.dm_status == DmStatus.QUEUED
