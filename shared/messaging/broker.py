"""One way to build a Kafka broker for any AutoDM service, and to publish events on it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import cache, partial
from typing import Annotated, Any

from faststream import AckPolicy, BaseMiddleware

# The class behind faststream.Context() and its annotations (faststream.kafka.annotations
# subclasses nothing public for this).
from faststream._internal.context import Context
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaAckableMessage, KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import AckStatus, StreamMessage
from prometheus_client import REGISTRY

from shared.contracts.events import Envelope, Unattributed
from shared.messaging import batch_polling
from shared.messaging.batches import Park
from shared.messaging.dead_letters import DeadLetterPolicy
from shared.messaging.offset_commits import gathered
from shared.messaging.publishers import declare_publishers
from shared.platform.logs import bind_correlation_id, get_logger
from shared.platform.settings import Settings
from shared.platform.tracing import enabled as tracing_enabled
from shared.platform.tracing import in_record, kafka_middlewares, with_exemplars

# Commit after the handler ran; an error escaping the dead-letter middleware (the DLQ itself
# unreachable) seeks back and redelivers instead of committing past a record.
ACK_POLICY = AckPolicy.NACK_ON_ERROR

Handler = Callable[..., Awaitable[None]]
# How long a batch subscriber's poll waits for records when there are none (it returns as
# soon as records come: this only sets how often an idle subscriber wakes).
BATCH_POLL_MS = 1500
# How long the broker holds a consumer's fetch when there is nothing new (aiokafka: 500);
# it answers as soon as a record comes, so a longer hold costs no latency, only fewer idle
# fetches (the broker's idle CPU: 0.076 -> 0.039 CPU-s/s with 1500 -> 4000 here).
FETCH_MAX_WAIT_MS = 4000

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


class _GatheredCommitMiddleware(BaseMiddleware):
    """Once the handler returned (handled or parked), its records' offsets join the
    consumer's gathered commit (shared.messaging.offset_commits) instead of faststream
    committing them at once; an error that escapes leaves them to faststream's nack."""

    def __init__(self, msg: Any, /, *, context: Any, interval_s: float) -> None:
        super().__init__(msg, context=context)
        self.interval_s = interval_s

    async def consume_scope(
        self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        result = await call_next(msg)
        if isinstance(msg, KafkaAckableMessage) and msg.committed is None:
            raw = msg.raw_message
            gathered(msg.consumer, self.interval_s).add(raw if isinstance(raw, tuple) else (raw,))
            msg.committed = AckStatus.ACKED  # faststream's ack then commits nothing itself
        return result


def _correlation_of(record: Any) -> str | None:
    correlation = dict(getattr(record, "headers", None) or ()).get("correlation_id")
    return correlation.decode(errors="replace") if correlation else None


@cache
def _prometheus() -> KafkaPrometheusMiddleware:
    # One per process: the metrics register once in the default registry (tests run several
    # services in one process); Prometheus' `job` label tells the services apart.
    return with_exemplars(KafkaPrometheusMiddleware(registry=REGISTRY, app_name="autodm"))


def bootstrap_servers(settings: Settings) -> list[str]:
    """AUTODM_KAFKA_BOOTSTRAP's comma-separated brokers, one per item."""
    return [host.strip() for host in settings.kafka_bootstrap.split(",") if host.strip()]


def make_broker(settings: Settings, service: str) -> KafkaBroker:
    batch_polling.linger_s = settings.kafka_batch_linger_ms / 1000
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
            # Outermost: a record's process span covers its handling and parking.
            *kafka_middlewares(),
            _prometheus(),
            _CorrelationMiddleware,
            *_commit_middlewares(settings),
            dead_letters,
        ],
    )
    dead_letters.publish = broker.publish
    declare_publishers(broker, service)  # the send side of its AsyncAPI document
    return broker


def _commit_middlewares(settings: Settings) -> list[Any]:
    interval_ms = settings.kafka_commit_interval_ms
    if interval_ms <= 0:
        return []  # faststream commits after each handler
    return [partial(_GatheredCommitMiddleware, interval_s=interval_ms / 1000)]


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
    shared.messaging.batches), committed together after it returns."""
    options: dict[str, Any] = {"max_workers": max_workers} if max_workers else {}
    if batch_size:
        # getmany: what the last fetch holds, up to batch_size; waits only when it is empty,
        # and returns as soon as records come (shared.messaging.batch_polling): the period only sets
        # how often an idle subscriber wakes.
        batch_polling.install()
        options |= {"batch": True, "max_records": batch_size, "batch_timeout_ms": BATCH_POLL_MS}
    if decoder:
        options["decoder"] = decoder
    subscriber: Callable[[Handler], Any] = broker.subscriber(
        topic,
        group_id=group,
        # The broker answers a fetch as soon as a record comes (fetch_min_bytes=1); this is
        # only how long an empty one is held, i.e. how often an idle consumer asks again.
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
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
    if tracing_enabled():  # from a batch handler: in the trace of the record it came from
        with in_record(event.correlation_id):
            return await _publish_event(broker, topic, key, event)
    return await _publish_event(broker, topic, key, event)


async def _publish_event(broker: KafkaBroker, topic: str, key: str, event: Unattributed) -> Any:
    return await broker.publish(
        event.model_dump_json().encode(),
        topic,
        key=key.encode(),
        headers=event_headers(event),
        correlation_id=event.correlation_id,
    )
