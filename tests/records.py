"""Kafka records and events for tests that drive a consumer's code without a broker."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiokafka import ConsumerRecord

from shared.contracts.events import InstagramWebhookPayload, InstagramWebhookReceived
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


def instagram_echo(
    creator: UUID, account: UUID, ig_id: str, igsid: str, mid: str, text: str
) -> InstagramWebhookReceived:
    """Meta's echo of a message the account `ig_id` sent to `igsid`, as webhook_ingest
    hands it on."""
    item = {
        "sender": {"id": ig_id},
        "recipient": {"id": igsid},
        "timestamp": 1_764_300_000_000,
        "message": {"mid": mid, "text": text, "is_echo": True},
    }
    return InstagramWebhookReceived(
        correlation_id=f"echo-{mid}",
        creator_id=creator,
        payload=InstagramWebhookPayload(
            account_id=account,
            ig_account_id=ig_id,
            kind="messaging",
            field="message",
            item=item,
            entry_time=1_764_300_000,
        ),
    )
