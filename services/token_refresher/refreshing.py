"""Refresh long-lived Instagram tokens before they expire (platform facts §2).

Meta refreshes a token only if it is at least 24 h old and not expired; a refreshed token
lives 60 days. Due accounts (old enough, expiring within the window) are claimed in a short
transaction with `FOR UPDATE SKIP LOCKED` plus a lease, so replicas never refresh the same
token at once and no transaction stays open across the call to Meta: claim -> call -> write.
The write is fenced by the lease: an account disconnected meanwhile (lease cleared) is not
brought back to life by a late refresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from sqlalchemy import Select, Update, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.account_lifecycle import CONNECTED, RECONNECT_REQUIRED
from shared.crypto import TokenCipher
from shared.db.models import SocialAccount
from shared.events import (
    TokenRefreshed,
    TokenRefreshedPayload,
    TokenRefreshFailed,
    TokenRefreshFailedPayload,
    utcnow,
)
from shared.lifecycle import Provider
from shared.logs import get_logger
from shared.outbox import add_to_outbox
from shared.providers.instagram_auth import InstagramAuthClient
from shared.providers.meta_errors import ErrorClass, MetaError
from shared.topics import ACCOUNTS_EVENTS

log = get_logger(__name__)

MIN_TOKEN_AGE = timedelta(hours=24)  # Meta refuses younger tokens (with a 190!)


@dataclass(frozen=True)
class RefreshPolicy:
    window: timedelta
    lease: timedelta
    batch_size: int = 50


@dataclass(frozen=True)
class RefresherDeps:
    sessions: async_sessionmaker[AsyncSession]
    client: InstagramAuthClient
    cipher: TokenCipher
    policy: RefreshPolicy


@dataclass(frozen=True)
class Claim:
    account_id: UUID
    creator_id: UUID
    token_encrypted: bytes
    lease_until: datetime

    def __repr__(self) -> str:
        return f"Claim(account_id={self.account_id})"  # never the (encrypted) token


def _claimable(now: datetime) -> Select[SocialAccount]:
    """Connected, with a live token at least 24 h old, and not claimed by anyone."""
    issued = func.coalesce(SocialAccount.token_refreshed_at, SocialAccount.created_at)
    return select(SocialAccount).where(
        SocialAccount.provider == Provider.INSTAGRAM,
        SocialAccount.status == CONNECTED,
        SocialAccount.access_token_encrypted.is_not(None),
        SocialAccount.token_expires_at > now,
        issued <= now - MIN_TOKEN_AGE,
        (SocialAccount.token_refresh_lease_until.is_(None))
        | (SocialAccount.token_refresh_lease_until < now),
    )


async def claim_due(session: AsyncSession, policy: RefreshPolicy, now: datetime) -> list[Claim]:
    stmt = (
        _claimable(now)
        .where(SocialAccount.token_expires_at <= now + policy.window)
        .order_by(SocialAccount.token_expires_at)
        .limit(policy.batch_size)
        .with_for_update(skip_locked=True)
    )
    return _lease((await session.scalars(stmt)).all(), now + policy.lease)


async def claim_one(
    session: AsyncSession, account_id: UUID, policy: RefreshPolicy, now: datetime
) -> Claim | None:
    """The operator's "refresh now": any window, but still Meta's 24 h rule."""
    stmt = _claimable(now).where(SocialAccount.id == account_id).with_for_update(skip_locked=True)
    claims = _lease((await session.scalars(stmt)).all(), now + policy.lease)
    return claims[0] if claims else None


def _lease(accounts: Sequence[SocialAccount], until: datetime) -> list[Claim]:
    claims = []
    for account in accounts:
        account.token_refresh_lease_until = until
        assert account.access_token_encrypted is not None
        claims.append(Claim(account.id, account.creator_id, account.access_token_encrypted, until))
    return claims


async def refresh_claimed(deps: RefresherDeps, claim: Claim) -> bool:
    """Call Meta for one claimed account and record the outcome; True if refreshed."""
    try:
        issued = await deps.client.refresh(deps.cipher.decrypt(claim.token_encrypted))
    except MetaError as error:
        await _record_failure(deps, claim, error)
        return False
    now = utcnow()
    expires_at = issued.expires_at(now) or now + timedelta(days=60)
    async with deps.sessions.begin() as session:
        written = await session.execute(
            _fenced(claim).values(
                access_token_encrypted=deps.cipher.encrypt(issued.access_token),
                token_expires_at=expires_at,
                token_refreshed_at=now,
                token_refresh_lease_until=None,
                updated_at=now,
            )
        )
        if written.rowcount == 0:  # type: ignore[attr-defined]
            log.warning("refresh result dropped: lease lost", account_id=str(claim.account_id))
            return False
        event = TokenRefreshed(
            correlation_id=str(uuid4()),
            creator_id=claim.creator_id,
            payload=TokenRefreshedPayload(
                account_id=claim.account_id, refreshed_at=now, expires_at=expires_at
            ),
        )
        add_to_outbox(session, ACCOUNTS_EVENTS, str(claim.account_id), event)
    log.info("token refreshed", account_id=str(claim.account_id), expires_at=str(expires_at))
    return True


async def _record_failure(deps: RefresherDeps, claim: Claim, error: MetaError) -> None:
    """190: the token is dead, the creator must reconnect. Anything else: the lease runs
    out and a later round tries again (the lease is the backoff)."""
    reconnect = error.error_class == ErrorClass.TOKEN
    async with deps.sessions.begin() as session:
        if reconnect:
            await session.execute(
                _fenced(claim).values(
                    status=RECONNECT_REQUIRED, token_refresh_lease_until=None, updated_at=utcnow()
                )
            )
        event = TokenRefreshFailed(
            correlation_id=str(uuid4()),
            creator_id=claim.creator_id,
            payload=TokenRefreshFailedPayload(
                account_id=claim.account_id,
                error_class=error.error_class,
                code=error.code,
                message=error.message[:500],
                reconnect_required=reconnect,
            ),
        )
        add_to_outbox(session, ACCOUNTS_EVENTS, str(claim.account_id), event)
    log.warning(
        "token refresh failed",
        account_id=str(claim.account_id),
        error_class=error.error_class,
        code=error.code,
        reconnect_required=reconnect,
    )


def _fenced(claim: Claim) -> Update:
    return update(SocialAccount).where(
        SocialAccount.id == claim.account_id,
        SocialAccount.token_refresh_lease_until == claim.lease_until,
    )


async def refresh_due(deps: RefresherDeps) -> int:
    """One round: claim and refresh due accounts batch by batch; returns how many refreshed."""
    refreshed = 0
    while True:
        async with deps.sessions.begin() as session:
            claims = await claim_due(session, deps.policy, utcnow())
        for claim in claims:
            refreshed += await refresh_claimed(deps, claim)
        if len(claims) < deps.policy.batch_size:
            return refreshed


async def refresh_now(deps: RefresherDeps, account_id: UUID) -> bool | None:
    """Refresh one account now; None if it is not refreshable (young, expired, claimed)."""
    async with deps.sessions.begin() as session:
        claim = await claim_one(session, account_id, deps.policy, utcnow())
    if claim is None:
        return None
    return await refresh_claimed(deps, claim)
