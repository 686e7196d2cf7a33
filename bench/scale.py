"""Scale: many connected accounts with per-account limits (`python -m bench --scale`).

10,000 creators with a connected sandbox account each. A few hot accounts get a burst of
DMs far above their per-second limit; DMs to cold accounts run at a steady rate alone, during
the same burst spread over as many accounts (the load without any throttling), and during the
burst on the hot accounts. From the sandbox's own message log (what Meta would
have received) it reports the most sends any account made in any 1-s window against the
limit (rate + burst of its token bucket), and the cold DMs' latency with and without the
hot backlog: a throttled account's DMs wait deferred (deferred_sends), not in front of others, so
the cold latency with the hot burst should match the one with the spread burst.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import uuid4

import asyncpg  # type: ignore[import-untyped]
import httpx
from demo import service_token, settings_from  # deploy/local
from stack import Stack  # deploy/local

from bench.load import offer
from bench.stats import percentiles
from shared.contracts.events import utcnow
from shared.platform.crypto import TokenCipher


@dataclass(frozen=True)
class ScalePlan:
    accounts: int = 10_000
    hot_accounts: int = 5
    hot_dms_per_account: int = 100  # 20x a 5/s limit
    cold_dms: int = 300
    cold_rate: float = 30.0
    limit_per_s: float = 5.0
    burst: int = 5


@dataclass(frozen=True)
class ScaleResult:
    accounts: int
    hot_accounts: int
    hot_dms: int
    cold_dms: int
    limit_per_s: float
    burst: int
    allowed_in_any_1s: float
    max_sends_in_any_1s: int
    accounts_over_limit: int
    hot_sent: int
    hot_drain_s: float
    cold_alone_p50_ms: float
    cold_alone_p99_ms: float
    # The same burst spread over as many accounts (nobody throttled): the load alone.
    cold_with_spread_burst_p50_ms: float
    cold_with_spread_burst_p99_ms: float
    # The burst on the hot accounts only, far over their limit: load plus throttling.
    cold_with_hot_burst_p50_ms: float
    cold_with_hot_burst_p99_ms: float
    seed_s: float


@dataclass(frozen=True)
class Account:
    creator_id: str
    ig_user_id: str


async def _sandbox_accounts(sandbox: httpx.AsyncClient, n: int) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(16)
    stamp = int(time.time())

    async def one(i: int) -> dict[str, Any]:
        async with gate:
            response = await sandbox.post(
                "/_sandbox/instagram/accounts", json={"username": f"scale.{stamp}.{i}"}
            )
            response.raise_for_status()
            return dict(response.json())

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def seed_accounts(stack: Stack, db: asyncpg.Pool, n: int) -> list[Account]:
    """n creators, each with a connected account (bulk: sandbox over HTTP, rows by COPY)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ports.sandbox}") as sandbox:
        made = await _sandbox_accounts(sandbox, n)
    cipher = TokenCipher.from_settings(settings_from(stack.env))
    now = utcnow()
    creators, accounts, out = [], [], []
    for sandbox_account in made:
        creator_id, username = uuid4(), sandbox_account["username"]
        creators.append((creator_id, f"Creator {username}", f"{username}", "Hi {name}!", now))
        token = cipher.encrypt(sandbox_account["access_token"])
        ig_id = str(sandbox_account["ig_user_id"])
        accounts.append(
            (uuid4(), creator_id, "instagram", ig_id, username, "connected", token, now, now, now)
        )
        out.append(Account(str(creator_id), ig_id))
    async with db.acquire() as conn:
        await conn.copy_records_to_table(
            "creators",
            records=creators,
            columns=["id", "name", "slug", "dm_template", "created_at"],
        )
        await conn.copy_records_to_table(
            "social_accounts",
            records=accounts,
            columns=[
                "id",
                "creator_id",
                "provider",
                "external_id",
                "username",
                "status",
                "access_token_encrypted",
                "token_refreshed_at",
                "created_at",
                "updated_at",
            ],
        )
    return out


async def open_windows(stack: Stack, pairs: list[tuple[Account, str]]) -> list[dict[str, Any]]:
    """Each (account, username) writes first, so the 24-h window is open; lead bodies back."""
    gate = asyncio.Semaphore(16)
    inbound = (utcnow() - timedelta(minutes=1)).isoformat()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ports.sandbox}") as sandbox:

        async def one(account: Account, username: str) -> dict[str, Any]:
            async with gate:
                response = await sandbox.post(
                    "/_sandbox/instagram/users/message",
                    json={"account_id": account.ig_user_id, "username": username, "text": "hi"},
                )
                response.raise_for_status()
            return {
                "creator_id": account.creator_id,
                "name": username,
                "instagram": {
                    "username": username,
                    "igsid": response.json()["igsid"],
                    "last_inbound_at": inbound,
                },
            }

        return list(await asyncio.gather(*(one(a, u) for a, u in pairs)))


def max_sends_in_1s(times: list[float]) -> int:
    """The most sends within any window of 1 s (two pointers over the sorted times)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def sent_times(stack: Stack) -> dict[str, list[float]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ports.sandbox}") as sandbox:
        data = (await sandbox.get("/_sandbox/instagram/messages", timeout=60)).json()["data"]
    by_account: dict[str, list[float]] = defaultdict(list)
    for message in data:
        by_account[message["account_id"]].append(float(message["time"]))
    return by_account


async def latencies_s(db: asyncpg.Pool, lead_ids: list[str], timeout_s: float) -> list[float]:
    """Accepted -> `sent` recorded, per lead that got there within timeout_s."""
    deadline = time.monotonic() + timeout_s
    query = """SELECT l.id, min(d.recorded_at) - l.created_at AS took FROM leads l
               JOIN dm_log d ON d.lead_id = l.id AND d.status = 'sent'
               WHERE l.id = ANY($1::uuid[]) GROUP BY l.id, l.created_at"""
    while True:
        rows = await db.fetch(query, lead_ids)
        if len(rows) == len(lead_ids) or time.monotonic() > deadline:
            return [r["took"].total_seconds() for r in rows]
        await asyncio.sleep(0.5)


async def _settle_webhooks(stack: Stack) -> None:
    """Seeding sends a webhook per opened window: let them land before measuring."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ports.sandbox}") as sandbox:
        await sandbox.post("/_sandbox/webhooks/drain", params={"wait_seconds": 120}, timeout=130)
    await asyncio.sleep(5)


@dataclass(frozen=True)
class Bodies:
    cold: list[dict[str, Any]]  # 3 x cold_dms, one per cold account
    spread: list[dict[str, Any]]  # the burst over as many accounts: nobody throttled
    hot: list[dict[str, Any]]  # the same burst over the hot accounts only


async def _bodies(stack: Stack, accounts: list[Account], plan: ScalePlan) -> Bodies:
    hot, cold = accounts[: plan.hot_accounts], accounts[plan.hot_accounts :]
    burst = plan.hot_accounts * plan.hot_dms_per_account
    picked = cold[:: max(len(cold) // (3 * plan.cold_dms + burst), 1)]
    cold_pairs = [(picked[i % len(picked)], f"cold.{i}") for i in range(3 * plan.cold_dms)]
    spread_pairs = [(picked[-(i + 1) % len(picked)], f"spread.{i}") for i in range(burst)]
    hot_pairs = [(a, f"hot.{j}") for a in hot for j in range(plan.hot_dms_per_account)]
    return Bodies(
        cold=await open_windows(stack, cold_pairs),
        spread=await open_windows(stack, spread_pairs),
        hot=await open_windows(stack, hot_pairs),
    )


async def _cold_latency(
    stack: Stack, db: asyncpg.Pool, plan: ScalePlan, cold: list[dict[str, Any]], burst: Any
) -> tuple[list[float], list[str]]:
    """Cold DMs at a steady rate, with `burst` (None or lead bodies) offered at once."""
    token, api = service_token(stack.ports.local_issuer), stack.ports.api
    burst_load = (
        asyncio.create_task(offer(api, token, lambda i: burst[i], len(burst), None))
        if burst
        else None
    )
    steady = await offer(api, token, lambda i: cold[i], len(cold), plan.cold_rate)
    burst_ids = (await burst_load).accepted if burst_load else []
    return await latencies_s(db, steady.accepted, 180), burst_ids


async def run_scale(stack: Stack, db: asyncpg.Pool, plan: ScalePlan) -> ScaleResult:
    started = time.monotonic()
    accounts = await seed_accounts(stack, db, plan.accounts)
    bodies = await _bodies(stack, accounts, plan)
    await _settle_webhooks(stack)
    seed_s = time.monotonic() - started
    n = plan.cold_dms
    alone, _ = await _cold_latency(stack, db, plan, bodies.cold[:n], None)
    spread, _ = await _cold_latency(stack, db, plan, bodies.cold[n : 2 * n], bodies.spread)
    with_hot, hot_ids = await _cold_latency(stack, db, plan, bodies.cold[2 * n :], bodies.hot)
    drain_budget = plan.hot_dms_per_account / plan.limit_per_s + 120
    hot_s = await latencies_s(db, hot_ids, drain_budget)

    windows = {acc: max_sends_in_1s(ts) for acc, ts in (await sent_times(stack)).items()}
    allowed = plan.limit_per_s + plan.burst
    p_alone, p_spread, p_hot = percentiles(alone), percentiles(spread), percentiles(with_hot)
    return ScaleResult(
        accounts=plan.accounts,
        hot_accounts=plan.hot_accounts,
        hot_dms=len(bodies.hot),
        cold_dms=3 * n,
        limit_per_s=plan.limit_per_s,
        burst=plan.burst,
        allowed_in_any_1s=allowed,
        max_sends_in_any_1s=max(windows.values(), default=0),
        accounts_over_limit=sum(1 for n in windows.values() if n > allowed),
        hot_sent=len(hot_s),
        hot_drain_s=round(max(hot_s, default=0), 1),
        cold_alone_p50_ms=p_alone[50],
        cold_alone_p99_ms=p_alone[99],
        cold_with_spread_burst_p50_ms=p_spread[50],
        cold_with_spread_burst_p99_ms=p_spread[99],
        cold_with_hot_burst_p50_ms=p_hot[50],
        cold_with_hot_burst_p99_ms=p_hot[99],
        seed_s=round(seed_s, 1),
    )
