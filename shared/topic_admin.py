"""Create the registry's topics on the broker, idempotently (shared.topics is the truth)."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.topics import TOPICS, TopicSpec

TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class ProvisionResult:
    created: list[str]
    existing: list[str]


async def provision_topics(
    bootstrap: str,
    specs: tuple[TopicSpec, ...] = TOPICS,
    *,
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
        wanted = [s for s in specs if s.name not in present]
        created: list[str] = []
        if wanted:
            response = await admin.create_topics(
                [
                    NewTopic(
                        s.name,
                        num_partitions=s.partitions,
                        replication_factor=replication_factor,
                        topic_configs=s.config | {"min.insync.replicas": str(min_insync_replicas)},
                    )
                    for s in wanted
                ]
            )
            # create_topics does not raise per topic: read the codes (36 = already exists,
            # e.g. another provisioner won the race).
            for name, code, *rest in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"creating topic {name} failed: code {code} {rest}")
                if code == 0:
                    created.append(name)
        return ProvisionResult(created=created, existing=sorted(present & {s.name for s in specs}))
    finally:
        await admin.close()
