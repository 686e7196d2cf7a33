"""WhatsApp's side of opt-out (shared/delivery/suppression.py): a user who writes a stop word to the
creator's number, or whom a send fails for with 131050 (they stopped the business's
marketing messages), is suppressed for the creator; a start word lifts it. The number is
matched through `suppression.whatsapp_key` only, so another kind of WhatsApp identity
plugs in there."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from shared.delivery import suppression
from shared.delivery.suppression import Identities
from shared.platform.logs import get_logger

log = get_logger(__name__)

STOPPED_MARKETING = 131050
NOTE_131050 = "WhatsApp error 131050: the person stopped marketing messages from this business"


def identities(wa_id: str) -> Identities:
    return Identities(whatsapp=suppression.whatsapp_key(wa_id))


async def opted_out_by_whatsapp(
    session: AsyncSession, creator_id: UUID, wa_id: str, seed: UUID | str
) -> None:
    """A send to `wa_id` failed with 131050."""
    ids = identities(wa_id)
    if not ids:
        return
    log.info("whatsapp 131050: contact suppressed", creator_id=str(creator_id))
    await suppression.opt_out(
        session,
        creator_id,
        ids,
        source=suppression.SOURCE_WHATSAPP_131050,
        who="whatsapp",
        note=NOTE_131050,
        seed=f"131050:{seed}",
        correlation_id=f"opt-out:{seed}",
    )


def stopped_marketing(item: dict[str, Any]) -> bool:
    """A status item failing with 131050."""
    errors = item.get("errors") or []
    return any(isinstance(e, dict) and e.get("code") == STOPPED_MARKETING for e in errors)


async def on_inbound(
    session: AsyncSession, creator_id: UUID, wa_id: str, text: str, seed: UUID
) -> bool:
    """A stop word suppresses, a start word lifts; True if the message was one of them."""
    ids = identities(wa_id)
    if not ids or not text:
        return False
    if suppression.is_start(text):
        lifted = await suppression.lift(
            session, creator_id, await suppression.widen(session, creator_id, ids)
        )
        log.info("whatsapp start: suppression lifted", lifted=lifted)
        return True
    if not suppression.is_stop(text, await suppression.stop_words_of(session, creator_id)):
        return False
    await suppression.opt_out(
        session,
        creator_id,
        ids,
        source=suppression.SOURCE_WHATSAPP,
        who="the person (WhatsApp)",
        note=text[:100],
        seed=f"wa-stop:{seed}",
        correlation_id=f"opt-out:{seed}",
    )
    return True
