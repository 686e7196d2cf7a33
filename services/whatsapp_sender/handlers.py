"""Kafka entrypoint: a dm.requested.whatsapp record -> links.handle_request."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from services.whatsapp_sender.links import WhatsAppDeps, handle_request
from shared.broker import ACK_POLICY
from shared.events import DmRequested
from shared.topics import DM_REQUESTED_WHATSAPP


def register_handlers(broker: KafkaBroker, deps: WhatsAppDeps) -> None:
    @broker.subscriber(
        DM_REQUESTED_WHATSAPP,
        group_id="autodm-whatsapp-sender",
        ack_policy=ACK_POLICY,
        auto_offset_reset="earliest",
        max_workers=4,
        title="whatsapp-sender",
        description="WhatsApp routes: wa.me click-to-chat links",
    )
    async def on_dm_requested(request: DmRequested) -> None:
        await handle_request(deps, request)
