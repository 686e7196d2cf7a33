"""WhatsApp's sending limits (platform facts §4c, §4d), checked before Meta is called.

- throughput: 80 messages/s per business number (130429 beyond) -- paced in-process;
- pair rate: 1 message per 6 s to the same user (131056 beyond) -- `next_send_at` on the
  contact row, shared by every replica (the row is locked while deciding);
- daily tier: unique users reached by business-initiated (template) messages per moving
  24 h (250 / 2k / 10k / 100k per number) -- beyond it a DM waits until a slot frees.

A limit that says "not now" yields a time; the caller defers the DM until then (never
drops it). The shared token buckets of the delivery machinery (shared/delivery/pacing.py) can
replace `Throughput`; the pair and tier rules are WhatsApp's own and stay here.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import DeferredSend, WhatsAppContact, WhatsAppNumber
from shared.delivery import deferrals

TIER_PERIOD = timedelta(hours=24)


@dataclass(frozen=True)
class LimitPolicy:
    pair_interval: timedelta = timedelta(seconds=6)
    window: timedelta = timedelta(hours=24)


def throttle_backoff(retries: int) -> timedelta:
    """Meta: "retry after 4^X seconds (starting with X=0 ...)"; capped at ~1 h."""
    return timedelta(seconds=min(4 ** max(retries, 0), 4096))


async def locked_contact(session: AsyncSession, account_id: UUID, wa_id: str) -> WhatsAppContact:
    """The contact row, created if new, locked for this transaction."""
    await session.execute(
        insert(WhatsAppContact).values(account_id=account_id, wa_id=wa_id).on_conflict_do_nothing()
    )
    contact = await session.scalar(
        select(WhatsAppContact)
        .where(WhatsAppContact.account_id == account_id, WhatsAppContact.wa_id == wa_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert contact is not None
    return contact


def window_open(contact: WhatsAppContact, now: datetime, policy: LimitPolicy) -> bool:
    last = contact.last_inbound_at
    return last is not None and now - last < policy.window


def pair_wait_until(contact: WhatsAppContact, now: datetime) -> datetime | None:
    """When the pair rate lets the next message to this user go, if not now."""
    due = contact.next_send_at
    return due if due is not None and due > now else None


async def waiting_ahead(
    session: AsyncSession, account_id: UUID, wa_id: str, lead_id: UUID, queued_at: datetime
) -> datetime | None:
    """When the earliest DM to this person from an earlier lead is due, if one waits: a
    person's DMs go out in the order their leads came, so this one waits behind it. Called
    with the contact row locked, so two decisions for one person never race."""
    earlier = tuple_(DeferredSend.queued_at, DeferredSend.lead_id) < tuple_(queued_at, lead_id)
    due: datetime | None = await session.scalar(
        select(func.min(DeferredSend.not_before)).where(
            DeferredSend.account_id == account_id,
            DeferredSend.wa_id == wa_id,
            DeferredSend.lead_id != lead_id,
            earlier,
        )
    )
    return due


async def wake_next(session: AsyncSession, account_id: UUID, wa_id: str, now: datetime) -> None:
    """A DM to this person left the queue (sent, failed, a link): the next one in line is
    due when the pair rate lets it go, not at the end of a wait taken behind the first.
    Re-requesting a row twice is harmless: one number's requests are handled in order and
    the send intent decides."""
    pair_due = (
        select(func.greatest(now, func.coalesce(WhatsAppContact.next_send_at, now)))
        .where(WhatsAppContact.account_id == account_id, WhatsAppContact.wa_id == wa_id)
        .scalar_subquery()
    )
    first = (
        select(DeferredSend.lead_id, DeferredSend.route)
        .where(DeferredSend.account_id == account_id, DeferredSend.wa_id == wa_id)
        .order_by(DeferredSend.queued_at, DeferredSend.lead_id)
        .limit(1)
    )
    await session.execute(
        update(DeferredSend)
        .where(tuple_(DeferredSend.lead_id, DeferredSend.route).in_(first))
        .values(not_before=func.least(DeferredSend.not_before, func.coalesce(pair_due, now)))
    )
    deferrals.changed(session)  # the poller may sleep past the new due time otherwise


# The slot is counted from the decision; the message reaches Meta a commit and a call later
# (~0.4 s seen on a loaded machine). The next DM, re-requested right when due (the deferral
# poller wakes at the due time), must still reach Meta 6 s after: 131056 otherwise.
PAIR_MARGIN = timedelta(seconds=1)


def take_pair_slot(contact: WhatsAppContact, now: datetime, policy: LimitPolicy) -> None:
    contact.next_send_at = now + policy.pair_interval + PAIR_MARGIN


async def tier_wait_until(
    session: AsyncSession, number: WhatsAppNumber, contact: WhatsAppContact, now: datetime
) -> datetime | None:
    """When the daily tier admits this user, if not now. A user already reached in the last
    24 h is no new unique recipient. `number` must be locked (one decision at a time)."""
    since = now - TIER_PERIOD
    if contact.tier_counted_at is not None and contact.tier_counted_at > since:
        return None
    counted = (
        WhatsAppContact.account_id == number.account_id,
        WhatsAppContact.tier_counted_at > since,
    )
    used = await session.scalar(select(func.count()).where(*counted)) or 0
    if used < number.daily_limit:
        return None
    oldest = await session.scalar(select(func.min(WhatsAppContact.tier_counted_at)).where(*counted))
    assert oldest is not None
    return oldest + TIER_PERIOD


def count_for_tier(contact: WhatsAppContact, now: datetime) -> None:
    if contact.tier_counted_at is None or now - contact.tier_counted_at >= TIER_PERIOD:
        contact.tier_counted_at = now


class Throughput:
    """Messages per second per number, in this process: sends are spaced 1/rate apart."""

    def __init__(self) -> None:
        self._next_free: dict[UUID, float] = {}
        self._lock = asyncio.Lock()

    async def acquire(self, account_id: UUID, per_second: float) -> None:
        async with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_free.get(account_id, now))
            self._next_free[account_id] = slot + 1.0 / per_second
        if slot > now:
            await asyncio.sleep(slot - now)
