"""Batch subscribers wait for records in the poll itself, not in a sleep after it.

faststream 0.7's batch subscriber calls `getmany(timeout_ms=batch_timeout_ms)` and, when it
comes back empty, sleeps another `batch_timeout_ms`: a record that arrives during that
sleep waits for it (up to 100 ms per batch hop with AutoDM's setting, twice between an
accepted lead and the provider), and an idle subscriber wakes twice per period. aiokafka's
`getmany` already returns as soon as a fetch brings records, so the wait belongs there:
here a poll that waited its full timeout goes straight into the next one. A poll that
came back empty early (no assignment during a rebalance, a closing consumer) still sleeps
out the rest of the period, so the loop never spins.
"""

from __future__ import annotations

import time
from itertools import chain
from typing import TYPE_CHECKING

import anyio
from faststream.kafka.subscriber.usecase import BatchSubscriber

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, ConsumerRecord

linger_s = 0.0  # set by the composition root (shared.messaging.broker.make_broker)


async def get_batch(
    self: BatchSubscriber, consumer: AIOKafkaConsumer
) -> tuple[ConsumerRecord, ...]:
    period_s = self.batch_timeout_ms / 1000
    started = time.monotonic()
    messages = await consumer.getmany(
        timeout_ms=self.batch_timeout_ms, max_records=self.max_records
    )
    if messages:
        records = tuple(chain(*messages.values()))
        room = (self.max_records or len(records)) - len(records)
        if linger_s > 0 and room > 0:
            await anyio.sleep(linger_s)
            more = await consumer.getmany(timeout_ms=0, max_records=room)
            records += tuple(chain(*more.values()))  # later offsets: each partition in order
        return records
    rest = period_s - (time.monotonic() - started)
    if rest > period_s / 2:  # back early with nothing: not a real wait, don't spin
        await anyio.sleep(rest)
    return ()


def install() -> None:
    """Every batch subscriber of this process polls with `get_batch` (idempotent)."""
    BatchSubscriber.get_msg = get_batch  # type: ignore[method-assign]
