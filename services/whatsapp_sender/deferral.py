"""Deferred WhatsApp sends come back when due: a poller re-requests them on
dm.requested.whatsapp, where the sender decides again (limits may defer once more).

Kept in PostgreSQL rather than on a delayed Kafka topic because a daily-tier wait lasts
hours: a row waits at no cost, survives restarts, and `FOR UPDATE SKIP LOCKED` lets every
replica poll. A re-requested row stays (leased) until the send ends, so a request lost on
the way is re-requested after the lease: deferred DMs are never dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.events import DmRequested, utcnow
from shared.db.models import WhatsAppDeferredSend
from shared.platform.logs import get_logger
from shared.platform.outage_log import OutageLog

log = get_logger(__name__)

Request = Callable[[DmRequested], Awaitable[None]]


class DeferralPoller:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        request_again: Request,
        poll_s: float,
        lease: timedelta = timedelta(minutes=2),
        batch_size: int = 200,
    ) -> None:
        self._sessions = sessions
        self._request_again = request_again
        self._poll_s = poll_s
        self._lease = lease
        self._batch_size = batch_size
        self._outages = OutageLog("whatsapp_deferral")

    async def run_forever(self) -> None:
        while True:
            try:
                dispatched = await self.dispatch_due(utcnow())
            except Exception as exc:
                self._outages.failed(exc, "deferred whatsapp sends: dispatch failed; retrying")
                dispatched = 0
            else:
                self._outages.succeeded()
            if dispatched < self._batch_size:
                await asyncio.sleep(self._poll_s)

    async def dispatch_due(self, now: datetime) -> int:
        async with self._sessions.begin() as session:
            due = (
                await session.scalars(
                    select(WhatsAppDeferredSend)
                    .where(WhatsAppDeferredSend.not_before <= now)
                    # Ties in arrival order: a person's DMs due together keep their order.
                    .order_by(
                        WhatsAppDeferredSend.not_before,
                        WhatsAppDeferredSend.queued_at,
                        WhatsAppDeferredSend.lead_id,
                    )
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in due:
                await self._request_again(DmRequested.model_validate(row.request))
                row.not_before = now + self._lease
        return len(due)
