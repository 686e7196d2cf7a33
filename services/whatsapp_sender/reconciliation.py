"""Reconciling ambiguous WhatsApp sends with the status webhooks of the message.

A send whose request left but whose answer never came (a timeout, a broken connection)
may or may not have reached Meta: it is parked as `unknown` and never resent. Every send
carries `biz_opaque_callback_data` naming its send intent (`SendRef`), and Meta echoes it
in every status webhook of that message (platform facts §4e). A status for a wamid we do
not know that names one of our unsettled intents proves the message was accepted, and
carries its wamid:

- the intent is already `unknown`: the status settles it here (statuses.py), and moves
  the DM to what the status says (sent, delivered, read, or failed);
- the intent is still `sending`: the sender owns the outcome. The status waits in the
  backlog, findable by its callback data; a timeout then settles from it
  (sending.py `_park_unknown`), a late answer records the send as usual.

Settled means the intent is `sent` (Meta accepted the request) and the message is known
by its wamid, so later statuses and replies apply as for any send. A settled send is never
followed by another message, not even by the template after a 131047 failure: the rule is
"never sends twice", and a reconciled send is the one send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Self
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.events import utcnow
from shared.contracts.lifecycle import Route
from shared.db.models import DmSend, Lead, WhatsAppMessage, WhatsAppStatusBacklog
from shared.delivery.intents import IntentState

PREFIX = "autodm-send"

RECONCILED_REASON = "no answer from WhatsApp, but its status webhook shows it was sent"
RECONCILED_FAILED_REASON = "no answer from WhatsApp; its status webhook says it failed"


def intent_key(lead_id: UUID, route: Route, attempt: int) -> str:
    """One attempt of one send intent (lead, route): what a parked send looks for."""
    return f"{lead_id}:{route}:{attempt}"


@dataclass(frozen=True)
class SendRef:
    """Which send a message is: the intent's key (lead, route), the attempt, and the route
    it really went by (a `wa_text` intent may go out as a template)."""

    lead_id: UUID
    route: Route
    attempt: int
    sent_as: Route

    @property
    def key(self) -> str:
        return intent_key(self.lead_id, self.route, self.attempt)

    def callback_data(self) -> str:
        return f"{PREFIX}:{self.key}:{self.sent_as}"

    @classmethod
    def parse(cls, data: object) -> Self | None:
        """None for anything that is not ours (another app on the number, no data)."""
        if not isinstance(data, str):
            return None
        parts = data.split(":")
        if len(parts) != 5 or parts[0] != PREFIX:
            return None
        try:
            return cls(UUID(parts[1]), Route(parts[2]), int(parts[3]), Route(parts[4]))
        except ValueError:
            return None


@dataclass(frozen=True)
class Sighting:
    """Where and when Meta saw the message: what the message row needs besides the intent."""

    wamid: str
    account_id: UUID
    wa_id: str
    at: datetime


@dataclass(frozen=True)
class Backlogged:
    """A status of a send that came while the send was still `sending`."""

    ref: SendRef
    seen: Sighting


async def locked_intent(
    session: AsyncSession, lead_id: UUID, route: Route, attempt: int, state: IntentState
) -> DmSend | None:
    """The send intent, locked, if it is in `state` and at that attempt."""
    intent = await session.get(DmSend, (lead_id, route), with_for_update=True)
    if intent is None or intent.state != state or intent.attempt != attempt:
        return None
    return intent


async def settle(
    session: AsyncSession, intent: DmSend, ref: SendRef, seen: Sighting
) -> WhatsAppMessage | None:
    """Record the send as accepted under its wamid (the caller holds the wamid's lock)."""
    lead = await session.get(Lead, intent.lead_id)
    if lead is None:
        return None
    intent.state, intent.provider_message_id = IntentState.SENT, seen.wamid
    intent.updated_at = utcnow()
    message = WhatsAppMessage(
        wamid=seen.wamid,
        account_id=seen.account_id,
        lead_id=intent.lead_id,
        creator_id=lead.creator_id,
        route=ref.sent_as,
        attempt=intent.attempt,
        wa_id=seen.wa_id[:160],
        reconciled=True,
        # When Meta saw it, not when we learned it: replies written since then count.
        created_at=seen.at,
    )
    session.add(message)
    await session.flush()
    return message


async def backlogged(session: AsyncSession, key: str) -> Backlogged | None:
    """The earliest status that came for this intent's attempt while it was `sending`."""
    row = await session.scalar(
        select(WhatsAppStatusBacklog)
        .where(WhatsAppStatusBacklog.send_ref == key)
        .order_by(WhatsAppStatusBacklog.received_at)
        .limit(1)
    )
    ref = SendRef.parse(row.item.get("biz_opaque_callback_data")) if row else None
    if row is None or ref is None or row.account_id is None:
        return None
    # The phone, or the BSUID alone of a username user (the contact's key if it is one).
    wa_id = str(row.item.get("recipient_id") or row.item.get("recipient_user_id") or "")
    return Backlogged(ref, Sighting(row.wamid, row.account_id, wa_id, row.received_at))
