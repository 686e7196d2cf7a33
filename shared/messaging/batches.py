"""Batch consumption: the records a poll returned are handled in one transaction and
committed to Kafka once, instead of one transaction and one offset commit per record.

On this machine a transaction's BEGIN/COMMIT and an offset commit cost more than the
work of a small handler (docs/BENCHMARKS.md), so the busiest consumers take what is there.
Correctness is the per-record path's: a malformed record is parked alone; if the batch's
transaction fails, every record is retried in its own transaction and only the one that
still fails is parked (the DLQ then holds exactly the records a per-record consumer would
have parked). A dependency outage (shared.platform.outages) is raised instead, for the dead-letter
middleware to retry the whole batch once it is over. Handlers stay idempotent by event id,
so a batch redelivered after a crash between the database commit and the offset commit
changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

from aiokafka import ConsumerRecord
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.trace import Span

from shared.contracts.events import Unattributed
from shared.platform.logs import bind_correlation_id, get_logger
from shared.platform.outages import is_outage
from shared.platform.tracing import batch_records, headers_traceparent, in_span
from shared.platform.tracing import enabled as tracing_enabled

if TYPE_CHECKING:  # unit_of_work -> outbox -> broker -> this module
    from shared.messaging.unit_of_work import UnitOfWork, UnitsOfWork

log = get_logger(__name__)

E = TypeVar("E", bound=Unattributed)
Park = Callable[[ConsumerRecord[Any, Any], BaseException], Awaitable[None]]


@dataclass(frozen=True)
class BatchWork(Generic[E]):
    """`apply` does the work of some events in the unit of work it is given (one
    transaction: the batch's, or one event's on the fallback path; the unit wakes the relay
    after its commit if the work published events).

    Wiring (services' handlers): `decoder` is the subscriber's decoder, so the handler is
    typed `list[Event]` (documented in AsyncAPI as the topic's event) and receives only
    the records that parsed; it then calls `run(events, records_of(msg))`."""

    model: type[E]
    uow: UnitsOfWork
    apply: Callable[[UnitOfWork, Sequence[E]], Awaitable[object]]
    park: Park

    async def decoder(self, msg: KafkaMessage, _: Any = None) -> list[E]:
        """faststream decoder: the events of the batch; a malformed record is parked here."""
        events = []
        for record in records_of(msg):
            try:
                events.append(self._parse(record))
            except ValueError as exc:  # pydantic's ValidationError included
                await self.park(record, exc)
        return events

    async def run(self, events: Sequence[E], records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        if not events:
            return
        with batch_records(f"{records[0].topic} record", _trace_keys(records)) as spans:
            await self._run(events, records, spans)

    async def _run(
        self,
        events: Sequence[E],
        records: Sequence[ConsumerRecord[Any, Any]],
        spans: Mapping[str, Span],
    ) -> None:
        try:
            async with self.uow() as work:
                await self.apply(work, events)
            return
        except Exception as exc:
            if is_outage(exc):
                raise  # not the records' fault: the batch is retried as a whole
            log.warning(
                "batch failed; handling its records one by one", size=len(events), exc_info=True
            )
        by_id = self._records_by_event_id(records)
        for event in events:
            with in_span(spans.get(event.correlation_id)):
                await self._one(event, by_id[event.id])

    def _parse(self, record: ConsumerRecord[Any, Any]) -> E:
        return self.model.model_validate_json(record.value or b"")

    def _records_by_event_id(
        self, records: Sequence[ConsumerRecord[Any, Any]]
    ) -> dict[UUID, ConsumerRecord[Any, Any]]:
        # Only on the (rare) fallback path: which record carried which event, for the DLQ.
        by_id = {}
        for record in records:
            try:
                by_id[self._parse(record).id] = record
            except ValueError:
                continue  # parked by the decoder already
        return by_id

    async def _one(self, event: E, record: ConsumerRecord[Any, Any]) -> None:
        bind_correlation_id(event.correlation_id)
        try:
            async with self.uow() as work:
                await self.apply(work, [event])
        except Exception as exc:
            if is_outage(exc):
                raise  # the batch is retried as a whole (idempotent by event id)
            await self.park(record, exc)


def _trace_keys(records: Sequence[ConsumerRecord[Any, Any]]) -> list[tuple[str, str | None]]:
    """(correlation id, traceparent) of each record, for its span (none when tracing is off)."""
    if not tracing_enabled():
        return []
    keys = []
    for record in records:
        headers = dict(record.headers or ())
        correlation = headers.get("correlation_id", b"").decode(errors="replace")
        keys.append((correlation, headers_traceparent(record.headers)))
    return keys


def records_of(msg: KafkaMessage) -> tuple[ConsumerRecord[Any, Any], ...]:
    """The records of a batch subscriber's message (a tuple), or of a single one."""
    raw = msg.raw_message
    return raw if isinstance(raw, tuple) else (raw,)
