"""Active reconciliation of `unknown` Instagram DMs: ask Instagram what the conversation
with the lead holds (Conversations API), since an echo can be lost for good (a webhook
endpoint down longer than Meta's immediate retries, platform facts §3d).

A periodic pass in webhook_ingest, beside the echo reconciliation it completes. An intent
`unknown` for `instagram_reconcile_after_s` (then twice as long after each inconclusive
look, at most `instagram_reconcile_max_checks` looks) is looked up:

1. the account's conversation with the recipient (`/{ig_id}/conversations?user_id=`);
2. its most recent messages (`/{conversation_id}?fields=messages`, Instagram lists 20);
3. the details of those created since the intent (`/{message_id}?fields=...`): one sent
   by the account, to the recipient, with the intent's text (by digest), whose id no other
   send of this account already has, is our DM.

Found -> `sent` with the real message id (shared.delivery.ambiguous_sends.settle_sent, as an echo).
Not found, and the listing reaches back past the intent -> not sent
(settle_not_sent: `failed`, retryable). Anything else -> Meta cannot tell (no
conversation, an error, 20 newer messages): it stays `unknown` and is looked at again.
Calls are paced to `instagram_conversations_per_s` per account (Meta allows 2/s), and one
replica runs a pass at a time (an advisory lock), so replicas never add up past it.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.events import utcnow
from shared.contracts.lifecycle import Route
from shared.db.models import DmSend, SocialAccount
from shared.delivery.ambiguous_sends import (
    CONVERSATION_SENT_REASON,
    settle_not_sent,
    settle_sent,
    text_digest,
)
from shared.messaging.unit_of_work import UnitsOfWork
from shared.platform.crypto import DecryptedTokens
from shared.platform.logs import get_logger
from shared.platform.outages import is_outage
from shared.providers.instagram import InstagramConversations, ListedMessage
from shared.providers.meta_errors import MetaError

log = get_logger(__name__)

ROUTES = (Route.IG_DM, Route.IG_PRIVATE_REPLY)
LISTED = 20  # Instagram lists (and details) a conversation's 20 most recent messages
# Meta's clock and ours differ a little: a message stamped this much before the intent
# may still be ours.
CLOCK_SKEW = timedelta(seconds=120)
BATCH = 100
# One pass at a time across replicas (pg_try_advisory_xact_lock's key).
LOCK_KEY = 0x1C0_2EC0


@dataclass(frozen=True)
class Sent:
    """The conversation holds the DM: Meta's id for it."""

    mid: str


@dataclass(frozen=True)
class NotSent:
    """The conversation provably lacks the DM (newer messages cover the send's time)."""


@dataclass(frozen=True)
class CannotTell:
    """Meta's answer settles nothing (no conversation yet, an error): ask again later."""

    why: str


Verdict = Sent | NotSent | CannotTell


@dataclass(frozen=True)
class ReconcilePolicy:
    after_s: float = 120.0
    interval_s: float = 15.0
    max_checks: int = 6
    calls_per_s: float = 1.5


class Pace:
    """At most `per_s` calls per second: each call waits for its slot (one account's)."""

    def __init__(self, per_s: float) -> None:
        self._interval = 1.0 / per_s
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


@dataclass(frozen=True)
class _Account:
    external_id: str
    token: str | None


class ConversationReconciler:
    def __init__(
        self,
        uow: UnitsOfWork,
        client: InstagramConversations,
        tokens: DecryptedTokens,
        policy: ReconcilePolicy,
    ) -> None:
        # Its units wake the outbox relay: a settled DM's status goes out at once.
        self._uow = uow
        self._client = client
        self._tokens = tokens
        self._policy = policy

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self._policy.interval_s)
            try:
                await self.run_once()
            except Exception as exc:
                # The database away: the next pass tries again (nothing was half done).
                if not is_outage(exc):
                    log.exception("conversation reconciliation pass failed")

    async def run_once(self) -> int:
        """One pass (if no other replica is in one); how many intents were looked up."""
        async with self._uow() as lock:
            if not await lock.session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))):
                return 0
            due = await self._due()
            by_account: dict[object, list[DmSend]] = defaultdict(list)
            for intent in due:
                by_account[intent.account_id].append(intent)
            await asyncio.gather(*(self._account_pass(list(i)) for i in by_account.values()))
        return len(due)

    async def _due(self) -> list[DmSend]:
        now = utcnow()
        async with self._uow() as work:
            rows = await work.session.scalars(
                select(DmSend)
                .where(
                    DmSend.state == "unknown",
                    DmSend.route.in_(ROUTES),
                    DmSend.account_id.is_not(None),
                    DmSend.recipient_igsid.is_not(None),
                    DmSend.text_sha256.is_not(None),
                    DmSend.reconcile_checks < self._policy.max_checks,
                    DmSend.updated_at <= now - timedelta(seconds=self._policy.after_s),
                )
                .order_by(DmSend.updated_at)
                .limit(BATCH)
            )
            # Each inconclusive look doubles the wait before the next one.
            return [i for i in rows.all() if self._due_at(i) <= now]

    def _due_at(self, intent: DmSend) -> datetime:
        wait = self._policy.after_s * 2**intent.reconcile_checks
        return intent.updated_at + timedelta(seconds=wait)

    async def _account_pass(self, intents: list[DmSend]) -> None:
        account = await self._account(intents[0])
        pace = Pace(self._policy.calls_per_s)
        for intent in intents:
            verdict = await self._look(account, intent, pace)
            await self._apply(intent, verdict)

    async def _account(self, intent: DmSend) -> _Account | None:
        async with self._uow() as work:
            row = await work.get(SocialAccount, intent.account_id)
        if row is None:
            return None
        usable = row.status == "connected" and row.access_token_encrypted is not None
        token = self._tokens.decrypt(row.access_token_encrypted or b"") if usable else None
        return _Account(row.external_id, token)

    async def _look(self, account: _Account | None, intent: DmSend, pace: Pace) -> Verdict:
        if account is None or account.token is None:
            return CannotTell("the account is not connected: Instagram cannot be asked")
        try:
            return await look_up(self._client, account.external_id, account.token, intent, pace)
        except MetaError as exc:
            return CannotTell(f"Instagram did not answer ({exc.error_class}: {exc.message})")

    async def _apply(self, looked: DmSend, verdict: Verdict) -> None:
        async with self._uow() as work:
            session = work.session
            intent = await session.get(
                DmSend, (looked.lead_id, looked.route), with_for_update=True, populate_existing=True
            )
            if intent is None or intent.state != "unknown":
                return  # its echo settled it meanwhile
            correlation = f"reconcile:{intent.lead_id}"
            if isinstance(verdict, Sent):
                if await _mid_taken(session, intent, verdict.mid):
                    verdict = CannotTell("the message found is another send's")
                else:
                    await settle_sent(
                        session, intent, verdict.mid, CONVERSATION_SENT_REASON, correlation
                    )
            elif isinstance(verdict, NotSent):
                await settle_not_sent(session, intent, correlation)
            if isinstance(verdict, CannotTell):
                intent.reconcile_checks += 1
                intent.updated_at = utcnow()
                final = intent.reconcile_checks >= self._policy.max_checks
                log.info(
                    "unknown DM not reconciled" + ("; stays unknown" if final else ""),
                    lead_id=str(intent.lead_id),
                    why=verdict.why,
                    checks=intent.reconcile_checks,
                )


async def _mid_taken(session: AsyncSession, intent: DmSend, mid: str) -> bool:
    other = await session.scalar(
        select(DmSend.lead_id)
        .where(DmSend.account_id == intent.account_id, DmSend.provider_message_id == mid)
        .limit(1)
    )
    return other is not None


async def look_up(
    client: InstagramConversations, account_ig_id: str, token: str, intent: DmSend, pace: Pace
) -> Verdict:
    """What Instagram's conversation says about this intent (MetaError when it fails)."""
    igsid = intent.recipient_igsid or ""
    await pace.wait()
    conversation = await client.conversation_with(account_ig_id, token, igsid)
    if conversation is None:
        return CannotTell("Instagram has no conversation with this person")
    await pace.wait()
    listed = await client.messages(conversation, token)
    since = intent.created_at - CLOCK_SKEW
    for m in _candidates(listed, since):
        await pace.wait()
        detail = await client.message(m.message_id, token)
        ours = detail.from_id == account_ig_id and igsid in detail.to_ids
        if ours and text_digest(detail.text) == intent.text_sha256:
            return Sent(detail.message_id)
    if len(listed) >= LISTED and min(m.created_at for m in listed) >= since:
        return CannotTell("more messages since the send than Instagram lists")
    return NotSent()


def _candidates(listed: Sequence[ListedMessage], since: datetime) -> list[ListedMessage]:
    """The listed messages created since the intent, oldest first (ours is likely early)."""
    return sorted((m for m in listed if m.created_at >= since), key=lambda m: m.created_at)
