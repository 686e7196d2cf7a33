"""Deferred sends, one mechanism for both senders: a DM that must wait is a row in
`deferred_sends` (its request, when it is due, why); each sender's poller re-requests its
due rows on the sender's own request topic, where the sender decides again (the limits
may defer it once more). docs/RELIABILITY.md ("One deferral mechanism") says why a table
and not a delayed Kafka topic: a wait costs nothing however long it lasts (a daily tier:
hours), the rows are the queue a person's WhatsApp DMs keep their order in, a restart
re-reads nothing, replicas share the work (`FOR UPDATE SKIP LOCKED`), and an operator or
a data deletion sees and reaches every waiting DM with SQL.

A re-requested row stays, leased, until the sender takes it (Instagram: when it handles
the re-request; WhatsApp: when the send ends), so a request lost on the way is
re-requested after the lease: deferred DMs are never dropped. A row re-requested twice is
harmless: the send intent decides.

A poller looks when the earliest row of its routes is due, not every `poll_s`: a row this
process writes or moves wakes its pollers once committed (`changed`), and a row written
elsewhere (another replica, an operator's SQL) is seen within `idle_poll_s` (issue #20:
polling twice a second was most of an idle sender's CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, event, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from shared.contracts.events import DmRequested, utcnow
from shared.db.models import DeferredSend
from shared.delivery.reads import reading
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.logs import get_logger
from shared.platform.metrics import DEFERRED_SENDS
from shared.platform.outage_log import OutageLog

log = get_logger(__name__)

# Re-publishes a due request with the headers its deferral recorded.
RequestAgain = Callable[[DmRequested, dict[str, str]], Awaitable[None]]
COUNT_EVERY_S = 5.0
_CHANGED = "autodm.deferred_sends.changed"  # Session.info key: wake the pollers on commit
_POLLERS: weakref.WeakSet[DeferralPoller] = weakref.WeakSet()


def changed(session: AsyncSession) -> None:
    """This transaction writes or moves rows of `deferred_sends`: once it commits, this
    process's pollers look again (a new row may be due before they would have)."""
    session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _wake_pollers(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        for poller in list(_POLLERS):
            poller.wake()


@event.listens_for(Session, "after_soft_rollback")
def _forget_change(session: Session, _: object) -> None:
    session.info.pop(_CHANGED, None)


async def defer(
    session: AsyncSession,
    request: DmRequested,
    until: datetime,
    reason: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> None:
    """The DM waits until `until`: its row written (or moved on), in the caller's
    transaction. `extra`: the provider's own columns (WhatsApp: recipient, retries)."""
    p = request.payload
    values: dict[str, Any] = {"not_before": until, "reason": reason[:200], **extra}
    if headers is not None:
        values["headers"] = headers
    await session.execute(
        insert(DeferredSend)
        .values(lead_id=p.lead_id, route=p.route, request=request.model_dump(mode="json"), **values)
        .on_conflict_do_update(index_elements=["lead_id", "route"], set_=values)
    )
    changed(session)


async def take(session: AsyncSession, request: DmRequested) -> None:
    """The request is being handled: its row is done (a new deferral writes a new one)."""
    p = request.payload
    await session.execute(
        delete(DeferredSend).where(DeferredSend.lead_id == p.lead_id, DeferredSend.route == p.route)
    )


class DeferralPoller:
    """One sender's poller: re-requests the due rows of its routes."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        request_again: RequestAgain,
        poll_s: float,
        routes: Collection[str],
        provider: str,
        lease: timedelta = timedelta(minutes=2),
        batch_size: int = 200,
        idle_poll_s: float | None = None,
    ) -> None:
        self._uow = UnitOfWorkFactory(sessions)
        self._sessions = sessions
        self._request_again = request_again
        self._poll_s = poll_s  # while rows are due but locked by another replica
        # Looked at least this often when nothing is known to come due sooner.
        self._idle_poll_s = max(poll_s, idle_poll_s if idle_poll_s is not None else poll_s)
        self._woken = asyncio.Event()
        _POLLERS.add(self)
        self._routes = sorted(routes)
        self._lease = lease
        self._batch_size = batch_size
        self._provider = provider
        self._outages = OutageLog(f"{provider}_deferral")
        self._counted_at = 0.0

    def wake(self) -> None:
        """Look again now (rows of its routes were written or moved in this process)."""
        self._woken.set()

    async def run_forever(self) -> None:
        while True:
            self._woken.clear()  # a wake from here on ends the sleep below
            try:
                dispatched = await self.dispatch_due(utcnow())
                await self._count()
                wait = self._poll_s if dispatched else await self._until_next_due()
            except Exception as exc:
                self._outages.failed(exc, "deferred sends: dispatch failed; retrying")
                dispatched, wait = 0, self._poll_s
            else:
                self._outages.succeeded()
            if dispatched < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._woken.wait()

    async def _until_next_due(self) -> float:
        """Seconds until the earliest row of its routes is due, at most `idle_poll_s`; due
        already (rows another replica holds): `poll_s`."""
        async with reading(self._sessions) as session:
            due = await session.scalar(
                select(func.min(DeferredSend.not_before)).where(
                    DeferredSend.route.in_(self._routes)
                )
            )
        if due is None:
            return self._idle_poll_s
        seconds = (due - utcnow()).total_seconds()
        return self._poll_s if seconds <= 0 else min(seconds, self._idle_poll_s)

    async def _count(self) -> None:
        """How many DMs wait (the gauge), every few seconds: a count is not free."""
        clock = asyncio.get_running_loop().time()
        if clock - self._counted_at < COUNT_EVERY_S:
            return
        self._counted_at = clock
        async with reading(self._sessions) as session:
            waiting = await session.scalar(
                select(func.count()).where(DeferredSend.route.in_(self._routes))
            )
        DEFERRED_SENDS.labels(provider=self._provider).set(waiting or 0)

    async def dispatch_due(self, now: datetime) -> int:
        async with self._uow() as work:
            due = (
                await work.session.scalars(
                    select(DeferredSend)
                    .where(DeferredSend.not_before <= now, DeferredSend.route.in_(self._routes))
                    # Ties in arrival order: a person's DMs due together keep their order.
                    .order_by(DeferredSend.not_before, DeferredSend.queued_at, DeferredSend.lead_id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in due:
                request = DmRequested.model_validate(row.request)
                await self._request_again(request, {k: str(v) for k, v in row.headers.items()})
                row.not_before = now + self._lease
        return len(due)
