"""WhatsApp webhook items -> DM facts: statuses of sent messages (by wamid) and inbound
user messages (they open the 24 h window and mark the lead's DM `replied`).

Why here and not in webhook_ingest: every WhatsApp fact these items touch (contacts and
their window, accepted messages by wamid, deferred sends) is the sender's state; the
ingest process stays a thin signed-HTTP -> Kafka edge.

Idempotent without a claim table: the DB writes are monotonic (window = latest inbound),
and every status event id derives from the webhook event id, so a redelivered item yields
the same dm.status event, which the projection skips. Order does not matter either: the
projection only moves forward by rank (a late `delivered` never overwrites `read`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.whatsapp_sender import identities, opt_out
from services.whatsapp_sender.reconciliation import (
    RECONCILED_FAILED_REASON,
    RECONCILED_REASON,
    SendRef,
    Sighting,
    backlogged,
    intent_key,
    locked_intent,
    settle,
)
from shared.contracts.consent import refs_in
from shared.contracts.events import (
    DmRequested,
    DmRequestedPayload,
    DmStatusChanged,
    DmStatusPayload,
    LeadContactOpened,
    LeadContactOpenedPayload,
    ProviderError,
    Recipient,
    WhatsAppWebhookReceived,
)
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.topics import DM_STATUS, LEADS_CONTACTS
from shared.db.models import Lead, WhatsAppContact, WhatsAppMessage, WhatsAppStatusBacklog
from shared.delivery.intents import IntentState
from shared.delivery.reasons import OPTED_OUT, provider_failure
from shared.messaging.outbox import add_to_outbox
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.logs import get_logger
from shared.providers.meta_errors import classify
from shared.providers.whatsapp_identity import WaUser, identity_change

log = get_logger(__name__)

STATUSES = {
    "sent": DmStatus.SENT,
    "delivered": DmStatus.DELIVERED,
    "read": DmStatus.READ,
    "played": DmStatus.READ,  # voice messages: played implies read
    "failed": DmStatus.FAILED,
}
RE_ENGAGEMENT = 131047

Publish = Callable[[DmStatusChanged], Awaitable[None]]
Request = Callable[[DmRequested], Awaitable[None]]


async def handle_webhook(
    uow: UnitOfWorkFactory,
    publish: Publish,
    request_again: Request,
    event: WhatsAppWebhookReceived,
) -> None:
    if event.payload.kind == "message":
        async with uow() as work:
            replies = await _inbound(work.session, event)
        for reply in replies:
            await publish(reply)
        return
    async with uow() as work:
        message, settled = await _message_or_backlog(work.session, event)
        if settled and message:
            # Statuses that came before this one settled the send (a race with the timeout).
            await apply_backlog(work.session, message.wamid)
    if message is None:
        return
    item = event.payload.item
    status = status_event(message, item, event.id, event.correlation_id)
    if status is not None and opt_out.stopped_marketing(item):
        async with uow() as work:
            await opt_out.opted_out_by_whatsapp(
                work.session, message.creator_id, message.wa_id, event.id
            )
    if status is not None:
        await publish(status)
        if _re_engagement(message, item):
            await request_again(_template_retry(message, event))


# --- statuses -------------------------------------------------------------------------------


async def lock_wamid(session: AsyncSession, wamid: str) -> None:
    # Serialises "is the send recorded?" with the sender recording it, so an early status
    # lands either in the backlog the sender drains or finds the message: never neither.
    # Taken before the send intent's row lock by whoever takes both: never a deadlock.
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(wamid))))


async def _try_lock_wamid(session: AsyncSession, wamid: str) -> bool:
    lock = func.pg_try_advisory_xact_lock(func.hashtext(wamid))
    return bool(await session.scalar(select(lock)))


async def _message_or_backlog(
    session: AsyncSession, event: WhatsAppWebhookReceived
) -> tuple[WhatsAppMessage | None, bool]:
    """The message the status is about, and whether this status just settled its send."""
    item = event.payload.item
    wamid = str(item.get("id"))
    await lock_wamid(session, wamid)
    message = await session.get(WhatsAppMessage, wamid)
    if message is not None:
        return message, False
    ref = SendRef.parse(item.get("biz_opaque_callback_data"))
    message = await _settle_unknown(session, event, ref) if ref else None
    if message is not None:
        return message, True
    await session.execute(
        insert(WhatsAppStatusBacklog)
        .values(
            wamid=wamid,
            event_id=event.id,
            item=item,
            send_ref=ref.key if ref else None,
            account_id=event.payload.account_id,
        )
        .on_conflict_do_nothing()
    )
    log.info("status before its send was recorded: kept", wamid=wamid[:24])
    return None, False


async def _settle_unknown(
    session: AsyncSession, event: WhatsAppWebhookReceived, ref: SendRef
) -> WhatsAppMessage | None:
    """A status naming a send of ours that got no answer: it was accepted after all."""
    intent = await locked_intent(session, ref.lead_id, ref.route, ref.attempt, IntentState.UNKNOWN)
    if intent is None:
        return None  # still `sending` (the sender settles it from the backlog), or settled
    item, account_id = event.payload.item, event.payload.account_id
    wa_id = await recipient_key(session, account_id, item)
    seen = Sighting(str(item.get("id")), account_id, wa_id, meta_time(item))
    message = await settle(session, intent, ref, seen)
    if message is not None:
        log.info("ambiguous send reconciled by its status", lead_id=str(intent.lead_id))
    return message


@dataclass(frozen=True)
class Parked:
    """A send that got no answer: settled under `message` by a status that came while it
    was `sending` (with the backlog's statuses), or, without one, to be `unknown`."""

    message: WhatsAppMessage | None = None


async def settle_parked(
    session: AsyncSession, lead_id: UUID, route: Route, attempt: int
) -> Parked | None:
    """What a send that got no answer becomes; None if it is no longer `sending`.

    The intent's row is locked first, so a status webhook either came before (it is in
    the backlog) or waits and then finds the intent `unknown` and settles it itself. The
    wamid's lock is only tried: a webhook holding it may be waiting for this row."""
    intent = await locked_intent(session, lead_id, route, attempt, IntentState.SENDING)
    if intent is None:
        return None
    found = await backlogged(session, intent_key(lead_id, route, attempt))
    if found is None or not await _try_lock_wamid(session, found.seen.wamid):
        return Parked()
    message = await settle(session, intent, found.ref, found.seen)
    if message is None:
        return Parked()
    await apply_backlog(session, message.wamid)
    return Parked(message)


async def apply_backlog(session: AsyncSession, wamid: str) -> int:
    """Statuses that arrived before the send was recorded (called in that transaction):
    their events go out through the outbox, in this transaction, because the backlog rows
    they come from are deleted in it; published after the commit, a crash in between would
    lose them for good. How many there were."""
    await lock_wamid(session, wamid)
    message = await session.get(WhatsAppMessage, wamid)
    rows = (
        await session.scalars(
            delete(WhatsAppStatusBacklog)
            .where(WhatsAppStatusBacklog.wamid == wamid)
            .returning(WhatsAppStatusBacklog)
        )
    ).all()
    if message is None:
        return 0
    events = [status_event(message, row.item, row.event_id, "whatsapp-backlog") for row in rows]
    for event in filter(None, events):
        add_to_outbox(session, DM_STATUS, str(event.payload.lead_id), event)
    return len(rows)


def status_event(
    message: WhatsAppMessage,
    item: dict[str, Any],
    source_id: UUID,
    correlation_id: str,
) -> DmStatusChanged | None:
    """The dm.status a status item means. Of a reconciled send every status says so, so a
    redelivered one is the same event whichever delivery settled the send."""
    status = STATUSES.get(str(item.get("status")))
    if status is None:
        return None
    error = _error(item) if status == DmStatus.FAILED else None
    return DmStatusChanged(
        id=uuid5(NAMESPACE_URL, f"dm-status:{source_id}"),
        occurred_at=meta_time(item),
        correlation_id=correlation_id,
        creator_id=message.creator_id,
        payload=DmStatusPayload(
            lead_id=message.lead_id,
            status=status,
            attempt=message.attempt,
            route=Route(message.route),
            provider=Provider.WHATSAPP,
            provider_message_id=message.wamid,
            reason=_reason(error, message.reconciled),
            error=error,
        ),
    )


def _reason(error: ProviderError | None, reconciled: bool) -> str | None:
    if error is None:
        return RECONCILED_REASON if reconciled else None
    if error.code == opt_out.STOPPED_MARKETING:
        return OPTED_OUT
    # Meta's title and details stay in `error` (the admin's); the creator gets plain words.
    prefix = f"{RECONCILED_FAILED_REASON}: " if reconciled else ""
    return f"{prefix}{provider_failure(Provider.WHATSAPP, error.error_class)}"[:500]


def _error(item: dict[str, Any]) -> ProviderError:
    errors = item.get("errors") or [{}]
    first = errors[0] if isinstance(errors[0], dict) else {}
    code = first.get("code") if isinstance(first.get("code"), int) else None
    details = (first.get("error_data") or {}).get("details")
    message = " - ".join(str(x) for x in (first.get("title"), details) if x) or "failed"
    return ProviderError(code=code, message=message[:1000], error_class=classify(code, None))


def meta_time(item: dict[str, Any], received_at: datetime | None = None) -> datetime:
    """Meta's Unix seconds; without a usable one, when the webhook came (not the epoch: a
    message "written in 1970" would never count as a reply)."""
    try:
        return datetime.fromtimestamp(int(item["timestamp"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return received_at or datetime.now(UTC)


def _re_engagement(message: WhatsAppMessage, item: dict[str, Any]) -> bool:
    """Free-form text accepted, then failed for the closed window (Meta's async variant).
    Not after a reconciled send: it was the one send (reconciliation.py)."""
    codes = {e.get("code") for e in item.get("errors") or [] if isinstance(e, dict)}
    return message.route == Route.WA_TEXT and RE_ENGAGEMENT in codes and not message.reconciled


def _template_retry(message: WhatsAppMessage, event: WhatsAppWebhookReceived) -> DmRequested:
    """A new attempt of the same DM; the sender applies the template rules (opt-in, else
    the link). Its id derives from the webhook's, so a redelivery asks once."""
    return DmRequested(
        id=uuid5(NAMESPACE_URL, f"wa-reengage:{event.id}"),
        correlation_id=event.correlation_id,
        creator_id=message.creator_id,
        payload=DmRequestedPayload(
            lead_id=message.lead_id,
            route=Route.WA_TEMPLATE,
            provider=Provider.WHATSAPP,
            account_id=message.account_id,
            recipient=_recipient(message.wa_id),
            text="",
            attempt=message.attempt + 1,
        ),
    )


def _recipient(key: str) -> Recipient:
    """Whom a re-routed DM goes to: the contact's BSUID or phone (its key)."""
    if identities.is_user_id(key):
        return Recipient(whatsapp_user_id=key)
    return Recipient(phone=f"+{key}")  # E.164: the wa.me link parses it too


async def recipient_key(session: AsyncSession, account_id: UUID, item: dict[str, Any]) -> str:
    """The contact key of a status's recipient (`recipient_id`, or the BSUID alone)."""
    user = WaUser(item.get("recipient_user_id"), item.get("recipient_id"))
    found = await identities.key_of(session, account_id, user) if user.known else None
    return found or str(user.phone or user.user_id or "")


# --- inbound messages -----------------------------------------------------------------------


def _sender(event: WhatsAppWebhookReceived) -> WaUser:
    """Who wrote: the identity webhook_ingest read from `contacts[]`, else the item's own."""
    p = event.payload
    contact = p.contact or {}
    return WaUser(
        user_id=contact.get("user_id") or p.item.get("from_user_id") or None,
        phone=contact.get("wa_id") or p.item.get("from") or None,
        username=contact.get("username"),
        parent_user_id=contact.get("parent_user_id"),
    )


async def _inbound(session: AsyncSession, event: WhatsAppWebhookReceived) -> list[DmStatusChanged]:
    """The user wrote: the window opens (or resets); every lead we messaged there replied.
    A system message saying their BSUID or number changed re-keys them instead."""
    p = event.payload
    change = identity_change(p.item)
    if change is not None:
        await identities.apply_change(session, p.account_id, event.creator_id, change)
        return []
    user = _sender(event)
    if not user.known or p.item.get("type") == "system":
        return []
    written_at = meta_time(p.item, event.occurred_at)
    contact = await identities.locked_for(session, p.account_id, user)
    wa_id = contact.wa_id
    contact.last_inbound_at = max(filter(None, (contact.last_inbound_at, written_at)))
    contact.profile_name = p.profile_name or contact.profile_name
    # Only messages sent before the user wrote are answered by it. WhatsApp timestamps are
    # whole seconds: written in the second of our send (or earlier) may predate it (e.g. the
    # window-opening message, delivered late), so it counts only from the next second on;
    # nobody reads and answers within the same second.
    sent = await session.scalars(
        select(WhatsAppMessage)
        .where(
            WhatsAppMessage.account_id == p.account_id,
            WhatsAppMessage.wa_id == wa_id,
            WhatsAppMessage.created_at < written_at,
        )
        .order_by(WhatsAppMessage.created_at.desc())
    )
    latest: dict[UUID, WhatsAppMessage] = {}
    for message in sent:
        latest.setdefault(message.lead_id, message)
    await _bind_named_lead(session, event, contact, written_at)
    await opt_out.on_inbound(session, event.creator_id, contact.wa_id, _text_of(p.item), event.id)
    return [_replied(message, event, written_at) for message in latest.values()]


# A lead still waiting for its person: its DM has not gone out (nor been refused).
BINDABLE = (DmStatus.QUEUED, DmStatus.AWAITING_CONTACT, DmStatus.LINK_READY)


async def _bind_named_lead(
    session: AsyncSession,
    event: WhatsAppWebhookReceived,
    contact: WhatsAppContact,
    written_at: datetime,
) -> None:
    """The message names a waiting lead of this creator (the ref the thank-you page's
    wa.me link pre-filled): this number's owner asked for that DM. The router binds the
    number to the lead and sends it, through the outbox in this transaction, once: the
    event's id derives from the webhook's, which the router claims."""
    refs = refs_in(_text_of(event.payload.item))
    if not refs:
        return
    lead = await session.scalar(
        select(Lead).where(
            Lead.ref.in_(refs), Lead.creator_id == event.creator_id, Lead.dm_status.in_(BINDABLE)
        )
    )
    if lead is None:
        log.info("whatsapp message names no waiting lead of this creator")
        return
    opened = LeadContactOpened(
        id=uuid5(NAMESPACE_URL, f"wa-contact:{event.id}"),
        correlation_id=event.correlation_id,
        creator_id=lead.creator_id,
        payload=LeadContactOpenedPayload(
            lead_id=lead.id,
            account_id=event.payload.account_id,
            # A username user may show no phone: the BSUID that wrote is bound then.
            wa_id=contact.phone,
            wa_user_id=contact.user_id,
            opened_at=written_at,
            via="whatsapp",
        ),
    )
    add_to_outbox(session, LEADS_CONTACTS, str(lead.id), opened)


def _text_of(item: dict[str, Any]) -> str:
    text = item.get("text")
    body = text.get("body") if isinstance(text, dict) else None
    return body if isinstance(body, str) else ""


def _replied(
    message: WhatsAppMessage, event: WhatsAppWebhookReceived, written_at: datetime
) -> DmStatusChanged:
    return DmStatusChanged(
        id=uuid5(NAMESPACE_URL, f"dm-replied:{event.id}:{message.lead_id}"),
        occurred_at=written_at,
        correlation_id=event.correlation_id,
        creator_id=message.creator_id,
        payload=DmStatusPayload(
            lead_id=message.lead_id,
            status=DmStatus.REPLIED,
            attempt=message.attempt,
            route=Route(message.route),
            provider=Provider.WHATSAPP,
            provider_message_id=message.wamid,
            reason="the lead answered on WhatsApp",
        ),
    )
