"""Scale: many connected accounts with per-account limits (`python -m bench --scale`).

10,000 creators with a connected sandbox account each. A few hot accounts get a burst of
DMs far above their per-second limit; DMs to cold accounts run at a steady rate before
(baseline) and during that burst. From the sandbox's own message log (what Meta would
have received) it reports the most sends any account made in any 1-s window against the
limit (rate + burst of its token bucket), and the cold DMs' latency with and without the
hot backlog: a throttled account's DMs wait in the retry topic, not in front of others.
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
from shared.crypto import TokenCipher
from shared.events import utcnow


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
    cold_baseline_p50_ms: float
    cold_baseline_p99_ms: float
    cold_with_hot_p50_ms: float
    cold_with_hot_p99_ms: float
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


async def latencies_ms(db: asyncpg.Pool, lead_ids: list[str], timeout_s: float) -> list[float]:
    deadline = time.monotonic() + timeout_s
    query = """SELECT l.id, min(d.recorded_at) - l.created_at AS took FROM leads l
               JOIN dm_log d ON d.lead_id = l.id AND d.status = 'sent'
               WHERE l.id = ANY($1::uuid[]) GROUP BY l.id, l.created_at"""
    while True:
        rows = await db.fetch(query, lead_ids)
        if len(rows) == len(lead_ids) or time.monotonic() > deadline:
            return [r["took"].total_seconds() * 1000 for r in rows]
        await asyncio.sleep(0.5)


async def run_scale(stack: Stack, db: asyncpg.Pool, plan: ScalePlan) -> ScaleResult:
    started = time.monotonic()
    accounts = await seed_accounts(stack, db, plan.accounts)
    hot, cold = accounts[: plan.hot_accounts], accounts[plan.hot_accounts :]
    step = max(len(cold) // (2 * plan.cold_dms), 1)  # cold DMs spread over all accounts
    cold_pairs = [(cold[(i * step) % len(cold)], f"cold.{i}") for i in range(2 * plan.cold_dms)]
    hot_pairs = [(a, f"hot.{j}") for a in hot for j in range(plan.hot_dms_per_account)]
    cold_bodies = await open_windows(stack, cold_pairs)
    hot_bodies = await open_windows(stack, hot_pairs)
    seed_s = time.monotonic() - started
    token = service_token(stack.ports.local_issuer)
    api = stack.ports.api

    baseline = await offer(api, token, lambda i: cold_bodies[i], plan.cold_dms, plan.cold_rate)
    baseline_ms = await latencies_ms(db, baseline.accepted, 120)

    hot_load = asyncio.create_task(
        offer(api, token, lambda i: hot_bodies[i], len(hot_bodies), None)
    )
    loaded = await offer(
        api, token, lambda i: cold_bodies[plan.cold_dms + i], plan.cold_dms, plan.cold_rate
    )
    hot_result = await hot_load
    loaded_ms = await latencies_ms(db, loaded.accepted, 120)
    drain_budget = plan.hot_dms_per_account / plan.limit_per_s + 60
    hot_ms = await latencies_ms(db, hot_result.accepted, drain_budget)

    windows = {acc: max_sends_in_1s(ts) for acc, ts in (await sent_times(stack)).items()}
    allowed = plan.limit_per_s + plan.burst
    base_p, loaded_p = percentiles(baseline_ms), percentiles(loaded_ms)
    return ScaleResult(
        accounts=plan.accounts,
        hot_accounts=plan.hot_accounts,
        hot_dms=len(hot_bodies),
        cold_dms=2 * plan.cold_dms,
        limit_per_s=plan.limit_per_s,
        burst=plan.burst,
        allowed_in_any_1s=allowed,
        max_sends_in_any_1s=max(windows.values(), default=0),
        accounts_over_limit=sum(1 for n in windows.values() if n > allowed),
        hot_sent=len(hot_ms),
        hot_drain_s=round(max(hot_ms, default=0) / 1000, 1),
        cold_baseline_p50_ms=base_p[50],
        cold_baseline_p99_ms=base_p[99],
        cold_with_hot_p50_ms=loaded_p[50],
        cold_with_hot_p99_ms=loaded_p[99],
        seed_s=round(seed_s, 1),
    )
