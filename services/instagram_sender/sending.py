"""Send one requested Instagram DM, at most once per (lead, route).

The send intent (dm_sends row) is committed before Meta is called. A redelivered request
finds it and never calls Meta again: a finished send re-announces its outcome, an
interrupted one is reported `unknown` (it may have reached the person) for reconciliation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from shared.crypto import TokenCipher
from shared.db.models import DmSend, SocialAccount
from shared.dm_status import status_of
from shared.events import DmRequested, DmStatusChanged, ProviderError, utcnow
from shared.lifecycle import DmStatus, Route
from shared.logs import get_logger
from shared.providers.instagram import InstagramClient, SentMessage
from shared.providers.meta_errors import ErrorClass, MetaError

log = get_logger(__name__)

PublishStatus = Callable[[DmStatusChanged], Awaitable[None]]

PLAIN_REASONS = {
    ErrorClass.RECIPIENT: "Instagram does not allow messaging this person right now",
    ErrorClass.INVALID: "Instagram rejected the message as invalid",
    ErrorClass.TOKEN: "the Instagram connection expired: the creator must reconnect",
    ErrorClass.AMBIGUOUS: "no answer from Instagram: the DM may have been sent; not resent",
    ErrorClass.THROTTLED: "Instagram is rate limiting this account; retries exhausted",
    ErrorClass.TRANSIENT: "Instagram was unreachable; retries exhausted",
}


@dataclass(frozen=True)
class SenderDeps:
    sessions: async_sessionmaker[AsyncSession]
    client: InstagramClient
    cipher: TokenCipher
    publish: PublishStatus
    fast_retries: int = 3


RETRYABLE_STATES = ("failed", "skipped")


class SendParked(Exception):
    """Raised after a retryable failure so the request lands in the DLQ for replay."""


async def send_dm(deps: SenderDeps, request: DmRequested) -> None:
    p = request.payload
    async with deps.sessions.begin() as session:
        intent = await _claim_intent(session, request)
        account = await session.get(SocialAccount, p.account_id) if p.account_id else None
    if intent is not None:
        await _announce_previous(deps, request, intent)
        return
    if account is None or account.status != "connected" or account.access_token_encrypted is None:
        await _finish(
            deps, request, "skipped", DmStatus.SKIPPED, reason="Instagram account not connected"
        )
        return
    await deps.publish(status_of(request, DmStatus.SENDING))
    try:
        sent = await _send_with_retries(deps, account, request)
    except MetaError as error:
        await _on_error(deps, request, error)
        return
    await _finish(deps, request, "sent", DmStatus.SENT, provider_message_id=sent.message_id)


async def _claim_intent(session: AsyncSession, request: DmRequested) -> DmSend | None:
    """Record the intent; returns the existing one if this DM was attempted before.

    A later attempt may take over an intent that ended without reaching the person
    (failed or skipped); sent, sending and unknown intents are never taken over.
    """
    p = request.payload
    stmt = insert(DmSend).values(
        lead_id=p.lead_id, route=p.route, state="sending", attempt=p.attempt
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[DmSend.lead_id, DmSend.route],
        set_={"state": "sending", "attempt": p.attempt, "updated_at": utcnow()},
        where=(DmSend.state.in_(RETRYABLE_STATES)) & (DmSend.attempt < p.attempt),
    )
    claimed = await session.scalar(stmt.returning(DmSend.lead_id))
    if claimed is not None:
        return None
    return await session.get(DmSend, (p.lead_id, p.route))


async def _announce_previous(deps: SenderDeps, request: DmRequested, intent: DmSend) -> None:
    log.info(
        "duplicate request: not sending again",
        lead_id=str(request.payload.lead_id),
        state=intent.state,
    )
    if intent.state == "sent":
        event = status_of(request, DmStatus.SENT, provider_message_id=intent.provider_message_id)
    elif intent.state == "sending":
        event = status_of(
            request,
            DmStatus.UNKNOWN,
            reason="an earlier attempt was interrupted mid-send; not resent, to be reconciled",
        )
    else:
        return  # failed/skipped/unknown were announced when they happened
    await deps.publish(event)


async def _send_with_retries(
    deps: SenderDeps, account: SocialAccount, request: DmRequested
) -> SentMessage:
    p = request.payload
    token = deps.cipher.decrypt(account.access_token_encrypted or b"")
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


async def _on_error(deps: SenderDeps, request: DmRequested, error: MetaError) -> None:
    reason = f"{PLAIN_REASONS[error.error_class]} ({error.message})"
    detail = ProviderError(
        code=error.code, subcode=error.subcode, message=error.message, error_class=error.error_class
    )
    if error.error_class == ErrorClass.AMBIGUOUS:
        await _finish(deps, request, "unknown", DmStatus.UNKNOWN, reason=reason, error=detail)
        return
    if error.error_class == ErrorClass.TOKEN:
        await _flag_reconnect(deps, request)
    if error.error_class in (ErrorClass.THROTTLED, ErrorClass.TRANSIENT):
        # Nothing reached the person: drop the intent so a replay from the DLQ may send.
        async with deps.sessions.begin() as session:
            p = request.payload
            await session.execute(
                delete(DmSend).where(DmSend.lead_id == p.lead_id, DmSend.route == p.route)
            )
        await deps.publish(
            status_of(request, DmStatus.FAILED, reason=reason + "; parked in the DLQ", error=detail)
        )
        raise SendParked(str(error)) from error
    await _finish(deps, request, "failed", DmStatus.FAILED, reason=reason, error=detail)


async def _flag_reconnect(deps: SenderDeps, request: DmRequested) -> None:
    async with deps.sessions.begin() as session:
        await session.execute(
            update(SocialAccount)
            .where(SocialAccount.id == request.payload.account_id)
            .values(status="reconnect_required", updated_at=utcnow())
        )


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
    p = request.payload
    async with deps.sessions.begin() as session:
        await session.execute(
            update(DmSend)
            .where(DmSend.lead_id == p.lead_id, DmSend.route == p.route)
            .values(state=state, provider_message_id=provider_message_id, updated_at=utcnow())
        )
    await deps.publish(
        status_of(
            request, status, reason=reason, error=error, provider_message_id=provider_message_id
        )
    )
