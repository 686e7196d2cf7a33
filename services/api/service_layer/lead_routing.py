"""lead.created -> a route -> dm.requested (or a waiting state), in one transaction.

The decision itself is shared.contracts.route_choice (pure); this module gathers the facts from the
database and records the outcome: the lead's route and status, and the request event in
the outbox so it is published exactly when this transaction commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.api.service_layer.dm_state import claim_and_lock, record_transition
from services.api.service_layer.funnel_stages import Stage
from services.api.service_layer.funnel_stages import count as count_stage
from services.api.service_layer.message_text import TOO_LONG, TooLong, render, too_long
from services.api.service_layer.routing_facts import RoutingFacts, load_facts
from shared.contracts.consent import PROVEN_CONSENT, phone_proven
from shared.contracts.events import (
    DmRequested,
    DmRequestedPayload,
    DmRetryRequested,
    Envelope,
    LeadContactOpened,
    LeadCreated,
    LeadCreatedV2,
    Recipient,
)
from shared.contracts.lead_sources import template_for
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.route_choice import (
    CreatorChannels,
    LeadFacts,
    RouteDecision,
    RouteOrder,
    RoutingRules,
    choose_route,
)
from shared.contracts.topics import dm_requested_topic
from shared.db.models import Lead, SocialAccount
from shared.delivery.dm_guard import held_leads
from shared.messaging.dead_letters import PoisonMessage
from shared.messaging.unit_of_work import UnitOfWork
from shared.platform.logs import bind_correlation_id

CONSUMER = "router"
CONTACT_CONSUMER = "router-contacts"


@dataclass(frozen=True)
class RouterConfig:
    rules: RoutingRules
    instagram_link_base: str = "https://ig.me/m"


async def route_lead(
    uow: UnitOfWork,
    event: LeadCreated | LeadCreatedV2 | DmRetryRequested,
    config: RouterConfig,
    now: datetime,
) -> bool:
    """Route one lead (new, or retried under a new attempt); False for a redelivery."""
    return await route_leads(uow, [event], config, now) == 1


async def route_leads(
    uow: UnitOfWork,
    events: Sequence[LeadCreated | LeadCreatedV2 | DmRetryRequested],
    config: RouterConfig,
    now: datetime,
) -> int:
    """Route a batch with one claim and one locking read; how many leads were routed.

    Leads are locked and routed in lead-id order, so batches never wait on each other in
    a cycle; a redelivered event, or a retry a later attempt superseded, is skipped."""
    fresh, leads = await claim_and_lock(uow, CONSUMER, events)
    facts = await load_facts(uow.session, leads.values())
    held = await held_leads(uow.session, leads.values(), now)  # opted out, or the creator's
    return route_loaded(uow, fresh, leads, facts, config, now, held)


def route_loaded(
    uow: UnitOfWork,
    fresh: Sequence[LeadCreated | LeadCreatedV2 | DmRetryRequested],
    leads: Mapping[UUID, Lead],
    facts: RoutingFacts,
    config: RouterConfig,
    now: datetime,
    held: Mapping[UUID, str] | None = None,
) -> int:
    """The router's decisions for claimed events whose leads, facts and holds are read (no
    I/O: what it changes and publishes goes through the unit of work); how many were
    routed. `held`: leads that must get nothing (opted out, or the creator is writing)."""
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
        _route(uow, event, lead, config, now, facts, held or {})
        if not isinstance(event, DmRetryRequested):  # a new lead: the funnel's first step
            count_stage(Stage.LEAD, lead.dm_route, lead.source)
        routed += 1
    return routed


async def open_contact(
    uow: UnitOfWork, event: LeadContactOpened, config: RouterConfig, now: datetime
) -> bool:
    """The lead opened its ig.me link or wrote (on Instagram, or on WhatsApp naming the
    lead): record the IGSID and the open window, or bind the WhatsApp number that wrote,
    and re-route a DM that waits for exactly this (ig_link, wa_link). The new request goes
    out through the outbox with this transaction; a second contact finds the DM routed."""
    if not await uow.claim(CONTACT_CONSUMER, [event.id]):
        return False
    p = event.payload
    lead = await uow.get(Lead, p.lead_id, for_update=True)
    if lead is None or lead.creator_id != event.creator_id:
        raise PoisonMessage(f"lead {p.lead_id} of creator {event.creator_id} not found")
    if lead.erased_at is not None:
        return True  # deleted at the person's request: their IGSID is not written back
    if p.wa_id or p.wa_user_id:
        _bind_whatsapp(lead, p.wa_id, p.opened_at, p.wa_user_id)
    else:
        lead.igsid = p.igsid
        lead.last_inbound_at = max(filter(None, (lead.last_inbound_at, p.opened_at)))
    # A lead still `queued` is routed by its lead.created, which then sees these facts.
    if (lead.dm_status, lead.dm_route) in WAITING_FOR_CONTACT:
        facts = await load_facts(uow.session, [lead])
        _route(uow, event, lead, config, now, facts, await held_leads(uow.session, [lead], now))
    return True


WAITING_FOR_CONTACT = {
    (DmStatus.AWAITING_CONTACT, Route.IG_LINK),
    (DmStatus.LINK_READY, Route.WA_LINK),
}


def _bind_whatsapp(
    lead: Lead, wa_id: str | None, written_at: datetime, user_id: str | None = None
) -> None:
    """The number that wrote naming the lead is the lead's: proven by its owner (whatever
    number the form was given), so the DM goes there and only there. A username user may
    show no number: then their BSUID is the lead's, and the typed number is dropped."""
    lead.phone = f"+{wa_id}" if wa_id else None
    lead.whatsapp_user_id = user_id or (lead.whatsapp_user_id if wa_id else None)
    lead.contact_proven_at = lead.contact_proven_at or written_at
    if lead.whatsapp_opt_in:
        lead.whatsapp_consent_source = PROVEN_CONSENT


def _route(
    uow: UnitOfWork,
    event: Envelope,
    lead: Lead,
    config: RouterConfig,
    now: datetime,
    facts: RoutingFacts,
    held: Mapping[UUID, str],
) -> None:
    if lead.id in held:
        _hold(uow, event, lead, held[lead.id], now)
        return
    account, decision = decide_route(facts, lead, config.rules, now)
    lead.dm_route = decision.route
    lead.dm_provider = decision.route.provider
    creator = facts.creators.get(lead.creator_id)
    default = creator.dm_template if creator else ""
    text = render_message(
        template_for(default, creator.source_templates if creator else None, lead.source), lead
    )
    overlong = too_long(text, decision.route)
    if overlong is not None:
        _fail_too_long(uow, event, lead, decision, overlong, now)
        return
    if decision.route == Route.IG_PRIVATE_REPLY and lead.comment_id:
        facts.use_reply(lead.comment_id)  # a later lead of this batch on the same comment
    _record(uow, event, lead, account, decision, text, config, now)


def _hold(uow: UnitOfWork, event: Envelope, lead: Lead, reason: str, now: datetime) -> None:
    """Nothing goes out: the person opted out or the creator is writing to them (dm_guard)."""
    lead.dm_reason = reason
    record_transition(
        uow,
        lead,
        DmStatus.SKIPPED,
        attempt=lead.dm_attempt,
        event_id=event.id,
        occurred_at=now,
        detail={"reason": reason},
    )


def _fail_too_long(
    uow: UnitOfWork,
    event: Envelope,
    lead: Lead,
    decision: RouteDecision,
    overlong: TooLong,
    now: datetime,
) -> None:
    """Never a silently cut DM: the lead ends `failed` with what to change (a retry after
    the template is shortened renders it again)."""
    lead.dm_reason = overlong.reason
    record_transition(
        uow,
        lead,
        DmStatus.FAILED,
        attempt=lead.dm_attempt,
        event_id=event.id,
        occurred_at=now,
        detail={
            "route": decision.route,
            "reason": overlong.reason,
            "error": {"error_class": TOO_LONG, "message": overlong.reason},
        },
    )


def _record(
    uow: UnitOfWork,
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
            uow,
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
    lead.dm_reason = None  # why it waited (ig.me link, a failure) is over: it goes out now
    lead.dm_account_id = request.payload.account_id
    key = str(request.payload.account_id or lead.creator_id)
    uow.publish(dm_requested_topic(request.payload.provider), key, request)


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
        recipient = Recipient(phone=lead.phone, whatsapp_user_id=lead.whatsapp_user_id)
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


async def route_now(
    session: AsyncSession, lead: Lead, rules: RoutingRules, now: datetime
) -> tuple[RouteDecision, datetime | None]:
    """Where the lead's DM would go now, and when the lead last wrote to the creator's
    connected Instagram account (if known): one read of the routing facts for both."""
    facts = await load_facts(session, [lead])
    _, decision = decide_route(facts, lead, rules, now)
    return decision, _lead_facts(facts, lead).last_inbound_at


def decide_route(
    facts: RoutingFacts, lead: Lead, rules: RoutingRules, now: datetime
) -> tuple[SocialAccount | None, RouteDecision]:
    """The route of one lead from facts already read (pure: no database round trip)."""
    account = facts.instagram_account(lead.creator_id)
    wa_account = facts.whatsapp_account(lead.creator_id)
    lead_facts = replace(
        _lead_facts(facts, lead),
        whatsapp_window_open=facts.whatsapp_window_open(lead, now, rules.whatsapp_window),
        recently_messaged=facts.recently_messaged(lead, now, rules.form_recipient_cooldown),
    )
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
    # Whichever lead's reply it was: Instagram allows one per comment.
    reply_sent = bool(lead.comment_id) and facts.reply_used(lead.comment_id or "")
    return LeadFacts(
        has_instagram_handle=bool(lead.instagram_username),
        igsid=lead.igsid,
        last_inbound_at=last_inbound,
        comment_id=lead.comment_id,
        commented_at=commented_at,
        private_reply_sent=reply_sent,
        phone=lead.phone,
        whatsapp_opt_in=lead.whatsapp_opt_in,
        phone_proven=phone_proven(lead.origin, lead.contact_proven_at),
        whatsapp_user_id=lead.whatsapp_user_id,
    )


def render_message(template: str, lead: Lead) -> str:
    """The creator's template with the lead's fields (service_layer/message_text.py: one pass,
    never cut: a DM over its platform's limit ends `failed` with the reason instead)."""
    return render(template, {"name": lead.name or "", "message": lead.message or ""})
