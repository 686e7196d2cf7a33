"""What `autodm tokens ...` runs: one account's refresh now, and the key-rotation rewrite.
Events go to the outbox; the relay of any running service publishes them."""

from __future__ import annotations

from uuid import UUID

from services.token_refresher.app import make_deps
from services.token_refresher.refreshing import refresh_now
from services.token_refresher.rotation import reencrypt_tokens
from services.token_refresher.settings import TokenRefresherSettings
from shared.db.session import make_engine, make_sessionmaker
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.crypto import TokenCipher


async def refresh_one(settings: TokenRefresherSettings, account_id: UUID) -> str:
    engine = make_engine(settings)
    # The relay runs elsewhere: NOTIFY wakes the API workers' (the others poll).
    deps, http = make_deps(settings, UnitOfWorkFactory(make_sessionmaker(engine), notify=True))
    try:
        outcome = await refresh_now(deps, account_id)
    finally:
        for client in http:
            await client.aclose()
        await engine.dispose()
    if outcome is None:
        return "not refreshable now: unknown, disconnected, expired, < 24 h old or being refreshed"
    return "refreshed" if outcome else "refresh failed: see the token.refresh_failed event"


async def reencrypt_all(settings: TokenRefresherSettings) -> int:
    engine = make_engine(settings)
    try:
        return await reencrypt_tokens(
            UnitOfWorkFactory(make_sessionmaker(engine)), TokenCipher.from_settings(settings)
        )
    finally:
        await engine.dispose()
