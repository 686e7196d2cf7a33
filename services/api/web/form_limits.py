"""Abuse limits of the public lead form: submissions per minute per client IP and per
creator, shared by every API process through PostgreSQL (a limit that each replica kept in
memory would be N times as loose with N replicas).

Counting uses the sliding-window counter: hits are counted in fixed one-minute windows,
and the last 60 s are estimated as this window's hits plus the previous window's, weighted
by how much of it still lies within the last 60 s. One upsert per key and submission; the
API's housekeeping deletes older windows. Client IPs are stored hashed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import FormRateCount

WINDOW = timedelta(minutes=1)
TOO_MANY_FROM_IP = "Too many submissions from your network. Please wait a minute."
TOO_MANY_FOR_CREATOR = "This form is receiving a lot of messages. Please try again in a minute."


def window_start(now: datetime) -> datetime:
    seconds = WINDOW.total_seconds()
    return datetime.fromtimestamp(now.timestamp() // seconds * seconds, UTC)


def estimate(previous: int, current: int, elapsed: float) -> float:
    """Hits within the last 60 s, `elapsed` (0..1) into the current window."""
    return previous * (1.0 - elapsed) + current


async def count_hit(session: AsyncSession, key: str, now: datetime) -> float:
    """Count one hit for `key`; the estimated hits of the last 60 s before this one."""
    start = window_start(now)
    hit = (
        insert(FormRateCount)
        .values(key=key, window_start=start, hits=1)
        .on_conflict_do_update(
            index_elements=[FormRateCount.key, FormRateCount.window_start],
            set_={"hits": FormRateCount.hits + 1},
        )
        .returning(FormRateCount.hits)
        .cte("hit")
    )
    previous = (
        select(FormRateCount.hits)
        .where(FormRateCount.key == key, FormRateCount.window_start == start - WINDOW)
        .scalar_subquery()
    )
    current, before = (await session.execute(select(hit.c.hits, previous))).one()
    elapsed = (now - start) / WINDOW
    return estimate(before or 0, current - 1, elapsed)


def ip_key(client_ip: str) -> str:
    """Hashed: the table need not hold visitors' addresses (rows live two minutes anyway)."""
    return "ip:" + hashlib.sha256(client_ip.encode()).hexdigest()[:32]


@dataclass
class FormLimits:
    sessions: async_sessionmaker[AsyncSession]
    per_ip: int
    per_creator: int

    async def refusal(self, client_ip: str, creator_id: str, now: datetime) -> str | None:
        """Why this submission is refused, or None. A hit refused per IP does not count
        against the creator, so one flooding network cannot close a creator's form."""
        async with self.sessions.begin() as session:
            if await count_hit(session, ip_key(client_ip), now) >= self.per_ip:
                return TOO_MANY_FROM_IP
            if await count_hit(session, f"creator:{creator_id}", now) >= self.per_creator:
                return TOO_MANY_FOR_CREATOR
        return None
