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
from uuid import UUID

from sqlalchemy import DateTime, Integer, String, Uuid, and_, column, or_, select, true, tuple_
from sqlalchemy import values as values_of
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import Values

from services.webhook_ingest import human_turns
from services.webhook_ingest.mapping import Echo
from shared.contracts.events import InstagramWebhookReceived
from shared.db.models import DmSend
from shared.delivery.ambiguous_sends import RECONCILED_REASON, UNSETTLED, settle_sent, text_digest
from shared.delivery.takeover import OWN_ECHO_WINDOW

IntentKey = tuple[UUID, str]  # dm_sends' primary key: (lead_id, route)


@dataclass(frozen=True)
class EchoMatch:
    intent: IntentKey | None  # the oldest unsettled intent this echo can settle
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
    """The per-echo path (the reference behaviour): the oldest unsettled intent with this
    account, recipient and text is settled; if none, an echo AutoDM did not send is a
    takeover."""
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


async def match_echoes(
    session: AsyncSession, echoes: Sequence[tuple[InstagramWebhookReceived, Echo]]
) -> EchoMatches:
    """One statement for all the batch's echoes, and one lock for their unsettled intents."""
    if not echoes:
        return EchoMatches()
    keys = _keys(echoes)
    unsettled = (
        select(DmSend.lead_id, DmSend.route)
        .where(
            DmSend.account_id == keys.c.account_id,
            DmSend.recipient_igsid == keys.c.igsid,
            DmSend.text_sha256 == keys.c.digest,
            DmSend.state.in_(UNSETTLED),
        )
        .order_by(DmSend.updated_at)
        .limit(1)
        .lateral("unsettled")
    )
    own = (
        select(DmSend.lead_id.label("own_lead"))
        .where(
            DmSend.account_id == keys.c.account_id,
            or_(
                DmSend.provider_message_id == keys.c.mid,
                and_(
                    DmSend.text_sha256 == keys.c.digest,
                    DmSend.updated_at >= keys.c.since,
                    # A private reply to a comment not seen yet names no recipient.
                    or_(DmSend.recipient_igsid == keys.c.igsid, DmSend.recipient_igsid.is_(None)),
                ),
            ),
        )
        .limit(1)
        .lateral("own")
    )
    rows = await session.execute(
        select(keys.c.i, unsettled.c.lead_id, unsettled.c.route, own.c.own_lead).select_from(
            keys.outerjoin(unsettled, true()).outerjoin(own, true())
        )
    )
    matches = EchoMatches()
    for i, lead_id, route, own_lead in rows:
        intent = (lead_id, route) if lead_id is not None else None
        matches.by_event[echoes[i][0].id] = EchoMatch(intent, own_lead is not None)
    matches.locked = await _lock(session, {m.intent for m in matches.by_event.values() if m.intent})
    return matches


def _keys(echoes: Sequence[tuple[InstagramWebhookReceived, Echo]]) -> Values:
    """The batch's echoes as a VALUES list the lateral look-ups join (one row each)."""
    rows = []
    for i, (event, a) in enumerate(echoes):
        at = a.at or event.occurred_at
        rows.append(
            (i, event.payload.account_id, a.igsid, a.mid, text_digest(a.text), at - OWN_ECHO_WINDOW)
        )
    return values_of(
        column("i", Integer),
        column("account_id", Uuid),
        column("igsid", String),
        column("mid", String),
        column("digest", String),
        column("since", DateTime(timezone=True)),
        name="echo",
    ).data(rows)


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
