"""Delayed retries through `dm.retry.<provider>`: a deferred record is re-published there
with its failed-attempt count and not-before time in headers; the offset it came from is
committed and its partition moves on (Uber's retry topics / Spring's @RetryableTopic).

The first deferral stamps where the record came from (x-original-topic/partition/offset),
so the DLQ entry after the last attempt names the request topic, not the retry topic.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.messaging.dead_letters import H_ATTEMPTS, H_OFFSET, H_PARTITION, H_TOPIC
from shared.platform.metrics import DELIVERIES_DEFERRED

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

H_NOT_BEFORE = "x-not-before"
H_DEFERRED_FOR = "x-deferred-for"

Publish = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class DeliveryContext:
    """Where a request record was read, and how many delivery attempts already failed."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    attempts: int
    # True when read by the retry consumer, which can keep holding the record in memory.
    held: bool

    @classmethod
    def from_record(cls, record: ConsumerRecord[Any, Any], *, held: bool) -> DeliveryContext:
        headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            headers=headers,
            attempts=int(headers.get(H_ATTEMPTS, "0") or 0),
            held=held,
        )


def not_before(headers: dict[str, str]) -> datetime:
    value = headers.get(H_NOT_BEFORE)
    if not value:
        return datetime.now(UTC)
    return datetime.fromtimestamp(float(value), UTC)


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with jitter (half fixed, half random), capped."""
    ceiling = min(max_s, base_s * 2.0 ** max(0, attempts - 1))
    jitter: float = random.uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


class RetryPublisher:
    def __init__(self, publish: Publish, topic: str, provider: str) -> None:
        self._publish = publish
        self.topic = topic
        self._provider = provider

    async def defer(self, ctx: DeliveryContext, due: datetime, reason: str, attempts: int) -> None:
        headers = {
            H_TOPIC: ctx.topic,
            H_PARTITION: str(ctx.partition),
            H_OFFSET: str(ctx.offset),
            **ctx.headers,  # an earlier deferral's origin wins
            H_ATTEMPTS: str(attempts),
            H_NOT_BEFORE: f"{due.timestamp():.3f}",
            H_DEFERRED_FOR: reason,
        }
        await self._publish(
            ctx.value,
            self.topic,
            key=ctx.key,
            headers=headers,
            correlation_id=ctx.headers.get("correlation_id"),
        )
        DELIVERIES_DEFERRED.labels(provider=self._provider, reason=reason).inc()
