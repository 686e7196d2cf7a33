"""Comment to DM: a comment on the creator's posts becomes a lead, who gets a private reply.

The creator chooses which comments count (settings page): none (the default), those with
one of their keywords ("comment GUIDE and I'll send it to you"), or any. A counted comment
becomes a lead like one from the form, carrying the comment's id, its author's
Instagram-scoped id and its time, so the router sends what Instagram allows: the one
private reply to that comment within 7 days (or a DM, when the person's window is open).

Not counted, so nobody is messaged twice for one thing: a comment already made a lead (a
redelivery), a person who became a lead (by any way) within the cool-down, and a comment
older than the private-reply window (a late redelivery). The account's own comments never
arrive here (webhook_ingest drops them).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.http.schemas import META_TEXT_MAX_BYTES, InstagramIn, LeadIn
from services.api.service_layer.comment_trigger import counts
from services.api.service_layer.leads import create_lead
from shared.accounts.lifecycle import DISCONNECTED
from shared.contracts.events import InstagramCommentReceived
from shared.contracts.lead_sources import LeadSource
from shared.contracts.route_choice import RoutingRules
from shared.db.models import Creator, Lead, SocialAccount
from shared.messaging.unit_of_work import UnitOfWork
from shared.platform.logs import get_logger
from shared.platform.metrics import COMMENT_LEADS

log = get_logger(__name__)
CONSUMER = "comment-leads"
# One lead per person per day from comments, however often they comment a keyword.
COOL_DOWN = timedelta(hours=24)
USERNAME = re.compile(r"^[A-Za-z0-9._]{1,30}$")


async def lead_from_comment(
    uow: UnitOfWork, event: InstagramCommentReceived, now: datetime
) -> Lead | None:
    """The lead a comment makes, or None if it makes none (see the module's docstring)."""
    if not await uow.claim(CONSUMER, [event.id]):
        return None  # a redelivery: counted the first time
    refusal = await _refusal(uow.session, event, now)
    COMMENT_LEADS.labels(outcome=refusal or "lead").inc()
    if refusal is not None:
        log.info("comment makes no lead", why=refusal, comment_id=event.payload.comment_id)
        return None
    lead = await create_lead(
        uow,
        _lead_in(event),
        event.correlation_id,
        source=LeadSource.COMMENT,
        source_post=event.payload.media_id,
    )
    log.info("comment became a lead", lead_id=str(lead.id), comment_id=event.payload.comment_id)
    return lead


async def _refusal(
    session: AsyncSession, event: InstagramCommentReceived, now: datetime
) -> str | None:
    """Why the comment makes no lead (the metric's outcome), or None."""
    p = event.payload
    account = await session.get(SocialAccount, p.account_id)
    creator = await session.get(Creator, event.creator_id)
    if account is None or creator is None or account.creator_id != creator.id:
        return "unknown_account"
    if account.status == DISCONNECTED:  # a webhook that was on its way when they disconnected
        return "account_disconnected"
    if not counts(creator.comment_trigger, creator.comment_keywords, p.text):
        return "not_counted"
    if now - p.commented_at > RoutingRules().private_reply_window:
        return "too_old"
    if await _recent_lead(session, creator, p.igsid, p.comment_id, now):
        return "cool_down"
    return None


async def _recent_lead(
    session: AsyncSession, creator: Creator, igsid: str, comment_id: str, now: datetime
) -> bool:
    """This comment made a lead already, or its author became one within the cool-down."""
    found = await session.scalar(
        select(Lead.id)
        .where(
            Lead.creator_id == creator.id,
            Lead.igsid == igsid,
            (Lead.created_at > now - COOL_DOWN) | (Lead.comment_id == comment_id),
        )
        .limit(1)
    )
    return found is not None


def _lead_in(event: InstagramCommentReceived) -> LeadIn:
    p = event.payload
    username = p.username if p.username and USERNAME.match(p.username) else None
    return LeadIn(
        creator_id=event.creator_id,
        name=username or "Instagram user",
        # What they wrote is the lead's message ({message} in the creator's template).
        # Without NUL, which a lead's text may not hold (PostgreSQL refuses it).
        message=p.text.replace("\x00", "").encode()[:META_TEXT_MAX_BYTES].decode(errors="ignore"),
        instagram=InstagramIn(
            username=username,
            igsid=p.igsid,
            comment_id=p.comment_id,
            commented_at=p.commented_at,
        ),
    )
