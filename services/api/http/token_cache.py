"""Verified bearer tokens remembered until they expire, so a client reusing its token
(every service caller does) pays the RSA verification once, not per request.

An entry lives until the token's `exp` (never the leeway past it) and never longer than
the signing keys are cached (a key dropped from the JWKS stops being trusted as soon as
it would have been refetched anyway). Keys are SHA-256 digests: the tokens themselves are
not kept. The map is bounded; when full, expired entries go first, then the oldest.
"""

from __future__ import annotations

import hashlib
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class VerifiedTokens(Generic[T]):
    def __init__(self, max_entries: int = 10_000, max_age_s: float = 300) -> None:
        self._max_entries, self._max_age_s = max_entries, max_age_s
        # digest -> (value, wall-clock expiry); dicts keep insertion order: oldest first.
        self._entries: dict[bytes, tuple[T, float]] = {}

    @staticmethod
    def _digest(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> T | None:
        digest = self._digest(token)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[1] <= time.time():
            del self._entries[digest]
            return None
        return entry[0]

    def put(self, token: str, value: T, expires_at: float) -> None:
        """Remember `value` for `token` until `expires_at` (epoch seconds, the `exp` claim)."""
        now = time.time()
        until = min(expires_at, now + self._max_age_s)
        if until <= now:
            return
        if len(self._entries) >= self._max_entries:
            self._evict(now)
        self._entries[self._digest(token)] = (value, until)

    def _evict(self, now: float) -> None:
        for digest in [d for d, (_, until) in self._entries.items() if until <= now]:
            del self._entries[digest]
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]

    def clear(self) -> None:
        self._entries.clear()
