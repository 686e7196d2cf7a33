"""Kafka records for tests that drive a consumer's code without a broker."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord

from shared.contracts.topics import DM_STATUS


def consumer_record(
    value: bytes,
    offset: int = 0,
    topic: str = DM_STATUS,
    headers: dict[str, str] | None = None,
) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(value),
        headers=[(k, v.encode()) for k, v in (headers or {}).items()],
    )
