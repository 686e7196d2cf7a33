"""What a handler left in the transactional outbox for a lead's dm.status, oldest first."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.events import DmStatusChanged
from shared.contracts.topics import DM_STATUS
from shared.db.models import OutboxRecord


async def outboxed_statuses(
    sessions: async_sessionmaker[AsyncSession], lead_id: UUID
) -> list[DmStatusChanged]:
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxRecord.payload)
            .where(OutboxRecord.topic == DM_STATUS, OutboxRecord.key == str(lead_id))
            .order_by(OutboxRecord.id)
        )
        return [DmStatusChanged.model_validate_json(payload) for payload in rows]
