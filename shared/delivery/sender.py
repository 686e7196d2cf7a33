"""What both senders do the same way around a provider call: the fast retries, feeding the
delivery gate with the answer, and answering a request whose intent was handled before.
The senders keep what is the provider's own (building Meta's request, mapping its errors,
WhatsApp's order per person and templates, Instagram's private replies and echoes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from shared.contracts.events import DmRequested, DmStatusChanged
from shared.contracts.lifecycle import DmStatus
from shared.db.models import DmSend
from shared.delivery.gate import DeliveryGate, counts_as_failure
from shared.delivery.intents import INTERRUPTED, Previous, previous_outcome
from shared.delivery.status_events import status_of
from shared.platform.logs import get_logger
from shared.providers.meta_errors import ErrorClass, MetaError

log = get_logger(__name__)

T = TypeVar("T")
PublishStatus = Callable[[DmStatusChanged], Awaitable[None]]
ParkUnknown = Callable[[str], Awaitable[None]]


def _transient(error: BaseException) -> bool:
    return isinstance(error, MetaError) and error.error_class == ErrorClass.TRANSIENT


async def with_fast_retries(attempts: int, call: Callable[[], Awaitable[T]]) -> T:
    """A few quick retries (exponential backoff with jitter) of connection errors and 5xx;
    anything else, or the last failure, is raised for the sender to classify."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(_transient),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.1, max=2.0),
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises")


async def feed_gate(gate: DeliveryGate, account_id: UUID, error: MetaError) -> datetime | None:
    """Meta's refusal into the breakers: no answer or 5xx count toward opening them; a
    throttling answer opens them until Meta's time (returned); any other answer shows the
    path to Meta works."""
    if counts_as_failure(error):
        await gate.failed(account_id, error)
        return None
    if error.error_class == ErrorClass.THROTTLED:
        return await gate.throttled(account_id, error)
    await gate.succeeded(account_id)
    return None


async def announce_previous(
    publish: PublishStatus, request: DmRequested, intent: DmSend, park_unknown: ParkUnknown
) -> None:
    """A request whose intent it may not take (a redelivery, a replay) never calls Meta: a
    sent one re-announces `sent`; one left `sending` by a crash is parked `unknown`; any
    other was announced when it happened."""
    log.info(
        "duplicate request: not sending again",
        lead_id=str(request.payload.lead_id),
        state=intent.state,
    )
    outcome = previous_outcome(intent.state)
    if outcome == Previous.ANNOUNCE_SENT:
        await publish(
            status_of(request, DmStatus.SENT, provider_message_id=intent.provider_message_id)
        )
    elif outcome == Previous.PARK_UNKNOWN:
        await park_unknown(INTERRUPTED)
