"""Kafka entrypoints: dm.requested.instagram (faststream) and dm.retry.instagram (the
delayed-retry consumer, shared.messaging.delayed_retry_consumer) -> batch.send_batch /
sending.send_dm."""

from __future__ import annotations

from datetime import datetime

from faststream.kafka import KafkaBroker

from services.instagram_sender.batch import decoder, jobs_of, send_batch
from services.instagram_sender.sending import SenderDeps, send_dm
from shared.contracts.events import DmRequested
from shared.contracts.topics import DM_REQUESTED_INSTAGRAM
from shared.messaging.batches import Park, records_of
from shared.messaging.broker import Message, subscribe
from shared.messaging.delayed_retries import DeliveryContext
from shared.messaging.delayed_retry_consumer import Handle, Record

GROUP = "autodm-instagram-sender"
RETRY_GROUP = "autodm-instagram-sender-retry"
BATCH_SIZE = 100


def register_handlers(broker: KafkaBroker, deps: SenderDeps, park: Park) -> None:
    @subscribe(
        broker,
        DM_REQUESTED_INSTAGRAM,
        group=GROUP,
        # What a poll returned, sent concurrently across accounts (one after the other
        # within one: records are keyed by account), one offset commit (batch.py).
        batch_size=BATCH_SIZE,
        decoder=decoder(park),
        title="instagram-sender",
        description="Sends Instagram DMs and private replies through the Graph API",
    )
    async def on_dm_requested(requests: list[DmRequested], msg: Message) -> None:
        # A deferral here is always a new record on the retry topic: these offsets commit.
        await send_batch(deps, await jobs_of(records_of(msg), park=None), park)


def retry_handler(deps: SenderDeps) -> Handle:
    async def handle(record: Record) -> datetime | None:
        request = DmRequested.model_validate_json(record.value or b"")
        return await send_dm(deps, request, DeliveryContext.from_record(record, held=True))

    return handle
