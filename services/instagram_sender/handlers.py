"""Kafka entrypoints: dm.requested.instagram (faststream) and dm.retry.instagram (the
delayed-retry consumer, shared.retry_consumer) -> sending.send_dm."""

from __future__ import annotations

from datetime import datetime

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.instagram_sender.sending import SenderDeps, send_dm
from shared.broker import subscribe
from shared.events import DmRequested
from shared.retries import DeliveryContext
from shared.retry_consumer import Handle, Record
from shared.topics import DM_REQUESTED_INSTAGRAM

GROUP = "autodm-instagram-sender"
RETRY_GROUP = "autodm-instagram-sender-retry"


def register_handlers(broker: KafkaBroker, deps: SenderDeps) -> None:
    @subscribe(
        broker,
        DM_REQUESTED_INSTAGRAM,
        group=GROUP,
        # Parallel across partitions, in order within one: records are keyed by account,
        # so one account's DMs never race each other.
        max_workers=8,
        title="instagram-sender",
        description="Sends Instagram DMs and private replies through the Graph API",
    )
    async def on_dm_requested(request: DmRequested, msg: KafkaMessage) -> None:
        record = msg.raw_message
        assert not isinstance(record, tuple)  # one record per call (not a batch subscriber)
        # A deferral here is always a new record on the retry topic: this offset commits.
        await send_dm(deps, request, DeliveryContext.from_record(record, held=False))


def retry_handler(deps: SenderDeps) -> Handle:
    async def handle(record: Record) -> datetime | None:
        request = DmRequested.model_validate_json(record.value or b"")
        return await send_dm(deps, request, DeliveryContext.from_record(record, held=True))

    return handle
