"""Kafka entrypoints: webhooks.received -> resolver (the account, then the Instagram item
handled in place by inbound.handle_webhooks, WhatsApp's published on webhooks.whatsapp);
webhooks.instagram records (written by earlier versions) -> inbound.handle_webhooks."""

from __future__ import annotations

from functools import partial

from faststream.kafka import KafkaBroker

from services.webhook_ingest.inbound import handle_webhooks
from services.webhook_ingest.resolver import resolve_and_publish
from shared.contracts.events import InstagramWebhookReceived, WebhookReceived
from shared.contracts.topics import WEBHOOKS_INSTAGRAM, WEBHOOKS_RECEIVED
from shared.messaging.batches import BatchWork, Park, records_of
from shared.messaging.broker import Message, subscribe
from shared.messaging.unit_of_work import UnitsOfWork

BATCH_SIZE = 200


def register_handlers(
    broker: KafkaBroker,
    uow: UnitsOfWork,
    park: Park,
) -> None:
    # A unit of work wakes the relay after its commit if the batch published.
    handle = BatchWork(InstagramWebhookReceived, uow, handle_webhooks, park)
    resolve = BatchWork(WebhookReceived, uow, partial(resolve_and_publish, broker), park)

    @subscribe(
        broker,
        WEBHOOKS_RECEIVED,
        group="autodm-webhooks-received",
        batch_size=BATCH_SIZE,
        decoder=resolve.decoder,
        title="webhooks-received",
        description="Accepted webhook items -> their account -> handled (Instagram)"
        " or webhooks.whatsapp",
    )
    async def on_webhook_received(events: list[WebhookReceived], msg: Message) -> None:
        await resolve.run(events, records_of(msg))

    @subscribe(
        broker,
        WEBHOOKS_INSTAGRAM,
        group="autodm-webhooks-instagram",
        # One transaction and one offset commit per poll (shared.messaging.batches): every sent DM
        # comes back at least once (Meta's echo), so this topic is as busy as dm.status.
        batch_size=BATCH_SIZE,
        decoder=handle.decoder,
        title="webhooks-instagram",
        description="Maps Instagram webhook items to contacts, DM statuses and re-routes",
    )
    async def on_instagram_webhook(events: list[InstagramWebhookReceived], msg: Message) -> None:
        await handle.run(events, records_of(msg))
