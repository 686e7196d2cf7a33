"""The soak: leads at a steady rate for SOAK_MINUTES, every service SIGKILLed (and started
again) every SOAK_KILL_EVERY minutes, each service's resident memory sampled, and the
row counts and topic sizes compared per lead between the first and second half."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from demo import settings_from  # deploy/local
from sqlalchemy import text
from stack import Stack, process_specs  # deploy/local

from shared.contracts.topics import TOPICS
from shared.db.session import make_engine
from tests.drills.conftest import World
from tests.drills.drill import Outcome, account, messages
from tests.drills.traffic import Traffic

SERVICES = (
    "api",
    "api_workers",
    "webhook_ingest",
    "instagram_sender",
    "whatsapp_sender",
    "token_refresher",
)
SAMPLE_S = 10.0
# A service killed on a loaded machine took longer than tests/chaos's 90 s to be ready.
READY_S = 300.0


def _kill_and_restart(stack: Stack, name: str) -> None:
    spec = next(s for s in process_specs(stack.ports) if s.name == name)
    stack.kill(name)
    stack.start_one(spec)
    stack.wait_ready(spec, READY_S)


@dataclass(frozen=True)
class SoakPlan:
    minutes: float
    kill_every_min: float
    rate_per_s: float
    # RSS growth above this (MB per minute, least-squares slope) fails the soak.
    rss_slope_limit: float

    @classmethod
    def from_env(cls) -> SoakPlan:
        return cls(
            minutes=float(os.environ.get("SOAK_MINUTES", "10")),
            kill_every_min=float(os.environ.get("SOAK_KILL_EVERY", "2")),
            rate_per_s=float(os.environ.get("SOAK_RATE", "50")),
            rss_slope_limit=float(os.environ.get("SOAK_RSS_SLOPE_MB_PER_MIN", "3")),
        )


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None  # killed between listing and reading
    return None


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB), in MB per minute."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return 60 * cov / var if var else 0.0


@dataclass
class Sizes:
    rows: dict[str, int]
    records: dict[str, int]


async def sizes(world: World) -> Sizes:
    """Live rows per table and records per topic (sum of end offsets)."""
    settings = settings_from(world.stack.env)
    engine = make_engine(settings)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            result = await connection.execute(
                text("SELECT relname, n_live_tup FROM pg_stat_user_tables")
            )
            rows = {name: int(n) for name, n in result}
    finally:
        await engine.dispose()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        parts = [
            TopicPartition(t.name, p)
            for t in TOPICS
            for p in consumer.partitions_for_topic(t.name) or ()
        ]
        ends = await consumer.end_offsets(parts)
    finally:
        # aiokafka's stop() can raise the CancelledError of its own group task when a
        # broker went away meanwhile; the offsets are read by then.
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
    records: dict[str, int] = {}
    for tp, end in ends.items():
        records[tp.topic] = records.get(tp.topic, 0) + end
    return Sizes(rows, records)


def unbounded(first: Sizes, mid: Sizes, last: Sizes, leads_1: int, leads_2: int) -> list[str]:
    """Tables/topics that grew per lead much faster in the second half than in the first:
    growth that traffic does not explain (a backlog, a leak)."""
    found = []
    for kind, a, b, c in (
        ("table", first.rows, mid.rows, last.rows),
        ("topic", first.records, mid.records, last.records),
    ):
        for name in c:
            g1 = (b.get(name, 0) - a.get(name, 0)) / max(leads_1, 1)
            g2 = (c.get(name, 0) - b.get(name, 0)) / max(leads_2, 1)
            if c.get(name, 0) - b.get(name, 0) > 200 and g2 > 1.5 * g1 + 0.1:
                found.append(f"{kind} {name}: {g1:.2f} -> {g2:.2f} per lead")
    return found


async def run_soak(world: World, plan: SoakPlan) -> Outcome:
    stack = world.stack
    started = time.monotonic()
    traffic = Traffic(
        world.api,
        world.sandbox,
        world.creators,
        world.wa_numbers,
        plan.rate_per_s,
        first_offset=world.leads_so_far,
    )
    world.leads_so_far += 10_000_000
    before = {m["message_id"] for m in await messages(world)}
    samples: dict[str, list[tuple[float, float]]] = {s: [] for s in SERVICES}
    restarted_at: dict[str, float] = dict.fromkeys(SERVICES, started)
    first = await sizes(world)
    feeding = asyncio.create_task(traffic.run_until_stopped())
    fault_at = time.time()
    end = started + plan.minutes * 60
    next_kill = started + plan.kill_every_min * 60
    mid: Sizes | None = None
    leads_at_mid = 0
    kills = 0
    while time.monotonic() < end:
        now = time.monotonic()
        for service in SERVICES:
            # The first minute of each life is warm-up (imports, pools, caches), not a trend.
            mb = rss_mb(stack.processes[service].pid)
            if mb is not None and now - restarted_at[service] > 60:
                samples[service].append((now - started, mb))
        if mid is None and now - started >= plan.minutes * 30:
            mid, leads_at_mid = await sizes(world), len(traffic.accepted)
        if now >= next_kill:
            for service in SERVICES:
                await asyncio.to_thread(_kill_and_restart, stack, service)
                restarted_at[service] = time.monotonic()
                kills += 1
            next_kill += plan.kill_every_min * 60
        await asyncio.sleep(SAMPLE_S)
    await traffic.stop()
    await feeding
    outcome = await account(world, "soak", "", traffic, before, fault_at, started, 600)
    last = await sizes(world)
    leads_total = len(traffic.accepted)
    slopes = {s: round(slope_per_min(p), 2) for s, p in samples.items()}
    outcome.failed = (
        f"{plan.minutes:g} min at {plan.rate_per_s:g} leads/s, every service kill -9 "
        f"every {plan.kill_every_min:g} min ({kills} kills)"
    )
    outcome.extra = {
        "rss_slope_mb_per_min": slopes,
        "rss_slope_limit": plan.rss_slope_limit,
        "rss_last_mb": {s: round(p[-1][1], 1) if p else None for s, p in samples.items()},
        "achieved_leads_per_s": round(leads_total / (plan.minutes * 60), 1),
        "unbounded": unbounded(first, mid or first, last, leads_at_mid, leads_total - leads_at_mid),
    }
    return outcome
