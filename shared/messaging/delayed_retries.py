"""A request's delivery attempts, carried in its record's headers: a deferred request
(shared.delivery.deferrals) is re-requested with its failed-attempt count, its not-before
time and why it waited; the offset it came from is committed and its partition moves on.

The first deferral stamps where the request was first read (x-original-topic/partition/
offset), so the DLQ entry after the last attempt names that record, not a re-request.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.messaging.dead_letters import H_ATTEMPTS, H_OFFSET, H_PARTITION, H_TOPIC

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

H_NOT_BEFORE = "x-not-before"
H_DEFERRED_FOR = "x-deferred-for"


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

    @property
    def deferred(self) -> bool:
        """A re-request of a deferred DM (its deferral row is the sender's to take)."""
        return H_DEFERRED_FOR in self.headers

    @classmethod
    def from_record(cls, record: ConsumerRecord[Any, Any]) -> DeliveryContext:
        headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            headers=headers,
            attempts=int(headers.get(H_ATTEMPTS, "0") or 0),
        )


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with jitter (half fixed, half random), capped."""
    ceiling = min(max_s, base_s * 2.0 ** max(0, attempts - 1))
    jitter: float = random.uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


def deferral_headers(
    ctx: DeliveryContext, due: datetime, reason: str, attempts: int
) -> dict[str, str]:
    """The headers a deferred request is re-requested with: its failed attempts, when it is
    due and why, and where it was first read (an earlier deferral's origin wins)."""
    return {
        H_TOPIC: ctx.topic,
        H_PARTITION: str(ctx.partition),
        H_OFFSET: str(ctx.offset),
        **ctx.headers,
        H_ATTEMPTS: str(attempts),
        H_NOT_BEFORE: f"{due.timestamp():.3f}",
        H_DEFERRED_FOR: reason,
    }
