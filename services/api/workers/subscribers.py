"""Kafka entrypoints of the API service: parse the contract, call the service layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from faststream.kafka import KafkaBroker

from services.api.service_layer.lead_routing import (
    RouterConfig,
    open_contact,
    route_lead,
    route_leads,
)
from services.api.workers.comment_to_dm import lead_from_comment
from services.api.workers.lead_created import AnyLeadCreated, LeadCreatedWork
from services.api.workers.lead_ingress import lead_from_submission, producer_of
from services.api.workers.status_projection import project_statuses
from shared.contracts.events import (
    DmRetryRequested,
    DmStatusChanged,
    InstagramCommentReceived,
    LeadContactOpened,
    LeadCreated,
    LeadSubmitted,
    utcnow,
)
from shared.contracts.topics import (
    DM_STATUS,
    INSTAGRAM_COMMENTS,
    LEADS_CONTACTS,
    LEADS_CREATED,
    LEADS_RETRIES,
    LEADS_SUBMITTED,
)
from shared.messaging.batches import BatchWork, Park, records_of
from shared.messaging.broker import Message, subscribe
from shared.messaging.unit_of_work import UnitOfWork, UnitsOfWork

BATCH_SIZE = 200


def register_handlers(
    broker: KafkaBroker,
    uow: UnitsOfWork,
    config: RouterConfig,
    park: Park,
    ingress_producers: Mapping[str, Sequence[str]],
) -> None:
    async def route_all(work: UnitOfWork, events: Sequence[AnyLeadCreated]) -> None:
        await route_leads(work, events, config, utcnow())

    # Each unit of work wakes the relay after its commit if it published (dm.requested...).
    route = LeadCreatedWork(LeadCreated, uow, route_all, park)
    project = BatchWork(DmStatusChanged, uow, project_statuses, park)

    @subscribe(
        broker,
        LEADS_CREATED,
        group="autodm-router",
        # One transaction and one offset commit per poll, not per lead (shared.messaging.batches).
        batch_size=BATCH_SIZE,
        decoder=route.decoder,
        title="router",
        description="Routes each new lead to what the platforms allow",
    )
    async def on_lead_created(events: list[AnyLeadCreated], msg: Message) -> None:
        await route.run(events, records_of(msg))

    @subscribe(
        broker,
        LEADS_RETRIES,
        group="autodm-router-retries",
        title="router-retries",
        description="Routes a retried DM again, under its new attempt number",
    )
    async def on_retry_requested(event: DmRetryRequested) -> None:
        async with uow() as work:
            await route_lead(work, event, config, utcnow())

    @subscribe(
        broker,
        LEADS_CONTACTS,
        group="autodm-router-contacts",
        title="router-contacts",
        description="Re-routes a waiting DM once its lead opened the ig.me link or wrote",
    )
    async def on_contact_opened(event: LeadContactOpened) -> None:
        async with uow() as work:
            await open_contact(work, event, config, utcnow())

    @subscribe(
        broker,
        DM_STATUS,
        group="autodm-dm-status-projection",
        # Two to four status events per DM: one transaction and one commit per poll.
        batch_size=BATCH_SIZE,
        decoder=project.decoder,
        title="dm-status-projection",
        description="Projects DM status events onto leads, forward-only",
    )
    async def on_dm_status(events: list[DmStatusChanged], msg: Message) -> None:
        await project.run(events, records_of(msg))

    @subscribe(
        broker,
        INSTAGRAM_COMMENTS,
        group="autodm-comment-leads",
        title="comment-leads",
        description="Comment to DM: a comment the creator's trigger counts becomes a lead",
    )
    async def on_comment(event: InstagramCommentReceived) -> None:
        async with uow() as work:
            await lead_from_comment(work, event, utcnow())

    @subscribe(
        broker,
        LEADS_SUBMITTED,
        group="autodm-lead-intake",
        title="lead-intake",
        description="The lead ingress: another service's lead.submitted becomes a lead, "
        "as POST /api/leads makes one (docs/EVENTS.md)",
    )
    async def on_lead_submitted(event: LeadSubmitted, msg: Message) -> None:
        producer = producer_of(msg.headers)
        async with uow() as work:
            await lead_from_submission(work, event, producer, ingress_producers)
