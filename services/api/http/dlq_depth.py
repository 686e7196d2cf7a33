"""How many records sit in the dead-letter topic: end minus beginning offsets per partition.

A short-lived consumer without a group (it never joins or commits) per call: the admin
overview is rare, and nothing stays connected between calls.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from shared.contracts.topics import BY_NAME, DLQ
from shared.platform.logs import get_logger

log = get_logger(__name__)


class DlqSize:
    def __init__(self, bootstrap: str, timeout_s: float = 5.0) -> None:
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s

    async def count(self) -> int | None:
        """The DLQ's record count; None when Kafka can't tell us now (never a guess)."""
        partitions = [TopicPartition(DLQ, p) for p in range(BY_NAME[DLQ].partitions)]
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        try:
            async with asyncio.timeout(self._timeout_s):
                await consumer.start()
                first = await consumer.beginning_offsets(partitions)
                end = await consumer.end_offsets(partitions)
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("dlq size unavailable", error=str(exc))
            return None
        finally:
            await consumer.stop()
        return int(sum(end[tp] - first[tp] for tp in partitions))
