"""The hold reasons of a batch's DMs (opted out, the creator writing to the person:
shared.delivery.dm_guard), read for many DMs at once instead of once per DM.

The guard is asked right before the call to Meta (docs/FRONTEND.md, "Opt-out"); asked per
DM it was three queries a DM (the lead, suppressions, takeovers), the sender's largest
share of SQL (issue #20). Here one read answers for the DMs sent within `max_age_s` of it:
the batch reads its DMs' holds once (batch.py), and an account, whose DMs go one after the
other, reads its remaining DMs' holds again once that read is older than `max_age_s`. So
an opt-out or a takeover committed before a DM's send holds it unless it came less than
`max_age_s` before the send (per DM, the window was a claim and a status publish).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.events import utcnow
from shared.db.models import Lead
from shared.delivery.dm_guard import held_leads
from shared.delivery.suppression import Identities

# A DM's person: its lead and whom the request names (a private reply's commenter).
HoldKey = tuple[UUID, str | None]


@dataclass(frozen=True)
class Holds:
    reasons: dict[HoldKey, str]  # the held DMs only
    read_at: float  # monotonic clock, taken before the read


async def read_holds(
    session: AsyncSession,
    keys: Sequence[HoldKey],
    now: datetime,
    leads: dict[UUID, Lead] | None = None,
) -> dict[HoldKey, str]:
    """Why each of these DMs must not go out now (the held ones only), in two queries
    (the leads, unless given; suppressions and takeovers); `hold_reason`'s answer."""
    variants: dict[UUID, list[str | None]] = {}
    for lead_id, recipient in keys:
        named = variants.setdefault(lead_id, [])
        if recipient not in named:
            named.append(recipient)
    if not variants:
        return {}
    if leads is None:
        found = await session.scalars(select(Lead).where(Lead.id.in_(variants)))
        leads = {lead.id: lead for lead in found}
    held: dict[HoldKey, str] = {}
    # A lead named with two recipients in one batch (rare) is asked once per recipient.
    for round_ in range(max(len(named) for named in variants.values())):
        asked = {
            lead_id: named[round_]
            for lead_id, named in variants.items()
            if round_ < len(named) and lead_id in leads
        }
        extra = {lead_id: Identities(igsid=r) for lead_id, r in asked.items() if r}
        reasons = await held_leads(session, [leads[i] for i in asked], now, extra)
        held |= {(i, r): reasons[i] for i, r in asked.items() if i in reasons}
    return held


async def read_now(
    sessions: async_sessionmaker[AsyncSession],
    keys: Sequence[HoldKey],
    clock: Callable[[], float] = time.monotonic,
) -> Holds:
    read_at = clock()
    async with sessions() as session:
        return Holds(await read_holds(session, keys, utcnow()), read_at)


class AccountHolds:
    """One account's DMs of a batch, in the order they are sent: the hold of each, from a
    read at most `max_age_s` old (the batch's, then re-reads of the DMs still to go)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keys: Sequence[HoldKey],
        first: Holds | None,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._keys = list(keys)
        self._holds = first
        self._max_age_s = max_age_s
        self._clock = clock

    async def reason(self, index: int) -> str | None:
        """Why the account's DM at `index` must not go out now, or None."""
        if self._holds is None or self._clock() - self._holds.read_at > self._max_age_s:
            self._holds = await read_now(self._sessions, self._keys[index:], self._clock)
        return self._holds.reasons.get(self._keys[index])
