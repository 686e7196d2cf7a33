"""dm.status -> the lead's DM state and log (forward-only, idempotent by event id)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.api.dm_state import apply_status_event
from shared.db.models import Lead
from shared.dead_letters import PoisonMessage
from shared.events import DmStatusChanged
from shared.idempotency import claim_event

CONSUMER = "dm-status-projection"


async def project_status(session: AsyncSession, event: DmStatusChanged) -> bool:
    """True if the lead moved; False for a duplicate or a stale (backward) status."""
    if not await claim_event(session, CONSUMER, event.id):
        return False
    lead = await session.get(Lead, event.payload.lead_id, with_for_update=True)
    if lead is None or lead.creator_id != event.creator_id:
        raise PoisonMessage(f"status for unknown lead {event.payload.lead_id}")
    return apply_status_event(session, lead, event.payload, event.id, event.occurred_at)
