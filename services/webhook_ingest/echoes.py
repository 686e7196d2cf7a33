"""Instagram's echoes of a batch, matched to AutoDM's sends with one statement for all.

Every DM AutoDM sends comes back as an echo, so echoes are as many as DMs. Each one either
settles an ambiguous send (shared/delivery/ambiguous_sends.py), is plainly AutoDM's own
(the usual case: nothing to do), or was typed in the app: a takeover
(shared/delivery/takeover.py). Per echo that used to be two or three statements; here one
statement answers, for every echo of the batch, "the oldest unsettled intent with this
account, recipient and text" and "does a send of ours explain it" (the very predicates of
the per-echo path), and a second one locks the unsettled intents found, only when there
are any (an ambiguous send, or an echo that overtook the sender's commit).

What a batch cannot settle exactly (an intent settled between the two statements, or two
echoes of one batch naming the same intent) takes the per-echo path (inbound.py), which
is the reference behaviour, so a batch never decides otherwise than echo by echo would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhook_ingest import human_turns
from services.webhook_ingest.mapping import Echo
from shared.contracts.events import InstagramWebhookReceived
from shared.db.models import DmSend
from shared.delivery.ambiguous_sends import RECONCILED_REASON, UNSETTLED, settle_sent, text_digest
from shared.delivery.takeover import OWN_ECHO_WINDOW

IntentKey = tuple[UUID, str]  # dm_sends' primary key: (lead_id, route)


@dataclass(frozen=True)
class EchoMatch:
    # The oldest unsettled intent with this account, recipient and text, unless a send
    # already has the echo's message id (then it is that send's echo, not this one's).
    intent: IntentKey | None
    own: bool  # a send of AutoDM's explains it (takeover.is_own_echo's predicate)


@dataclass
class EchoMatches:
    """What one statement found for each echo of a batch (by event id); `locked` holds the
    unsettled intents it named, locked FOR UPDATE as the per-echo path does."""

    by_event: dict[UUID, EchoMatch] = field(default_factory=dict)
    locked: dict[IntentKey, DmSend] = field(default_factory=dict)
    used: set[IntentKey] = field(default_factory=set)


async def settle(
    session: AsyncSession, event: InstagramWebhookReceived, a: Echo, matches: EchoMatches
) -> None:
    """Act on one echo with what the batch's statement found for it."""
    match = matches.by_event.get(event.id)
    if match is None or (match.intent is not None and match.intent in matches.used):
        await settle_one(session, event, a)  # not matched in this batch: the exact path
        return
    if match.intent is not None:
        matches.used.add(match.intent)
        intent = matches.locked.get(match.intent)
        if intent is None:  # settled between the look-up and the lock
            await settle_one(session, event, a)
            return
        await settle_sent(
            session, intent, a.mid, RECONCILED_REASON, event.correlation_id, event.occurred_at
        )
        return
    if not match.own:
        await human_turns.creator_wrote(session, event, a)


async def settle_one(session: AsyncSession, event: InstagramWebhookReceived, a: Echo) -> None:
    """The per-echo path (the reference behaviour): an echo whose message id a send
    already has is that send's; else the oldest unsettled intent with this account,
    recipient and text is settled; if none, an echo AutoDM did not send is a takeover."""
    if await _has_mid(session, event.payload.account_id, a.mid):
        return  # that send's own echo: it settles no other send, and is no takeover
    intent = await session.scalar(
        select(DmSend)
        .where(
            DmSend.account_id == event.payload.account_id,
            DmSend.recipient_igsid == a.igsid,
            DmSend.text_sha256 == text_digest(a.text),
            DmSend.state.in_(UNSETTLED),
        )
        .order_by(DmSend.updated_at)
        .limit(1)
        .with_for_update()
    )
    if intent is None:
        # Settled already (the usual case), or a message typed in the app: a takeover.
        await human_turns.on_echo(session, event, a)
        return
    await settle_sent(
        session, intent, a.mid, RECONCILED_REASON, event.correlation_id, event.occurred_at
    )


# Built once: a statement constructed per batch cost more CPU than running it (its LATERAL
# column proxies). The echoes come as arrays (one prepared statement whatever the batch's
# size); the two look-ups are the per-echo path's predicates (settle_one, is_own_echo).
# The unsettled states are literals (UNSETTLED's; a unit test checks they agree), not a
# parameter, so that ix_dm_sends_unreconciled (partial on them) serves a generic plan too.
MATCH_ECHOES = text(
    """
SELECT echo.i, unsettled.lead_id, unsettled.route, own.by_mid
FROM unnest(
    CAST(:i AS integer[]), CAST(:account_id AS uuid[]), CAST(:igsid AS varchar[]),
    CAST(:mid AS varchar[]), CAST(:digest AS varchar[]), CAST(:since AS timestamptz[])
) AS echo(i, account_id, igsid, mid, digest, since)
LEFT JOIN LATERAL (
    SELECT s.lead_id, s.route FROM dm_sends s
    WHERE s.account_id = echo.account_id AND s.recipient_igsid = echo.igsid
      AND s.text_sha256 = echo.digest AND s.state IN ('sending', 'unknown')
    ORDER BY s.updated_at LIMIT 1
) AS unsettled ON true
LEFT JOIN LATERAL (
    SELECT s.provider_message_id IS NOT DISTINCT FROM echo.mid AS by_mid FROM dm_sends s
    WHERE s.account_id = echo.account_id
      AND (s.provider_message_id = echo.mid
           OR (s.text_sha256 = echo.digest AND s.updated_at >= echo.since
               -- A private reply to a comment not seen yet names no recipient.
               AND (s.recipient_igsid = echo.igsid OR s.recipient_igsid IS NULL)))
    ORDER BY by_mid DESC
    LIMIT 1
) AS own ON true
"""
)


async def match_echoes(
    session: AsyncSession, echoes: Sequence[tuple[InstagramWebhookReceived, Echo]]
) -> EchoMatches:
    """One statement for all the batch's echoes, and one lock for their unsettled intents."""
    if not echoes:
        return EchoMatches()
    rows = await session.execute(MATCH_ECHOES, _keys(echoes))
    matches = EchoMatches()
    for i, lead_id, route, by_mid in rows:
        own = by_mid is not None
        # An echo whose message id a send already has is that send's: it settles no other.
        intent = (lead_id, route) if lead_id is not None and not by_mid else None
        matches.by_event[echoes[i][0].id] = EchoMatch(intent, own)
    matches.locked = await _lock(session, {m.intent for m in matches.by_event.values() if m.intent})
    return matches


def _keys(echoes: Sequence[tuple[InstagramWebhookReceived, Echo]]) -> dict[str, list[Any]]:
    """The batch's echoes as MATCH_ECHOES' arrays (one element each)."""
    keys: dict[str, list[Any]] = {
        name: [] for name in ("i", "account_id", "igsid", "mid", "digest", "since")
    }
    for i, (event, a) in enumerate(echoes):
        at = a.at or event.occurred_at
        keys["i"].append(i)
        keys["account_id"].append(event.payload.account_id)
        keys["igsid"].append(a.igsid)
        keys["mid"].append(a.mid)
        keys["digest"].append(text_digest(a.text))
        keys["since"].append(at - OWN_ECHO_WINDOW)
    return keys


async def _has_mid(session: AsyncSession, account_id: UUID, mid: str) -> bool:
    found = await session.scalar(
        select(DmSend.lead_id)
        .where(DmSend.account_id == account_id, DmSend.provider_message_id == mid)
        .limit(1)
    )
    return found is not None


async def _lock(session: AsyncSession, keys: set[IntentKey]) -> dict[IntentKey, DmSend]:
    """The unsettled intents, locked in key order (one lock order: no deadlock between
    batches); one settled meanwhile is not returned (its echo takes the exact path)."""
    if not keys:
        return {}
    intents = await session.scalars(
        select(DmSend)
        .where(tuple_(DmSend.lead_id, DmSend.route).in_(sorted(keys)), DmSend.state.in_(UNSETTLED))
        .order_by(DmSend.lead_id, DmSend.route)
        .with_for_update()
    )
    return {(intent.lead_id, intent.route): intent for intent in intents}
