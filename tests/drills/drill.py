"""One drill: steady traffic, a fault while it flows, the recovery, then the accounting at
the sandbox (0 lost, 0 duplicated), every lead's state, and how long DMs stopped."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from demo import settings_from  # deploy/local
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import DmSend, Lead
from shared.db.session import make_engine, make_sessionmaker
from shared.platform.outages import ride_out
from tests.drills.conftest import STATE, World
from tests.drills.traffic import SETTLED, WAITING, Accepted, Traffic

REPORT = STATE.parent / "drills-report.json"


@dataclass
class Outcome:
    name: str
    failed: str
    accepted: int
    lost: list[str]
    duplicated: list[str]
    outcomes: dict[str, int]
    waiting_with_reason: int
    dm_pause_s: float  # the longest gap between two DMs at the sandbox, from the fault on
    first_dm_after_fault_s: float
    refusals: dict[str, int]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> None:
        """Print the row and add it to .local/drills-report.json (docs/RELIABILITY.md)."""
        row = {k: v for k, v in self.__dict__.items() if k not in ("lost", "duplicated")}
        row |= {"lost": len(self.lost), "duplicated": len(self.duplicated)}
        rows = json.loads(REPORT.read_text()) if REPORT.exists() else {}
        rows[self.name] = row
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(rows, indent=2))
        print(json.dumps(row))


async def run_drill(
    world: World,
    name: str,
    failed: str,
    fault: Callable[[], Awaitable[None]],
    *,
    rate_per_s: float,
    warmup_s: float = 20.0,
    after_s: float = 30.0,
    settle_s: float = 420.0,
) -> Outcome:
    """Traffic for `warmup_s`, then `fault()` (which also heals), then `after_s` more."""
    started = time.monotonic()
    traffic = Traffic(
        world.api,
        world.sandbox,
        world.creators,
        world.wa_numbers,
        rate_per_s,
        first_offset=world.leads_so_far,
    )
    world.leads_so_far += 10_000_000  # room for any run; keeps recipients unique
    before = {m["message_id"] for m in await messages(world)}
    feeding = asyncio.create_task(traffic.run_until_stopped())
    await asyncio.sleep(warmup_s)
    fault_at = time.time()
    await fault()
    await asyncio.sleep(after_s)
    await traffic.stop()
    await feeding
    return await account(world, name, failed, traffic, before, fault_at, started, settle_s)


async def account(
    world: World,
    name: str,
    failed: str,
    traffic: Traffic,
    before: set[str],
    fault_at: float,
    started: float,
    settle_s: float,
) -> Outcome:
    engine = make_engine(settings_from(world.stack.env))
    sessions = make_sessionmaker(engine)
    try:
        leads, reasons = await settle(sessions, traffic.accepted, settle_s)
    finally:
        await engine.dispose()
    sent = [m for m in await messages(world) if m["message_id"] not in before]
    per_target = Counter(_target(m) for m in sent)
    lost, duplicated = [], []
    for lead in traffic.accepted:
        state = leads.get(lead.lead_id)
        got = per_target[lead.target] if lead.sends else 0
        if got > 1:
            duplicated.append(lead.lead_id)
        if state is None or not _accounted(state, reasons.get(lead.lead_id)):
            lost.append(lead.lead_id)
        elif state[0] in ("sent", "delivered", "read", "replied") and got == 0:
            lost.append(lead.lead_id)  # the lead says sent, Instagram/WhatsApp never got it
    by_target: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m in sent:
        by_target.setdefault(_target(m), []).append(m)
    shown = [a for a in traffic.accepted if a.lead_id in set(duplicated[:5])]
    dup_detail = [
        {"lead": a.lead_id, "route": a.route, "messages": by_target[a.target]} for a in shown
    ]
    times = sorted(m["time"] for m in sent if m["time"] >= fault_at - 1)
    return Outcome(
        name=name,
        failed=failed,
        accepted=len(traffic.accepted),
        lost=lost,
        duplicated=duplicated,
        outcomes=dict(Counter(s[0] for s in leads.values())),
        waiting_with_reason=sum(1 for s in leads.values() if s[0] not in SETTLED | WAITING),
        dm_pause_s=round(_longest_gap(fault_at, times), 1),
        first_dm_after_fault_s=round(next((t for t in times if t > fault_at), 0) - fault_at, 1),
        refusals=dict(traffic.refusals),
        seconds=round(time.monotonic() - started, 1),
        extra={"duplicates": dup_detail} if dup_detail else {},
    )


def _longest_gap(since: float, times: list[float]) -> float:
    points = [since, *[t for t in times if t >= since]]
    return max((b - a for a, b in itertools.pairwise(points)), default=0.0)


def _target(message: dict[str, Any]) -> tuple[str, str]:
    if "phone_number_id" in message:
        return (message["phone_number_id"], message["to"])
    key = message["comment_id"] if message.get("private_reply") else message["recipient_id"]
    return (message["account_id"], key)


def _accounted(state: tuple[str, str | None], waiting_for: str | None) -> bool:
    """Terminal, waiting for the person, or deferred with the reason it waits."""
    status, reason = state
    if status in SETTLED:
        return status == "sent" or bool(reason) or status in ("delivered", "read", "replied")
    return status in WAITING or bool(waiting_for)


async def settle(
    sessions: async_sessionmaker[AsyncSession], accepted: list[Accepted], timeout_s: float
) -> tuple[dict[str, tuple[str, str | None]], dict[str, str | None]]:
    """Wait until every lead is terminal or waiting for the person; past `timeout_s` the ones
    still in flight are judged by whether their send intent names what it waits for."""
    ids = [UUID(a.lead_id) for a in accepted]
    deadline = time.monotonic() + timeout_s
    while True:
        leads = await ride_out(lambda: _states(sessions, ids), limit_s=120, what="drill")
        open_ = [i for i, s in leads.items() if s[0] not in SETTLED | WAITING]
        if (len(leads) == len(ids) and not open_) or time.monotonic() > deadline:
            break
        await asyncio.sleep(2.0)
    reasons = await ride_out(lambda: _waiting(sessions, open_), limit_s=120, what="drill")
    return leads, reasons


async def _states(
    sessions: async_sessionmaker[AsyncSession], ids: list[UUID]
) -> dict[str, tuple[str, str | None]]:
    found: dict[str, tuple[str, str | None]] = {}
    async with sessions() as session:
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            rows = await session.execute(
                select(Lead.id, Lead.dm_status, Lead.dm_reason).where(Lead.id.in_(chunk))
            )
            found |= {str(i): (status, reason) for i, status, reason in rows}
    return found


async def _waiting(
    sessions: async_sessionmaker[AsyncSession], ids: list[str]
) -> dict[str, str | None]:
    if not ids:
        return {}
    async with sessions() as session:
        rows = await session.execute(
            select(DmSend.lead_id, DmSend.waiting_for).where(
                DmSend.lead_id.in_([UUID(i) for i in ids])
            )
        )
        return {str(lead_id): waiting for lead_id, waiting in rows}


async def messages(world: World) -> list[dict[str, Any]]:
    ig = (await world.sandbox.get("/_sandbox/instagram/messages")).json()["data"]
    wa = (await world.sandbox.get("/_sandbox/whatsapp/messages")).json()["data"]
    return [*ig, *wa]
