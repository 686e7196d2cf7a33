"""The OAuth `state` of Business Login (platform facts §2): signed, expiring, bound to the
creator who started the connection and to their browser (the digest of the secret in its
cookie: services/api/http/connect_binding.py), and single-use (the nonce is redeemed in the
database).

Format: `<creator id hex>.<nonce>.<expires unix>.<browser digest>.<hex HMAC-SHA256 of the
first four>`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import OAuthStateUse


class InvalidState(ValueError):
    """An OAuth `state` that is forged, expired or already used."""


@dataclass(frozen=True)
class OAuthState:
    creator_id: UUID
    nonce: str
    expires_at: int
    browser: str  # digest of the binding secret in the starting browser's cookie


def issue_state(key: bytes, creator_id: UUID, now: int, ttl_s: int, *, browser: str) -> str:
    if not browser or "." in browser:
        raise ValueError("a state needs the digest of its browser binding")
    body = f"{creator_id.hex}.{secrets.token_urlsafe(18)}.{now + ttl_s}.{browser}"
    return f"{body}.{_sign(key, body)}"


def verify_state(key: bytes, state: str, now: int) -> OAuthState:
    body, _, signature = state.rpartition(".")
    if not body or not hmac.compare_digest(_sign(key, body), signature):
        raise InvalidState("state signature mismatch")
    parts = body.split(".")
    if len(parts) != 4:
        raise InvalidState("state of an unknown format")
    creator_hex, nonce, expires, browser = parts
    if not expires.isdigit() or int(expires) < now:
        raise InvalidState("state expired")
    return OAuthState(UUID(hex=creator_hex), nonce, int(expires), browser)


async def redeem(session: AsyncSession, state: OAuthState) -> None:
    """Accept a state once: a replayed callback URL is refused."""
    stmt = (
        insert(OAuthStateUse)
        .values(nonce=state.nonce, creator_id=state.creator_id)
        .on_conflict_do_nothing()
        .returning(OAuthStateUse.nonce)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        raise InvalidState("state already used")


def _sign(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
