"""Create the registry's topics on the broker, idempotently (shared.contracts.topics is the
truth)."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.contracts.topics import TOPICS, TopicSpec

TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class ProvisionResult:
    created: list[str]
    existing: list[str]


async def provision_topics(
    bootstrap: str, specs: tuple[TopicSpec, ...] = TOPICS
) -> ProvisionResult:
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
                        replication_factor=1,
                        topic_configs=s.config,
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
