"""The failover drills (docs/RELIABILITY.md, "Failover drills"), in this order on one
cluster: a broker, two brokers, the soak (service kills), then the PostgreSQL primary
(last: after the promotion there is no standby left). Each asserts 0 lost and 0
duplicated at the sandbox and every lead terminal or waiting with a reason, and reports
how long DMs stopped; figures go to .local/drills-report.json."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections import Counter

from aiokafka.admin import AIOKafkaAdminClient

from shared.contracts.topics import DM_REQUESTED_INSTAGRAM, DM_REQUESTED_WHATSAPP, LEADS_CREATED
from tests.drills.conftest import World, cluster
from tests.drills.drill import Outcome, run_drill
from tests.drills.soak import SoakPlan, run_soak

RATE = float(os.environ.get("DRILLS_RATE", "10"))
REQUEST_TOPICS = [LEADS_CREATED, DM_REQUESTED_INSTAGRAM, DM_REQUESTED_WHATSAPP]


async def leaders(bootstrap: str) -> Counter[int]:
    """Partitions of the request topics each broker leads."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="autodm-drills")
    await admin.start()
    try:
        topics = await admin.describe_topics(REQUEST_TOPICS)
    finally:
        await admin.close()
    return Counter(p["leader"] for t in topics for p in t["partitions"] if p["leader"] >= 0)


async def in_thread(*args: str) -> str:
    return await asyncio.to_thread(cluster, *args)


def assert_clean(outcome: Outcome) -> None:
    outcome.record()
    assert not outcome.lost, f"{len(outcome.lost)} lost, e.g. {outcome.lost[:3]}"
    assert not outcome.duplicated, f"{len(outcome.duplicated)} duplicated"
    assert outcome.accepted > 0 and "gave_up" not in outcome.refusals


async def test_drill_1_kill_the_broker_leading_most_request_partitions(world: World) -> None:
    bootstrap = world.stack.env["AUTODM_KAFKA_BOOTSTRAP"]
    victim = (await leaders(bootstrap)).most_common(1)[0][0]

    async def fault() -> None:
        await in_thread("kill-broker", str(victim))
        await asyncio.sleep(60)  # a minute on two brokers (ISR 2 = min.insync: writes go on)
        await in_thread("start-broker", str(victim))

    outcome = await run_drill(
        world, "1 broker killed", f"kill -9 broker {victim} (leader)", fault, rate_per_s=RATE
    )
    assert_clean(outcome)


async def test_drill_2_kill_a_second_broker_below_min_insync(world: World) -> None:
    bootstrap = world.stack.env["AUTODM_KAFKA_BOOTSTRAP"]
    first, second = [b for b, _ in (await leaders(bootstrap)).most_common(2)]

    async def fault() -> None:
        await in_thread("kill-broker", str(first))
        await asyncio.sleep(15)
        await in_thread("kill-broker", str(second))
        await asyncio.sleep(40)  # one broker: below min.insync.replicas, no quorum either
        await in_thread("start-broker", str(second))
        await in_thread("start-broker", str(first))

    outcome = await run_drill(
        world, "2 brokers killed", f"kill -9 brokers {first}, {second}", fault, rate_per_s=RATE
    )
    assert_clean(outcome)


async def test_drill_4_soak_with_service_kills(world: World) -> None:
    outcome = await run_soak(world, SoakPlan.from_env())
    assert_clean(outcome)
    for service, slope in outcome.extra["rss_slope_mb_per_min"].items():
        assert slope < outcome.extra["rss_slope_limit"], f"{service} RSS grows {slope} MB/min"
    assert not outcome.extra["unbounded"], outcome.extra["unbounded"]


async def test_drill_3_kill_the_postgresql_primary_and_promote_the_standby(world: World) -> None:
    async def fault() -> None:
        await in_thread("kill-primary")
        await asyncio.sleep(10)  # what a failure detector takes to decide
        await in_thread("promote")

    outcome = await run_drill(
        world, "PostgreSQL failover", "kill -9 primary, promote standby", fault, rate_per_s=RATE
    )
    role = await asyncio.to_thread(
        subprocess.run,
        ["/bin/bash", "deploy/local/cluster.sh", "pg-role", "b"],
        capture_output=True,
        text=True,
    )
    assert role.stdout.strip() == "primary"
    assert_clean(outcome)
