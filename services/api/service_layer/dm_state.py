"""A lead's DM state: the only code that moves it, forward-only, with an append-only log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from services.api.service_layer.funnel_stages import count as count_stage
from services.api.service_layer.funnel_stages import stages_passed
from shared.contracts.events import DmStatusPayload
from shared.contracts.lifecycle import DmStatus, is_forward
from shared.db.models import DmLogEntry, Lead
from shared.messaging.unit_of_work import UnitOfWork
from shared.platform.metrics import DMS

# Statuses that say the DM reached the person: it was sent, whatever order they came in.
REACHED = frozenset({DmStatus.SENT, DmStatus.DELIVERED, DmStatus.READ, DmStatus.REPLIED})


def record_transition(
    uow: UnitOfWork,
    lead: Lead,
    status: DmStatus,
    *,
    attempt: int,
    event_id: UUID,
    occurred_at: datetime,
    detail: dict[str, Any],
    route: str | None = None,
) -> bool:
    """Move the lead to `status` if that is forward, and log it; False if it was stale.
    `route` is the route the status is about, when it may differ from the lead's (a
    sender's fallback: shared.contracts.lifecycle.is_reroute)."""
    current = DmStatus(lead.dm_status)
    if not is_forward(
        current, lead.dm_attempt, status, attempt, current_route=lead.dm_route, new_route=route
    ):
        return False
    for stage in stages_passed(current, status, attempt == lead.dm_attempt):
        count_stage(stage, route or lead.dm_route, lead.source)
    lead.dm_status = status
    lead.dm_attempt = attempt
    lead.updated_at = occurred_at
    uow.add(
        DmLogEntry(
            lead_id=lead.id,
            event_id=event_id,
            status=status,
            attempt=attempt,
            detail={k: v for k, v in detail.items() if v is not None},
            occurred_at=occurred_at,
        )
    )
    DMS.labels(
        provider=lead.dm_provider or "none", route=lead.dm_route or "none", status=status
    ).inc()
    return True


def apply_status_event(
    uow: UnitOfWork,
    lead: Lead,
    payload: DmStatusPayload,
    event_id: UUID,
    occurred_at: datetime,
) -> bool:
    """Project a dm.status event onto the lead (fields only when the status moves forward).
    A lead deleted at the person's request takes none: its details would name them."""
    if lead.erased_at is not None:
        return False
    moved = record_transition(
        uow,
        lead,
        payload.status,
        attempt=payload.attempt,
        event_id=event_id,
        occurred_at=occurred_at,
        detail={
            "reason": payload.reason,
            "link": payload.link,
            "provider_message_id": payload.provider_message_id,
            "error": payload.error.model_dump() if payload.error else None,
        },
        route=payload.route,
    )
    if not moved:
        _late_sent(lead, payload, occurred_at)
        return False
    if payload.route:
        lead.dm_route = payload.route
    if payload.provider:
        lead.dm_provider = payload.provider
    if payload.link:
        lead.dm_link = payload.link
    if payload.reason:
        lead.dm_reason = payload.reason
    if payload.provider_message_id:
        lead.provider_message_id = payload.provider_message_id
    if payload.error:
        lead.dm_error_code = payload.error.code
        lead.dm_error_subcode = payload.error.subcode
        lead.dm_error_message = payload.error.message
    if payload.status == DmStatus.SENDING:
        lead.dm_attempts += 1
    if payload.status == DmStatus.SENT:
        lead.sent_at = occurred_at
    elif payload.status in REACHED and lead.sent_at is None:
        # A receipt overtook the `sent`: what was delivered or read was sent, by then at the
        # latest; the late `sent` refines the time (_late_sent).
        lead.sent_at = occurred_at
    if payload.status == DmStatus.READ:
        lead.read_at = occurred_at
    return True


def _late_sent(lead: Lead, payload: DmStatusPayload, occurred_at: datetime) -> None:
    """A `sent` that arrives after the DM's receipt (stale by rank) still says when it went
    out and with which message id: keep them, without moving the status back."""
    if payload.status != DmStatus.SENT or payload.attempt != lead.dm_attempt:
        return
    if DmStatus(lead.dm_status) not in REACHED:
        return
    if lead.sent_at is None or occurred_at < lead.sent_at:
        lead.sent_at = occurred_at
    if lead.provider_message_id is None and payload.provider_message_id:
        lead.provider_message_id = payload.provider_message_id


def log_created(uow: UnitOfWork, lead: Lead, event_id: UUID, occurred_at: datetime) -> None:
    """The first log line of every DM: queued, when the lead was accepted."""
    uow.add(
        DmLogEntry(
            lead_id=lead.id,
            event_id=event_id,
            status=DmStatus.QUEUED,
            attempt=1,
            detail={},
            occurred_at=occurred_at,
        )
    )


def start_attempt(
    uow: UnitOfWork, lead: Lead, event_id: UUID, occurred_at: datetime, requested_by: str
) -> int:
    """A retry: the next attempt of the same DM begins `queued`, with the last attempt's
    outcome left in the log and cleared from the lead."""
    attempt = lead.dm_attempt + 1
    record_transition(
        uow,
        lead,
        DmStatus.QUEUED,
        attempt=attempt,
        event_id=event_id,
        occurred_at=occurred_at,
        detail={"retry_of": lead.dm_attempt, "requested_by": requested_by},
    )
    lead.dm_reason = None
    lead.dm_link = None
    lead.dm_error_code = None
    lead.dm_error_subcode = None
    lead.dm_error_message = None
    return attempt


class _AboutALead(Protocol):
    @property
    def lead_id(self) -> UUID: ...


class LeadEvent(Protocol):
    """lead.created, a retry, a dm.status: an event whose payload names its lead."""

    @property
    def id(self) -> UUID: ...

    @property
    def payload(self) -> _AboutALead: ...


E = TypeVar("E", bound=LeadEvent)


async def claim_and_lock(
    uow: UnitOfWork, consumer: str, events: Sequence[E]
) -> tuple[list[E], dict[UUID, Lead]]:
    """A batch's events this consumer has not handled yet (one claim for all), in lead-id
    order and, within a lead, in the order given (the partition's); and their leads, FOR
    UPDATE in one read, locked in id order so concurrent batches never wait in a cycle."""
    claimed = await uow.claim(consumer, [e.id for e in events])
    fresh = sorted(
        {e.id: e for e in events if e.id in claimed}.values(), key=lambda e: e.payload.lead_id
    )
    ids = {e.payload.lead_id for e in fresh}
    if not ids:
        return fresh, {}
    rows = await uow.get_many(Lead, ids, for_update=True)
    return fresh, {lead.id: lead for lead in rows}
