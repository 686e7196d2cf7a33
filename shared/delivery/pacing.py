"""Per-account pacing: token buckets per (account, kind), below Meta's published limits.

Records are keyed by account, so one consumer process owns an account's sends and an
in-process bucket is enough for the per-second limits (platform facts §1h, §4d). What a
bucket cannot know (another app using the same account, Meta's own accounting) comes back
as a throttle error, which blocks the account in the database (shared.delivery.gate).

A bucket never sleeps itself: `reserve` says when the send may go, so the caller can wait a
moment in-process or defer the record to the retry topic without blocking its partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from shared.delivery.settings import SenderSettings


class SendKind(StrEnum):
    INSTAGRAM_SEND = "instagram_send"  # 100 calls/s per account (Send API, text)
    INSTAGRAM_PRIVATE_REPLY = "instagram_private_reply"  # 750 calls/h per account
    WHATSAPP_SEND = "whatsapp_send"  # 80 msg/s per number
    WHATSAPP_PAIR = "whatsapp_pair"  # 1 msg / 6 s per (number, recipient)
    CREATOR_PACE = "creator_pace"  # the creator's own DMs per hour per account (settings)


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: float


@dataclass
class TokenBucket:
    rate: Rate
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.rate.burst, self.tokens + elapsed * self.rate.per_second)
        self.updated = now

    def wait_s(self, now: float) -> float:
        """Seconds until one token is available (0 if now)."""
        self.refill(now)
        if self.tokens >= 1:
            return 0.0
        return (1 - self.tokens) / self.rate.per_second

    def take(self, now: float) -> None:
        """Spend one token (the caller checked `wait_s` is 0)."""
        self.refill(now)
        self.tokens -= 1


def rates_from(settings: SenderSettings) -> dict[SendKind, Rate]:
    return {
        SendKind.INSTAGRAM_SEND: Rate(
            settings.instagram_send_per_s, float(settings.instagram_send_burst)
        ),
        SendKind.INSTAGRAM_PRIVATE_REPLY: Rate(
            settings.instagram_private_replies_per_h / 3600,
            float(settings.instagram_private_reply_burst),
        ),
        SendKind.WHATSAPP_SEND: Rate(settings.whatsapp_send_per_s, settings.whatsapp_send_per_s),
        # Strict: one per interval, no borrowing (Meta allows bursts that borrow quota).
        SendKind.WHATSAPP_PAIR: Rate(1 / settings.whatsapp_pair_interval_s, 1.0),
    }


@dataclass
class RateLimiter:
    """Token buckets created on first use, keyed by (kind, account[, recipient])."""

    rates: dict[SendKind, Rate]
    buckets: dict[tuple[str, ...], TokenBucket] = field(default_factory=dict)

    def _bucket(
        self, kind: SendKind, key: tuple[str, ...], now: float, rate: Rate | None = None
    ) -> TokenBucket:
        bucket = self.buckets.get((kind, *key))
        if bucket is None:
            rate = rate or self.rates[kind]
            bucket = self.buckets[(kind, *key)] = TokenBucket(rate, rate.burst, now)
        return bucket

    def set_rate(self, kind: SendKind, key: tuple[str, ...], rate: Rate, now: float) -> None:
        """A bucket whose rate is chosen per key (the creator's pacing); a changed rate
        applies at once, without granting more than the new burst."""
        bucket = self._bucket(kind, key, now, rate)
        if bucket.rate != rate:
            bucket.refill(now)
            bucket.rate = rate
            bucket.tokens = min(bucket.tokens, rate.burst)

    def wait_s(self, limits: list[tuple[SendKind, tuple[str, ...]]], now: float) -> float:
        """Seconds until every named bucket has a token (0: may send now)."""
        return max((self._bucket(k, key, now).wait_s(now) for k, key in limits), default=0.0)

    def take(self, limits: list[tuple[SendKind, tuple[str, ...]]], now: float) -> None:
        for kind, key in limits:
            self._bucket(kind, key, now).take(now)
