"""Create the registry's topics on the broker, idempotently, and retire the topics the
registry dropped (shared.contracts.topics is the truth).

A retired topic still on the broker (an upgraded cluster) is deleted only when that loses
nothing: every partition is empty (never written, or expired), or every consumer group
that ever committed on it has committed to its end. One holding records nobody read (e.g.
`accounts.events`, produced and never consumed) is kept and reported, with its record
count, until the operator deletes it with `--delete-retired` (after reading them if they
matter). Deleting a topic cannot be undone, so the default never guesses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.contracts.topics import RETIRED, TOPICS, TopicSpec

TOPIC_ALREADY_EXISTS = 36
GROUP_PREFIX = "autodm-"

Offsets = Mapping[TopicPartition, int]


@dataclass(frozen=True)
class ProvisionResult:
    created: list[str]
    existing: list[str]
    # Retired topics deleted, and the ones kept with why (records nobody read).
    deleted: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)


async def provision_topics(
    bootstrap: str,
    specs: tuple[TopicSpec, ...] = TOPICS,
    retired: Mapping[str, str] = RETIRED,
    *,
    delete_retired: bool = False,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> ProvisionResult:
    """`replication_factor`/`min_insync_replicas` come from the settings (3/2 on a cluster):
    with acks=all a write then survives one broker's death and is refused, not half-made,
    when only one replica is left."""
    if min_insync_replicas > replication_factor:
        raise ValueError("min.insync.replicas cannot exceed the replication factor")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="autodm-provisioner")
    await admin.start()
    try:
        present = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in present]
        created = await _create(admin, missing, replication_factor, min_insync_replicas)
        leftover = sorted(name for name in retired if name in present)
        deleted, kept = await _retire(admin, bootstrap, leftover, force=delete_retired)
        return ProvisionResult(
            created=created,
            existing=sorted(present & {s.name for s in specs}),
            deleted=deleted,
            kept=kept,
        )
    finally:
        await admin.close()


async def _create(
    admin: AIOKafkaAdminClient, wanted: list[TopicSpec], replicas: int, min_insync: int
) -> list[str]:
    if not wanted:
        return []
    response = await admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=replicas,
                topic_configs=s.config | {"min.insync.replicas": str(min_insync)},
            )
            for s in wanted
        ]
    )
    # create_topics does not raise per topic: read the codes (36 = already exists,
    # e.g. another provisioner won the race).
    created: list[str] = []
    for name, code, *rest in response.topic_errors:
        if code not in (0, TOPIC_ALREADY_EXISTS):
            raise RuntimeError(f"creating topic {name} failed: code {code} {rest}")
        if code == 0:
            created.append(name)
    return created


def unread_records(topic: str, start: Offsets, end: Offsets, commits: Mapping[str, Offsets]) -> int:
    """How many of the topic's records no group that reads it has committed past; all of
    them when no group ever committed on it (nobody read them)."""
    partitions = [tp for tp in end if tp.topic == topic]
    readers = [c for c in commits.values() if any(tp.topic == topic for tp in c)]
    unread = 0
    for tp in partitions:
        first = start.get(tp, 0)
        read_up_to = min((c.get(tp, first) for c in readers), default=first)
        unread += max(0, end[tp] - max(first, read_up_to))
    return unread


async def _retire(
    admin: AIOKafkaAdminClient, bootstrap: str, topics: list[str], *, force: bool
) -> tuple[list[str], dict[str, str]]:
    if not topics:
        return [], {}
    start, end = await _offsets(admin, bootstrap, topics)
    commits = await _commits(admin)
    doomed: list[str] = []
    kept: dict[str, str] = {}
    for topic in topics:
        unread = unread_records(topic, start, end, commits)
        if unread and not force:
            kept[topic] = (
                f"retired, but {unread} record(s) nobody read: read them if they matter, then "
                "`autodm topics provision --delete-retired`"
            )
        else:
            doomed.append(topic)
    if doomed:
        await admin.delete_topics(doomed)
    return doomed, kept


async def _offsets(
    admin: AIOKafkaAdminClient, bootstrap: str, topics: list[str]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    described = await admin.describe_topics(topics)
    partitions = [
        TopicPartition(str(t["topic"]), int(p["partition"]))
        for t in described
        for p in t["partitions"]
    ]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="autodm-provisioner")
    await consumer.start()
    try:
        start = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return dict(start), dict(end)


async def _commits(admin: AIOKafkaAdminClient) -> dict[str, dict[TopicPartition, int]]:
    """Every AutoDM group's committed offsets (live or not: a stopped group's commits
    still say how far it read)."""
    listed = await admin.list_consumer_groups()
    commits: dict[str, dict[TopicPartition, int]] = {}
    for group in sorted(str(g[0]) for g in listed if str(g[0]).startswith(GROUP_PREFIX)):
        committed = await admin.list_consumer_group_offsets(group)
        commits[group] = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
    return commits
