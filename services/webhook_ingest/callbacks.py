"""Meta's deauthorize and data-deletion callbacks (platform facts §3e).

Both name the Instagram user by the app-scoped id of the verified `signed_request`; that is
the creator's own account (GET /me `id`). Deauthorize disconnects it; data deletion also
deletes what AutoDM learned through it and answers with a status URL and a code.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from uuid import uuid4

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.account_lifecycle import DISCONNECTED, disconnect_account
from shared.db.models import DataDeletionRequest, SocialAccount
from shared.dm_reasons import DATA_DELETED, DEAUTHORIZED
from shared.lifecycle import Provider

# The creator's words (waiting DMs end `skipped` with them; the Instagram page reads them).
DELETION = DATA_DELETED


async def deauthorize(session: AsyncSession, user_id: str, now: datetime) -> int:
    """Disconnect the accounts of this app-scoped user; returns how many were connected."""
    accounts = await _accounts_of(session, user_id)
    live = [a for a in accounts if a.status != DISCONNECTED]
    for account in live:
        await disconnect_account(
            session, account, reason=DEAUTHORIZED, correlation_id=str(uuid4()), now=now
        )
    return len(live)


async def delete_user_data(session: AsyncSession, user_id: str, now: datetime) -> str:
    """Disconnect and delete the account's data now; returns the confirmation code."""
    accounts = await _accounts_of(session, user_id)
    for account in accounts:
        await disconnect_account(
            session,
            account,
            reason=DELETION,
            correlation_id=str(uuid4()),
            now=now,
            delete_data=True,
        )
        account.username = None
        account.app_scoped_id = None
    code = secrets.token_hex(10)  # alphanumeric, as Meta asks
    session.add(
        DataDeletionRequest(
            confirmation_code=code,
            app_scoped_user_id=user_id,
            account_id=accounts[0].id if accounts else None,
            status="completed",
            requested_at=now,
            completed_at=now,
        )
    )
    return code


async def deletion_status(session: AsyncSession, code: str) -> DataDeletionRequest | None:
    return await session.get(DataDeletionRequest, code)


async def _accounts_of(session: AsyncSession, user_id: str) -> list[SocialAccount]:
    rows = await session.scalars(
        select(SocialAccount)
        .where(
            SocialAccount.provider == Provider.INSTAGRAM,
            or_(SocialAccount.app_scoped_id == user_id, SocialAccount.external_id == user_id),
        )
        .with_for_update()
    )
    return list(rows.all())
