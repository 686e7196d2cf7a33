"""Kafka entrypoint: a dm.requested.instagram record -> sending.send_dm."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from services.instagram_sender.sending import SenderDeps, send_dm
from shared.broker import ACK_POLICY
from shared.events import DmRequested
from shared.topics import DM_REQUESTED_INSTAGRAM


def register_handlers(broker: KafkaBroker, deps: SenderDeps) -> None:
    @broker.subscriber(
        DM_REQUESTED_INSTAGRAM,
        group_id="autodm-instagram-sender",
        ack_policy=ACK_POLICY,
        auto_offset_reset="earliest",
        # Parallel across partitions, in order within one: records are keyed by account,
        # so one account's DMs never race each other.
        max_workers=8,
        title="instagram-sender",
        description="Sends Instagram DMs and private replies through the Graph API",
    )
    async def on_dm_requested(request: DmRequested) -> None:
        await send_dm(deps, request)
