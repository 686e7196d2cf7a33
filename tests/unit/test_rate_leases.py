"""Rate limits counted in blocks (services/api/http/rate_leases.py): fewer statements for a
busy caller, never more requests let through than the quota across processes, the last
requests before the quota counted one by one, and a caller past it refused without one."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from services.api.http.auth import Principal, Role
from services.api.http.rate_limits import ApiRateLimits, Policy

WINDOW_S = 60
NOW = 1_000_000 * WINDOW_S + 30.0


class SharedCount:
    """api_rate_counts as every process sees it: one count per key, and the statements."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, float]] = Counter()
        self.statements = 0

    def process(self, quota: int) -> ApiRateLimits:
        limits = ApiRateLimits(
            engine=None,  # type: ignore[arg-type]  # _count is this fake's
            policies={Role.SERVICE: Policy("service", quota, WINDOW_S)},
            clock=lambda: NOW,
        )

        async def count(subject: str, creator: str, start: float, size: int = 1) -> int:
            await asyncio.sleep(0)  # a round trip: other requests run meanwhile
            self.statements += 1
            self.counts[(subject, creator, start)] += size
            return self.counts[(subject, creator, start)]

        limits._count = count  # type: ignore[method-assign]
        return limits


USER = Principal("svc_bench", Role.SERVICE)


async def _admitted(limits: ApiRateLimits, n: int) -> list[Any]:
    return [await limits.charge(USER, "c1") for _ in range(n)]


async def test_a_busy_caller_is_counted_in_blocks_with_exact_positions_in_one_process() -> None:
    shared = SharedCount()
    limits = shared.process(quota=10_000)
    standings = await _admitted(limits, 200)
    assert [s.hits for s in standings] == list(range(1, 201))  # RateLimit's `r` stays exact
    assert shared.statements < 20  # blocks 1, 2, 4 ... 32: was one statement per request
    assert all(not s.exceeded for s in standings)


async def test_a_quiet_caller_is_counted_request_by_request() -> None:
    shared = SharedCount()
    limits = shared.process(quota=10_000)
    first = await limits.charge(USER, "c1")
    other = await limits.charge(USER, "c2")  # another creator: a count of its own
    assert first is not None and other is not None and (first.hits, other.hits) == (1, 1)
    assert shared.statements == 2 and sum(shared.counts.values()) == 2  # nothing reserved ahead


async def test_processes_together_never_let_more_than_the_quota_through() -> None:
    shared = SharedCount()
    quota = 100
    processes = [shared.process(quota) for _ in range(3)]
    # Interleaved and concurrent, from three processes: 3 x 60 requests for 100 places.
    answers = await asyncio.gather(*(limits.charge(USER, "c1") for limits in processes * 60))
    admitted = [a for a in answers if a is not None and not a.exceeded]
    assert len(admitted) <= quota
    # What blocks cost: places reserved and unused, at most a quarter of what was left per
    # reservation, and never the last ones (blocks of 1 there).
    assert len(admitted) >= quota - 3 * 8
    positions = [a.hits for a in admitted]
    assert len(set(positions)) == len(positions)  # no place handed out twice


async def test_the_last_requests_before_the_quota_are_counted_one_by_one() -> None:
    shared = SharedCount()
    first, second = shared.process(quota=3), shared.process(quota=3)
    hits = [await p.charge(USER, "c1") for p in (first, second, first, second)]
    assert [h.hits for h in hits if h] == [1, 2, 3, 4]  # as the one-statement-a-request did
    assert [h.exceeded for h in hits if h] == [False, False, False, True]


async def test_a_caller_past_the_quota_is_refused_without_a_statement() -> None:
    shared = SharedCount()
    limits = shared.process(quota=2)
    await _admitted(limits, 3)  # the third learns the quota is reached
    before = shared.statements
    refused = await _admitted(limits, 5)
    assert all(s.exceeded and s.remaining == 0 for s in refused)
    assert shared.statements == before


async def test_a_new_window_starts_a_new_count() -> None:
    shared = SharedCount()
    limits = shared.process(quota=2)
    await _admitted(limits, 3)
    limits.clock = lambda: NOW + WINDOW_S
    fresh = await limits.charge(USER, "c1")
    assert fresh is not None and fresh.hits == 1 and not fresh.exceeded
