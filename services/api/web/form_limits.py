"""Abuse limits of the public lead form: submissions per minute per client IP and per
creator, in a sliding window. In memory, so per API process: with N replicas the limits
are N times as loose (a shared store is the next step, docs/WEB.md)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW_S = 60.0
MAX_KEYS = 50_000


@dataclass
class SlidingWindow:
    limit: int
    window_s: float = WINDOW_S
    _hits: dict[str, deque[float]] = field(default_factory=dict)

    def allow(self, key: str, now: float) -> bool:
        """Count a hit for `key` unless it already had `limit` within the window."""
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        if len(self._hits) > MAX_KEYS:
            self._forget_idle(now)
        return True

    def _forget_idle(self, now: float) -> None:
        idle = [k for k, h in self._hits.items() if not h or h[-1] <= now - self.window_s]
        for key in idle:
            del self._hits[key]


@dataclass
class FormLimits:
    per_ip: SlidingWindow
    per_creator: SlidingWindow

    @classmethod
    def per_minute(cls, per_ip: int, per_creator: int) -> FormLimits:
        return cls(SlidingWindow(per_ip), SlidingWindow(per_creator))

    def refusal(self, client_ip: str, creator_id: str, now: float) -> str | None:
        """Why this submission is refused, or None (then it counts against both limits)."""
        if not self.per_ip.allow(client_ip, now):
            return "Too many submissions from your network. Please wait a minute."
        if not self.per_creator.allow(creator_id, now):
            return "This form is receiving a lot of messages. Please try again in a minute."
        return None
