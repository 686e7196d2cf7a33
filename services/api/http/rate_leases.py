"""Blocks of a caller's shared rate-limit count, reserved ahead by one API process.

Counting every request with its own upsert cost the accept path a statement per lead. A
busy caller's requests are counted in blocks instead: the process adds k to the shared
count in one statement and hands the k positions out to the next k requests itself. A
position is a request's place in the window's shared count, so no more requests than the
quota are ever let through, whatever the number of processes; what a block costs in
precision is its unused tail (reserved, never used by the window's end), which can only
refuse a caller early, never late. So blocks stay small where that matters:

- the first block of a window is 1, and each next one doubles, up to `max_block` (a caller
  sending a few requests a window is counted one by one, exactly as before);
- a block is at most a quarter of what the caller has left (near the quota, 1 again:
  the last requests before a 429 are counted exactly, across processes too);
- once the count reached the quota, the process refuses the caller's further requests of
  the window without a statement (the count only grows within a window).

docs/FRONTEND.md, "Rate limits: counted in blocks", states the bound.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

Key = tuple[str, str]  # (subject, creator)


@dataclass
class Lease:
    window_start: float
    next: int = 1  # the next position to hand out
    last: int = 0  # the last position reserved: the shared count after the reservation
    size: int = 0  # the last block's size
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one reservation at a time


class Leases:
    def __init__(self, max_block: int = 32, max_keys: int = 10_000) -> None:
        self.max_block, self._max_keys = max_block, max_keys
        self._leases: dict[Key, Lease] = {}

    def lease(self, key: Key, window_start: float) -> Lease:
        """The caller's lease of this window (a fresh one when the window turned)."""
        lease = self._leases.get(key)
        if lease is None or lease.window_start != window_start:
            if len(self._leases) >= self._max_keys:
                self._forget_before(window_start)
            lease = self._leases[key] = Lease(window_start)
        return lease

    @staticmethod
    def take(lease: Lease, quota: int) -> int | None:
        """The request's position from the lease, or None if a reservation is needed. Past
        the quota every position is a refusal: no statement to learn that again."""
        if lease.next <= lease.last or lease.last >= quota:
            position = lease.next
            lease.next += 1
            return position
        return None

    def block(self, lease: Lease, quota: int) -> int:
        """How many positions to reserve next."""
        grown = min(max(lease.size * 2, 1), self.max_block)
        return max(1, min(grown, (quota - lease.last) // 4))

    @staticmethod
    def reserved(lease: Lease, count: int, size: int) -> int:
        """Record a reservation of `size` that brought the shared count to `count`; the
        first of its positions, for the request that made it."""
        lease.size, lease.last = size, count
        lease.next = count - size + 2
        return count - size + 1

    def _forget_before(self, window_start: float) -> None:
        stale = [k for k, v in self._leases.items() if v.window_start < window_start]
        for key in stale:
            del self._leases[key]
        if len(self._leases) >= self._max_keys:  # all of this window: the oldest go
            for key in list(self._leases)[: self._max_keys // 2]:
                del self._leases[key]
