"""A data-deletion request's Kafka part: the records that may quote the person are removed
by truncating every topic's partitions up to where every consumer has read.

Kafka records can't be edited. Records are transport: once every consumer group has
committed past them, what they said is in PostgreSQL (where the deletion already reached)
and the records are only history. So a pending request waits until every running `autodm-*`
group has committed past the end offsets seen when it was picked up, then once more past
the end offsets seen at that moment (records produced while the first ones were handled,
e.g. a DM status or a dead letter of the deleted person's DM), and then deletes every
record before those offsets (DeleteRecords: the partition's start offset moves; nothing a
consumer still needs is touched). Only then is the request `completed`.

Other people's already-consumed records go too, a few days earlier than retention would
take them; the DLQ's records are also kept in PostgreSQL (dead_letters) for the admin.
docs/RELIABILITY.md (Privacy) explains the choice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.protocol.admin import DescribeGroupsRequest_v2
from aiokafka.protocol.api import Request
from sqlalchemy import select

from shared.contracts.events import utcnow
from shared.contracts.topics import TOPICS
from shared.db.models import DataDeletionRequest
from shared.messaging.unit_of_work import UnitsOfWork
from shared.platform.logs import get_logger

log = get_logger(__name__)

GROUP_PREFIX = "autodm-"
# Groups with members; an empty group's old commits say nothing about who still reads.
LIVE_STATES = frozenset({"Stable", "PreparingRebalance", "CompletingRebalance"})
PASSES = 2

Offsets = Mapping[TopicPartition, int]


def encode(offsets: Offsets) -> dict[str, int]:
    return {f"{tp.topic}:{tp.partition}": offset for tp, offset in offsets.items()}


def decode(stored: Mapping[str, Any]) -> dict[TopicPartition, int]:
    decoded = {}
    for key, offset in stored.items():
        topic, _, partition = key.rpartition(":")
        decoded[TopicPartition(topic, int(partition))] = int(offset)
    return decoded


def consumed(targets: Offsets, start: Offsets, commits: Mapping[str, Offsets]) -> bool:
    """Has every group reading a topic committed at least `targets` on its partitions?
    A group reads a topic when it committed on any of its partitions; a topic nobody
    reads is consumed by definition."""
    for tp, target in targets.items():
        if target <= start.get(tp, 0):
            continue  # nothing left before the target
        for offsets in commits.values():
            reads_topic = any(other.topic == tp.topic for other in offsets)
            if reads_topic and offsets.get(tp, -1) < target:
                return False
    return True


def truncation(targets: Offsets, start: Offsets) -> dict[TopicPartition, int]:
    """The partitions that still hold records before their target."""
    return {tp: target for tp, target in targets.items() if target > start.get(tp, 0)}


class TopicErasure:
    """webhook_ingest's background task completing pending data-deletion requests."""

    def __init__(self, bootstrap: str, uow: UnitsOfWork, interval_s: float) -> None:
        self._bootstrap = bootstrap
        self._uow = uow
        self._interval_s = interval_s

    async def run_forever(self) -> None:
        while True:
            try:
                await self._run_with_clients()
            except Exception:  # Kafka away: the requests stay pending, tried again later
                log.warning("topic erasure pass failed", exc_info=True)
                await asyncio.sleep(self._interval_s)

    async def _run_with_clients(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id="autodm-erasure")
        offsets = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, client_id="autodm-erasure")
        try:
            await admin.start()
            await offsets.start()
            while True:
                await self.tick(admin, offsets)
                await asyncio.sleep(self._interval_s)
        finally:
            await offsets.stop()
            await admin.close()

    async def tick(self, admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer) -> int:
        """Advance every pending request by what the topics allow; returns how many
        completed. Replicas skip each other's locked rows."""
        async with self._uow() as work:
            session = work.session
            pending = list(
                await session.scalars(
                    select(DataDeletionRequest)
                    .where(DataDeletionRequest.status == "pending")
                    .order_by(DataDeletionRequest.requested_at)
                    .with_for_update(skip_locked=True)
                )
            )
            if not pending:
                return 0
            partitions = [TopicPartition(s.name, p) for s in TOPICS for p in range(s.partitions)]
            start = await offsets.beginning_offsets(partitions)
            end = await offsets.end_offsets(partitions)
            commits = await _live_commits(admin)
            done = 0
            for request in pending:
                done += await _advance(admin, request, start, end, commits)
            return done


async def _advance(
    admin: AIOKafkaAdminClient,
    request: DataDeletionRequest,
    start: Offsets,
    end: Offsets,
    commits: Mapping[str, Offsets],
) -> int:
    if request.kafka_offsets is None or request.kafka_pass == 0:
        request.kafka_offsets, request.kafka_pass = encode(end), 1
        return 0
    targets = decode(request.kafka_offsets)
    if not consumed(targets, start, commits):
        return 0
    if request.kafka_pass < PASSES:
        request.kafka_offsets, request.kafka_pass = encode(end), request.kafka_pass + 1
        return 0
    cut = truncation(targets, start)
    if cut:
        await admin.delete_records({tp: RecordsToDelete(offset) for tp, offset in cut.items()})
    removed = sum(offset - start.get(tp, 0) for tp, offset in cut.items())
    request.summary = {**request.summary, "topic_records_truncated": removed}
    request.status, request.completed_at = "completed", utcnow()
    log.info("data deletion completed", code=request.confirmation_code[:4])
    return 1


async def _live_commits(admin: AIOKafkaAdminClient) -> dict[str, dict[TopicPartition, int]]:
    listed = await admin.list_consumer_groups()
    groups = sorted(str(g[0]) for g in listed if str(g[0]).startswith(GROUP_PREFIX))
    commits: dict[str, dict[TopicPartition, int]] = {}
    for group in await _live(admin, groups):
        committed = await admin.list_consumer_group_offsets(group)
        commits[group] = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
    return commits


class _DescribeGroups(Request[DescribeGroupsRequest_v2]):  # type: ignore[misc]
    """DescribeGroups at v2: aiokafka 0.14 parses the v3 answer with v2's schema (no
    `authorized_operations`) and fails on any group with members."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(
        self, request_struct_class: type[DescribeGroupsRequest_v2]
    ) -> DescribeGroupsRequest_v2:
        return request_struct_class(self._groups)


async def _live(admin: AIOKafkaAdminClient, groups: Iterable[str]) -> list[str]:
    live = []
    for group in groups:
        node = await admin.find_coordinator(group)
        # The admin client's own sender (private, but public describe is the broken one).
        response: Any = await admin._send_request(_DescribeGroups([group]), node)
        # (error_code, group_id, state, protocol_type, protocol, members)
        for described in response.groups:
            if str(described[2]) in LIVE_STATES:
                live.append(str(described[1]))
    return live
