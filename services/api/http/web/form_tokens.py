"""The public form's tokens: signed (the creator's slug, when the form was served, a random
nonce) and single-use, so a bot cannot fetch one form and post it a thousand times.

Spent tokens are kept by hash until they would have expired anyway (housekeeping sweeps
them), shared by every API process through PostgreSQL.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import LeadFormTokenUse


@dataclass(frozen=True)
class FormTokens:
    key: bytes
    ttl_s: int

    def _sign(self, slug: str, issued: str, nonce: str) -> str:
        message = f"lead-form:{slug}:{issued}:{nonce}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def issue(self, slug: str, now: float | None = None) -> str:
        issued = str(int(now if now is not None else time.time()))
        nonce = secrets.token_urlsafe(12)
        return f"{issued}.{nonce}.{self._sign(slug, issued, nonce)}"

    def valid(self, slug: str, token: str, now: float | None = None) -> bool:
        """Signed for this form and not expired (whether spent is `spend`'s question)."""
        issued, _, rest = token.partition(".")
        nonce, _, signature = rest.partition(".")
        if not (issued.isdigit() and nonce) or not hmac.compare_digest(
            signature, self._sign(slug, issued, nonce)
        ):
            return False
        age = (now if now is not None else time.time()) - int(issued)
        return 0 <= age <= self.ttl_s

    async def spend(self, session: AsyncSession, token: str, now: datetime) -> bool:
        """Mark the token used; False if it was used before."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        spent = await session.scalar(
            insert(LeadFormTokenUse)
            .values(token_hash=digest, used_at=now)
            .on_conflict_do_nothing()
            .returning(LeadFormTokenUse.token_hash)
        )
        return spent is not None
