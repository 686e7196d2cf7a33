"""The wa_link route: build the click-to-chat link the frontend shows as a button."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.contracts.events import DmRequested, DmStatusChanged, ProviderError
from shared.contracts.lifecycle import DmStatus, Route
from shared.delivery.reasons import INVALID_PHONE
from shared.delivery.status_events import status_of
from shared.providers.whatsapp_links import InvalidPhoneNumber, wa_me_link

PublishStatus = Callable[[DmStatusChanged], Awaitable[None]]


@dataclass(frozen=True)
class WhatsAppDeps:
    publish: PublishStatus
    max_link_text_chars: int = 500


async def handle_request(deps: WhatsAppDeps, request: DmRequested) -> None:
    """Deterministic: a redelivery publishes the same link again, which the projection
    absorbs (same status, same attempt), so no dedupe table is needed here."""
    p = request.payload
    if p.route != Route.WA_LINK:
        await deps.publish(
            status_of(
                request,
                DmStatus.SKIPPED,
                reason=f"route {p.route} is not available on WhatsApp yet",
            )
        )
        return
    try:
        link = wa_me_link(p.recipient.phone or "", p.text, deps.max_link_text_chars)
    except InvalidPhoneNumber as exc:
        await deps.publish(
            status_of(
                request,
                DmStatus.FAILED,
                reason=INVALID_PHONE,
                error=ProviderError(message=str(exc), error_class="invalid"),
            )
        )
        return
    await deps.publish(
        status_of(request, DmStatus.LINK_READY, link=link, reason="tap to message on WhatsApp")
    )
