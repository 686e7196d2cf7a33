"""lead.created -> a route -> dm.requested (or a waiting state), in one transaction.

The decision itself is shared.routing (pure); this module gathers the facts from the
database and records the outcome: the lead's route and status, and the request event in
the outbox so it is published exactly when this transaction commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.api.dm_state import claim_and_lock, record_transition
from services.api.routing_facts import RoutingFacts, load_facts
from shared.db.models import Lead, SocialAccount
from shared.dead_letters import PoisonMessage
from shared.events import (
    DmRequested,
    DmRequestedPayload,
    DmRetryRequested,
    Envelope,
    LeadContactOpened,
    LeadCreated,
    Recipient,
)
from shared.idempotency import claim_event
from shared.lifecycle import DmStatus, Provider, Route
from shared.logs import bind_correlation_id
from shared.outbox import add_to_outbox
from shared.routing import (
    CreatorChannels,
    LeadFacts,
    RouteDecision,
    RouteOrder,
    RoutingRules,
    choose_route,
)
from shared.topics import dm_requested_topic

CONSUMER = "router"
CONTACT_CONSUMER = "router-contacts"


@dataclass(frozen=True)
class RouterConfig:
    rules: RoutingRules
    instagram_link_base: str = "https://ig.me/m"


async def route_lead(
    session: AsyncSession,
    event: LeadCreated | DmRetryRequested,
    config: RouterConfig,
    now: datetime,
) -> bool:
    """Route one lead (new, or retried under a new attempt); False for a redelivery."""
    return await route_leads(session, [event], config, now) == 1


async def route_leads(
    session: AsyncSession,
    events: Sequence[LeadCreated | DmRetryRequested],
    config: RouterConfig,
    now: datetime,
) -> int:
    """Route a batch with one claim and one locking read; how many leads were routed.

    Leads are locked and routed in lead-id order, so batches never wait on each other in
    a cycle; a redelivered event, or a retry a later attempt superseded, is skipped."""
    fresh, leads = await claim_and_lock(session, CONSUMER, events)
    facts = await load_facts(session, leads.values())
    routed = 0
    for event in fresh:
        lead = leads.get(event.payload.lead_id)
        if lead is None or lead.creator_id != event.creator_id:
            lead_id, creator_id = event.payload.lead_id, event.creator_id
            raise PoisonMessage(f"lead {lead_id} of creator {creator_id} not found")
        if isinstance(event, DmRetryRequested) and event.payload.attempt != lead.dm_attempt:
            continue  # a later attempt superseded this retry
        if lead.erased_at is not None:
            continue  # deleted at the person's request (webhook_ingest/erasure.py)
        bind_correlation_id(event.correlation_id)
        await _route(session, event, lead, config, now, facts)
        routed += 1
    return routed


async def open_contact(
    session: AsyncSession, event: LeadContactOpened, config: RouterConfig, now: datetime
) -> bool:
    """The lead opened its ig.me link or wrote: record the IGSID and the open window, and
    re-route a DM that waits for exactly this (ig_link). The new request goes out through
    the outbox with this transaction; a second contact finds the DM routed: nothing more."""
    if not await claim_event(session, CONTACT_CONSUMER, event.id):
        return False
    p = event.payload
    lead = await session.get(Lead, p.lead_id, with_for_update=True)
    if lead is None or lead.creator_id != event.creator_id:
        raise PoisonMessage(f"lead {p.lead_id} of creator {event.creator_id} not found")
    if lead.erased_at is not None:
        return True  # deleted at the person's request: their IGSID is not written back
    lead.igsid = p.igsid
    lead.last_inbound_at = max(filter(None, (lead.last_inbound_at, p.opened_at)))
    # A lead still `queued` is routed by its lead.created, which then sees these facts.
    if lead.dm_status == DmStatus.AWAITING_CONTACT and lead.dm_route == Route.IG_LINK:
        await _route(session, event, lead, config, now)
    return True


async def _route(
    session: AsyncSession,
    event: Envelope,
    lead: Lead,
    config: RouterConfig,
    now: datetime,
    facts: RoutingFacts | None = None,
) -> None:
    facts = facts or await load_facts(session, [lead])
    account, decision = decide_route(facts, lead, config.rules, now)
    lead.dm_route = decision.route
    lead.dm_provider = decision.route.provider
    creator = facts.creators.get(lead.creator_id)
    text = render_message(creator.dm_template if creator else "", lead)
    await _record(session, event, lead, account, decision, text, config, now)


async def _record(
    session: AsyncSession,
    event: Envelope,
    lead: Lead,
    account: SocialAccount | None,
    decision: RouteDecision,
    text: str,
    config: RouterConfig,
    now: datetime,
) -> None:
    def transition(status: DmStatus, **detail: str | None) -> None:
        record_transition(
            session,
            lead,
            status,
            attempt=lead.dm_attempt,
            event_id=event.id,
            occurred_at=now,
            detail={"route": decision.route, "reason": decision.reason, **detail},
        )

    if decision.route == Route.NONE:
        lead.dm_reason = decision.reason
        transition(DmStatus.SKIPPED)
        return
    if decision.route == Route.IG_LINK:
        assert account is not None
        lead.dm_link = f"{config.instagram_link_base}/{account.username}?ref={lead.ref}"
        lead.dm_reason = decision.reason
        lead.dm_account_id = account.id
        transition(DmStatus.AWAITING_CONTACT, link=lead.dm_link)
        return
    request = _request_for(event, lead, account, decision.route, text)
    lead.dm_account_id = request.payload.account_id
    key = str(request.payload.account_id or lead.creator_id)
    add_to_outbox(session, dm_requested_topic(request.payload.provider), key, request)


def _request_for(
    event: Envelope, lead: Lead, account: SocialAccount | None, route: Route, text: str
) -> DmRequested:
    provider = route.provider
    assert provider is not None
    if route == Route.IG_DM:
        recipient = Recipient(igsid=lead.igsid)
    elif route == Route.IG_PRIVATE_REPLY:
        recipient = Recipient(comment_id=lead.comment_id)
    else:
        recipient = Recipient(phone=lead.phone)
    return DmRequested(
        correlation_id=event.correlation_id,
        creator_id=lead.creator_id,
        payload=DmRequestedPayload(
            lead_id=lead.id,
            route=route,
            provider=provider,
            account_id=account.id if account else None,
            recipient=recipient,
            text=text,
            attempt=lead.dm_attempt,
        ),
    )


async def current_route(
    session: AsyncSession, lead: Lead, rules: RoutingRules, now: datetime
) -> tuple[SocialAccount | None, RouteDecision]:
    """Where the lead's DM would go now, with the account (Instagram or WhatsApp) it would use."""
    return decide_route(await load_facts(session, [lead]), lead, rules, now)


async def last_inbound_at(session: AsyncSession, lead: Lead) -> datetime | None:
    """When the lead last wrote to the creator's connected Instagram account, if known."""
    facts = await load_facts(session, [lead])
    return _lead_facts(facts, lead).last_inbound_at


def decide_route(
    facts: RoutingFacts, lead: Lead, rules: RoutingRules, now: datetime
) -> tuple[SocialAccount | None, RouteDecision]:
    """The route of one lead from facts already read (pure: no database round trip)."""
    account = facts.instagram_account(lead.creator_id)
    wa_account = facts.whatsapp_account(lead.creator_id)
    window_open = facts.whatsapp_window_open(lead, now, rules.whatsapp_window)
    lead_facts = replace(_lead_facts(facts, lead), whatsapp_window_open=window_open)
    requested = Provider(lead.dm_requested_provider) if lead.dm_requested_provider else None
    creator = facts.creators.get(lead.creator_id)
    order = RouteOrder(creator.route_order) if creator else RouteOrder.INSTAGRAM_FIRST
    channels = CreatorChannels(
        instagram_connected=account is not None,
        whatsapp_template_ready=wa_account is not None and wa_account.id in facts.templated,
        whatsapp_connected=wa_account is not None,
    )
    decision = choose_route(lead_facts, channels, now, rules, requested, order)
    return (wa_account if decision.route.provider == Provider.WHATSAPP else account), decision


def _lead_facts(facts: RoutingFacts, lead: Lead) -> LeadFacts:
    account = facts.instagram_account(lead.creator_id)
    last_inbound = lead.last_inbound_at
    if account is not None and lead.igsid:
        contact = facts.ig_contacts.get((account.id, lead.igsid))
        if contact and contact.last_inbound_at:
            last_inbound = max(filter(None, (last_inbound, contact.last_inbound_at)))
    commented_at = lead.commented_at
    if lead.comment_id and account is not None:
        # The comments webhook recorded when it was really written (Meta's clock).
        comment = facts.comments.get(lead.comment_id)
        if comment is not None and comment.account_id == account.id:
            commented_at = comment.commented_at
    # Only a reply that may have reached the person uses up the comment's one reply.
    reply = facts.replies.get(lead.id) if lead.comment_id else None
    reply_sent = reply is not None and reply.state not in ("failed", "skipped")
    return LeadFacts(
        has_instagram_handle=bool(lead.instagram_username),
        igsid=lead.igsid,
        last_inbound_at=last_inbound,
        comment_id=lead.comment_id,
        commented_at=commented_at,
        private_reply_sent=reply_sent,
        phone=lead.phone,
        whatsapp_opt_in=lead.whatsapp_opt_in,
    )


def render_message(template: str, lead: Lead) -> str:
    """The creator's template with the lead's fields; plain replace so braces in a name or a
    template can never raise or reach attributes (str.format would)."""
    text = template or "Hi {name}!"
    for key, value in {"name": lead.name, "message": lead.message}.items():
        text = text.replace("{" + key + "}", value)
    # Meta's limit is 1,000 bytes of UTF-8; cut on a character boundary.
    return text.encode()[:1000].decode(errors="ignore")
