"""Service layer of /api/dm: request a DM (a lead and its routing in one transaction),
read where it stands, and retry it when the cause of its failure can have changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.http.schemas import (
    DmErrorOut,
    DmLogOut,
    DmSendIn,
    DmStatusOut,
    LeadIn,
    RetryOut,
    WaitingOut,
)
from services.api.service_layer.dm_state import start_attempt
from services.api.service_layer.errors import Conflict, Forbidden, Invalid, NotFound
from services.api.service_layer.idempotency_keys import (
    KeyOwner,
    KeyPolicy,
    StoredResponse,
    claim,
    complete,
    release,
    request_hash,
)
from services.api.service_layer.lead_routing import route_now
from services.api.service_layer.leads import create_lead
from services.api.service_layer.principals import Principal, Role
from services.api.service_layer.retry_policy import (
    RetryFacts,
    RetryVerdict,
    retry_verdict,
    status_block,
)
from services.api.service_layer.tracked_links import tracked_link
from shared.contracts.events import DmRetryRequested, DmRetryRequestedPayload
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.route_choice import RoutingRules
from shared.contracts.topics import LEADS_RETRIES
from shared.db.models import DmLogEntry, DmSend, Lead, SocialAccount, WhatsAppDeferredSend
from shared.delivery.dm_guard import RETRY_HELD, held_leads
from shared.delivery.reasons import reason_code
from shared.messaging.unit_of_work import UnitOfWork, UnitsOfWork
from shared.providers.meta_errors import classify


def lead_not_found(lead_id: UUID) -> NotFound:
    return NotFound(f"lead {lead_id} not found")


def _fingerprinted(body: DmSendIn) -> dict[str, Any]:
    """The body an Idempotency-Key is bound to. A `source` left out stays out, so a key
    used before sources existed still matches the same request retried after."""
    values = body.model_dump(mode="json")
    if values.get("source") is None:
        values.pop("source", None)
    return values


def owned_by(principal: Principal, requested: UUID | None) -> UUID:
    """The creator a request acts for (a new lead, settings): a creator's own; others must
    name one."""
    if principal.role == Role.CREATOR:
        if requested is not None and requested != principal.creator_id:
            raise Forbidden("a creator may only act for themselves")
        assert principal.creator_id is not None  # auth guarantees it for creators
        return principal.creator_id
    if requested is None:
        raise Invalid("admin and service callers must name creator_id", kind="creator-required")
    return requested


async def accept_lead(
    uow: UnitOfWork, principal: Principal, body: LeadIn, correlation_id: str
) -> Lead:
    """POST /api/leads and POST /api/dm/send: the lead, routed by the rules (or the
    provider the caller named), stored with its lead.created event."""
    owner = owned_by(principal, body.creator_id)
    data = LeadIn.model_validate(body.model_dump(exclude={"provider"}) | {"creator_id": owner})
    provider = body.provider if isinstance(body, DmSendIn) else None
    return await create_lead(uow, data, correlation_id, requested_provider=provider)


async def load_lead(session: AsyncSession, principal: Principal, lead_id: UUID) -> Lead:
    """The lead if the caller may see it; another creator's lead is 404, as if absent."""
    return visible(await session.get(Lead, lead_id), principal, lead_id)


def visible(lead: Lead | None, principal: Principal, lead_id: UUID) -> Lead:
    if lead is None or not principal.may_access(lead.creator_id):
        raise lead_not_found(lead_id)
    return lead


@dataclass(frozen=True)
class RetryContext:
    rules: RoutingRules
    now: datetime


async def retry_dm(
    uow: UnitOfWork,
    principal: Principal,
    lead_id: UUID,
    correlation_id: str,
    ctx: RetryContext,
) -> Lead:
    lead = visible(await uow.get(Lead, lead_id, for_update=True), principal, lead_id)
    verdict = await verdict_for(uow.session, lead, ctx)
    if not verdict.allowed:
        raise Conflict(verdict.detail, kind="retry-not-allowed", title="The DM cannot be retried")
    event = DmRetryRequested(
        correlation_id=correlation_id,
        creator_id=lead.creator_id,
        payload=DmRetryRequestedPayload(
            lead_id=lead.id, attempt=lead.dm_attempt + 1, requested_by=principal.subject
        ),
    )
    start_attempt(uow, lead, event.id, ctx.now, principal.subject)
    uow.publish(LEADS_RETRIES, str(lead.id), event)
    return lead


async def verdict_for(session: AsyncSession, lead: Lead, ctx: RetryContext) -> RetryVerdict:
    if held := (await held_leads(session, [lead], ctx.now)).get(lead.id):
        return RetryVerdict(False, RETRY_HELD[held])  # opted out, or the creator's turn
    status = DmStatus(lead.dm_status)
    if (blocked := status_block(status)) is not None:
        return blocked  # a DM on its way, waiting or sent: nothing else to read
    decision, inbound = await route_now(session, lead, ctx.rules, ctx.now)
    failure = await _last_failure(session, lead)
    facts = RetryFacts(
        status=status,
        error_class=_error_class(lead, failure),
        reached_person=await _reached_person(session, lead),
        account_connected=await _account_connected(session, lead.dm_account_id),
        contacted_since_failure=bool(
            inbound and failure is not None and inbound > failure.occurred_at
        ),
        route_now=decision.route,
        route_reason=decision.reason,
    )
    return retry_verdict(facts)


async def _last_failure(session: AsyncSession, lead: Lead) -> DmLogEntry | None:
    return await session.scalar(
        select(DmLogEntry)
        .where(
            DmLogEntry.lead_id == lead.id,
            DmLogEntry.attempt == lead.dm_attempt,
            DmLogEntry.status == DmStatus.FAILED,
        )
        .order_by(DmLogEntry.id.desc())
        .limit(1)
    )


def _error_class(lead: Lead, failure: DmLogEntry | None) -> str | None:
    error = failure.detail.get("error") if failure else None
    if isinstance(error, dict) and error.get("error_class"):
        return str(error["error_class"])
    if lead.dm_error_code is not None:
        return str(classify(lead.dm_error_code, lead.dm_error_subcode))
    return None


async def _reached_person(session: AsyncSession, lead: Lead) -> bool:
    if lead.provider_message_id or lead.sent_at:
        return True
    sent = exists().where(DmSend.lead_id == lead.id, DmSend.state.in_(("sent", "unknown")))
    return bool(await session.scalar(select(sent)))


async def _account_connected(session: AsyncSession, account_id: UUID | None) -> bool:
    account = await session.get(SocialAccount, account_id) if account_id else None
    return account is not None and account.status == "connected"


async def dm_status(
    session: AsyncSession, principal: Principal, lead_id: UUID, ctx: RetryContext
) -> DmStatusOut:
    lead = await load_lead(session, principal, lead_id)
    log = (
        await session.scalars(
            select(DmLogEntry).where(DmLogEntry.lead_id == lead.id).order_by(DmLogEntry.id)
        )
    ).all()
    verdict = await verdict_for(session, lead, ctx)
    out = to_status_out(lead, list(log), verdict)
    out.waiting = await waiting_of(session, lead)
    return out


# What a deferred DM waits for, in the creator's words (the senders' machine codes).
WAITING_DETAIL = {
    "paused": "sending is paused (kill switch); it goes out after resume",
    "rate_limited": "paced below the account's sending limit; it goes out in turn",
    "paced": "held to the creator's pacing (DMs per hour); it goes out in turn",
    "throttled": "the platform asked this account to slow down; it goes out after that time",
    "circuit_open": "sending to this account is failing; retried when the breaker allows",
    "transient": "the platform was unreachable; retried with backoff",
}


async def waiting_of(session: AsyncSession, lead: Lead) -> WaitingOut | None:
    """Why a queued or sending DM waits: its deferred send intent (or, for WhatsApp, its
    deferred send)."""
    if lead.dm_route is None or DmStatus(lead.dm_status) not in WAITS:
        return None
    intent = await session.get(DmSend, (lead.id, lead.dm_route))
    if intent is not None and intent.state == "deferred" and intent.waiting_for:
        detail = WAITING_DETAIL.get(intent.waiting_for, intent.waiting_for)
        return WaitingOut(reason=intent.waiting_for, detail=detail, not_before=intent.not_before)
    deferred = await session.get(WhatsAppDeferredSend, (lead.id, lead.dm_route))
    if deferred is not None:
        return WaitingOut(
            reason="whatsapp_limit", detail=deferred.reason, not_before=deferred.not_before
        )
    return None


WAITS = frozenset({DmStatus.QUEUED, DmStatus.SENDING})


def to_status_out(lead: Lead, log: list[DmLogEntry], verdict: RetryVerdict) -> DmStatusOut:
    error = None
    if lead.dm_error_code is not None or lead.dm_error_message:
        error = DmErrorOut(
            code=lead.dm_error_code, subcode=lead.dm_error_subcode, message=lead.dm_error_message
        )
    return DmStatusOut(
        lead_id=lead.id,
        creator_id=lead.creator_id,
        status=DmStatus(lead.dm_status),
        route=Route(lead.dm_route) if lead.dm_route else None,
        provider=Provider(lead.dm_provider) if lead.dm_provider else None,
        attempt=lead.dm_attempt,
        provider_calls=lead.dm_attempts,
        link=lead.dm_link,
        tracked_link=tracked_link(lead),
        reason=lead.dm_reason,
        reason_code=reason_code(lead.dm_reason),
        error=error,
        sent_at=lead.sent_at,
        read_at=lead.read_at,
        retry=RetryOut(allowed=verdict.allowed, detail=verdict.detail),
        log=[
            DmLogOut(
                status=DmStatus(e.status),
                attempt=e.attempt,
                occurred_at=e.occurred_at,
                detail=e.detail,
            )
            for e in log
        ],
    )


@dataclass(frozen=True)
class SendOutcome:
    response: StoredResponse
    replayed: bool


async def request_dm(
    uow: UnitsOfWork,
    principal: Principal,
    body: DmSendIn,
    correlation_id: str,
    idempotency_key: str | None,
    keys: KeyPolicy,
    ctx: RetryContext,
) -> SendOutcome:
    """POST /api/dm/send: the lead and its DM request, answered once per Idempotency-Key."""
    if idempotency_key is None:
        async with uow() as work:
            return SendOutcome(await _send(work, principal, body, correlation_id, ctx), False)
    # Scoped to the creator it acts for too: an agency's one `sub` or a service serves many.
    owner = KeyOwner(owned_by(principal, body.creator_id), principal.subject)
    fingerprint = request_hash("POST", "/api/dm/send", _fingerprinted(body))
    stored = await claim(uow, owner, idempotency_key, fingerprint, keys, ctx.now)
    if stored is not None:
        return SendOutcome(stored, True)
    try:
        async with uow() as work:
            response = await _send(work, principal, body, correlation_id, ctx)
            await complete(work, owner, idempotency_key, response, ctx.now)
    except BaseException:
        await release(uow, owner, idempotency_key, ctx.now)
        raise
    return SendOutcome(response, False)


async def _send(
    uow: UnitOfWork,
    principal: Principal,
    body: DmSendIn,
    correlation_id: str,
    ctx: RetryContext,
) -> StoredResponse:
    lead = await accept_lead(uow, principal, body, correlation_id)
    await uow.flush()
    status = await dm_status(uow.session, principal, lead.id, ctx)
    return StoredResponse(202, status.model_dump(mode="json"))
