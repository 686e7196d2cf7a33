"""Status events as every sender emits them: derived from the request, keyed by lead."""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaBroker

from shared.contracts.events import DmRequested, DmStatusChanged, DmStatusPayload, ProviderError
from shared.contracts.lifecycle import DmStatus
from shared.contracts.topics import DM_STATUS
from shared.messaging.broker import publish_event


def status_of(
    request: DmRequested,
    status: DmStatus,
    *,
    reason: str | None = None,
    error: ProviderError | None = None,
    **fields: Any,
) -> DmStatusChanged:
    p = request.payload
    return DmStatusChanged(
        correlation_id=request.correlation_id,
        creator_id=request.creator_id,
        payload=DmStatusPayload(
            lead_id=p.lead_id,
            status=status,
            attempt=p.attempt,
            route=p.route,
            provider=p.provider,
            reason=reason,
            error=error,
            **fields,
        ),
    )


async def publish_status(broker: KafkaBroker, event: DmStatusChanged) -> None:
    await publish_event(broker, DM_STATUS, str(event.payload.lead_id), event)
