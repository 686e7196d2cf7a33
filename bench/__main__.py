"""`python -m bench` (via `make bench`): the raw Kafka limit, then AutoDM end to end.

Every process of the stack runs as in `make run` (deploy/local/stack.py) on ports of its
own; the sandbox answers at zero latency. Latency of a DM is measured in the database: the
lead's `created_at` (set by the API when it accepts the lead) to the `dm_log` row of its
`sent` transition (written by the projection once the sandbox accepted the message and
the status event came back): accept -> provider -> status persisted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

from bench import compare, procstat, raw_kafka
from bench.load import offer
from bench.options import parser
from bench.stats import percentiles

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "deploy" / "local"))
from demo import service_token, settings_from  # noqa: E402  (deploy/local)
from stack import Stack, StackPorts, running_stack  # noqa: E402

from bench.scale import ScalePlan, run_scale  # noqa: E402  (imports deploy/local too)
from shared.contracts.events import utcnow  # noqa: E402

STATE = Path(os.environ.get("AUTODM_STATE_DIR", ROOT / ".local" / "bench"))
SERVICES = (
    "api",
    "api_workers",
    "instagram_sender",
    "whatsapp_sender",
    "webhook_ingest",
    "token_refresher",
)
# What --profile samples: the services that cost the most per DM (docs/BENCHMARKS.md).
PROFILED = ("api", "api_workers", "instagram_sender", "webhook_ingest")
DATABASE = "autodm_bench"


def bench_ports() -> StackPorts:
    """The bench stack's ports; BENCH_PORT_BASE moves the services' block (9400 and up) and
    the sandbox's (BENCH_PORT_BASE + 10080) so two stacks can run side by side."""
    base = int(os.environ.get("BENCH_PORT_BASE", "9400"))
    return StackPorts(
        kafka=int(os.environ.get("KAFKA_PORT", "19692")),
        postgres=int(os.environ.get("PG_PORT", "16032")),
        sandbox=base + 10080,
        api=base,
        webhook_ingest=base + 1,
        instagram_sender=base + 2,
        whatsapp_sender=base + 3,
        token_refresher=base + 4,
        api_workers=base + 5,
        local_issuer=base + 10090,
    )


def project_roots(stack: Stack) -> dict[str, int]:
    """Every process the project runs (not the sandbox or the token issuer: Meta's and
    the identity provider's side), Kafka and PostgreSQL included."""
    roots = {name: stack.processes[name].pid for name in SERVICES}
    roots["kafka"] = int((STATE / "kafka" / "kafka.pid").read_text().strip())
    postmaster = (STATE / "postgres" / "data" / "postmaster.pid").read_text().split()[0]
    roots["postgres"] = int(postmaster)
    return roots


@dataclass(frozen=True)
class PhaseResult:
    name: str
    offered_per_s: float | None
    leads: int
    sent: int
    not_sent: dict[str, int]
    accept_errors: int
    dms_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    # Accept (the load generator got the 201) -> the sandbox accepted the message: the
    # peer's measure (its driver's 201 -> its sink's receipt).
    provider_p50_ms: float
    provider_p99_ms: float
    accept_p99_ms: float
    cpu_ms_per_dm: float
    cpu_ms_per_dm_net_of_idle: float
    cpu_s_by_process: dict[str, float]
    load_average: float  # 1-min load of the machine at the end (2 cores, shared)


class Bench:
    def __init__(
        self, stack: Stack, db: asyncpg.Pool, pairs: list[dict[str, Any]], connections: int = 16
    ) -> None:
        self.stack, self.db, self.pairs, self.connections = stack, db, pairs, connections
        self.token = service_token(stack.ports.local_issuer)
        self.roots = project_roots(stack)
        self.idle_cpu_per_s = 0.0
        self.idle_by_process: dict[str, float] = {}

    async def measure_idle(self, seconds: float = 20.0, settle_s: float = 5.0) -> float:
        """CPU the stack burns doing nothing (pollers, Kafka, collectors), per second, once
        the warm-up's tail (echoes, projections, relays) has settled."""
        await asyncio.sleep(settle_s)
        before = procstat.cpu_seconds(self.roots)
        await asyncio.sleep(seconds)
        after = procstat.cpu_seconds(self.roots)
        self.idle_by_process = {k: round((after[k] - before[k]) / seconds, 3) for k in after}
        self.idle_cpu_per_s = sum(self.idle_by_process.values())
        return self.idle_cpu_per_s

    def body(self, i: int) -> dict[str, Any]:
        pair = self.pairs[i % len(self.pairs)]
        return {
            "creator_id": pair["creator_id"],
            "name": f"Lead {i}",
            "instagram": {
                "username": pair["username"],
                "igsid": pair["igsid"],
                "last_inbound_at": pair["last_inbound_at"],
            },
        }

    async def phase(self, name: str, count: int, rate: float | None) -> PhaseResult:
        cpu_before = procstat.cpu_seconds(self.roots)
        started = time.monotonic()
        load = await offer(
            self.stack.ports.api, self.token, self.body, count, rate, self.connections
        )
        outcomes = await self.wait_settled(load.accepted)
        cpu = {k: v - cpu_before[k] for k, v in procstat.cpu_seconds(self.roots).items()}
        idle_cpu = self.idle_cpu_per_s * (time.monotonic() - started)
        provider = await self.provider_latency(load.accepted_at)
        rows = await self.db.fetch(
            """SELECT l.created_at, min(d.recorded_at) AS sent_at FROM leads l
               JOIN dm_log d ON d.lead_id = l.id AND d.status = 'sent'
               WHERE l.id = ANY($1::uuid[]) GROUP BY l.id, l.created_at""",
            load.accepted,
        )
        latency = [(r["sent_at"] - r["created_at"]).total_seconds() for r in rows]
        span = (
            (max(r["sent_at"] for r in rows) - min(r["created_at"] for r in rows)).total_seconds()
            if rows
            else float("nan")
        )
        p = percentiles(latency)
        sent = outcomes.pop("sent", 0)
        return PhaseResult(
            name=name,
            offered_per_s=rate,
            leads=count,
            sent=sent,
            not_sent=outcomes,
            accept_errors=load.errors,
            dms_per_s=len(rows) / span if rows else 0.0,
            p50_ms=p[50],
            p95_ms=p[95],
            p99_ms=p[99],
            provider_p50_ms=provider[50],
            provider_p99_ms=provider[99],
            accept_p99_ms=percentiles(load.accept_latency_s)[99],
            cpu_ms_per_dm=1000 * sum(cpu.values()) / max(sent, 1),
            cpu_ms_per_dm_net_of_idle=1000 * (sum(cpu.values()) - idle_cpu) / max(sent, 1),
            cpu_s_by_process={k: round(v, 2) for k, v in cpu.items()},
            load_average=os.getloadavg()[0],
        )

    async def provider_latency(self, accepted_at: dict[str, float]) -> dict[int, float]:
        """Percentiles of 201 -> the sandbox's receipt, matched by the provider's message id."""
        base = f"http://127.0.0.1:{self.stack.ports.sandbox}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as sandbox:
            data = (await sandbox.get("/_sandbox/instagram/messages")).json()["data"]
        received = {m["message_id"]: m["time"] for m in data}
        rows = await self.db.fetch(
            "SELECT id::text, provider_message_id FROM leads WHERE id = ANY($1::uuid[])",
            list(accepted_at),
        )
        return percentiles(
            [
                received[r["provider_message_id"]] - accepted_at[r["id"]]
                for r in rows
                if r["provider_message_id"] in received
            ]
        )

    async def echoes(self, on: bool) -> None:
        """Turn the sandbox's Instagram echo webhooks on or off (the peer's sink sends none)."""
        base = f"http://127.0.0.1:{self.stack.ports.sandbox}"
        async with httpx.AsyncClient(base_url=base) as sandbox:
            patch = {"instagram_echo_webhooks": on}
            (await sandbox.patch("/_sandbox/settings", json=patch)).raise_for_status()

    async def wait_settled(self, lead_ids: list[str], timeout_s: float = 180) -> dict[str, int]:
        deadline = time.monotonic() + timeout_s
        while True:
            rows = await self.db.fetch(
                "SELECT dm_status, count(*) FROM leads WHERE id = ANY($1::uuid[]) GROUP BY 1",
                lead_ids,
            )
            counts = {r["dm_status"]: r["count"] for r in rows}
            waiting = counts.get("queued", 0) + counts.get("sending", 0)
            if not waiting or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.5)


async def seed(stack: Stack, accounts: int, users_per_account: int) -> list[dict[str, Any]]:
    """Creators with a connected sandbox account, and users whose 24 h window is open."""
    from demo import DemoCreator, seed_creator, user_messages

    settings = settings_from(stack.env)
    pairs = []
    base = f"http://127.0.0.1:{stack.ports.sandbox}"
    async with httpx.AsyncClient(base_url=base) as sandbox:
        for a in range(accounts):
            creator: DemoCreator = await seed_creator(
                settings, sandbox, f"bench.{a}.{int(time.time())}"
            )
            for u in range(users_per_account):
                username = f"fan.{a}.{u}"
                igsid = await user_messages(sandbox, creator, username)
                pairs.append(
                    {
                        "creator_id": str(creator.creator_id),
                        "username": username,
                        "igsid": igsid,
                        "last_inbound_at": (utcnow() - timedelta(minutes=1)).isoformat(),
                    }
                )
    return pairs


def profile(pids: dict[str, int], seconds: int, out: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy samples each service while the flat-out phase runs (raw collapsed stacks)."""
    out.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    return [
        subprocess.Popen(
            [
                str(spy),
                "record",
                "--nonblocking",
                "--format",
                "raw",
                "-r",
                "200",
                "-d",
                str(seconds),
                "-p",
                str(pid),
                "-o",
                str(out / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


def top_self_time(path: Path, limit: int = 12) -> list[tuple[str, float]]:
    """Leaf frames by share of samples (where the CPU actually went)."""
    counts: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        counts[leaf] = counts.get(leaf, 0) + int(n)
        total += int(n)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    return [(frame, round(100 * n / total, 1)) for frame, n in ranked]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    if not args.only_scale:
        results |= await end_to_end(args)
    if args.scale_accounts:
        results["scale"] = await scale(args)
        print("scale:", json.dumps(results["scale"]), flush=True)
    return results


async def scale(args: argparse.Namespace) -> dict[str, Any]:
    """A stack of its own with a low per-account limit, so a burst is far over it."""
    plan = ScalePlan(accounts=args.scale_accounts)
    os.environ["AUTODM_INSTAGRAM_SEND_PER_S"] = str(plan.limit_per_s)
    os.environ["AUTODM_INSTAGRAM_SEND_BURST"] = str(plan.burst)
    with running_stack(bench_ports(), DATABASE, STATE / "logs-scale") as stack:
        url = stack.env["AUTODM_DATABASE_URL"].replace("postgresql+asyncpg", "postgresql")
        async with asyncpg.create_pool(url, min_size=1, max_size=2) as db:
            return asdict(await run_scale(stack, db, plan))


async def end_to_end(args: argparse.Namespace) -> dict[str, Any]:
    ports = bench_ports()
    results: dict[str, Any] = {}
    # The bench's one service token offers far more than a caller may: the limit stays on
    # (its per-request count is part of the measured path) but is never reached.
    os.environ.setdefault("AUTODM_API_RATE_LIMIT_SERVICE", str(10**9))
    raw = await raw_kafka.measure(f"127.0.0.1:{ports.kafka}")
    results["raw_kafka"] = asdict(raw)
    print("raw kafka:", json.dumps(results["raw_kafka"]), flush=True)
    with running_stack(ports, DATABASE, STATE / "logs") as stack:
        pairs = await seed(stack, args.accounts, args.users)
        url = stack.env["AUTODM_DATABASE_URL"].replace("postgresql+asyncpg", "postgresql")
        async with asyncpg.create_pool(url, min_size=1, max_size=2) as db:
            bench = Bench(stack, db, pairs, args.connections)
            await bench.phase("warm-up", 300, 100.0)
            results["idle_cpu_s_per_s"] = round(await bench.measure_idle(), 3)
            results["idle_cpu_s_per_s_by_process"] = bench.idle_by_process
            print("idle CPU-s/s:", json.dumps(bench.idle_by_process), flush=True)
            phases = []
            for rate in args.rates:
                phases.append(await bench.phase(f"{rate:g}/s", int(rate * args.seconds), rate))
                print(json.dumps(asdict(phases[-1])), flush=True)
            spies = []
            if args.profile:
                services = {k: v for k, v in bench.roots.items() if k in PROFILED}
                spies = profile(services, 12, STATE / "profile")
            phases.append(await bench.phase("flat out", args.flat_out, None))
            print(json.dumps(asdict(phases[-1])), flush=True)
            for spy in spies:
                spy.wait(timeout=60)
            if not args.no_echo_phase:
                await bench.echoes(False)
                phases.append(await bench.phase("flat out, no echoes", args.flat_out, None))
                print(json.dumps(asdict(phases[-1])), flush=True)
                await bench.echoes(True)
            results["phases"] = [asdict(p) for p in phases]
            results["peak_rss_mb"] = {
                name: round(procstat.peak_rss_mb(stack.processes[name].pid), 1) for name in SERVICES
            }
            if args.profile:
                results["profile"] = {
                    name: top_self_time(STATE / "profile" / f"{name}.txt")
                    for name in PROFILED
                    if (STATE / "profile" / f"{name}.txt").exists()
                }
    return results


def main() -> int:
    args = parser(__doc__).parse_args()
    results = asyncio.run(run(args))
    if args.with_peer:
        results["peer"] = compare.load_peer()
    out = STATE / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    if "phases" in results:
        print(compare.table(results))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
