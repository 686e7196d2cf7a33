"""Server-side web sessions: what the `autodm_session` cookie stands for.

The cookie holds a random token, never the identity provider's token: it is no API
credential (not a JWT, so `/api` refuses it as a bearer token) and is worthless once the
row is gone. The table keeps only the token's SHA-256, so reading it signs nobody in.
Sign-out deletes the row: a copied cookie stops working at once. Rows past their expiry
are refused and swept by the API's housekeeping.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete

from services.api.http.auth import Principal, Role
from shared.contracts.events import utcnow
from shared.db.models import WebSession
from shared.messaging.unit_of_work import UnitsOfWork


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class WebSessions:
    uow: UnitsOfWork

    async def start(self, user: Principal, lifetime_s: int, replacing: str | None = None) -> str:
        """A new session for `user` (and its cookie's token); the browser's previous
        session, if any, ends: a sign-in always gets a fresh session and CSRF token."""
        token = secrets.token_urlsafe(32)
        async with self.uow() as work:
            if replacing:
                await work.session.execute(
                    delete(WebSession).where(WebSession.token_hash == token_hash(replacing))
                )
            work.add(
                WebSession(
                    token_hash=token_hash(token),
                    subject=user.subject,
                    role=user.role.value,
                    creator_id=user.creator_id,
                    expires_at=utcnow() + timedelta(seconds=lifetime_s),
                )
            )
        return token

    async def user(self, token: str) -> Principal | None:
        """Who the session is for, or None if it ended, expired or never was."""
        async with self.uow() as work:
            row = await work.get(WebSession, token_hash(token))
        if row is None or row.expires_at <= utcnow():
            return None
        return Principal(row.subject, Role(row.role), row.creator_id)

    async def end(self, token: str) -> None:
        async with self.uow() as work:
            await work.session.execute(
                delete(WebSession).where(WebSession.token_hash == token_hash(token))
            )
