"""The stuck-DM watchdog: DMs that stay `queued` or `sending` with nothing in flight.

A DM in progress always has something that will move it on: a request on its way to a
sender, a send intent being sent (`sending`, recently), or a deferred send with its time
(`deferred`: pacing, throttling, the pair rate). One that has been `queued` or `sending`
longer than `stuck_dm_after_s` with no intent `deferred` and no recent `sending` intent of
its attempt waits for nothing: a lost request, a fallback the projection dropped, a sender
that died mid-send and was never redelivered. The system finds them, not a creator: every
pass sets `autodm_dms_stuck` (alert AutoDMStuckDms) and the admin overview lists the
oldest (services/api/http/web/templates/_admin_stuck_dms.html).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.events import utcnow
from shared.contracts.lifecycle import IN_PROGRESS_STATUSES, Provider
from shared.db.models import DmSend, Lead
from shared.platform.logs import get_logger
from shared.platform.metrics import DMS_STUCK

log = get_logger(__name__)

OLDEST = 20
PROVIDERS = (*(p.value for p in Provider), "none")


@dataclass(frozen=True)
class StuckDm:
    lead_id: UUID
    creator_id: UUID
    status: str
    route: str | None
    attempt: int
    since: datetime  # the DM's last move


@dataclass(frozen=True)
class StuckReport:
    after: timedelta
    counts: dict[tuple[str, str], int]  # (status, provider) -> DMs
    oldest: list[StuckDm]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _stuck(now: datetime, after: timedelta) -> ColumnElement[bool]:
    since = now - after
    in_flight = exists().where(
        DmSend.lead_id == Lead.id,
        DmSend.attempt == Lead.dm_attempt,
        or_(
            DmSend.state == "deferred",
            and_(DmSend.state == "sending", DmSend.updated_at >= since),
        ),
    )
    return and_(
        Lead.dm_status.in_([s.value for s in IN_PROGRESS_STATUSES]),
        Lead.updated_at < since,
        ~in_flight,
    )


async def find_stuck(
    session: AsyncSession, now: datetime, after: timedelta, limit: int = OLDEST
) -> StuckReport:
    """How many DMs are stuck, by status and provider, and the oldest of them."""
    stuck = _stuck(now, after)
    provider = func.coalesce(Lead.dm_provider, "none")
    rows = await session.execute(
        select(Lead.dm_status, provider, func.count())
        .where(stuck)
        .group_by(Lead.dm_status, provider)
    )
    counts = {(status, prov): int(n) for status, prov, n in rows.all()}
    oldest = await session.execute(
        select(
            Lead.id,
            Lead.creator_id,
            Lead.dm_status,
            Lead.dm_route,
            Lead.dm_attempt,
            Lead.updated_at,
        )
        .where(stuck)
        .order_by(Lead.updated_at)
        .limit(limit)
    )
    return StuckReport(after, counts, [StuckDm(*row) for row in oldest.all()])


def publish(report: StuckReport) -> None:
    """Every (status, provider) series, 0 when none is stuck: the alert resolves and the
    dashboard's line drops back instead of vanishing."""
    for status in IN_PROGRESS_STATUSES:
        for provider in PROVIDERS:
            count = report.counts.get((status.value, provider), 0)
            DMS_STUCK.labels(status=status.value, provider=provider).set(count)


class StuckDmWatchdog:
    """Runs `find_stuck` every `interval_s` in the API process (one indexed query on the
    DMs still in progress) and publishes the gauge; logs the oldest when any is stuck."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], after: timedelta, interval_s: float
    ) -> None:
        self.sessions = sessions
        self.after = after
        self._interval_s = interval_s

    async def check(self, now: datetime | None = None) -> StuckReport:
        async with self.sessions() as session:
            report = await find_stuck(session, now or utcnow(), self.after)
        publish(report)
        if report.total:
            first = report.oldest[0]
            log.warning(
                "DMs stuck with nothing in flight",
                stuck=report.total,
                oldest_lead_id=str(first.lead_id),
                oldest_status=first.status,
                oldest_since=first.since.isoformat(),
            )
        return report

    async def run_forever(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a watchdog pass must never take the API down
                log.warning("stuck-DM watchdog pass failed", exc_info=True)
            await asyncio.sleep(self._interval_s)
