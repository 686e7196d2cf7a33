"""Human takeover: when the creator writes to a person themselves, AutoDM stays quiet.

Instagram sends an echo of every message the account sends, from the API or typed in the
app (platform facts §3c). An echo AutoDM did not send is the creator writing: the
conversation with that person is theirs for the creator's `takeover_hours` (default 24),
or until they hand it back on the lead's page. AutoDM's pending DMs to the person end
`skipped` (shared.delivery.reasons.CREATOR_REPLIED) and nothing automated goes out meanwhile:
the router and the senders ask shared/delivery/dm_guard.py before every send.

An echo is AutoDM's own when a send intent names the same recipient from the same account
with that message id, or with the same text not long ago (the echo may overtake the
sender's recording of the message id: the intent is claimed before Meta is called).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ConversationTakeover, Creator, DmSend
from shared.delivery.ambiguous_sends import text_digest

# How long after its send an intent with the same text still explains an echo.
OWN_ECHO_WINDOW = timedelta(hours=6)
DEFAULT_HOURS = 24


async def is_own_echo(
    session: AsyncSession, account_id: UUID, igsid: str, mid: str, text: str, at: datetime
) -> bool:
    """Whether AutoDM sent the echoed message (see the module's docstring)."""
    same_text = (DmSend.text_sha256 == text_digest(text)) & (
        DmSend.updated_at >= at - OWN_ECHO_WINDOW
    )
    found = await session.scalar(
        select(DmSend.lead_id)
        .where(
            DmSend.account_id == account_id,
            or_(
                DmSend.provider_message_id == mid,
                # A private reply to a comment not seen yet names no recipient.
                same_text & or_(DmSend.recipient_igsid == igsid, DmSend.recipient_igsid.is_(None)),
            ),
        )
        .limit(1)
    )
    return found is not None


async def take_over(
    session: AsyncSession,
    creator_id: UUID,
    account_id: UUID,
    igsid: str,
    at: datetime,
    mid: str | None,
) -> datetime:
    """The creator wrote at `at`: the conversation is theirs until the returned time (a
    later message of theirs extends it, a redelivered echo changes nothing)."""
    creator = await session.get(Creator, creator_id)
    hours = creator.takeover_hours if creator is not None else DEFAULT_HOURS
    until = at + timedelta(hours=hours)
    stmt = insert(ConversationTakeover).values(
        account_id=account_id,
        igsid=igsid,
        creator_id=creator_id,
        started_at=at,
        until=until,
        message_id=mid,
    )
    later = stmt.excluded.started_at > ConversationTakeover.started_at
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[ConversationTakeover.account_id, ConversationTakeover.igsid],
            set_={
                "started_at": stmt.excluded.started_at,
                "until": stmt.excluded.until,
                "message_id": stmt.excluded.message_id,
                "handed_back_by": None,
            },
            where=later,
        )
    )
    return until


async def active(
    session: AsyncSession, creator_id: UUID, igsid: str | None, now: datetime
) -> ConversationTakeover | None:
    """The creator's open takeover of this person's conversation, if any."""
    if not igsid:
        return None
    return await session.scalar(
        select(ConversationTakeover)
        .where(
            ConversationTakeover.creator_id == creator_id,
            ConversationTakeover.igsid == igsid,
            ConversationTakeover.until > now,
        )
        .limit(1)
    )


async def hand_back(
    session: AsyncSession, creator_id: UUID, igsid: str | None, who: str, now: datetime
) -> bool:
    """The creator gives the conversation back to AutoDM now; False if it was not theirs."""
    row = await active(session, creator_id, igsid, now)
    if row is None:
        return False
    row.until = now
    row.handed_back_by = who[:255]
    return True
