"""Whether a DM must not go out now, asked by the router when it routes a lead and by each
sender right before its provider call (so a DM already queued, deferred, in the retry
topic or replayed from the DLQ is held too): the person opted out (shared/delivery/suppression.py)
or the creator is writing to them themselves (shared/delivery/takeover.py). The answer is the
reason the DM ends `skipped` with (shared.delivery.reasons), or None.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ConversationTakeover, Lead, SuppressedContact
from shared.delivery import suppression
from shared.delivery.reasons import CREATOR_REPLIED, OPTED_OUT
from shared.delivery.suppression import Identities

# Why a creator's retry is refused while the DM would be held again.
RETRY_HELD = {
    OPTED_OUT: "the person opted out: remove them from your do not message list first",
    CREATOR_REPLIED: "you are writing to this person: hand the conversation back first",
}


async def held_leads(
    session: AsyncSession,
    leads: Iterable[Lead],
    now: datetime,
    extra: dict[UUID, Identities] | None = None,
) -> dict[UUID, str]:
    """Lead id -> why its DM is held, for a batch of leads in one query. `extra`:
    identities a request adds to its lead's (the IGSID of a comment's author)."""
    people = {
        lead.id: (
            lead.creator_id,
            suppression.of_lead(lead).filled_from((extra or {}).get(lead.id, Identities())),
        )
        for lead in leads
    }
    people = {lead_id: person for lead_id, person in people.items() if person[1]}
    if not people:
        return {}
    creators = {creator for creator, _ in people.values()}
    igsids = {ids.igsid for _, ids in people.values() if ids.igsid}
    # Suppressions and takeovers in one round trip (issue #20: the guard runs per send).
    opted = select(
        literal(OPTED_OUT),
        SuppressedContact.creator_id,
        SuppressedContact.igsid,
        SuppressedContact.whatsapp,
        SuppressedContact.handle,
    ).where(suppression.matching(creators, (ids for _, ids in people.values())))
    taken = select(
        literal(CREATOR_REPLIED),
        ConversationTakeover.creator_id,
        ConversationTakeover.igsid,
        null(),
        null(),
    ).where(
        ConversationTakeover.creator_id.in_(creators),
        ConversationTakeover.igsid.in_(igsids),
        ConversationTakeover.until > now,
    )
    rows: Sequence[Any] = (
        (await session.execute(union_all(opted, taken))).all()
        if igsids
        else (await session.execute(opted)).all()
    )
    suppressed = [
        (row[1], Identities(row[2], row[3], row[4])) for row in rows if row[0] == OPTED_OUT
    ]
    hands = {(row[1], row[2]) for row in rows if row[0] == CREATOR_REPLIED}
    held: dict[UUID, str] = {}
    for lead_id, (creator, ids) in people.items():
        if any(c == creator and ids.matches(row) for c, row in suppressed):
            held[lead_id] = OPTED_OUT  # an opt-out wins over a takeover
        elif ids.igsid and (creator, ids.igsid) in hands:
            held[lead_id] = CREATOR_REPLIED
    return held


async def hold_reason(
    session: AsyncSession, lead_id: UUID, now: datetime, igsid: str | None = None
) -> str | None:
    """Why this lead's DM must not go out now (`igsid`: whom the request names, when the
    lead itself does not, e.g. a private reply's commenter); None if it may."""
    lead = await session.get(Lead, lead_id)
    if lead is None:
        return None
    extra = {lead.id: Identities(igsid=igsid)} if igsid else None
    return (await held_leads(session, [lead], now, extra)).get(lead.id)
