"""dm.status -> the lead's DM state and log (forward-only, idempotent by event id)."""

from __future__ import annotations

from collections.abc import Sequence

from services.api.service_layer.dm_state import apply_status_event, claim_and_lock
from shared.contracts.events import DmStatusChanged
from shared.messaging.dead_letters import PoisonMessage
from shared.messaging.unit_of_work import UnitOfWork

CONSUMER = "dm-status-projection"


async def project_statuses(uow: UnitOfWork, events: Sequence[DmStatusChanged]) -> int:
    """Project a batch with one claim and one locking read; how many leads moved.

    Events are applied grouped by lead, in their order within each lead (the partition's,
    since dm.status is keyed by lead), and rows are locked in lead-id order, so concurrent
    batches never wait on each other in a cycle."""
    fresh, leads = await claim_and_lock(uow, CONSUMER, events)
    moved = 0
    for event in fresh:
        lead = leads.get(event.payload.lead_id)
        if lead is None or lead.creator_id != event.creator_id:
            raise PoisonMessage(f"status for unknown lead {event.payload.lead_id}")
        moved += apply_status_event(uow, lead, event.payload, event.id, event.occurred_at)
    return moved
