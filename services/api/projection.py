"""dm.status -> the lead's DM state and log (forward-only, idempotent by event id)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.dm_state import apply_status_event
from shared.db.models import Lead
from shared.dead_letters import PoisonMessage
from shared.events import DmStatusChanged
from shared.idempotency import claim_events

CONSUMER = "dm-status-projection"


async def project_status(session: AsyncSession, event: DmStatusChanged) -> bool:
    """True if the lead moved; False for a duplicate or a stale (backward) status."""
    return await project_statuses(session, [event]) == 1


async def project_statuses(session: AsyncSession, events: Sequence[DmStatusChanged]) -> int:
    """Project a batch with one claim and one locking read; how many leads moved.

    Events are applied grouped by lead, in their order within each lead (the partition's,
    since dm.status is keyed by lead), and rows are locked in lead-id order, so concurrent
    batches never wait on each other in a cycle."""
    claimed = await claim_events(session, CONSUMER, [e.id for e in events])
    fresh = sorted(
        {e.id: e for e in events if e.id in claimed}.values(), key=lambda e: e.payload.lead_id
    )
    leads = await _locked_leads(session, {e.payload.lead_id for e in fresh})
    moved = 0
    for event in fresh:
        lead = leads.get(event.payload.lead_id)
        if lead is None or lead.creator_id != event.creator_id:
            raise PoisonMessage(f"status for unknown lead {event.payload.lead_id}")
        moved += apply_status_event(session, lead, event.payload, event.id, event.occurred_at)
    return moved


async def _locked_leads(session: AsyncSession, ids: set[UUID]) -> dict[UUID, Lead]:
    if not ids:
        return {}
    rows = await session.scalars(
        select(Lead).where(Lead.id.in_(ids)).order_by(Lead.id).with_for_update()
    )
    return {lead.id: lead for lead in rows}
