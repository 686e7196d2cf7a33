"""Key rotation for tokens at rest: rewrite every stored token under the first key.

Put the new key first in AUTODM_TOKEN_ENCRYPTION_KEYS (old keys after it: they still
decrypt), run `autodm tokens reencrypt`, then drop the old key.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select

from shared.db.models import SocialAccount
from shared.messaging.unit_of_work import UnitsOfWork
from shared.platform.crypto import TokenCipher


async def reencrypt_tokens(uow: UnitsOfWork, cipher: TokenCipher, batch_size: int = 200) -> int:
    """Re-encrypt all stored tokens in short batches (keyset by id); returns the count."""
    done = 0
    after: UUID | None = None
    while True:
        async with uow() as work:
            session = work.session
            stmt = (
                select(SocialAccount)
                .where(SocialAccount.access_token_encrypted.is_not(None))
                .order_by(SocialAccount.id)
                .limit(batch_size)
                .with_for_update()
            )
            if after is not None:
                stmt = stmt.where(SocialAccount.id > after)
            accounts = (await session.scalars(stmt)).all()
            for account in accounts:
                assert account.access_token_encrypted is not None
                account.access_token_encrypted = cipher.rotate(account.access_token_encrypted)
        done += len(accounts)
        if len(accounts) < batch_size:
            return done
        after = accounts[-1].id
