"""An Instagram account leaving AutoDM: by the creator (API), by Meta's deauthorize or
data-deletion callbacks (webhook_ingest). One transaction: the token is gone, the account is
marked (with when and why, for the creator's page), and every DM still waiting on it ends
`skipped` with the reason (dm.status events in the outbox, so the projection records them
exactly when this commits). A token that expired (token_refresher) ends its waiting DMs the
same way, but the account stays, `reconnect_required`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.events import DmStatusChanged, DmStatusPayload
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.topics import DM_STATUS
from shared.db.models import InstagramComment, InstagramContact, Lead, SocialAccount
from shared.messaging.outbox import add_to_outbox


class AccountState(StrEnum):
    """`social_accounts.status`, stored as these strings."""

    CONNECTED = "connected"
    RECONNECT_REQUIRED = "reconnect_required"  # the token is dead: the creator reconnects
    DISCONNECTED = "disconnected"


CONNECTED = AccountState.CONNECTED
RECONNECT_REQUIRED = AccountState.RECONNECT_REQUIRED
DISCONNECTED = AccountState.DISCONNECTED


@dataclass(frozen=True)
class Disconnected:
    """What a disconnect did (the API's answer says it)."""

    account_id: UUID
    skipped_dms: int


# DMs that have not reached Instagram yet; `sending` ones are the sender's: it finds the
# account disconnected and skips them itself.
PENDING_STATUSES = (DmStatus.QUEUED, DmStatus.AWAITING_CONTACT)


async def disconnect_account(
    session: AsyncSession,
    account: SocialAccount,
    *,
    reason: str,
    correlation_id: str,
    now: datetime,
    delete_data: bool = False,
) -> Disconnected:
    """Forget the token, mark the account disconnected, end its pending DMs `skipped`."""
    account.access_token_encrypted = None
    account.token_expires_at = None
    account.token_refresh_lease_until = None
    account.status = DISCONNECTED
    account.updated_at = now
    account.disconnected_at = now
    account.disconnect_reason = reason[:200]
    skipped = await _skip_pending_dms(session, account, reason, correlation_id)
    if delete_data:
        await session.execute(
            delete(InstagramContact).where(InstagramContact.account_id == account.id)
        )
        await session.execute(
            delete(InstagramComment).where(InstagramComment.account_id == account.id)
        )
    return Disconnected(account.id, skipped)


async def require_reconnect(
    session: AsyncSession,
    account: SocialAccount,
    *,
    reason: str,
    correlation_id: str,
    now: datetime,
) -> int:
    """The token is dead but the account stays: `reconnect_required`, its pending DMs end
    `skipped` with the reason (a retry is allowed once it is reconnected). Returns how many."""
    account.status = RECONNECT_REQUIRED
    account.token_refresh_lease_until = None
    account.updated_at = now
    return await _skip_pending_dms(session, account, reason, correlation_id)


async def _skip_pending_dms(
    session: AsyncSession, account: SocialAccount, reason: str, correlation_id: str
) -> int:
    leads = (
        await session.scalars(
            select(Lead)
            .where(Lead.dm_account_id == account.id, Lead.dm_status.in_(PENDING_STATUSES))
            .with_for_update()
        )
    ).all()
    for lead in leads:
        event = DmStatusChanged(
            correlation_id=correlation_id,
            creator_id=lead.creator_id,
            payload=DmStatusPayload(
                lead_id=lead.id,
                status=DmStatus.SKIPPED,
                attempt=lead.dm_attempt,
                route=Route(lead.dm_route) if lead.dm_route else None,
                provider=Provider.INSTAGRAM,
                reason=reason,
            ),
        )
        add_to_outbox(session, DM_STATUS, str(lead.id), event)
    return len(leads)
