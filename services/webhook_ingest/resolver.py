"""The consumer side of accepting a webhook: `webhooks.received` -> the account it names
-> `instagram.webhook` on webhooks.instagram, `whatsapp.webhook` on webhooks.whatsapp.

This is where the database is needed, so a PostgreSQL outage stops this consumer, not the
HTTP endpoint: the batch is retried (shared.messaging.batches, shared.platform.outages) and Meta's
notifications wait on the topic. Items of accounts AutoDM does not have are dropped, as
the POST used to. Republishing is harmless: the resolved events carry ids derived from
Meta's, which their consumers dedupe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from faststream.kafka import KafkaBroker

from services.webhook_ingest import ingest, whatsapp_routes
from shared.contracts.events import WebhookReceived
from shared.contracts.topics import WEBHOOKS_INSTAGRAM, WEBHOOKS_WHATSAPP
from shared.messaging.broker import publish_event
from shared.messaging.unit_of_work import UnitOfWork


async def resolve_and_publish(
    broker: KafkaBroker, uow: UnitOfWork, received: Sequence[WebhookReceived]
) -> int:
    """Publish the resolved events of a batch (in its order: one key, one partition)."""
    session = uow.session
    instagram = [r for r in received if r.payload.provider == "instagram"]
    whatsapp = [r for r in received if r.payload.provider == "whatsapp"]
    publishes = []
    if instagram:
        for event in await ingest.resolve(session, instagram):
            key = str(event.payload.account_id)
            publishes.append(publish_event(broker, WEBHOOKS_INSTAGRAM, key, event))
    if whatsapp:
        for wa in await whatsapp_routes.resolve(session, whatsapp):
            key = wa.payload.phone_number_id
            publishes.append(publish_event(broker, WEBHOOKS_WHATSAPP, key, wa))
    # aiokafka keeps the order of sends to one partition, whatever gather's order.
    await asyncio.gather(*publishes)
    return len(publishes)
