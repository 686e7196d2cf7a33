"""Which Instagram tokens are in trouble: expired while still `connected`, or expiring soon
without having been refreshed. One definition for the token refresher, the admin overview
and the ops collector's gauge (and so for the alert on it).

A token whose expiry was never recorded (accounts seeded by `make run`, connections that
predate recording it) is taken to end 60 days after it was issued or last refreshed: a
long-lived token lives 60 days and cannot be refreshed after that (platform facts §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.accounts.lifecycle import CONNECTED
from shared.contracts.lifecycle import Provider
from shared.db.models import SocialAccount

TOKEN_LIFETIME = timedelta(days=60)  # a long-lived token, and each refreshed one (§2)


def issued_at() -> ColumnElement[datetime]:
    """When the stored token was issued: its last refresh, else the account's creation."""
    return func.coalesce(SocialAccount.token_refreshed_at, SocialAccount.created_at)


def effective_expiry() -> ColumnElement[datetime]:
    """The recorded expiry, else the latest a token of that age can live."""
    return func.coalesce(SocialAccount.token_expires_at, issued_at() + TOKEN_LIFETIME)


def live_instagram_tokens() -> ColumnElement[bool]:
    """Connected Instagram accounts holding a token (the ones the refresher looks after)."""
    return (
        (SocialAccount.provider == Provider.INSTAGRAM)
        & (SocialAccount.status == CONNECTED)
        & SocialAccount.access_token_encrypted.is_not(None)
    )


@dataclass(frozen=True)
class UnrefreshedToken:
    account_id: UUID
    creator_id: UUID
    username: str | None
    expires_at: datetime
    expiry_known: bool
    last_failure_at: datetime | None
    last_error: str | None  # technical: for the admin only


async def unrefreshed_tokens(
    session: AsyncSession, now: datetime, within: timedelta, limit: int = 50
) -> list[UnrefreshedToken]:
    """Connected Instagram tokens that expire (or expired) within `within` from now, soonest
    first: the refresher renews tokens well before that, so these could not be refreshed."""
    expiry = effective_expiry()
    rows = await session.execute(
        select(SocialAccount, expiry)
        .where(live_instagram_tokens(), expiry <= now + within)
        .order_by(expiry)
        .limit(limit)
    )
    return [
        UnrefreshedToken(
            account_id=account.id,
            creator_id=account.creator_id,
            username=account.username,
            expires_at=expires_at,
            expiry_known=account.token_expires_at is not None,
            last_failure_at=account.token_refresh_failed_at,
            last_error=account.token_refresh_error,
        )
        for account, expires_at in rows.all()
    ]


async def count_unrefreshed(session: AsyncSession, now: datetime, within: timedelta) -> int:
    expiry = effective_expiry()
    count = await session.scalar(
        select(func.count()).where(live_instagram_tokens(), expiry <= now + within)
    )
    return int(count or 0)
