"""Send one requested Instagram DM, at most once per (lead, route), within the limits
Instagram signalled, deferring rather than blocking (docs/RELIABILITY.md).

- The send intent (dm_sends row) is committed before Meta is called. A redelivered or
  replayed request finds it and never calls Meta again: a finished send re-announces its
  outcome, an interrupted one is reported `unknown` (it may have reached the person).
- Before the intent, the delivery gate decides: paused, rate-limited, throttled or an
  open breaker defers the DM (a `deferred_sends` row with a not-before time, re-requested
  on dm.requested.instagram when due: shared.delivery.deferrals).
- Errors by class (shared/providers/meta_errors.py): transient -> a few fast retries, then
  deferred with backoff; throttled -> the account blocked until the signalled time
  and the DM deferred to it; after `delivery_max_attempts` -> `failed` and the DLQ;
  token -> account flagged for reconnect, `failed`, DLQ (replay after reconnecting);
  recipient -> final `skipped` (window closed) or `failed`, never retried;
  ambiguous (no answer after the request left) -> `unknown`, never resent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.accounts.lifecycle import AccountState
from shared.contracts.events import DmRequested, DmStatusChanged, ProviderError, utcnow
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.db.models import DmSend, SocialAccount
from shared.delivery import deferrals, intents
from shared.delivery.ambiguous_sends import RECONCILED_REASON, text_digest
from shared.delivery.dm_guard import hold_reason
from shared.delivery.gate import BUCKET_WAITS, DeliveryGate, Limits, Verdict
from shared.delivery.intents import IntentState, Takeover
from shared.delivery.pacing import SendKind
from shared.delivery.reasons import ACCESS_REFUSED, NOT_CONNECTED, provider_failure
from shared.delivery.sender import announce_previous, feed_gate, with_fast_retries
from shared.delivery.status_events import status_of
from shared.messaging.dead_letters import DeliveryFailed
from shared.messaging.delayed_retries import (
    H_DEFERRED_FOR,
    DeliveryContext,
    backoff_s,
    deferral_headers,
)
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.crypto import DecryptedTokens
from shared.platform.logs import get_logger
from shared.platform.metrics import DELIVERIES_DEFERRED, RATE_LIMIT_WAIT
from shared.platform.tracing import exemplar
from shared.providers.instagram import InstagramClient, SentMessage
from shared.providers.meta_errors import ErrorClass, MetaError

log = get_logger(__name__)

PublishStatus = Callable[[DmStatusChanged], Awaitable[None]]

# Refusals that mean "not now, nothing wrong": the DM ends skipped, not failed.
WINDOW_CLOSED = frozenset({(10, 2534022), (10, 2018278), (10, 2018065)})

# A deferred intent is taken by its own retry and by a later attempt (a replay sends, the
# retry then finds it done); failed/skipped ones by a later attempt (shared.delivery.intents).
TAKEOVER = Takeover(later_takes_deferred=True)
CLAIM = intents.claim_statement(TAKEOVER)
NO_ACCOUNT = NOT_CONNECTED  # a request naming no account: nothing the creator can tell apart


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay_s: float = 2.0
    max_delay_s: float = 300.0
    max_inline_wait_s: float = 0.05


@dataclass(frozen=True)
class SenderDeps:
    # Autocommit: each write below is a single statement, atomic on its own; no BEGIN and
    # COMMIT round trips on the hot path (shared.db.session.make_sessionmaker).
    sessions: async_sessionmaker[AsyncSession]
    client: InstagramClient
    tokens: DecryptedTokens
    publish: PublishStatus
    gate: DeliveryGate
    policy: RetryPolicy = RetryPolicy()
    fast_retries: int = 3
    # Provider calls in flight at once (batch.py): the HTTP client's pool size.
    concurrency: int = 8
    # How old a read of the hold reasons may be when a DM is sent (holds.py).
    hold_max_age_s: float = 0.5

    @property
    def uow(self) -> UnitOfWorkFactory:
        """Every transaction of the sender (it publishes nothing through the outbox)."""
        return UnitOfWorkFactory(self.sessions)


@dataclass(frozen=True)
class Known:
    """What a send needs from the database, read under the account's lock (a whole batch
    at once in services.instagram_sender.batch)."""

    intent: DmSend | None
    account: SocialAccount | None
    recipient: str | None
    # The DM's hold reason from a recent read of its batch's (holds.py); None: read it now.
    hold: Callable[[], Awaitable[str | None]] | None = None


async def send_known(
    deps: SenderDeps, request: DmRequested, ctx: DeliveryContext, known: Known
) -> None:
    """The request's send, from what was read (under the account's lock)."""
    intent, account = known.intent, known.account
    if ctx.deferred:  # a re-request: its deferral row is done (deferring again writes one)
        async with deps.uow() as work:
            await deferrals.take(work.session, request)
    if intent is not None and not TAKEOVER.allows(
        intent.state, intent.attempt, request.payload.attempt
    ):
        await _announce_previous(deps, request, intent)
        return
    connected = account is not None and account.status == AccountState.CONNECTED
    if account is None or not connected or account.access_token_encrypted is None:
        dead = account is not None and account.status == AccountState.RECONNECT_REQUIRED
        await claim_and_finish_skipped(deps, request, ACCESS_REFUSED if dead else NOT_CONNECTED)
        return
    held = known.hold() if known.hold else _held(deps, request, known.recipient)
    if reason := await held:
        await claim_and_finish_skipped(deps, request, reason)
        return
    verdict = await _wait_for_gate(deps, request)
    if not verdict.go:
        assert verdict.not_before is not None
        await _defer(deps, request, ctx, verdict.not_before, verdict.why, ctx.attempts)
        return
    with deps.gate.outcome_pending(account.id):
        await _send_admitted(deps, request, ctx, account, known.recipient)


async def _send_admitted(
    deps: SenderDeps,
    request: DmRequested,
    ctx: DeliveryContext,
    account: SocialAccount,
    recipient: str | None,
) -> None:
    async with deps.uow() as work:
        won = await _claim_intent(work.session, request, recipient)
    if not won:  # another consumer (a redelivery) got there between the read and the claim
        deps.gate.abandon(account.id)
        return
    await deps.publish(status_of(request, DmStatus.SENDING))
    try:
        sent = await _send_with_retries(deps, account, request)
    except MetaError as error:
        await _on_error(deps, request, ctx, error)
        return
    await deps.gate.succeeded(account.id)
    # Finished at once, one row per statement: a batch-wide UPDATE at the end of the poll
    # deadlocked with the echo reconciler, which locks intents still `sending` in its own
    # batches (services/webhook_ingest/inbound.py), and left sent DMs `sending` longer.
    await _finish(
        deps, request, IntentState.SENT, DmStatus.SENT, provider_message_id=sent.message_id
    )


async def _held(deps: SenderDeps, request: DmRequested, recipient: str | None) -> str | None:
    """Asked right before the send, whatever brought the request here (the topic, the retry
    topic, a DLQ replay): the person opted out, or the creator is writing to them."""
    async with deps.sessions() as session:
        return await hold_reason(session, request.payload.lead_id, utcnow(), recipient)


def _limits(request: DmRequested) -> Limits:
    account = str(request.payload.account_id)
    if request.payload.route == Route.IG_PRIVATE_REPLY:
        return [
            (SendKind.INSTAGRAM_SEND, (account,)),
            (SendKind.INSTAGRAM_PRIVATE_REPLY, (account,)),
        ]
    return [(SendKind.INSTAGRAM_SEND, (account,))]


async def _wait_for_gate(deps: SenderDeps, request: DmRequested) -> Verdict:
    """The gate's verdict, after waiting in-process for a token if that is short."""
    assert request.payload.account_id is not None
    waited = 0.0
    while True:
        verdict = deps.gate.check(
            request.payload.account_id, _limits(request), creator_id=request.creator_id
        )
        if verdict.why not in BUCKET_WAITS or verdict.wait_s > deps.policy.max_inline_wait_s:
            RATE_LIMIT_WAIT.labels(provider="instagram", scope="account").observe(
                waited, exemplar()
            )
            return verdict
        await asyncio.sleep(verdict.wait_s)
        waited += verdict.wait_s


async def _defer(
    deps: SenderDeps,
    request: DmRequested,
    ctx: DeliveryContext,
    due: datetime,
    why: str,
    attempts: int,
) -> None:
    """The DM waits in `deferred_sends` until `due` (shared.delivery.deferrals: the poller
    re-requests it then, with its attempts and origin in the headers); the intent becomes
    `deferred` with why and until when, so the DM shows why it waits (the API reads it).
    The intent is rewritten when the reason or the attempt changes, not on every re-check
    of a DM that still waits for the same thing (a paced account's: every few seconds)."""
    changed = ctx.headers.get(H_DEFERRED_FOR) != why or attempts != ctx.attempts
    async with deps.uow() as work:
        if changed:
            await intents.record_waiting(work.session, TAKEOVER, request, why, due)
        headers = deferral_headers(ctx, due, why, attempts)
        await deferrals.defer(work.session, request, due, why, headers=headers)
    if changed:
        DELIVERIES_DEFERRED.labels(provider=Provider.INSTAGRAM, reason=why).inc()


async def _claim_intent(
    session: AsyncSession, request: DmRequested, recipient: str | None = None
) -> bool:
    """Record the intent atomically, with what Instagram's echo will be matched on; False
    if another handler holds it."""
    p = request.payload
    return await intents.claim(
        session,
        CLAIM,
        request,
        account_id=p.account_id,
        recipient_igsid=recipient,
        text_sha256=text_digest(p.text),
    )


async def claim_and_finish_skipped(deps: SenderDeps, request: DmRequested, reason: str) -> None:
    async with deps.uow() as work:
        won = await _claim_intent(work.session, request)
    if won:
        await _finish(deps, request, IntentState.SKIPPED, DmStatus.SKIPPED, reason=reason)


async def _announce_previous(deps: SenderDeps, request: DmRequested, intent: DmSend) -> None:
    async def park(reason: str) -> None:
        await _park_unknown(deps, request, reason, None)

    await announce_previous(deps.publish, request, intent, park)


async def _send_with_retries(
    deps: SenderDeps, account: SocialAccount, request: DmRequested
) -> SentMessage:
    p = request.payload
    token = deps.tokens.decrypt(account.access_token_encrypted or b"")

    async def call() -> SentMessage:
        return await deps.client.send_text(
            account.external_id,
            token,
            p.text,
            igsid=p.recipient.igsid if p.route == Route.IG_DM else None,
            comment_id=p.recipient.comment_id if p.route == Route.IG_PRIVATE_REPLY else None,
        )

    return await with_fast_retries(deps.fast_retries, call)


def _detail(error: MetaError) -> ProviderError:
    return ProviderError(
        code=error.code, subcode=error.subcode, message=error.message, error_class=error.error_class
    )


async def _on_error(
    deps: SenderDeps,
    request: DmRequested,
    ctx: DeliveryContext,
    error: MetaError,
) -> None:
    assert request.payload.account_id is not None
    account = request.payload.account_id
    # The creator's words; Meta's code and message travel in `error`, for the admin.
    reason = provider_failure(Provider.INSTAGRAM, error.error_class)
    throttled_until = await feed_gate(deps.gate, account, error)
    if error.error_class == ErrorClass.AMBIGUOUS:
        await _park_unknown(deps, request, reason, _detail(error))
        return
    if error.error_class == ErrorClass.RECIPIENT:
        window = (error.code, error.subcode) in WINDOW_CLOSED
        state, status = (
            (IntentState.SKIPPED, DmStatus.SKIPPED)
            if window
            else (IntentState.FAILED, DmStatus.FAILED)
        )
        await _finish(deps, request, state, status, reason=reason, error=_detail(error))
        return
    if error.error_class in (ErrorClass.TOKEN, ErrorClass.INVALID):
        if error.error_class == ErrorClass.TOKEN:
            await _flag_reconnect(deps, request)
        await _give_up(deps, request, error, error.error_class, reason, ctx.attempts + 1)
    await _retry_later(deps, request, ctx, error, reason, throttled_until)


async def _retry_later(
    deps: SenderDeps,
    request: DmRequested,
    ctx: DeliveryContext,
    error: MetaError,
    reason: str,
    throttled_until: datetime | None,
) -> None:
    """Throttled or transient: nothing reached the person. Defer, or give up at the limit."""
    attempts = ctx.attempts + 1
    if throttled_until is not None:
        due = throttled_until
    else:
        delay = backoff_s(attempts, deps.policy.base_delay_s, deps.policy.max_delay_s)
        due = utcnow() + timedelta(seconds=delay)
    if attempts >= deps.policy.max_attempts:
        await _give_up(deps, request, error, "retries_exhausted", reason, attempts)
    await _defer(deps, request, ctx, due, error.error_class, attempts)


async def _give_up(
    deps: SenderDeps,
    request: DmRequested,
    error: MetaError,
    dlq_reason: str,
    reason: str,
    attempts: int,
) -> None:
    """Final `failed`, then raise so the record is parked in the DLQ for a replay (the
    DLQ is the admin's business: the creator's reason does not mention it)."""
    if dlq_reason == "retries_exhausted":
        reason = provider_failure(Provider.INSTAGRAM, error.error_class, gave_up_after=attempts)
    await _finish(
        deps, request, IntentState.FAILED, DmStatus.FAILED, reason=reason, error=_detail(error)
    )
    raise DeliveryFailed(dlq_reason, error.error_class, error.code, attempts, str(error))


async def _park_unknown(
    deps: SenderDeps, request: DmRequested, reason: str, error: ProviderError | None
) -> None:
    """`unknown`, never resent: unless Instagram's echo of the message came first and left
    its message id on the intent (shared.delivery.ambiguous_sends), which settles it as `sent`."""
    p = request.payload
    echoed = DmSend.provider_message_id.is_not(None)
    state = case((echoed, IntentState.SENT.value), else_=IntentState.UNKNOWN.value)
    async with deps.uow() as work:
        row = (
            await work.session.execute(
                update(DmSend)
                .where(DmSend.lead_id == p.lead_id, DmSend.route == p.route)
                .values(state=state, updated_at=utcnow())
                .returning(DmSend.state, DmSend.provider_message_id)
            )
        ).one_or_none()
    if row is not None and row.state == IntentState.SENT:
        event = status_of(
            request, DmStatus.SENT, reason=RECONCILED_REASON, provider_message_id=row[1]
        )
    else:
        event = status_of(request, DmStatus.UNKNOWN, reason=reason, error=error)
    await deps.publish(event)


async def _flag_reconnect(deps: SenderDeps, request: DmRequested) -> None:
    async with deps.uow() as work:
        await work.session.execute(
            update(SocialAccount)
            .where(SocialAccount.id == request.payload.account_id)
            .values(status=AccountState.RECONNECT_REQUIRED.value, updated_at=utcnow())
        )


async def _finish(
    deps: SenderDeps,
    request: DmRequested,
    state: IntentState,
    status: DmStatus,
    *,
    reason: str | None = None,
    error: ProviderError | None = None,
    provider_message_id: str | None = None,
) -> None:
    async with deps.uow() as work:
        await intents.set_state(work.session, request, state, provider_message_id)
    await deps.publish(
        status_of(
            request, status, reason=reason, error=error, provider_message_id=provider_message_id
        )
    )
