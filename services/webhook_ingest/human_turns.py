"""Instagram messages that are a person's turn, not AutoDM's business as usual:

- the lead writes a stop word: suppressed for the creator (shared/delivery/suppression.py), their
  pending DMs end `skipped` (`opted_out`); a start word lifts it;
- the creator writes from the app (an echo of a message AutoDM did not send): the
  conversation is theirs for a while (shared/delivery/takeover.py), AutoDM's pending DMs to that
  person end `skipped` (`creator_replied`).

Both run in the webhook consumer's transaction (inbound.py), with its idempotency claim.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.webhook_ingest.mapping import Echo, Inbound
from shared.contracts.events import InstagramWebhookReceived
from shared.delivery import suppression, takeover
from shared.delivery.reasons import CREATOR_REPLIED
from shared.delivery.suppression import Identities
from shared.platform.logs import get_logger

log = get_logger(__name__)


async def on_message(session: AsyncSession, event: InstagramWebhookReceived, a: Inbound) -> None:
    """A stop word suppresses the writer, a start word lifts it."""
    if a.via != "message" or not a.text:
        return
    creator_id = event.creator_id
    ids = Identities(igsid=a.igsid)
    if suppression.is_start(a.text):
        widened = await suppression.widen(session, creator_id, ids)
        lifted = await suppression.lift(session, creator_id, widened)
        log.info("instagram start: suppression lifted", lifted=lifted)
        return
    if not suppression.is_stop(a.text, await suppression.stop_words_of(session, creator_id)):
        return
    log.info("instagram stop: contact suppressed", creator_id=str(creator_id))
    await suppression.opt_out(
        session,
        creator_id,
        ids,
        source=suppression.SOURCE_INSTAGRAM,
        who="the person (Instagram)",
        note=a.text[:100],
        seed=f"ig-stop:{event.id}",
        correlation_id=event.correlation_id,
    )


async def on_echo(session: AsyncSession, event: InstagramWebhookReceived, a: Echo) -> bool:
    """An echo AutoDM did not send is the creator writing: True if it was that."""
    at = a.at or event.occurred_at
    if await takeover.is_own_echo(session, event.payload.account_id, a.igsid, a.mid, a.text, at):
        return False
    await creator_wrote(session, event, a)
    return True


async def creator_wrote(session: AsyncSession, event: InstagramWebhookReceived, a: Echo) -> None:
    """An echo known not to be AutoDM's (on_echo, or a batch's look-up: echoes.py): the
    conversation is the creator's, AutoDM's pending DMs to that person end `skipped`."""
    account_id = event.payload.account_id
    at = a.at or event.occurred_at
    until = await takeover.take_over(session, event.creator_id, account_id, a.igsid, at, a.mid)
    log.info("the creator wrote from the app: AutoDM stays quiet", until=until.isoformat())
    await suppression.end_pending(
        session,
        event.creator_id,
        Identities(igsid=a.igsid),
        CREATOR_REPLIED,
        seed=f"takeover:{event.id}",
        correlation_id=event.correlation_id,
    )
