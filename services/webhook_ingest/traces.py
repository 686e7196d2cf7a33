"""The trace a webhook about one of AutoDM's DMs continues: its lead's (shared/platform/tracing.py).

Meta's webhook arrives as a request of its own, so its spans start a new trace; once an
item names a DM AutoDM sent, its handling continues the lead's trace instead, linked to
the webhook's. One indexed look-up (the person's leads of this creator), none when off.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Lead
from shared.platform.tracing import enabled


async def lead_traceparent(
    session: AsyncSession, creator_id: UUID, igsid: str, mid: str
) -> str | None:
    """The traceparent of the lead the message `mid` went to: the lead that has it, else
    (its `sent` not projected yet) the person's newest lead of this creator."""
    if not enabled():
        return None
    traceparent: str | None = await session.scalar(
        select(Lead.traceparent)
        .where(Lead.creator_id == creator_id, Lead.igsid == igsid)
        .order_by((Lead.provider_message_id == mid).desc().nulls_last(), Lead.created_at.desc())
        .limit(1)
    )
    return traceparent
