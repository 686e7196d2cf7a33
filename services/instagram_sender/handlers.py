"""Kafka entrypoint: dm.requested.instagram (new requests, and deferred ones re-requested
when due by shared.delivery.deferrals) -> batch.send_batch."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from services.instagram_sender.batch import decoder, paired, send_batch
from services.instagram_sender.sending import SenderDeps
from shared.contracts.events import DmRequested
from shared.contracts.topics import DM_REQUESTED_INSTAGRAM
from shared.messaging.batches import Park, records_of
from shared.messaging.broker import Message, subscribe

GROUP = "autodm-instagram-sender"
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
        # A deferral is a row in deferred_sends (shared.delivery.deferrals): these offsets
        # commit, and the poller re-requests the DM here when it is due.
        await send_batch(deps, await paired(requests, records_of(msg)), park)
