"""DLQ operations: index the `dlq` topic, list and inspect entries, replay them once.

The API process indexes every `dlq` record into `dead_letters` (keyed by its DLQ
partition and offset, so a redelivered record is indexed once). A replay marks the entry
replayed and writes the record to the outbox in the same transaction: replaying the same
entry twice publishes once, and a crash never loses an accepted replay.

A replayed record goes back to its original topic with its original key, without the DLQ
headers and with `x-replay-of: dlq/<partition>/<offset>`. A replayed send request starts
a new attempt (so the forward-only projection takes its statuses) with an event id derived
from the DLQ coordinates; the sender's send intent still allows one DM per (lead, route).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from faststream.exceptions import NackMessage
from faststream.kafka import KafkaBroker
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.events import DmRequested, utcnow
from shared.contracts.topics import BY_NAME, DLQ
from shared.db.models import DeadLetter, Lead, OutboxRecord
from shared.messaging import dead_letters as dl
from shared.messaging.broker import Message, subscribe
from shared.messaging.delayed_retries import H_DEFERRED_FOR, H_NOT_BEFORE
from shared.messaging.outbox import mark_outbox_rows
from shared.messaging.unit_of_work import UnitsOfWork
from shared.platform.logs import get_logger
from shared.platform.tracing import replayed_trace_headers

log = get_logger(__name__)

H_REPLAY_OF = "x-replay-of"
# Headers that describe the failure, not the record: a replay starts clean.
FAILURE_HEADERS = frozenset(
    {
        dl.H_TOPIC,
        dl.H_PARTITION,
        dl.H_OFFSET,
        dl.H_CONSUMER,
        dl.H_REASON,
        dl.H_ERROR_CLASS,
        dl.H_ERROR_CODE,
        dl.H_DETAIL,
        dl.H_ATTEMPTS,
        dl.H_FAILED_AT,
        dl.H_LAST_TOPIC,
        dl.H_LAST_OFFSET,
        H_NOT_BEFORE,
        H_DEFERRED_FOR,
        H_REPLAY_OF,
        "correlation_id",
    }
)
INDEXER_GROUP = "autodm-dlq-indexer"
# A replay goes back to where the record was consumed; never into the DLQ itself.
REPLAYABLE_TOPICS = sorted(set(BY_NAME) - {DLQ})


# --- indexing -----------------------------------------------------------------------------


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def _payload_ids(value: bytes) -> tuple[UUID | None, UUID | None]:
    """(account id, lead id) of an envelope, when it names them (best effort)."""
    try:
        payload = json.loads(value).get("payload", {})
    except (ValueError, AttributeError):
        return None, None
    if not isinstance(payload, dict):
        return None, None
    return _uuid(payload.get("account_id")), _uuid(payload.get("lead_id"))


def entry_values(
    partition: int, offset: int, key: bytes | None, value: bytes, headers: dict[str, str]
) -> dict[str, Any]:
    account_id, lead_id = _payload_ids(value)
    failed_at = headers.get(dl.H_FAILED_AT)
    return {
        "dlq_partition": partition,
        "dlq_offset": offset,
        "original_topic": headers.get(dl.H_TOPIC, "unknown"),
        "original_partition": _int(headers.get(dl.H_PARTITION)),
        "original_offset": _int(headers.get(dl.H_OFFSET)),
        "key": key.decode(errors="replace")[:128] if key else None,
        "reason": headers.get(dl.H_REASON, "unknown")[:64],
        "error_class": headers.get(dl.H_ERROR_CLASS),
        "error_code": _int(headers.get(dl.H_ERROR_CODE)),
        "detail": headers.get(dl.H_DETAIL),
        "attempts": _int(headers.get(dl.H_ATTEMPTS)) or 1,
        "account_id": account_id,
        "lead_id": lead_id,
        "headers": headers,
        "payload": value,
        "failed_at": datetime.fromisoformat(failed_at) if failed_at else utcnow(),
    }


async def index_entry(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(DeadLetter).values(**values).on_conflict_do_nothing())


def register_dlq_indexer(broker: KafkaBroker, sessions: async_sessionmaker[AsyncSession]) -> None:
    @subscribe(
        broker,
        DLQ,
        group=INDEXER_GROUP,
        title="dlq-indexer",
        description="Indexes dead letters for the admin tools (list, inspect, replay)",
    )
    async def on_dead_letter(body: Any, msg: Message) -> None:
        # `body` is whatever faststream made of it; the entry keeps the exact bytes.
        record = msg.raw_message
        assert not isinstance(record, tuple)  # one record per call (not a batch subscriber)
        headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
        values = entry_values(
            record.partition, record.offset, record.key, record.value or b"", headers
        )
        try:
            async with sessions.begin() as session:
                await index_entry(session, values)
        except SQLAlchemyError as exc:
            # Never park a dead letter in the DLQ: wait and read it again.
            log.warning("dlq indexing failed; retrying", error=repr(exc))
            await asyncio.sleep(1.0)
            raise NackMessage() from exc


# --- listing and inspecting ---------------------------------------------------------------


@dataclass(frozen=True)
class DlqFilter:
    reason: str | None = None
    account_id: UUID | None = None
    older_than: datetime | None = None
    newer_than: datetime | None = None
    include_replayed: bool = False
    replayable_only: bool = False


def _filtered(query: Any, f: DlqFilter) -> Any:
    if f.reason:
        query = query.where(DeadLetter.reason == f.reason)
    if f.account_id:
        query = query.where(DeadLetter.account_id == f.account_id)
    if f.older_than:
        query = query.where(DeadLetter.failed_at < f.older_than)
    if f.newer_than:
        query = query.where(DeadLetter.failed_at >= f.newer_than)
    if not f.include_replayed:
        query = query.where(DeadLetter.replayed_at.is_(None))
    if f.replayable_only:
        query = query.where(DeadLetter.original_topic.in_(REPLAYABLE_TOPICS))
    return query


async def list_entries(
    session: AsyncSession, f: DlqFilter, limit: int = 100, offset: int = 0
) -> Sequence[DeadLetter]:
    query = _filtered(select(DeadLetter), f).order_by(
        DeadLetter.failed_at, DeadLetter.dlq_partition, DeadLetter.dlq_offset
    )
    return (await session.scalars(query.limit(limit).offset(offset))).all()


async def get_entry(session: AsyncSession, partition: int, offset: int) -> DeadLetter | None:
    return await session.get(DeadLetter, (partition, offset))


# --- replay -------------------------------------------------------------------------------


class NotReplayable(Exception):
    """The entry's original topic is not one AutoDM consumes (e.g. malformed headers)."""


async def replay_entry(
    session: AsyncSession, partition: int, offset: int, replayed_by: str
) -> bool:
    """Replay one entry; False if it was replayed before (or does not exist)."""
    entry = await session.scalar(
        update(DeadLetter)
        .where(
            DeadLetter.dlq_partition == partition,
            DeadLetter.dlq_offset == offset,
            DeadLetter.replayed_at.is_(None),
        )
        .values(replayed_at=utcnow(), replayed_by=replayed_by[:128])
        .returning(DeadLetter)
    )
    if entry is None:
        return False
    if entry.original_topic not in REPLAYABLE_TOPICS:
        raise NotReplayable(f"unknown original topic {entry.original_topic!r}")
    payload = await _replayed_payload(session, entry)
    headers = {k: v for k, v in entry.headers.items() if k not in FAILURE_HEADERS}
    headers[H_REPLAY_OF] = f"dlq/{partition}/{offset}"
    replayed_trace_headers(headers)
    mark_outbox_rows(session)  # the unit of work wakes the relay after the commit
    session.add(
        OutboxRecord(
            topic=entry.original_topic,
            key=entry.key or "",
            payload=payload,
            headers=headers,
            correlation_id=entry.headers.get("correlation_id") or f"replay-{partition}-{offset}",
        )
    )
    return True


async def _replayed_payload(session: AsyncSession, entry: DeadLetter) -> bytes:
    """A send request comes back as a new attempt; anything else byte for byte."""
    try:
        request = DmRequested.model_validate_json(entry.payload)
    except ValueError:
        return entry.payload
    lead = await session.get(Lead, request.payload.lead_id)
    attempt = max(request.payload.attempt, lead.dm_attempt if lead else 0) + 1
    replayed = request.model_copy(
        update={
            "id": uuid5(NAMESPACE_URL, f"autodm:dlq/{entry.dlq_partition}/{entry.dlq_offset}"),
            "occurred_at": utcnow(),
            "payload": request.payload.model_copy(update={"attempt": attempt}),
        }
    )
    return replayed.model_dump_json().encode()


async def replay_matching(
    uow: UnitsOfWork,
    f: DlqFilter,
    replayed_by: str,
    batch_size: int = 200,
) -> tuple[int, int]:
    """Replay every unreplayed entry matching `f`, a batch per transaction.

    Returns (replayed, total matching at the start); see `replay_batches` for progress.
    """
    last = (0, 0)
    async for step in replay_batches(uow, f, replayed_by, batch_size):
        last = step
    return last


async def count_entries(session: AsyncSession, f: DlqFilter) -> int:
    query = _filtered(select(func.count()).select_from(DeadLetter), f)
    return int(await session.scalar(query) or 0)


async def replay_batches(
    uow: UnitsOfWork,
    f: DlqFilter,
    replayed_by: str,
    batch_size: int = 200,
) -> AsyncIterator[tuple[int, int]]:
    """Yield (replayed so far, total) after each committed batch (the CLI's progress bar)."""
    pending = DlqFilter(f.reason, f.account_id, f.older_than, f.newer_than, replayable_only=True)
    async with uow() as work:
        total = await count_entries(work.session, pending)
    replayed = 0
    while True:
        async with uow() as work:
            entries = await list_entries(work.session, pending, limit=batch_size)
            if not entries:
                return
            for entry in entries:
                if await replay_entry(
                    work.session, entry.dlq_partition, entry.dlq_offset, replayed_by
                ):
                    replayed += 1
        yield replayed, total
