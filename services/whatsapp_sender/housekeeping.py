"""The WhatsApp sender's housekeeping: statuses that never met their send.

A status waits in the backlog for the send it names to be recorded, which takes seconds
(Meta answered, or a timed-out send is reconciled). One still there after the retention
was never ours to apply: most often a message another tool sent from the same number.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import WhatsAppStatusBacklog
from shared.db.retention import Sweep, delete_batched


def whatsapp_sweeps(backlog_retention: timedelta) -> dict[str, Sweep]:
    async def status_backlog(s: async_sessionmaker[AsyncSession], now: datetime) -> int:
        old = WhatsAppStatusBacklog.received_at < now - backlog_retention
        return await delete_batched(s, WhatsAppStatusBacklog, old)

    return {"whatsapp_status_backlog": status_backlog}
