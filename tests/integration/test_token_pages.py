"""What creators and admins see about Instagram access and DM reasons, on the real pages
(API app in-process, real PostgreSQL): an expired token reads "needs reconnecting", a
deauthorize says what Instagram did and when, the admin overview lists tokens that could not
be refreshed, and a creator's lead page never shows a provider's error message."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.auth import Principal, Role
from services.api.http.web.security import WebSecurity
from services.api.http.web.web_sessions import WebSessions
from services.webhook_ingest.callbacks import SignedCallback, deauthorize, delete_user_data
from shared.contracts.events import utcnow
from shared.db.models import Lead, SocialAccount
from shared.delivery.reasons import for_status
from shared.messaging.unit_of_work import UnitOfWorkFactory
from tests.api_app import create_app
from tests.integration.conftest import connect_instagram, running
from tests.integration.issuer import Issuer
from tests.settings import AllSettings, get_all_settings

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
MAX_AGE = timedelta(minutes=10)
META_MESSAGE = "Error validating access token: Session has expired on Tuesday."


@pytest.fixture
async def web(settings: AllSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def _signed_in(web: httpx.AsyncClient, sessions: Sessions, user: Principal) -> None:
    """The client, signed in as `user` (the server-side session sign-in starts)."""
    cookie = WebSecurity.from_settings(get_all_settings()).session_cookie
    web.cookies.set(cookie, await WebSessions(UnitOfWorkFactory(sessions)).start(user, 3600))


async def _as_creator(
    web: httpx.AsyncClient, sessions: Sessions, creator: UUID
) -> httpx.AsyncClient:
    await _signed_in(web, sessions, Principal(f"user_{creator.hex[:8]}", Role.CREATOR, creator))
    return web


async def _as_admin(web: httpx.AsyncClient, sessions: Sessions) -> httpx.AsyncClient:
    await _signed_in(web, sessions, Principal("user_admin", Role.ADMIN))
    return web


def _text(html: str) -> str:
    """The page's words, tags dropped and spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def _account(
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
    creator: UUID,
    username: str,
    **columns: object,
) -> tuple[UUID, str]:
    ig_id = str(17841400000000000 + secrets.randbelow(10**12))
    account_id = await connect_instagram(sessions, settings, creator, ig_id, username, "tok")
    async with sessions.begin() as session:
        row = await session.get(SocialAccount, account_id)
        assert row is not None
        for name, value in columns.items():
            setattr(row, name, value)
    return account_id, ig_id


async def test_an_expired_token_reads_needs_reconnecting_not_connected(
    web: httpx.AsyncClient,
    issuer: Issuer,
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
    creator: UUID,
) -> None:
    await _account(
        sessions, settings, creator, "stale.shop", token_expires_at=utcnow() - timedelta(hours=2)
    )

    page = await (await _as_creator(web, sessions, creator)).get("/app/instagram")

    assert page.status_code == 200
    words = _text(page.text)
    assert "Status needs reconnecting" in words
    assert "Status connected" not in words
    assert "access to Instagram expired" in words
    # Listed for the admin too, before the refresher's next round marks it.
    overview = await (await _as_admin(web, sessions)).get("/admin")
    assert "@stale.shop" in _text(overview.text).split("Accounts needing reconnection")[1]


async def test_after_a_deauthorize_the_page_says_instagram_removed_autodm_and_when(
    web: httpx.AsyncClient,
    issuer: Issuer,
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
    creator: UUID,
) -> None:
    _, ig_id = await _account(sessions, settings, creator, "gone.shop")
    removed_at = utcnow()
    async with sessions.begin() as session:
        signed = SignedCallback(ig_id, removed_at)
        assert await deauthorize(session, signed, removed_at, MAX_AGE) == 1

    page = await (await _as_creator(web, sessions, creator)).get("/app/instagram")

    words = _text(page.text)
    assert "Instagram removed AutoDM from @gone.shop on" in words
    assert removed_at.strftime("%Y") in words.split("removed AutoDM from @gone.shop on")[1]
    assert "Reconnecting asks Instagram to let AutoDM in again" in words
    assert "Reconnect Instagram" in words


async def test_after_a_data_deletion_the_page_says_the_data_was_deleted(
    web: httpx.AsyncClient,
    issuer: Issuer,
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
    creator: UUID,
) -> None:
    _, ig_id = await _account(sessions, settings, creator, "erased.shop")
    async with sessions.begin() as session:
        now = utcnow()
        await delete_user_data(session, SignedCallback(ig_id, now), now, MAX_AGE)

    page = await (await _as_creator(web, sessions, creator)).get("/app/instagram")

    words = _text(page.text)
    assert "Instagram asked AutoDM to delete your data on" in words
    assert "Reconnect Instagram" in words


async def test_a_creator_who_disconnected_themselves_just_sees_connect(
    web: httpx.AsyncClient, sessions: Sessions, creator: UUID
) -> None:
    page = await (await _as_creator(web, sessions, creator)).get("/app/instagram")
    words = _text(page.text)
    assert "Connect your Instagram professional account" in words
    assert "removed AutoDM" not in words


async def test_the_admin_overview_lists_tokens_that_could_not_be_refreshed(
    web: httpx.AsyncClient,
    issuer: Issuer,
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
    creator: UUID,
) -> None:
    now = utcnow()
    failing = f"fail{secrets.token_hex(4)}"
    undated = f"undated{secrets.token_hex(4)}"
    healthy = f"fine{secrets.token_hex(4)}"
    await _account(
        sessions,
        settings,
        creator,
        failing,
        token_expires_at=now + timedelta(days=3),
        token_refresh_failed_at=now,
        token_refresh_error="transient 2: An unexpected error has occurred.",
    )
    # No recorded expiry, issued 55 days ago: it ends within 5 days at the latest.
    await _account(
        sessions, settings, creator, undated, token_refreshed_at=now - timedelta(days=55)
    )
    await _account(sessions, settings, creator, healthy, token_expires_at=now + timedelta(days=30))

    overview = await (await _as_admin(web, sessions)).get("/admin")

    assert overview.status_code == 200
    block = _text(overview.text).split("Tokens not refreshed")[1]
    assert f"@{failing}" in block and "An unexpected error has occurred." in block
    assert f"@{undated}" in block and "expiry never recorded" in block
    assert f"@{healthy}" not in block


async def test_a_creators_lead_page_shows_plain_words_not_metas_error(
    web: httpx.AsyncClient,
    issuer: Issuer,
    sessions: async_sessionmaker[AsyncSession],
    creator: UUID,
) -> None:
    """A DM that failed before reasons were composed in plain words, or with none
    recorded: the provider's message stays out of the creator's pages."""
    lead_id = uuid4()
    async with sessions.begin() as session:
        session.add(
            Lead(
                id=lead_id,
                creator_id=creator,
                name="Olga",
                message="",
                ref=lead_id.hex,
                dm_status="failed",
                dm_route="ig_dm",
                dm_provider="instagram",
                dm_error_code=190,
                dm_error_message=META_MESSAGE,
            )
        )
    await _as_creator(web, sessions, creator)

    lead_page = await web.get(f"/app/leads/{lead_id}")
    rows = await web.get("/app/leads/rows")

    for page in (lead_page, rows):
        assert page.status_code == 200
        assert "Session has expired" not in page.text
        assert for_status("failed") in _text(page.text)
