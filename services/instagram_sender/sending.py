"""Send one requested Instagram DM, at most once per (lead, route), within the limits
Instagram signalled, deferring rather than blocking (docs/RELIABILITY.md).

- The send intent (dm_sends row) is committed before Meta is called. A redelivered or
  replayed request finds it and never calls Meta again: a finished send re-announces its
  outcome, an interrupted one is reported `unknown` (it may have reached the person).
- Before the intent, the delivery gate decides: paused, rate-limited, throttled or an
  open breaker defers the record to `dm.retry.instagram` with a not-before time.
- Errors by class (shared/providers/meta_errors.py): transient -> a few fast retries, then
  the retry topic with backoff; throttled -> the account blocked until the signalled time
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
from typing import cast

from sqlalchemy import ColumnElement, Executable, Table, bindparam, case, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from shared.account_lifecycle import RECONNECT_REQUIRED
from shared.crypto import DecryptedTokens
from shared.db.models import DmSend, InstagramComment, SocialAccount
from shared.dead_letters import DeliveryFailed
from shared.delivery import BUCKET_WAITS, DeliveryGate, Limits, Verdict, counts_as_failure
from shared.dm_reasons import ACCESS_REFUSED, NOT_CONNECTED, provider_failure
from shared.dm_status import status_of
from shared.events import DmRequested, DmStatusChanged, ProviderError, utcnow
from shared.lifecycle import DmStatus, Provider, Route
from shared.logs import get_logger
from shared.metrics import RATE_LIMIT_WAIT
from shared.providers.instagram import InstagramClient, SentMessage
from shared.providers.meta_errors import ErrorClass, MetaError
from shared.ratelimit import SendKind
from shared.reconciliation import RECONCILED_REASON, text_digest
from shared.retries import H_DEFERRED_FOR, DeliveryContext, RetryPublisher, backoff_s
from shared.tracing import exemplar

log = get_logger(__name__)

PublishStatus = Callable[[DmStatusChanged], Awaitable[None]]

# Refusals that mean "not now, nothing wrong": the DM ends skipped, not failed.
WINDOW_CLOSED = frozenset({(10, 2534022), (10, 2018278), (10, 2018065)})

# Intents a later attempt may take over (nothing reached the person); `deferred` may also
# be taken by the same attempt (its retry). sent, sending and unknown never are.
FINAL_NOT_SENT = ("failed", "skipped")
DEFERRED = "deferred"
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
    retry: RetryPublisher
    policy: RetryPolicy = RetryPolicy()
    fast_retries: int = 3
    # Provider calls in flight at once (batch.py): the HTTP client's pool size.
    concurrency: int = 8


async def send_dm(deps: SenderDeps, request: DmRequested, ctx: DeliveryContext) -> datetime | None:
    """Handle one request; a time means "hold this (retry) record and look again then"."""
    p = request.payload
    if p.account_id is None:
        await claim_and_finish_skipped(deps, request, NO_ACCOUNT)
        return None
    async with deps.gate.lock(p.account_id):
        return await _send_locked(deps, request, ctx)


async def _send_locked(
    deps: SenderDeps, request: DmRequested, ctx: DeliveryContext
) -> datetime | None:
    p = request.payload
    async with deps.sessions() as session:
        intent = await session.get(DmSend, (p.lead_id, p.route))
        account = await session.get(SocialAccount, p.account_id)
        recipient = await _recipient_igsid(session, request)
    return await send_known(deps, request, ctx, Known(intent, account, recipient))


@dataclass(frozen=True)
class Known:
    """What a send needs from the database, read under the account's lock (one request at
    a time here, a whole batch at once in services.instagram_sender.batch)."""

    intent: DmSend | None
    account: SocialAccount | None
    recipient: str | None


async def send_known(
    deps: SenderDeps, request: DmRequested, ctx: DeliveryContext, known: Known
) -> datetime | None:
    """The request's send, from what was read (under the account's lock)."""
    intent, account = known.intent, known.account
    if intent is not None and not _claimable(intent, request.payload.attempt):
        await _announce_previous(deps, request, intent)
        return None
    if account is None or account.status != "connected" or account.access_token_encrypted is None:
        dead = account is not None and account.status == RECONNECT_REQUIRED
        await claim_and_finish_skipped(deps, request, ACCESS_REFUSED if dead else NOT_CONNECTED)
        return None
    verdict = await _wait_for_gate(deps, request)
    if not verdict.go:
        assert verdict.not_before is not None
        return await _defer(deps, request, ctx, verdict.not_before, verdict.why, ctx.attempts)
    with deps.gate.outcome_pending(account.id):
        return await _send_admitted(deps, request, ctx, account, known.recipient)


async def _send_admitted(
    deps: SenderDeps,
    request: DmRequested,
    ctx: DeliveryContext,
    account: SocialAccount,
    recipient: str | None,
) -> datetime | None:
    async with deps.sessions.begin() as session:
        won = await _claim_intent(session, request, recipient)
    if not won:  # another consumer (a redelivery) got there between the read and the claim
        deps.gate.abandon(account.id)
        return None
    await deps.publish(status_of(request, DmStatus.SENDING))
    try:
        sent = await _send_with_retries(deps, account, request)
    except MetaError as error:
        return await _on_error(deps, request, ctx, error)
    await deps.gate.succeeded(account.id)
    # Finished at once, one row per statement: a batch-wide UPDATE at the end of the poll
    # deadlocked with the echo reconciler, which locks intents still `sending` in its own
    # batches (services/webhook_ingest/inbound.py), and left sent DMs `sending` longer.
    await _finish(deps, request, "sent", DmStatus.SENT, provider_message_id=sent.message_id)
    return None


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
) -> datetime | None:
    # The retry consumer keeps holding its own record while no new attempt failed: no new
    # record, no offset moved. Anything else goes (back) to the retry topic.
    held = ctx.held and attempts == ctx.attempts
    if not held or ctx.headers.get(H_DEFERRED_FOR) != why:
        await _record_waiting(deps, request, why, due)
    if held:
        return due
    await deps.retry.defer(ctx, due, why, attempts)
    return None


async def _record_waiting(deps: SenderDeps, request: DmRequested, why: str, due: datetime) -> None:
    """The intent becomes `deferred` with why and until when, so the DM shows why it waits
    (the API reads it). Written when the reason changes, not on every re-check of a held
    record: a paced account's held records are re-checked every few seconds."""
    p = request.payload
    values = {"state": DEFERRED, "attempt": p.attempt, "waiting_for": why, "not_before": due}
    stmt = insert(DmSend).values(lead_id=p.lead_id, route=p.route, **values)
    ours = _takeover(p.attempt) | ((DmSend.state == "sending") & (DmSend.attempt == p.attempt))
    stmt = stmt.on_conflict_do_update(
        index_elements=[DmSend.lead_id, DmSend.route],
        set_={**values, "updated_at": utcnow()},
        where=ours,
    )
    async with deps.sessions.begin() as session:
        await session.execute(stmt)


def _claimable(intent: DmSend, attempt: int) -> bool:
    if intent.state == DEFERRED:
        return intent.attempt <= attempt
    return intent.state in FINAL_NOT_SENT and intent.attempt < attempt


def _takeover(attempt: int) -> ColumnElement[bool]:
    """The intents an attempt may take over (see `_claimable`), as SQL."""
    return ((DmSend.state == DEFERRED) & (DmSend.attempt <= attempt)) | (
        DmSend.state.in_(FINAL_NOT_SENT) & (DmSend.attempt < attempt)
    )


async def _recipient_igsid(session: AsyncSession, request: DmRequested) -> str | None:
    """Whom the DM reaches: the IGSID, or for a private reply the comment's author."""
    p = request.payload
    if p.route != Route.IG_PRIVATE_REPLY or not p.recipient.comment_id:
        return p.recipient.igsid
    comment = await session.get(InstagramComment, p.recipient.comment_id)
    return comment.igsid if comment is not None else None


def _claim_statement() -> Executable:
    """The claim, built once: constructing this upsert per DM cost more CPU than running
    it (docs/BENCHMARKS.md). Core, not ORM DML: no ORM bulk-persistence pass per call."""
    stmt = insert(INTENTS).values(
        lead_id=bindparam("c_lead_id"),
        route=bindparam("c_route"),
        state="sending",
        attempt=bindparam("c_attempt"),
        account_id=bindparam("c_account_id"),
        recipient_igsid=bindparam("c_recipient_igsid"),
        text_sha256=bindparam("c_text_sha256"),
    )
    new, old = stmt.excluded, INTENTS.c
    takeover = ((old.state == DEFERRED) & (old.attempt <= new.attempt)) | (
        old.state.in_(FINAL_NOT_SENT) & (old.attempt < new.attempt)
    )  # `_takeover`, against the attempt being claimed
    return stmt.on_conflict_do_update(
        index_elements=[old.lead_id, old.route],
        set_={
            "state": new.state,
            "attempt": new.attempt,
            "provider_message_id": None,
            "waiting_for": None,
            "not_before": None,
            "updated_at": bindparam("c_updated_at"),
            "account_id": new.account_id,
            "recipient_igsid": new.recipient_igsid,
            "text_sha256": new.text_sha256,
        },
        where=takeover,
    ).returning(old.lead_id)


INTENTS = cast(Table, DmSend.__table__)
CLAIM = _claim_statement()
SET_STATE = (
    update(INTENTS)
    .where(INTENTS.c.lead_id == bindparam("b_lead_id"), INTENTS.c.route == bindparam("b_route"))
    .values(
        state=bindparam("b_state"),
        provider_message_id=bindparam("b_provider_message_id"),
        updated_at=bindparam("b_updated_at"),
    )
)


async def _claim_intent(
    session: AsyncSession, request: DmRequested, recipient: str | None = None
) -> bool:
    """Record the intent atomically, with what Instagram's echo will be matched on; False
    if another handler holds it."""
    p = request.payload
    params = {
        "c_lead_id": p.lead_id,
        "c_route": p.route,
        "c_attempt": p.attempt,
        "c_account_id": p.account_id,
        "c_recipient_igsid": recipient,
        "c_text_sha256": text_digest(p.text),
        "c_updated_at": utcnow(),
    }
    return await session.scalar(CLAIM, params) is not None


async def claim_and_finish_skipped(deps: SenderDeps, request: DmRequested, reason: str) -> None:
    async with deps.sessions.begin() as session:
        won = await _claim_intent(session, request)
    if won:
        await _finish(deps, request, "skipped", DmStatus.SKIPPED, reason=reason)


async def _announce_previous(deps: SenderDeps, request: DmRequested, intent: DmSend) -> None:
    log.info(
        "duplicate request: not sending again",
        lead_id=str(request.payload.lead_id),
        state=intent.state,
    )
    if intent.state == "sent":
        event = status_of(request, DmStatus.SENT, provider_message_id=intent.provider_message_id)
    elif intent.state == "sending":
        reason = "an earlier attempt was interrupted mid-send; not resent, to be reconciled"
        await _park_unknown(deps, request, reason, None)
        return
    else:
        return  # failed/skipped/unknown were announced when they happened
    await deps.publish(event)


async def _send_with_retries(
    deps: SenderDeps, account: SocialAccount, request: DmRequested
) -> SentMessage:
    p = request.payload
    token = deps.tokens.decrypt(account.access_token_encrypted or b"")
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(
            lambda e: isinstance(e, MetaError) and e.error_class == ErrorClass.TRANSIENT
        ),
        stop=stop_after_attempt(deps.fast_retries),
        wait=wait_random_exponential(multiplier=0.1, max=2.0),
        reraise=True,
    ):
        with attempt:
            return await deps.client.send_text(
                account.external_id,
                token,
                p.text,
                igsid=p.recipient.igsid if p.route == Route.IG_DM else None,
                comment_id=p.recipient.comment_id if p.route == Route.IG_PRIVATE_REPLY else None,
            )
    raise AssertionError("unreachable: tenacity reraises")


def _detail(error: MetaError) -> ProviderError:
    return ProviderError(
        code=error.code, subcode=error.subcode, message=error.message, error_class=error.error_class
    )


async def _on_error(
    deps: SenderDeps,
    request: DmRequested,
    ctx: DeliveryContext,
    error: MetaError,
) -> datetime | None:
    assert request.payload.account_id is not None
    account = request.payload.account_id
    # The creator's words; Meta's code and message travel in `error`, for the admin.
    reason = provider_failure(Provider.INSTAGRAM, error.error_class)
    if counts_as_failure(error):
        await deps.gate.failed(account, error)
    elif error.error_class != ErrorClass.THROTTLED:
        await deps.gate.succeeded(account)  # Meta answered: the path to it works
    if error.error_class == ErrorClass.AMBIGUOUS:
        await _park_unknown(deps, request, reason, _detail(error))
        return None
    if error.error_class == ErrorClass.RECIPIENT:
        window = (error.code, error.subcode) in WINDOW_CLOSED
        state, status = ("skipped", DmStatus.SKIPPED) if window else ("failed", DmStatus.FAILED)
        await _finish(deps, request, state, status, reason=reason, error=_detail(error))
        return None
    if error.error_class in (ErrorClass.TOKEN, ErrorClass.INVALID):
        if error.error_class == ErrorClass.TOKEN:
            await _flag_reconnect(deps, request)
        await _give_up(deps, request, error, error.error_class, reason, ctx.attempts + 1)
    return await _retry_later(deps, request, ctx, error, reason)


async def _retry_later(
    deps: SenderDeps,
    request: DmRequested,
    ctx: DeliveryContext,
    error: MetaError,
    reason: str,
) -> datetime | None:
    """Throttled or transient: nothing reached the person. Defer, or give up at the limit."""
    assert request.payload.account_id is not None
    attempts = ctx.attempts + 1
    if error.error_class == ErrorClass.THROTTLED:
        due = await deps.gate.throttled(request.payload.account_id, error)
    else:
        delay = backoff_s(attempts, deps.policy.base_delay_s, deps.policy.max_delay_s)
        due = utcnow() + timedelta(seconds=delay)
    if attempts >= deps.policy.max_attempts:
        await _give_up(deps, request, error, "retries_exhausted", reason, attempts)
    return await _defer(deps, request, ctx, due, error.error_class, attempts)


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
    await _finish(deps, request, "failed", DmStatus.FAILED, reason=reason, error=_detail(error))
    raise DeliveryFailed(dlq_reason, error.error_class, error.code, attempts, str(error))


async def _park_unknown(
    deps: SenderDeps, request: DmRequested, reason: str, error: ProviderError | None
) -> None:
    """`unknown`, never resent: unless Instagram's echo of the message came first and left
    its message id on the intent (shared.reconciliation), which settles it as `sent`."""
    p = request.payload
    echoed = DmSend.provider_message_id.is_not(None)
    async with deps.sessions.begin() as session:
        row = (
            await session.execute(
                update(DmSend)
                .where(DmSend.lead_id == p.lead_id, DmSend.route == p.route)
                .values(state=case((echoed, "sent"), else_="unknown"), updated_at=utcnow())
                .returning(DmSend.state, DmSend.provider_message_id)
            )
        ).one_or_none()
    if row is not None and row.state == "sent":
        event = status_of(
            request, DmStatus.SENT, reason=RECONCILED_REASON, provider_message_id=row[1]
        )
    else:
        event = status_of(request, DmStatus.UNKNOWN, reason=reason, error=error)
    await deps.publish(event)


async def _flag_reconnect(deps: SenderDeps, request: DmRequested) -> None:
    async with deps.sessions.begin() as session:
        await session.execute(
            update(SocialAccount)
            .where(SocialAccount.id == request.payload.account_id)
            .values(status="reconnect_required", updated_at=utcnow())
        )


async def _set_intent(
    deps: SenderDeps, request: DmRequested, state: str, provider_message_id: str | None = None
) -> None:
    p = request.payload
    params = {
        "b_lead_id": p.lead_id,
        "b_route": p.route,
        "b_state": state,
        "b_provider_message_id": provider_message_id,
        "b_updated_at": utcnow(),
    }
    async with deps.sessions.begin() as session:
        await session.execute(SET_STATE, params)


async def _finish(
    deps: SenderDeps,
    request: DmRequested,
    state: str,
    status: DmStatus,
    *,
    reason: str | None = None,
    error: ProviderError | None = None,
    provider_message_id: str | None = None,
) -> None:
    await _set_intent(deps, request, state, provider_message_id)
    await deps.publish(
        status_of(
            request, status, reason=reason, error=error, provider_message_id=provider_message_id
        )
    )
