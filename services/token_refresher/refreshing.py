"""Refresh long-lived Instagram tokens before they expire (platform facts §2).

Meta refreshes a token only if it is at least 24 h old and not expired; a refreshed token
lives 60 days. A round first ends the tokens already past their recorded expiry (nothing can
refresh them: the account turns `reconnect_required` at once and its waiting DMs end
`skipped`, saying why), then refreshes the due ones: old enough and expiring within the
window, or with no recorded expiry at all (accounts seeded by `make run`, older
connections) as soon as they are old enough; the refresh answer's `expires_in` records it.
Due accounts are claimed in a short transaction with `FOR UPDATE SKIP LOCKED` plus a lease,
so replicas never refresh the same token at once and no transaction stays open across the
call to Meta: claim -> call -> write. The write is fenced by the lease: an account
disconnected meanwhile (lease cleared) is not brought back to life by a late refresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from sqlalchemy import ColumnElement, Select, Update, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.accounts.lifecycle import require_reconnect
from shared.accounts.token_health import effective_expiry, issued_at, live_instagram_tokens
from shared.contracts.events import utcnow
from shared.db.models import SocialAccount
from shared.delivery.reasons import ACCESS_EXPIRED, ACCESS_REFUSED
from shared.messaging.unit_of_work import UnitOfWork, UnitsOfWork
from shared.platform.crypto import TokenCipher
from shared.platform.logs import get_logger
from shared.providers.instagram_auth import InstagramAuthClient
from shared.providers.meta_errors import ErrorClass, MetaError

log = get_logger(__name__)

MIN_TOKEN_AGE = timedelta(hours=24)  # Meta refuses younger tokens (with a 190!)


@dataclass(frozen=True)
class RefreshPolicy:
    window: timedelta
    lease: timedelta
    batch_size: int = 50


@dataclass(frozen=True)
class RefresherDeps:
    uow: UnitsOfWork  # a commit that wrote events wakes the relay
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


def _unleased(now: datetime) -> ColumnElement[bool]:
    return (SocialAccount.token_refresh_lease_until.is_(None)) | (
        SocialAccount.token_refresh_lease_until < now
    )


def _claimable(now: datetime) -> Select[SocialAccount]:
    """Connected, with a live (or never dated) token at least 24 h old, unclaimed."""
    return select(SocialAccount).where(
        live_instagram_tokens(),
        SocialAccount.token_expires_at.is_(None) | (SocialAccount.token_expires_at > now),
        issued_at() <= now - MIN_TOKEN_AGE,
        _unleased(now),
    )


async def claim_due(session: AsyncSession, policy: RefreshPolicy, now: datetime) -> list[Claim]:
    """Expiring within the window, or with an unknown expiry (learned by refreshing)."""
    stmt = (
        _claimable(now)
        .where(
            SocialAccount.token_expires_at.is_(None)
            | (SocialAccount.token_expires_at <= now + policy.window)
        )
        .order_by(effective_expiry())
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
    async with deps.uow() as uow:
        written = await uow.session.execute(
            _fenced(claim).values(
                access_token_encrypted=deps.cipher.encrypt(issued.access_token),
                token_expires_at=expires_at,
                token_refreshed_at=now,
                token_refresh_lease_until=None,
                token_refresh_failed_at=None,
                token_refresh_error=None,
                updated_at=now,
            )
        )
        if written.rowcount == 0:  # type: ignore[attr-defined]
            log.warning("refresh result dropped: lease lost", account_id=str(claim.account_id))
            return False
    log.info("token refreshed", account_id=str(claim.account_id), expires_at=str(expires_at))
    return True


async def _record_failure(deps: RefresherDeps, claim: Claim, error: MetaError) -> None:
    """190: the token is dead, the creator must reconnect (waiting DMs end `skipped`).
    Anything else: the lease runs out and a later round tries again (the lease is the
    backoff). Either way the admin sees the last failure."""
    reconnect = error.error_class == ErrorClass.TOKEN
    now = utcnow()
    correlation_id = str(uuid4())
    async with deps.uow() as uow:
        session = uow.session
        account = await session.scalar(
            select(SocialAccount)
            .where(
                SocialAccount.id == claim.account_id,
                SocialAccount.token_refresh_lease_until == claim.lease_until,
            )
            .with_for_update()
        )
        if account is not None:  # else the lease was lost (disconnected meanwhile)
            account.token_refresh_failed_at = now
            account.token_refresh_error = f"{error.error_class} {error.code}: {error.message}"[:500]
            if reconnect:
                await require_reconnect(
                    session, account, reason=ACCESS_REFUSED, correlation_id=correlation_id, now=now
                )
    log.warning(
        "token refresh failed",
        account_id=str(claim.account_id),
        error_class=error.error_class,
        code=error.code,
        reconnect_required=reconnect,
    )


async def end_expired(uow: UnitOfWork, now: datetime, batch_size: int) -> int:
    """Accounts still `connected` with a token past its recorded expiry: nothing can refresh
    it, so the creator must reconnect now, not when a DM fails on 190. Returns how many."""
    session = uow.session
    accounts = (
        await session.scalars(
            select(SocialAccount)
            .where(
                live_instagram_tokens(),
                SocialAccount.token_expires_at <= now,
                _unleased(now),
            )
            .order_by(SocialAccount.token_expires_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for account in accounts:
        correlation_id = str(uuid4())
        expired = account.token_expires_at
        account.token_refresh_failed_at = now
        account.token_refresh_error = f"token expired at {expired:%Y-%m-%d %H:%M} UTC unrefreshed"
        skipped = await require_reconnect(
            session, account, reason=ACCESS_EXPIRED, correlation_id=correlation_id, now=now
        )
        log.warning("token expired unrefreshed", account_id=str(account.id), skipped_dms=skipped)
    return len(accounts)


def _fenced(claim: Claim) -> Update:
    return update(SocialAccount).where(
        SocialAccount.id == claim.account_id,
        SocialAccount.token_refresh_lease_until == claim.lease_until,
    )


async def refresh_due(deps: RefresherDeps) -> int:
    """One round: end expired tokens, then claim and refresh due accounts batch by batch;
    returns how many were refreshed."""
    batch = deps.policy.batch_size
    while True:
        async with deps.uow() as uow:
            if await end_expired(uow, utcnow(), batch) < batch:
                break
    refreshed = 0
    while True:
        async with deps.uow() as uow:
            claims = await claim_due(uow.session, deps.policy, utcnow())
        for claim in claims:
            refreshed += await refresh_claimed(deps, claim)
        if len(claims) < batch:
            return refreshed


async def refresh_now(deps: RefresherDeps, account_id: UUID) -> bool | None:
    """Refresh one account now; None if it is not refreshable (young, expired, claimed)."""
    async with deps.uow() as uow:
        claim = await claim_one(uow.session, account_id, deps.policy, utcnow())
    if claim is None:
        return None
    return await refresh_claimed(deps, claim)
