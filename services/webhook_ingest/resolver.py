"""The consumer side of accepting a webhook: `webhooks.received` -> the account it names
-> the Instagram item handled here (inbound.handle_webhooks), `whatsapp.webhook` published
on webhooks.whatsapp (its consumer is the WhatsApp sender).

This is where the database is needed, so a PostgreSQL outage stops this consumer, not the
HTTP endpoint: the batch is retried (shared.messaging.batches, shared.platform.outages) and Meta's
notifications wait on the topic. Items of accounts AutoDM does not have are dropped, as
the POST used to. Republishing is harmless: the resolved events carry ids derived from
Meta's, which their consumers dedupe.

Instagram items are handled in this batch's transaction rather than republished to
webhooks.instagram and consumed again: that second hop cost a Kafka record, a consumer
pass, a transaction and an offset commit per item, and every DM comes back as an echo
(issue #20). Nothing is lost by it: the item's idempotency claim is the same (consumer
`webhooks-instagram`, the item's event id), the records are keyed by the account as
before (one account's items stay in order), and a failing item is parked alone by the
batch fallback. webhooks.instagram is still consumed, for records an earlier version wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from faststream.kafka import KafkaBroker

from services.webhook_ingest import ingest, whatsapp_routes
from services.webhook_ingest.inbound import handle_webhooks
from shared.contracts.events import WebhookReceived
from shared.contracts.topics import WEBHOOKS_WHATSAPP
from shared.messaging.broker import publish_event
from shared.messaging.unit_of_work import UnitOfWork


async def resolve_and_publish(
    broker: KafkaBroker, uow: UnitOfWork, received: Sequence[WebhookReceived]
) -> int:
    """Handle the batch's Instagram items, publish its WhatsApp ones (in their order: one
    key, one partition); how many were handled or published."""
    session = uow.session
    instagram = [r for r in received if r.payload.provider == "instagram"]
    whatsapp = [r for r in received if r.payload.provider == "whatsapp"]
    handled = 0
    if instagram:
        handled = await handle_webhooks(uow, await ingest.resolve(session, instagram))
    publishes = []
    if whatsapp:
        for wa in await whatsapp_routes.resolve(session, whatsapp):
            key = wa.payload.phone_number_id
            publishes.append(publish_event(broker, WEBHOOKS_WHATSAPP, key, wa))
    # aiokafka keeps the order of sends to one partition, whatever gather's order.
    await asyncio.gather(*publishes)
    return handled + len(publishes)
