"""Send one requested WhatsApp DM through the Cloud API, at most once per (lead, route).

The decision and the send intent commit together, before Meta is called: which message
the rules allow now (free-form text only inside the 24 h window; else an approved template,
only with opt-in; else the wa.me link), and whether the limits let it go now (pair rate,
daily tier) or it waits (a deferred send, re-requested when due). A redelivered request
finds the intent and never calls Meta again.

A send that gets no answer is `unknown`, never resent; the status webhooks of the message
name it by its `biz_opaque_callback_data` and settle it (reconciliation.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.whatsapp_sender import identities, limits
from services.whatsapp_sender.limits import LimitPolicy, Throughput
from services.whatsapp_sender.links import WhatsAppDeps, handle_request
from services.whatsapp_sender.opt_out import STOPPED_MARKETING, opted_out_by_whatsapp
from services.whatsapp_sender.reconciliation import RECONCILED_REASON, SendRef
from services.whatsapp_sender.statuses import apply_backlog, lock_wamid, settle_parked
from shared.accounts.lifecycle import AccountState
from shared.contracts.consent import template_allowed
from shared.contracts.events import DmRequested, DmStatusChanged, ProviderError, utcnow
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.whatsapp_templates import (
    TemplateParameterError,
    lead_values,
    render_parameters,
)
from shared.db.models import (
    Creator,
    DeferredSend,
    DmSend,
    Lead,
    SocialAccount,
    WhatsAppMessage,
    WhatsAppNumber,
    WhatsAppTemplate,
)
from shared.delivery import deferrals, intents
from shared.delivery.dm_guard import hold_reason
from shared.delivery.gate import DeliveryGate
from shared.delivery.intents import IntentState, Takeover
from shared.delivery.reasons import OPTED_OUT, TEMPLATE_MISMATCH, provider_failure
from shared.delivery.sender import announce_previous, feed_gate, with_fast_retries
from shared.delivery.status_events import status_of
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.crypto import TokenCipher
from shared.platform.logs import get_logger
from shared.providers.meta_errors import ErrorClass, MetaError
from shared.providers.whatsapp import AcceptedMessage, TemplateMessage, WhatsAppClient
from shared.providers.whatsapp_identity import WaUser
from shared.providers.whatsapp_links import InvalidPhoneNumber, normalize_e164_digits

log = get_logger(__name__)

PublishStatus = Callable[[DmStatusChanged], Awaitable[None]]
# A deferred intent is taken again only by its own attempt (its deferred row comes due);
# failed, skipped and link ones by a later attempt (shared.delivery.intents).
TAKEOVER = Takeover(later_takes_deferred=False)
CLAIM = intents.claim_statement(TAKEOVER)
RE_ENGAGEMENT = 131047
GATE_REASONS = {
    "paused": "sending is paused for this number, its creator or all accounts",
    "paced": "the creator's pacing (DMs per hour) holds it back: it goes out in turn",
    "throttled": "WhatsApp is rate limiting this number: waiting for the time it allows",
    "circuit_open": "WhatsApp failed repeatedly for this number: waiting before trying again",
}
PAIR_RATE = 131056
QUEUE_REASON = "an earlier DM to the same person goes first: WhatsApp DMs keep their order"
TEMPLATE_ERRORS = frozenset({132000, 132001})


@dataclass(frozen=True)
class SenderDeps:
    sessions: async_sessionmaker[AsyncSession]
    client: WhatsAppClient
    cipher: TokenCipher
    publish: PublishStatus
    links: WhatsAppDeps
    # The kill switch and the circuit breakers, shared with the Instagram sender.
    gate: DeliveryGate
    policy: LimitPolicy = field(default_factory=LimitPolicy)
    throughput: Throughput = field(default_factory=Throughput)
    max_throttle_retries: int = 6
    fast_retries: int = 3
    now: Callable[[], datetime] = utcnow
    # Wakes this process's outbox relay (statuses that waited in the backlog go out there).
    wake: Callable[[], None] = lambda: None

    @property
    def uow(self) -> UnitOfWorkFactory:
        return UnitOfWorkFactory(self.sessions, self.wake)


@dataclass(frozen=True)
class Send:
    route: Route
    account_id: UUID
    phone_number_id: str
    token: str
    to: str  # the contact's key (limits, deferrals, history)
    messages_per_second: float
    # Where Meta is asked to deliver: the phone when AutoDM has one, else the BSUID.
    address: str = ""
    text: str | None = None
    template: TemplateMessage | None = None
    template_id: UUID | None = None


@dataclass(frozen=True)
class Held:
    """No message now: `state` is what the intent became, `status` what to announce."""

    state: IntentState
    status: DmStatus | None = None
    reason: str | None = None
    error: ProviderError | None = None
    previous: DmSend | None = None


Plan = Send | Held


async def send_whatsapp(deps: SenderDeps, request: DmRequested) -> None:
    if request.payload.route == Route.WA_LINK:
        await handle_request(deps.links, request)
        return
    async with deps.uow() as work:
        plan = await _plan(work.session, deps, request, deps.now())
    if isinstance(plan, Held):
        await _announce(deps, request, plan)
        return
    await deps.publish(status_of(_rerouted(request, plan.route), DmStatus.SENDING))
    p = request.payload
    ref = SendRef(p.lead_id, p.route, p.attempt, sent_as=plan.route)
    try:
        accepted = await _call(deps, plan, ref.callback_data())
    except MetaError as error:
        await feed_gate(deps.gate, plan.account_id, error)
        await _on_error(deps, request, plan, error)
        return
    await deps.gate.succeeded(plan.account_id)
    await _record_sent(deps, request, plan, accepted)


# --- the decision --------------------------------------------------------------------------


async def _plan(
    session: AsyncSession, deps: SenderDeps, request: DmRequested, now: datetime
) -> Plan:
    previous = await _claim_intent(session, request)
    if previous is not None:
        return Held(state=IntentState(previous.state), previous=previous)
    p = request.payload
    lead = await session.get(Lead, p.lead_id)
    account = await _account(session, request)
    if lead is None or account is None or account.access_token_encrypted is None:
        no_number = Held(IntentState.LINK, reason="no connected WhatsApp number")
        return await _hold(session, request, no_number)
    try:
        user = _recipient_of(lead, request)
    except InvalidPhoneNumber as exc:
        return await _hold(session, request, _failed(str(exc), "invalid"))
    if reason := await hold_reason(session, lead.id, now):  # opted out, or the creator's
        return await _hold(
            session, request, Held(IntentState.SKIPPED, DmStatus.SKIPPED, reason=reason)
        )
    contact = await identities.locked_for(session, account.id, user)
    to = contact.wa_id
    number = await session.get(WhatsAppNumber, account.id, with_for_update=True)
    send = Send(
        route=p.route,
        account_id=account.id,
        phone_number_id=account.external_id,
        token=deps.cipher.decrypt(account.access_token_encrypted),
        to=to,
        messages_per_second=float(number.messages_per_second if number else 80),
        address=contact.phone or contact.user_id or to,
    )
    if p.route == Route.WA_TEXT and limits.window_open(contact, now, deps.policy):
        send = _with_text(send, p.text)
    else:
        choice = await _template_send(session, send, lead, account)
        if isinstance(choice, Held):
            return await _hold(session, request, choice)
        send = choice
    recipient = (account.id, to)
    wait = limits.pair_wait_until(contact, now)
    reason = "WhatsApp allows 1 message per 6 s to the same person"
    ahead = await limits.waiting_ahead(session, account.id, to, lead.id, lead.created_at)
    if ahead is not None:
        # Keep the person's order: this DM goes after the earlier lead's, never before.
        wait, reason = max(ahead, wait or ahead), QUEUE_REASON
    if wait is None and send.route == Route.WA_TEMPLATE and number is not None:
        wait = await limits.tier_wait_until(session, number, contact, now)
        reason = f"the number's daily limit ({number.daily_limit} people / 24 h) is reached"
    if wait is not None:
        return await _defer(session, deps, request, wait, reason, recipient, throttled=False)
    # Last, so a half-open breaker's probe slot is only taken by a send that happens.
    verdict = deps.gate.check(account.id, (), creator_id=request.creator_id)
    if not verdict.go:
        assert verdict.not_before is not None
        why = GATE_REASONS.get(verdict.why, verdict.why)
        return await _defer(
            session, deps, request, verdict.not_before, why, recipient, throttled=False
        )
    limits.take_pair_slot(contact, now, deps.policy)
    if send.route == Route.WA_TEMPLATE:
        limits.count_for_tier(contact, now)
    return send


def _recipient_of(lead: Lead, request: DmRequested) -> WaUser:
    """The lead's phone (the caller's or the one that wrote) and BSUID (a username user's,
    bound when they wrote naming the lead): at least one, else InvalidPhoneNumber."""
    r = request.payload.recipient
    user_id = lead.whatsapp_user_id or r.whatsapp_user_id
    raw_phone = lead.phone or r.phone
    if user_id and not raw_phone:
        return WaUser(user_id, None)
    return WaUser(user_id, normalize_e164_digits(raw_phone or ""))


def _with_text(send: Send, text: str) -> Send:
    return replace(send, route=Route.WA_TEXT, text=text)


async def _template_send(
    session: AsyncSession, send: Send, lead: Lead, account: SocialAccount
) -> Send | Held:
    """Outside the window: the approved template if the lead opted in, else the link."""
    template = await _default_template(session, account.id)
    # An opt-in someone answers for: not a number typed into the public form (consent.py).
    opted_in = template_allowed(lead.whatsapp_opt_in, lead.origin, lead.contact_proven_at)
    if not opted_in or template is None:
        why = "no WhatsApp opt-in" if not opted_in else "no approved template"
        return Held(IntentState.LINK, reason=f"outside the 24 h window and {why}")
    creator = await session.get(Creator, lead.creator_id)
    values = lead_values(
        lead.name,
        lead.message,
        lead.phone,
        lead.instagram_username,
        creator.name if creator else "",
    )
    try:
        params = render_parameters(template.parameters, values)
    except TemplateParameterError as exc:
        return _failed(TEMPLATE_MISMATCH, "invalid", detail=f"template {template.name}: {exc}")
    message = TemplateMessage(template.name, template.language, params)
    return replace(send, route=Route.WA_TEMPLATE, template=message, template_id=template.id)


async def _default_template(session: AsyncSession, account_id: UUID) -> WhatsAppTemplate | None:
    return await session.scalar(
        select(WhatsAppTemplate)
        .where(WhatsAppTemplate.account_id == account_id, WhatsAppTemplate.status == "approved")
        .order_by(WhatsAppTemplate.is_default.desc(), WhatsAppTemplate.created_at.desc())
        .limit(1)
    )


async def _account(session: AsyncSession, request: DmRequested) -> SocialAccount | None:
    """The request's account, or the creator's connected number (wa_link carries none)."""
    p = request.payload
    if p.account_id is not None:
        account = await session.get(SocialAccount, p.account_id)
    else:
        account = await session.scalar(
            select(SocialAccount).where(
                SocialAccount.creator_id == request.creator_id,
                SocialAccount.provider == Provider.WHATSAPP,
                SocialAccount.status == AccountState.CONNECTED.value,
            )
        )
    connected = account is not None and account.status == AccountState.CONNECTED
    if account is None or account.provider != Provider.WHATSAPP or not connected:
        return None
    return account


def _failed(
    reason: str, error_class: str, code: int | None = None, detail: str | None = None
) -> Held:
    """`reason` for the creator (shared.delivery.reasons), `detail` (technical) for the admin."""
    error = ProviderError(code=code, message=(detail or reason)[:1000], error_class=error_class)
    return Held(IntentState.FAILED, DmStatus.FAILED, reason=reason[:500], error=error)


# --- the intent and deferrals ---------------------------------------------------------------


async def _claim_intent(session: AsyncSession, request: DmRequested) -> DmSend | None:
    """Record the intent; the existing one if this DM was handled before. A deferred intent
    is taken again (its time came); a later attempt takes over one that never reached the
    person; sent, sending and unknown intents are never taken over."""
    p = request.payload
    if await intents.claim(session, CLAIM, request):
        return None
    return await session.get(DmSend, (p.lead_id, p.route))


async def _set_intent(
    session: AsyncSession, request: DmRequested, state: IntentState, wamid: str | None = None
) -> None:
    p = request.payload
    await intents.set_state(session, request, state, wamid)
    if state != IntentState.DEFERRED:
        left = await session.execute(
            delete(DeferredSend)
            .where(DeferredSend.lead_id == p.lead_id, DeferredSend.route == p.route)
            .returning(DeferredSend.account_id, DeferredSend.wa_id)
        )
        for account_id, wa_id in left.all():
            if account_id is not None and wa_id is not None:
                await limits.wake_next(session, account_id, wa_id, utcnow())


async def _hold(session: AsyncSession, request: DmRequested, held: Held) -> Held:
    await _set_intent(session, request, held.state)
    return held


async def _defer(
    session: AsyncSession,
    deps: SenderDeps,
    request: DmRequested,
    until: datetime,
    reason: str,
    recipient: tuple[UUID, str],
    *,
    throttled: bool,
) -> Held:
    """Park the DM until `until`; throttling answers count toward giving up, waits don't.
    The row names its recipient and its lead's arrival: later leads to the same person
    wait behind it (`limits.waiting_ahead`)."""
    p = request.payload
    row = await session.get(DeferredSend, (p.lead_id, p.route), with_for_update=True)
    retries = (row.retries if row else 0) + (1 if throttled else 0)
    if retries > deps.max_throttle_retries:
        gave_up = provider_failure(
            Provider.WHATSAPP, ErrorClass.THROTTLED, gave_up_after=retries - 1
        )
        return await _hold(
            session, request, _failed(gave_up, ErrorClass.THROTTLED, detail=f"{reason}; gave up")
        )
    await deferrals.defer(
        session,
        request,
        until,
        reason,
        retries=retries,
        account_id=recipient[0],
        wa_id=recipient[1],
        queued_at=select(Lead.created_at).where(Lead.id == p.lead_id).scalar_subquery(),
    )
    await _set_intent(session, request, IntentState.DEFERRED)
    log.info(
        "whatsapp send deferred", lead_id=str(p.lead_id), until=until.isoformat(), reason=reason
    )
    return Held(IntentState.DEFERRED, reason=reason)


async def _announce(deps: SenderDeps, request: DmRequested, held: Held) -> None:
    if held.state == IntentState.LINK:
        link_request = _rerouted(request, Route.WA_LINK)
        await handle_request(deps.links, link_request)
        return
    if held.previous is not None:
        await _announce_previous(deps, request, held.previous)
        return
    if held.status is not None:
        await deps.publish(status_of(request, held.status, reason=held.reason, error=held.error))


async def _announce_previous(deps: SenderDeps, request: DmRequested, intent: DmSend) -> None:
    async def park(reason: str) -> None:
        await _park_unknown(deps, request, reason)

    await announce_previous(deps.publish, request, intent, park)


def _rerouted(request: DmRequested, route: Route) -> DmRequested:
    payload = request.payload.model_copy(update={"route": route})
    return request.model_copy(update={"payload": payload})


# --- the call and its outcome ---------------------------------------------------------------


async def _call(deps: SenderDeps, send: Send, callback_data: str) -> AcceptedMessage:
    await deps.throughput.acquire(send.account_id, send.messages_per_second)

    async def call() -> AcceptedMessage:
        if send.template is not None:
            return await deps.client.send_template(
                send.phone_number_id, send.token, send.address, send.template, callback_data
            )
        return await deps.client.send_text(
            send.phone_number_id, send.token, send.address, send.text or "", callback_data
        )

    return await with_fast_retries(deps.fast_retries, call)


async def _record_sent(
    deps: SenderDeps, request: DmRequested, send: Send, accepted: AcceptedMessage
) -> None:
    p = request.payload
    async with deps.uow() as work:
        session = work.session
        await lock_wamid(session, accepted.wamid)  # before the intent's row: statuses.py
        await _set_intent(session, request, IntentState.SENT, accepted.wamid)
        # Meta's answer pairs the phone with the BSUID: later webhooks may show either.
        answered = WaUser(accepted.user_id, accepted.wa_id)
        await identities.learn(session, send.account_id, send.to, answered)
        session.add(
            WhatsAppMessage(
                wamid=accepted.wamid,
                account_id=send.account_id,
                lead_id=p.lead_id,
                creator_id=request.creator_id,
                route=send.route,
                attempt=p.attempt,
                wa_id=send.to,
            )
        )
        await session.flush()
        await apply_backlog(session, accepted.wamid)
    await deps.publish(
        status_of(_rerouted(request, send.route), DmStatus.SENT, provider_message_id=accepted.wamid)
    )


async def _on_error(deps: SenderDeps, request: DmRequested, send: Send, error: MetaError) -> None:
    if error.code == RE_ENGAGEMENT and send.route == Route.WA_TEXT:
        # Meta says the window is closed (our clock missed it): the template rules apply.
        await _close_window(deps, send)
        async with deps.uow() as work:
            await _set_intent(work.session, request, IntentState.SKIPPED)
        await send_whatsapp(deps, _rerouted(request, Route.WA_TEMPLATE))
        return
    if error.error_class == ErrorClass.AMBIGUOUS:
        await _park_unknown(deps, request, "no answer from WhatsApp: not resent")
        return
    async with deps.uow() as work:
        held = await _held_for(work.session, deps, request, send, error)
    await _announce(deps, request, held)


async def _held_for(
    session: AsyncSession, deps: SenderDeps, request: DmRequested, send: Send, error: MetaError
) -> Held:
    if error.error_class in (ErrorClass.THROTTLED, ErrorClass.TRANSIENT):
        row = await session.get(DeferredSend, (request.payload.lead_id, request.payload.route))
        wait = limits.throttle_backoff(row.retries if row else 0)
        if error.code == PAIR_RATE:
            contact = await limits.locked_contact(session, send.account_id, send.to)
            contact.next_send_at = deps.now() + wait
        reason = provider_failure(Provider.WHATSAPP, error.error_class)
        until = deps.now() + wait
        recipient = (send.account_id, send.to)
        return await _defer(session, deps, request, until, reason, recipient, throttled=True)
    if error.code == STOPPED_MARKETING:
        await opted_out_by_whatsapp(session, request.creator_id, send.to, request.id)
        held = Held(IntentState.SKIPPED, DmStatus.SKIPPED, reason=OPTED_OUT)
        return await _hold(session, request, held)
    if error.error_class == ErrorClass.TOKEN:
        await session.execute(
            update(SocialAccount)
            .where(SocialAccount.id == send.account_id)
            .values(status=AccountState.RECONNECT_REQUIRED.value, updated_at=utcnow())
        )
    if error.code in TEMPLATE_ERRORS and send.template_id is not None:
        await session.execute(
            update(WhatsAppTemplate)
            .where(WhatsAppTemplate.id == send.template_id)
            .values(status="rejected", status_reason=error.message, updated_at=utcnow())
        )
    reason = provider_failure(Provider.WHATSAPP, error.error_class)
    detail = f"WhatsApp refused the message ({error.code}: {error.message})"
    return await _hold(session, request, _failed(reason, error.error_class, error.code, detail))


async def _park_unknown(deps: SenderDeps, request: DmRequested, reason: str) -> None:
    """`unknown`, never resent: unless a status webhook of the message came while it was
    `sending`, naming it by its callback data, which settles it as `sent` with its wamid."""
    p = request.payload
    async with deps.uow() as work:
        parked = await settle_parked(work.session, p.lead_id, p.route, p.attempt)
        if parked is None:
            return  # no longer `sending`: whoever moved it announced it
        wamid = parked.message.wamid if parked.message else None
        await _set_intent(work.session, request, intents.parked_state(wamid), wamid)
    if parked.message is None:
        await deps.publish(status_of(request, DmStatus.UNKNOWN, reason=reason))
        return
    sent_as = _rerouted(request, Route(parked.message.route))
    await deps.publish(
        status_of(sent_as, DmStatus.SENT, reason=RECONCILED_REASON, provider_message_id=wamid)
    )


async def _close_window(deps: SenderDeps, send: Send) -> None:
    async with deps.uow() as work:
        contact = await limits.locked_contact(work.session, send.account_id, send.to)
        contact.last_inbound_at = None
