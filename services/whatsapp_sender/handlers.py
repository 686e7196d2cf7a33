"""Kafka entrypoints: dm.requested.whatsapp -> sending.send_whatsapp; webhooks.whatsapp ->
statuses.handle_webhook."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from services.whatsapp_sender.sending import SenderDeps, send_whatsapp
from services.whatsapp_sender.statuses import Request, handle_webhook
from shared.contracts.events import DmRequested, WhatsAppWebhookReceived
from shared.contracts.topics import DM_REQUESTED_WHATSAPP, WEBHOOKS_WHATSAPP
from shared.messaging.broker import subscribe


def register_handlers(broker: KafkaBroker, deps: SenderDeps, request_again: Request) -> None:
    @subscribe(
        broker,
        DM_REQUESTED_WHATSAPP,
        group="autodm-whatsapp-sender",
        # Keyed by account: one number's DMs in order (the limits are per number).
        max_workers=4,
        title="whatsapp-sender",
        description="WhatsApp DMs: Cloud API text in the window, templates, wa.me links",
    )
    async def on_dm_requested(request: DmRequested) -> None:
        await send_whatsapp(deps, request)

    @subscribe(
        broker,
        WEBHOOKS_WHATSAPP,
        group="autodm-webhooks-whatsapp",
        max_workers=4,
        title="webhooks-whatsapp",
        description="WhatsApp statuses (by wamid) and inbound messages (window, replied)",
    )
    async def on_whatsapp_webhook(event: WhatsAppWebhookReceived) -> None:
        await handle_webhook(deps.uow, deps.publish, request_again, event)
