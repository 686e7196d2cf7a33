"""One way to build a Kafka broker for any AutoDM service, and to publish events on it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Annotated, Any

from faststream import AckPolicy, BaseMiddleware

# The class behind faststream.Context() and its annotations (faststream.kafka.annotations
# subclasses nothing public for this).
from faststream._internal.context import Context
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY

from shared.batches import Park
from shared.dead_letters import DeadLetterPolicy
from shared.events import Envelope, Unattributed
from shared.logs import bind_correlation_id, get_logger
from shared.settings import Settings

# Commit after the handler ran; an error escaping the dead-letter middleware (the DLQ itself
# unreachable) seeks back and redelivers instead of committing past a record.
ACK_POLICY = AckPolicy.NACK_ON_ERROR

Handler = Callable[..., Awaitable[None]]

log = get_logger(__name__)


class _CorrelationMiddleware(BaseMiddleware):
    async def on_receive(self) -> None:
        if isinstance(self.msg, tuple):  # a batch subscriber's records: each its own id
            for record in self.msg:
                correlation = _correlation_of(record)
                log.debug("record received", topic=record.topic, correlation_id=correlation)
            return
        correlation = _correlation_of(self.msg)
        if correlation:
            bind_correlation_id(correlation)
        # DEBUG: free when filtered out (structlog's level-filtering logger), and the trail
        # of one correlation id through every service when an operator turns it on.
        log.debug("record received", topic=getattr(self.msg, "topic", None))


def _correlation_of(record: Any) -> str | None:
    correlation = dict(getattr(record, "headers", None) or ()).get("correlation_id")
    return correlation.decode(errors="replace") if correlation else None


@cache
def _prometheus() -> KafkaPrometheusMiddleware:
    # One per process: the metrics register once in the default registry (tests run several
    # services in one process); Prometheus' `job` label tells the services apart.
    return KafkaPrometheusMiddleware(registry=REGISTRY, app_name="autodm")


def bootstrap_servers(settings: Settings) -> list[str]:
    """AUTODM_KAFKA_BOOTSTRAP's comma-separated brokers, one per item."""
    return [host.strip() for host in settings.kafka_bootstrap.split(",") if host.strip()]


def make_broker(settings: Settings, service: str) -> KafkaBroker:
    dead_letters = DeadLetterPolicy(consumer=service, outage_limit_s=settings.outage_retry_s)
    broker = KafkaBroker(
        # A list: faststream hands one string to aiokafka as a single host, so a cluster's
        # "h1:9092,h2:9092,h3:9092" would not resolve (aiokafka's own clients split it).
        bootstrap_servers(settings),
        client_id=f"autodm-{service}",
        # Idempotent producer: a retried send never writes the record twice (acks=all).
        enable_idempotence=True,
        linger_ms=2,
        # faststream logs every record at its log_level; per-record lines at INFO cost CPU
        # on the hot path and drown the service's own structured logs.
        log_level=logging.DEBUG,
        middlewares=[
            _prometheus(),
            _CorrelationMiddleware,
            dead_letters,
        ],
    )
    dead_letters.publish = broker.publish
    return broker


def dead_letter_park(broker: KafkaBroker, consumer: str) -> Park:
    """Park one record in the DLQ from code that handles records itself (batch subscribers,
    the delayed-retry consumer), with the same headers as the middleware."""
    policy = DeadLetterPolicy(consumer=consumer)
    policy.publish = broker.publish
    return policy.park


def subscribe(
    broker: KafkaBroker,
    topic: str,
    *,
    group: str,
    title: str,
    description: str,
    max_workers: int | None = None,
    batch_size: int | None = None,
    decoder: Callable[..., Awaitable[Any]] | None = None,
) -> Callable[[Handler], Any]:
    """Every AutoDM subscriber: its own consumer group, committed after the handler
    (ACK_POLICY), from the earliest offset so a new group misses nothing already published.
    `max_workers` runs partitions in parallel, still in order within one (records are keyed
    so that what must stay ordered shares a partition). `batch_size` hands the handler up to
    that many records at once (`KafkaMessage.raw_message` is then a tuple; see
    shared.batches), committed together after it returns."""
    options: dict[str, Any] = {"max_workers": max_workers} if max_workers else {}
    if batch_size:
        # getmany: what the last fetch holds, up to batch_size; waits only when it is empty.
        options |= {"batch": True, "max_records": batch_size, "batch_timeout_ms": 100}
    if decoder:
        options["decoder"] = decoder
    subscriber: Callable[[Handler], Any] = broker.subscriber(
        topic,
        group_id=group,
        ack_policy=ACK_POLICY,
        auto_offset_reset="earliest",
        title=title,
        description=description,
        **options,
    )
    return subscriber


class _InTask(Context):
    """faststream's `Context`, resolved in the consumer's own task. fast_depends runs a
    custom field whose `use` is sync through anyio.to_thread: every handler taking
    faststream's `KafkaMessage` paid a hand-off to a worker thread and back per call (a
    batch, or a record), which showed in the services' profiles (docs/BENCHMARKS.md)."""

    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        # Async on purpose (see the class docstring); the lookup itself never blocks.
        return super().use(**kwargs)


# What a handler declares to get faststream's message (`raw_message`: the record, or a
# batch subscriber's tuple of records).
Message = Annotated[KafkaMessage, _InTask("message")]


def event_headers(event: Unattributed) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "event-type": event.type,
        "event-version": str(event.version),
    }
    if isinstance(event, Envelope):  # a webhook accepted without the database has no tenant
        headers["creator-id"] = str(event.creator_id)
    return headers


async def publish_event(broker: KafkaBroker, topic: str, key: str, event: Unattributed) -> Any:
    return await broker.publish(
        event.model_dump_json().encode(),
        topic,
        key=key.encode(),
        headers=event_headers(event),
        correlation_id=event.correlation_id,
    )
