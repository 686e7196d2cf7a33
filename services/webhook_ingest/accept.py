"""Accepting a signed webhook with Kafka alone: its items go to `webhooks.received`
(acks=all, idempotent producer) and the POST is answered 200; nothing here needs
PostgreSQL, so a database outage never makes Meta see an error (Meta unsubscribes an app
after an hour of failed Instagram messaging deliveries, platform facts §3d).

When Kafka does not take the items in time the answer is 503 with Retry-After (Meta
retries; nothing was accepted), counted in autodm_webhooks_refused_total, which the
AutoDMWebhooksRefused alert watches. Items published before the failure are harmless:
their event ids derive from Meta's ids, so the retry's copies are deduped downstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import HTTPException, status
from faststream.kafka import KafkaBroker

from shared.contracts.events import WebhookReceived
from shared.contracts.topics import WEBHOOKS_RECEIVED
from shared.messaging.broker import publish_event
from shared.platform.logs import get_logger
from shared.platform.metrics import WEBHOOKS_REFUSED
from shared.platform.outages import is_outage

log = get_logger(__name__)


@dataclass(frozen=True)
class Acceptance:
    broker: KafkaBroker
    timeout_s: float
    retry_after_s: int


async def accept(acceptance: Acceptance, provider: str, events: Sequence[WebhookReceived]) -> int:
    """Publish every item or raise 503; returns how many were accepted."""
    if not events:
        return 0
    publishes = (
        publish_event(acceptance.broker, WEBHOOKS_RECEIVED, e.payload.external_account_id, e)
        for e in events
    )
    try:
        await asyncio.wait_for(asyncio.gather(*publishes), acceptance.timeout_s)
    except Exception as exc:
        # TimeoutError is an OSError: an outage too. Anything else is a bug: a 500.
        if not is_outage(exc):
            raise
        WEBHOOKS_REFUSED.labels(provider=provider).inc()
        log.warning("webhook refused: Kafka unavailable", provider=provider, error=repr(exc)[:200])
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "cannot accept the notification now; retry later",
            headers={"Retry-After": str(acceptance.retry_after_s)},
        ) from exc
    return len(events)
