"""Rate limiters driven by the sandbox clock (so tests can age them with the clock API).

Limits are passed on every call rather than stored, so a runtime settings change takes
effect immediately.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field


@dataclass
class SlidingWindow:
    """Sliding-window log: at most `limit` events in any `window` seconds."""

    window: float
    _events: deque[float] = field(default_factory=deque)

    def _prune(self, now: float) -> None:
        while self._events and self._events[0] <= now - self.window:
            self._events.popleft()

    def count(self, now: float) -> int:
        self._prune(now)
        return len(self._events)

    def try_acquire(self, now: float, limit: int) -> bool:
        if self.count(now) >= limit:
            return False
        self._events.append(now)
        return True

    def record(self, now: float) -> None:
        """Count an event that is never refused (e.g. inbound traffic)."""
        self._events.append(now)

    def seconds_until_free(self, now: float, limit: int) -> float:
        """How long until one more event would be accepted."""
        if self.count(now) < limit:
            return 0.0
        oldest_blocking = self._events[len(self._events) - limit]
        return max(0.0, oldest_blocking + self.window - now)


@dataclass
class Pacer:
    """GCRA pacer: one event per `interval`, with `burst` extra events borrowable.

    Models WhatsApp's pair rate (1 message / 6 s, bursts borrow from future quota).
    """

    theoretical_arrival: float = 0.0

    def try_acquire(self, now: float, interval: float, burst: int) -> bool:
        start = max(self.theoretical_arrival, now)
        if start - now > burst * interval:
            return False
        self.theoretical_arrival = start + interval
        return True


@dataclass
class LimiterBank:
    """Named limiters created on first use, keyed e.g. by account or (number, user)."""

    windows: dict[tuple[str, ...], SlidingWindow] = field(default_factory=dict)
    pacers: dict[tuple[str, ...], Pacer] = field(default_factory=dict)

    def window(self, key: tuple[str, ...], seconds: float) -> SlidingWindow:
        return self.windows.setdefault(key, SlidingWindow(window=seconds))

    def pacer(self, key: tuple[str, ...]) -> Pacer:
        return self.pacers.setdefault(key, Pacer())


BUC_HEADER = "X-Business-Use-Case-Usage"


def business_use_case_header(
    owner_id: str,
    usage_type: str,
    call_count: int,
    regain_minutes: int,
) -> dict[str, str]:
    """`X-Business-Use-Case-Usage` (platform-facts §1h): percentages of the allowed calls
    plus the minutes until throttling ends. The sandbox does not model CPU/time
    separately, so total_cputime/total_time mirror call_count."""
    pct = max(0, min(call_count, 100))
    usage = {
        owner_id: [
            {
                "type": usage_type,
                "call_count": pct,
                "total_cputime": pct,
                "total_time": pct,
                "estimated_time_to_regain_access": regain_minutes,
            }
        ]
    }
    return {BUC_HEADER: json.dumps(usage, separators=(",", ":"))}
