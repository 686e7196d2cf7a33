"""faststream publishers declared for what a process sends (shared/contracts/channels.py),
so its AsyncAPI document shows the topics it produces beside those it consumes."""

from __future__ import annotations

from typing import Any, Union

from faststream.kafka import KafkaBroker

from shared.contracts.channels import PUBLISHED_BY, TOPIC_EVENTS
from shared.contracts.topics import BY_NAME


def declare_publishers(broker: KafkaBroker, service: str) -> None:
    for topic in PUBLISHED_BY.get(service, ()):
        broker.publisher(
            topic,
            title=f"{topic}:publish",
            description=BY_NAME[topic].purpose,
            schema=_schema(TOPIC_EVENTS[topic]),
        )


def _schema(models: tuple[type, ...]) -> Any:
    if not models:
        return bytes  # the DLQ: the parked record as it was
    if len(models) == 1:
        return models[0]
    return Union[models]  # noqa: UP007  (a runtime union of the tuple's classes)
