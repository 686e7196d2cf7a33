"""Abuse limits of the public lead form: submissions per minute per client IP and per
creator, shared by every API process through PostgreSQL (a limit that each replica kept in
memory would be N times as loose with N replicas).

Counting uses the sliding-window counter: hits are counted in fixed one-minute windows,
and the last 60 s are estimated as this window's hits plus the previous window's, weighted
by how much of it still lies within the last 60 s. One upsert per key and submission; the
API's housekeeping deletes older windows. Client IPs are stored hashed.

Every submission counts against its client's address; only accepted leads count against
the creator, so bots (honeypot, forged or spent tokens, failed challenges) can never close
a creator's form for real visitors. Past `challenge_at` of either limit the form is "under
pressure" and, if a challenge is configured, asks for it (form_challenge.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ScalarSelect, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.http.web.form_challenge import Challenge
from services.api.http.web.form_tokens import FormTokens
from services.api.service_layer.form_windows import WINDOW, window_start
from shared.db.models import FormRateCount
from shared.messaging.unit_of_work import UnitsOfWork

TOO_MANY_FROM_IP = "Too many submissions from your network. Please wait a minute."
TOO_MANY_FOR_CREATOR = "This form is receiving a lot of messages. Please try again in a minute."


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
    current, before = (await session.execute(select(hit.c.hits, _hits(key, start - WINDOW)))).one()
    return estimate(before or 0, current - 1, (now - start) / WINDOW)


async def peek(session: AsyncSession, key: str, now: datetime) -> float:
    """The estimated hits of the last 60 s, counting nothing."""
    start = window_start(now)
    current, before = (
        await session.execute(select(_hits(key, start), _hits(key, start - WINDOW)))
    ).one()
    return estimate(before or 0, current or 0, (now - start) / WINDOW)


def _hits(key: str, start: datetime) -> ScalarSelect[int]:
    return (
        select(FormRateCount.hits)
        .where(FormRateCount.key == key, FormRateCount.window_start == start)
        .scalar_subquery()
    )


def ip_key(client_ip: str) -> str:
    """Hashed: the table need not hold visitors' addresses (rows live two minutes anyway)."""
    return "ip:" + hashlib.sha256(client_ip.encode()).hexdigest()[:32]


def creator_key(creator_id: str) -> str:
    return f"creator:{creator_id}"


@dataclass(frozen=True)
class Verdict:
    refusal: str | None = None  # why the submission is refused (429)
    pressure: bool = False  # a limit is close: the challenge applies, if configured


@dataclass
class FormLimits:
    uow: UnitsOfWork
    per_ip: int
    per_creator: int
    tokens: FormTokens
    challenge: Challenge | None = None
    challenge_at: float = 0.5

    async def admit(self, client_ip: str, creator_id: str, now: datetime) -> Verdict:
        """Count this submission against its client; refuse it if the client or the
        creator is over its limit. The creator's count is only read: `accepted` adds to it."""
        async with self.uow() as work:
            from_ip = await count_hit(work.session, ip_key(client_ip), now)
            if from_ip >= self.per_ip:
                return Verdict(TOO_MANY_FROM_IP)
            for_creator = await peek(work.session, creator_key(creator_id), now)
        if for_creator >= self.per_creator:
            return Verdict(TOO_MANY_FOR_CREATOR)
        return Verdict(pressure=self._pressing(from_ip + 1, for_creator))

    async def under_pressure(self, client_ip: str, creator_id: str, now: datetime) -> bool:
        """Whether the form should show its challenge now (only read, for the form page)."""
        if self.challenge is None:
            return False
        async with self.uow() as work:
            from_ip = await peek(work.session, ip_key(client_ip), now)
            for_creator = await peek(work.session, creator_key(creator_id), now)
        return self._pressing(from_ip + 1, for_creator)

    async def accepted(self, session: AsyncSession, creator_id: str, now: datetime) -> None:
        """A lead was stored (in `session`'s transaction): it counts against the creator."""
        await count_hit(session, creator_key(creator_id), now)

    def _pressing(self, from_ip: float, for_creator: float) -> bool:
        return (
            from_ip >= self.challenge_at * self.per_ip
            or for_creator >= self.challenge_at * self.per_creator
        )
