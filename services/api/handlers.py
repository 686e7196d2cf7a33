"""Kafka entrypoints of the API service: parse the contract, call the service layer."""

from __future__ import annotations

from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.projection import project_status
from services.api.router import RouterConfig, open_contact, route_lead
from shared.broker import subscribe
from shared.events import (
    DmRetryRequested,
    DmStatusChanged,
    LeadContactOpened,
    LeadCreated,
    utcnow,
)
from shared.outbox import OutboxRelay
from shared.topics import DM_STATUS, LEADS_CONTACTS, LEADS_CREATED, LEADS_RETRIES


def register_handlers(
    broker: KafkaBroker,
    sessions: async_sessionmaker[AsyncSession],
    relay: OutboxRelay,
    config: RouterConfig,
) -> None:
    @subscribe(
        broker,
        LEADS_CREATED,
        group="autodm-router",
        # Parallel across partitions, in order within one (keyed by creator / lead): a
        # sequential subscriber waits for one offset commit per record (bench: ~450/s).
        max_workers=6,
        title="router",
        description="Routes each new lead to what the platforms allow",
    )
    async def on_lead_created(event: LeadCreated) -> None:
        async with sessions.begin() as session:
            await route_lead(session, event, config, utcnow())
        relay.wake.set()

    @subscribe(
        broker,
        LEADS_RETRIES,
        group="autodm-router-retries",
        title="router-retries",
        description="Routes a retried DM again, under its new attempt number",
    )
    async def on_retry_requested(event: DmRetryRequested) -> None:
        async with sessions.begin() as session:
            await route_lead(session, event, config, utcnow())
        relay.wake.set()

    @subscribe(
        broker,
        LEADS_CONTACTS,
        group="autodm-router-contacts",
        title="router-contacts",
        description="Re-routes a waiting DM once its lead opened the ig.me link or wrote",
    )
    async def on_contact_opened(event: LeadContactOpened) -> None:
        async with sessions.begin() as session:
            await open_contact(session, event, config, utcnow())
        relay.wake.set()

    @subscribe(
        broker,
        DM_STATUS,
        group="autodm-dm-status-projection",
        # Parallel across partitions, in order within one (keyed by creator / lead): a
        # sequential subscriber waits for one offset commit per record (bench: ~450/s).
        max_workers=6,
        title="dm-status-projection",
        description="Projects DM status events onto leads, forward-only",
    )
    async def on_dm_status(event: DmStatusChanged) -> None:
        async with sessions.begin() as session:
            await project_status(session, event)
