"""Dead-letter topic: a record a consumer cannot handle is parked, never dropped, and the
partition moves on.

The middleware wraps every handler. A record that fails to decode or validate, or whose
handler raises after its own retries, is copied to `dlq` byte for byte with headers that
say where it came from and why; the original offset is then committed. If parking itself
fails (broker down), the error propagates and the record is redelivered, so nothing is lost.
A dependency outage (PostgreSQL or Kafka unreachable, shared.platform.outages) is not the record's
fault: the handler is retried until it is back, for up to `AUTODM_OUTAGE_RETRY_S`, and only
an outage outlasting that is parked (reason `outage`, replayable once it is over).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from faststream import BaseMiddleware
from faststream.exceptions import IgnoredException
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from shared.contracts import topics
from shared.platform.logs import get_logger
from shared.platform.metrics import DEAD_LETTERS
from shared.platform.outages import is_outage, ride_out
from shared.platform.tracing import continued, headers_traceparent

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord
    from faststream._internal.context.repository import ContextRepo
    from faststream.message import StreamMessage

log = get_logger(__name__)

Publish = Callable[..., Awaitable[Any]]

H_TOPIC = "x-original-topic"
H_PARTITION = "x-original-partition"
H_OFFSET = "x-original-offset"
H_CONSUMER = "x-consumer"
H_REASON = "x-error-reason"
H_ERROR_CLASS = "x-error-class"
H_DETAIL = "x-error-detail"
H_ATTEMPTS = "x-attempts"
H_FAILED_AT = "x-failed-at"
H_ERROR_CODE = "x-error-code"
# Where the record was read when it failed, if that is not its origin (a retry topic).
H_LAST_TOPIC = "x-last-topic"
H_LAST_OFFSET = "x-last-offset"


class PoisonMessage(Exception):
    """A record that is well-formed JSON but can never be handled (e.g. unknown lead).
    `reason` is the DLQ's `x-error-reason`; subclasses name a more precise one."""

    reason = "poison"


class DeliveryFailed(Exception):
    """A send that will not be retried any more (retries exhausted, token expired, request
    invalid): parked for an operator, who can replay it once the cause is fixed."""

    def __init__(
        self, reason: str, error_class: str, code: int | None, attempts: int, detail: str
    ) -> None:
        super().__init__(detail)
        self.reason, self.error_class, self.code = reason, error_class, code
        self.attempts = attempts


def classify(exc: BaseException) -> tuple[str, str]:
    """(reason, error class) for the DLQ headers: why a human should look at it."""
    if isinstance(exc, DeliveryFailed):
        return exc.reason, exc.error_class
    if isinstance(exc, ValidationError):
        return "invalid_contract", type(exc).__name__
    if isinstance(exc, ValueError | UnicodeDecodeError):
        return "undecodable", type(exc).__name__
    if isinstance(exc, PoisonMessage):
        return exc.reason, type(exc).__name__
    if is_outage(exc):
        return "outage", type(exc).__name__
    return "handler_error", type(exc).__name__


def dlq_headers(
    record: ConsumerRecord[Any, Any], consumer: str, exc: BaseException
) -> dict[str, str]:
    reason, error_class = classify(exc)
    original = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
    failed = exc if isinstance(exc, DeliveryFailed) else None
    return {
        # A deferred record carries its origin already (shared.messaging.delayed_retries): keep it.
        H_TOPIC: record.topic,
        H_PARTITION: str(record.partition),
        H_OFFSET: str(record.offset),
        **original,
        H_LAST_TOPIC: record.topic,
        H_LAST_OFFSET: f"{record.partition}/{record.offset}",
        H_CONSUMER: consumer,
        H_REASON: reason,
        H_ERROR_CLASS: error_class,
        H_ERROR_CODE: str(failed.code) if failed and failed.code is not None else "",
        H_DETAIL: str(exc)[:1000],
        H_ATTEMPTS: str(failed.attempts) if failed else original.get(H_ATTEMPTS, "1"),
        H_FAILED_AT: datetime.now(UTC).isoformat(),
    }


class DeadLetterPolicy:
    """Broker middleware factory; `publish` is bound once the broker exists."""

    def __init__(self, consumer: str, outage_limit_s: float = 60.0) -> None:
        self.consumer = consumer
        self.outage_limit_s = outage_limit_s
        self.publish: Publish | None = None

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> _DeadLetterMiddleware:
        return _DeadLetterMiddleware(msg, context=context, policy=self)

    async def park(self, record: ConsumerRecord[Any, Any], exc: BaseException) -> None:
        if self.publish is None:
            raise RuntimeError("DeadLetterPolicy used before a broker was bound") from exc
        headers = dlq_headers(record, self.consumer, exc)
        # In the record's own trace (a batch's span is another): the dead letter's
        # traceparent is then the one a replay links back to.
        with continued(
            f"{record.topic} park",
            headers_traceparent(record.headers),
            kind=SpanKind.PRODUCER,
            attributes={"autodm.dlq.reason": headers[H_REASON]},
        ):
            await self.publish(record.value or b"", topics.DLQ, key=record.key, headers=headers)
        DEAD_LETTERS.labels(topic=record.topic, reason=headers[H_REASON]).inc()
        log.warning(
            "record parked in dlq",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=headers[H_REASON],
            detail=headers[H_DETAIL][:200],
        )


class _DeadLetterMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: ContextRepo, policy: DeadLetterPolicy) -> None:
        super().__init__(msg, context=context)
        self.policy = policy

    async def consume_scope(
        self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        try:
            return await ride_out(
                lambda: call_next(msg),
                limit_s=self.policy.outage_limit_s,
                what=self.policy.consumer,
            )
        except IgnoredException:
            raise  # faststream's own ack/nack control flow
        except Exception as exc:
            # A batch subscriber (shared.messaging.batches) parks its own records one by one; what
            # reaches here from one failed as a whole, so every record of it is parked.
            raw = msg.raw_message
            for record in raw if isinstance(raw, tuple) else (raw,):
                await self._park(record, exc)
            return None

    async def _park(self, record: ConsumerRecord[Any, Any], exc: Exception) -> None:
        if record.topic == topics.DLQ:
            # Parking a dead letter in the DLQ would loop forever: log it and move on
            # (the record stays in the topic, readable by `autodm dlq`/kcat).
            log.error("a dlq consumer failed on a record; skipped", detail=str(exc)[:200])
            return
        await self.policy.park(record, exc)
