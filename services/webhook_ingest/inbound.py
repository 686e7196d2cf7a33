"""Act on one webhook item, in one transaction with its idempotency claim.

This consumer records what Instagram told us (contacts and their 24 h window, comments) and
says what follows as events through the outbox; it never moves a DM itself. The DM's state
belongs to the API: dm.status events go to its forward-only projection, and an opened
contact goes to its router, which re-routes the waiting DM.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhook_ingest import echoes, human_turns
from services.webhook_ingest.echoes import EchoMatches
from services.webhook_ingest.mapping import Action, Comment, Echo, Inbound, Read, map_item
from services.webhook_ingest.traces import lead_traceparent
from shared.contracts.events import (
    DmStatusChanged,
    DmStatusPayload,
    InstagramCommentPayload,
    InstagramCommentReceived,
    InstagramWebhookReceived,
    LeadContactOpened,
    LeadContactOpenedPayload,
)
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.topics import DM_STATUS, INSTAGRAM_COMMENTS, LEADS_CONTACTS
from shared.db.models import InstagramComment, InstagramContact, Lead
from shared.messaging.unit_of_work import UnitOfWork
from shared.platform.logs import bind_correlation_id, get_logger
from shared.platform.tracing import continued

log = get_logger(__name__)

CONSUMER = "webhooks-instagram"
WAITING = (DmStatus.QUEUED, DmStatus.AWAITING_CONTACT)
DELIVERED_TO_PERSON = (DmStatus.SENT, DmStatus.DELIVERED, DmStatus.READ)
IN_FLIGHT = (DmStatus.SENDING, DmStatus.UNKNOWN, DmStatus.SENT)


async def handle_webhook(uow: UnitOfWork, event: InstagramWebhookReceived) -> bool:
    """False if this item was handled before (Meta's retry, a Kafka redelivery)."""
    return await handle_webhooks(uow, [event]) == 1


async def handle_webhooks(uow: UnitOfWork, events: Sequence[InstagramWebhookReceived]) -> int:
    """A batch in partition order (one account's message, then its read, stay in order),
    with one idempotency claim for all instead of one per item, and one look-up for all its
    echoes (echoes.py); how many were new. The events it records go out through the unit of
    work's outbox (uow.session's rows)."""
    fresh = await uow.claim(CONSUMER, [event.id for event in events])
    todo: list[tuple[InstagramWebhookReceived, Action]] = []
    for event in events:
        if event.id not in fresh:
            continue  # handled before, or earlier in this batch
        fresh.discard(event.id)
        todo.append((event, map_item(event.payload)))
    batch_echoes = [(event, a) for event, a in todo if isinstance(a, Echo)]
    matches = await echoes.match_echoes(uow.session, batch_echoes)
    for event, action in todo:
        bind_correlation_id(event.correlation_id)
        await _act(uow, event, action, matches)
    return len(todo)


async def _act(
    uow: UnitOfWork, event: InstagramWebhookReceived, action: Action, matches: EchoMatches
) -> None:
    if isinstance(action, Inbound):
        await _inbound(uow, event, action)
    elif isinstance(action, Read):
        await _read(uow, event, action)
    elif isinstance(action, Comment):
        await _comment(uow, event, action)
    elif isinstance(action, Echo):
        await _echo(uow.session, event, action, matches)
    else:
        log.debug("webhook item ignored", reason=action.reason)


async def _inbound(uow: UnitOfWork, event: InstagramWebhookReceived, a: Inbound) -> None:
    session = uow.session
    account_id = event.payload.account_id
    await _touch_contact(session, event, a.igsid, a.at)
    await human_turns.on_message(session, event, a)  # STOP / START
    waiting = await _waiting_lead(session, event, a)
    if waiting is not None:
        opened = LeadContactOpened(
            correlation_id=event.correlation_id,
            creator_id=event.creator_id,
            payload=LeadContactOpenedPayload(
                lead_id=waiting.id, account_id=account_id, igsid=a.igsid, opened_at=a.at, via=a.via
            ),
        )
        uow.publish(LEADS_CONTACTS, str(waiting.id), opened)
    if a.via == "message":
        for lead in await _leads_of(session, event, a.igsid, DELIVERED_TO_PERSON):
            # Only a message written after our DM answers it: the message that opened the
            # window (often delivered late, after the DM went out) is not a reply.
            if lead.sent_at is not None and a.at > lead.sent_at:
                _status(uow, event, lead, DmStatus.REPLIED, "the lead replied")


async def _waiting_lead(
    session: AsyncSession, event: InstagramWebhookReceived, a: Inbound
) -> Lead | None:
    """The lead this contact opens: named by the ig.me `ref`, else one waiting on this IGSID."""
    if a.ref:
        lead = await session.scalar(
            select(Lead).where(Lead.ref == a.ref, Lead.creator_id == event.creator_id)
        )
        if lead is None:
            log.info("ig.me ref matches no lead of this creator")
        return lead if lead is not None and lead.dm_status in WAITING else None
    leads = await _leads_of(session, event, a.igsid, (DmStatus.AWAITING_CONTACT,))
    return leads[0] if leads else None


async def _read(uow: UnitOfWork, event: InstagramWebhookReceived, a: Read) -> None:
    session = uow.session
    account_id = event.payload.account_id
    lead = await session.scalar(
        select(Lead).where(Lead.provider_message_id == a.mid, Lead.dm_account_id == account_id)
    )
    if lead is None:
        # The receipt may overtake the `sent` projection: fall back to the DM in flight.
        leads = await _leads_of(session, event, a.igsid, IN_FLIGHT)
        lead = leads[0] if leads else None
    if lead is None:
        log.info("read receipt for a message AutoDM did not send")
        return
    _status(uow, event, lead, DmStatus.READ, None, provider_message_id=a.mid)


async def _echo(
    session: AsyncSession, event: InstagramWebhookReceived, a: Echo, matches: EchoMatches
) -> None:
    """Our own message, seen by Instagram: settles a send whose answer never came."""
    # Meta's webhook starts a trace of its own: the echo joins its lead's (linked to it).
    lead_trace = await lead_traceparent(session, event.creator_id, a.igsid, a.mid)
    with continued("instagram echo", lead_trace, correlation_id=event.correlation_id):
        await echoes.settle(session, event, a, matches)


async def _comment(uow: UnitOfWork, event: InstagramWebhookReceived, a: Comment) -> None:
    session = uow.session
    account_id = event.payload.account_id
    await session.execute(
        insert(InstagramComment)
        .values(
            comment_id=a.comment_id,
            account_id=account_id,
            igsid=a.igsid,
            username=a.username,
            text=a.text,
            media_id=a.media_id,
            commented_at=a.at,
        )
        .on_conflict_do_nothing()
    )
    await _touch_contact(session, event, a.igsid, None, username=a.username)
    received = InstagramCommentReceived(
        correlation_id=event.correlation_id,
        creator_id=event.creator_id,
        payload=InstagramCommentPayload(
            account_id=account_id,
            comment_id=a.comment_id,
            igsid=a.igsid,
            username=a.username,
            text=a.text[:2200],
            media_id=a.media_id,
            commented_at=a.at,
        ),
    )
    uow.publish(INSTAGRAM_COMMENTS, str(account_id), received)


async def _touch_contact(
    session: AsyncSession,
    event: InstagramWebhookReceived,
    igsid: str,
    inbound_at: datetime | None,
    username: str | None = None,
) -> None:
    """Upsert the contact; the window only moves forward (webhooks arrive out of order)."""
    stmt = insert(InstagramContact).values(
        account_id=event.payload.account_id,
        igsid=igsid,
        username=username,
        last_inbound_at=inbound_at,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[InstagramContact.account_id, InstagramContact.igsid],
        set_={
            # GREATEST ignores NULLs in PostgreSQL: a comment never closes an open window.
            "last_inbound_at": func.greatest(
                InstagramContact.last_inbound_at, stmt.excluded.last_inbound_at
            ),
            "username": func.coalesce(stmt.excluded.username, InstagramContact.username),
        },
    )
    await session.execute(stmt)


async def _leads_of(
    session: AsyncSession,
    event: InstagramWebhookReceived,
    igsid: str,
    statuses: tuple[DmStatus, ...],
) -> list[Lead]:
    rows = await session.scalars(
        select(Lead)
        .where(
            Lead.dm_account_id == event.payload.account_id,
            Lead.igsid == igsid,
            Lead.dm_status.in_(statuses),
        )
        .order_by(Lead.created_at.desc())
        .limit(20)
    )
    return list(rows.all())


def _status(
    uow: UnitOfWork,
    event: InstagramWebhookReceived,
    lead: Lead,
    status: DmStatus,
    reason: str | None,
    provider_message_id: str | None = None,
) -> None:
    changed = DmStatusChanged(
        correlation_id=event.correlation_id,
        creator_id=lead.creator_id,
        occurred_at=event.occurred_at,
        payload=DmStatusPayload(
            lead_id=lead.id,
            status=status,
            attempt=lead.dm_attempt,
            route=Route(lead.dm_route) if lead.dm_route else None,
            provider=Provider.INSTAGRAM,
            provider_message_id=provider_message_id,
            reason=reason,
        ),
    )
    uow.publish(DM_STATUS, str(lead.id), changed)
