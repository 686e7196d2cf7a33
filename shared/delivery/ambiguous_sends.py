"""Reconciling ambiguous Instagram sends: with Instagram's echo of them, or by asking
Instagram what the conversation holds.

A send whose request left but whose answer never came (a timeout) may or may not have
reached the person: it is parked as `unknown` and never resent. Instagram sends a
`message` webhook with `is_echo: true` for every message the account sends, through the
API or not (platform facts §3c). The send intent records what was sent, from which
account, to whom (`dm_sends.account_id`, `recipient_igsid`, `text_sha256`); an echo that
matches an intent still `sending` or `unknown` proves the DM was sent and carries its
message id (services/webhook_ingest/inbound.py). Whichever comes second, the echo or the
sender's timeout, settles it as `sent` (services/instagram_sender/sending.py).

An echo can be lost (a webhook endpoint down longer than Meta's immediate retries), so an
`unknown` DM is also looked up actively in its conversation through the Conversations API
(services/webhook_ingest/conversations.py): found -> `sent` with the real message id, the
same settle as an echo (`settle_sent`); provably absent -> `failed` as not sent
(`settle_not_sent`), the one case in which a retry is safe; Meta cannot tell -> it stays
`unknown`.

WhatsApp has no echo; its status webhooks name the send instead
(services/whatsapp_sender/reconciliation.py).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.events import DmStatusChanged, DmStatusPayload, ProviderError, utcnow
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.topics import DM_STATUS
from shared.db.models import DmSend, Lead
from shared.delivery.intents import IntentState
from shared.messaging.outbox import add_to_outbox
from shared.platform.logs import get_logger

log = get_logger(__name__)

# The states whose outcome an echo can still settle.
UNSETTLED = (IntentState.SENDING.value, IntentState.UNKNOWN.value)

RECONCILED_REASON = "no answer from Instagram, but its echo of the message shows it was sent"
CONVERSATION_SENT_REASON = (
    "no answer from Instagram, but the conversation with the lead holds the message: sent"
)
NOT_SENT_REASON = (
    "no answer from Instagram, and the conversation with the lead does not hold the message:"
    " it was not sent, so a retry is safe"
)


def text_digest(text: str) -> str:
    """What is compared: the text itself is not kept on the intent (it is the lead's data)."""
    return hashlib.sha256(text.encode()).hexdigest()


async def settle_sent(
    session: AsyncSession,
    intent: DmSend,
    mid: str,
    reason: str,
    correlation_id: str,
    occurred_at: datetime | None = None,
) -> None:
    """An unsettled intent (locked by the caller) proven sent: its message id, and `sent`
    through the outbox. An intent still `sending` only gets the id: the sender owns that
    outcome and settles it as `sent` when its timeout comes."""
    intent.provider_message_id = mid
    intent.updated_at = utcnow()
    if intent.state == IntentState.SENDING:
        return
    intent.state = IntentState.SENT
    lead = await session.get(Lead, intent.lead_id)
    if lead is not None:
        log.info("ambiguous send reconciled", lead_id=str(lead.id), reason=reason[:60])
        status = _status(lead, DmStatus.SENT, reason, correlation_id, occurred_at, mid)
        add_to_outbox(session, DM_STATUS, str(lead.id), status)


async def settle_not_sent(session: AsyncSession, intent: DmSend, correlation_id: str) -> None:
    """An `unknown` intent (locked by the caller) Instagram says it does not hold: `failed`
    as a transient failure, which a creator may retry (services/api/service_layer/retry_policy.py),
    and which a later attempt may take over (the intent is final-not-sent)."""
    intent.state = IntentState.FAILED
    intent.reconcile_checks = 0
    intent.updated_at = utcnow()
    lead = await session.get(Lead, intent.lead_id)
    if lead is not None:
        log.info("ambiguous send reconciled as not sent", lead_id=str(lead.id))
        status = _status(lead, DmStatus.FAILED, NOT_SENT_REASON, correlation_id, None)
        add_to_outbox(session, DM_STATUS, str(lead.id), status)


def _status(
    lead: Lead,
    status: DmStatus,
    reason: str,
    correlation_id: str,
    occurred_at: datetime | None,
    provider_message_id: str | None = None,
) -> DmStatusChanged:
    error = None
    if status == DmStatus.FAILED:
        error = ProviderError(message=reason, error_class="transient")
    return DmStatusChanged(
        correlation_id=correlation_id,
        creator_id=lead.creator_id,
        occurred_at=occurred_at or utcnow(),
        payload=DmStatusPayload(
            lead_id=lead.id,
            status=status,
            attempt=lead.dm_attempt,
            route=Route(lead.dm_route) if lead.dm_route else None,
            provider=Provider.INSTAGRAM,
            provider_message_id=provider_message_id,
            reason=reason,
            error=error,
        ),
    )
