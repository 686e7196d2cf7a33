"""Connecting and disconnecting a creator's Instagram account (Business Login, §2, §3c).

Connect: code -> short-lived -> long-lived token -> /me -> subscribe the account to
webhooks -> store it (token encrypted). Reconnecting the same account replaces the token and
clears `reconnect_required`. Disconnect: unsubscribe, forget the token, end waiting DMs
`skipped` (shared.accounts.lifecycle). No token ever leaves this module but encrypted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.accounts.lifecycle import CONNECTED, DISCONNECTED, Disconnected, disconnect_account
from shared.contracts.lifecycle import Provider
from shared.db.models import SocialAccount
from shared.delivery.reasons import CREATOR_DISCONNECTED
from shared.messaging.unit_of_work import UnitOfWork, UnitsOfWork
from shared.platform.crypto import TokenCipher
from shared.platform.logs import get_logger
from shared.providers.instagram_auth import InstagramAuthClient, InstagramProfile, IssuedToken
from shared.providers.meta_errors import MetaError

log = get_logger(__name__)

DISCONNECT_REASON = CREATOR_DISCONNECTED


class AccountOwnedElsewhere(Exception):
    """The Instagram account is connected to another creator."""


@dataclass(frozen=True)
class ConnectionDeps:
    uow: UnitsOfWork
    client: InstagramAuthClient
    cipher: TokenCipher
    webhook_fields: str


async def connect(
    deps: ConnectionDeps, creator_id: UUID, code: str, correlation_id: str, now: datetime
) -> SocialAccount:
    # Meta appends "#_" to the redirect; it is not part of the code (§2).
    short_lived = await deps.client.exchange_code(code.removesuffix("#_"))
    token = await deps.client.long_lived(short_lived)
    profile = await deps.client.me(token.access_token)
    await deps.client.subscribe(profile.ig_user_id, token.access_token, deps.webhook_fields)
    async with deps.uow() as uow:
        return await _store(uow, deps.cipher, creator_id, profile, token, correlation_id, now)


async def _store(
    uow: UnitOfWork,
    cipher: TokenCipher,
    creator_id: UUID,
    profile: InstagramProfile,
    token: IssuedToken,
    correlation_id: str,
    now: datetime,
) -> SocialAccount:
    account = await uow.session.scalar(
        select(SocialAccount)
        .where(
            SocialAccount.provider == Provider.INSTAGRAM,
            SocialAccount.external_id == profile.ig_user_id,
        )
        .with_for_update()
    )
    if account is None:
        account = SocialAccount(
            id=uuid4(), creator_id=creator_id, provider=Provider.INSTAGRAM, created_at=now
        )
        account.external_id = profile.ig_user_id
        uow.add(account)
    elif account.creator_id != creator_id and account.status != DISCONNECTED:
        raise AccountOwnedElsewhere(profile.ig_user_id)
    account.creator_id = creator_id
    account.username = profile.username
    account.app_scoped_id = profile.app_scoped_id
    account.status = CONNECTED
    account.access_token_encrypted = cipher.encrypt(token.access_token)
    account.token_expires_at = token.expires_at(now)
    account.token_refreshed_at = now
    account.token_refresh_lease_until = None
    account.token_refresh_failed_at = None
    account.token_refresh_error = None
    account.updated_at = now
    await uow.flush()
    return account


async def disconnect(
    deps: ConnectionDeps, creator_id: UUID, correlation_id: str, now: datetime
) -> Disconnected | None:
    """None if the creator has no Instagram account to disconnect."""
    async with deps.uow() as uow:
        account = await _account_of(uow.session, creator_id)
    if account is None:
        return None
    if account.access_token_encrypted is not None:
        token = deps.cipher.decrypt(account.access_token_encrypted)
        try:
            await deps.client.unsubscribe(account.external_id, token)
        except MetaError as error:  # a dead token can't unsubscribe; disconnect anyway
            log.warning("unsubscribe failed", error_class=error.error_class, code=error.code)
    async with deps.uow() as uow:
        locked = await uow.get(SocialAccount, account.id, for_update=True)
        assert locked is not None
        return await disconnect_account(
            uow.session, locked, reason=DISCONNECT_REASON, correlation_id=correlation_id, now=now
        )


async def _account_of(session: AsyncSession, creator_id: UUID) -> SocialAccount | None:
    return await session.scalar(
        select(SocialAccount).where(
            SocialAccount.creator_id == creator_id,
            SocialAccount.provider == Provider.INSTAGRAM,
            SocialAccount.status != DISCONNECTED,
        )
    )
