"""Kafka entrypoint: a webhooks.instagram record -> inbound.handle_webhook."""

from __future__ import annotations

from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.webhook_ingest.inbound import handle_webhook
from shared.broker import subscribe
from shared.events import InstagramWebhookReceived
from shared.outbox import OutboxRelay
from shared.topics import WEBHOOKS_INSTAGRAM


def register_handlers(
    broker: KafkaBroker, sessions: async_sessionmaker[AsyncSession], relay: OutboxRelay
) -> None:
    @subscribe(
        broker,
        WEBHOOKS_INSTAGRAM,
        group="autodm-webhooks-instagram",
        # Keyed by account: one account's events in order, accounts in parallel.
        max_workers=4,
        title="webhooks-instagram",
        description="Maps Instagram webhook items to contacts, DM statuses and re-routes",
    )
    async def on_instagram_webhook(event: InstagramWebhookReceived) -> None:
        async with sessions.begin() as session:
            await handle_webhook(session, event)
        relay.wake.set()
