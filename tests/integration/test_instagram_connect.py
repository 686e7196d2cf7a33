"""Business Login against the sandbox (in-process): connect, cancel, replay, reconnect and
disconnect, checked in the database and in the sandbox."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbox.app import create_app as create_sandbox
from sandbox.settings import SandboxSettings
from services.api.http.schemas import LeadIn
from services.api.service_layer.leads import create_lead
from shared.db.models import Lead, SocialAccount
from shared.delivery.reasons import CREATOR_DISCONNECTED
from shared.providers.instagram_auth import AppCredentials, InstagramAuthClient
from tests.api_app import create_app as create_api
from tests.fake_uow import SessionWork
from tests.integration.conftest import running
from tests.integration.issuer import Issuer
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def sandbox(settings: AllSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_sandbox(
        SandboxSettings(
            app_id=settings.instagram_app_id,
            app_secret=settings.instagram_app_secret.get_secret_value(),
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


@pytest.fixture(scope="module")
async def api(
    settings: AllSettings, sandbox: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_api(settings)
    deps = app.state.instagram
    credentials = AppCredentials(
        settings.instagram_app_id,
        settings.instagram_app_secret.get_secret_value(),
        settings.oauth_redirect_uri,
    )
    client = InstagramAuthClient(sandbox, sandbox, settings.graph_api_version, credentials)
    connection = dataclasses.replace(deps.connection, client=client)
    app.state.instagram = dataclasses.replace(deps, connection=connection)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        # https: the binding cookie is Secure, as everywhere but a local stack on plain http.
        async with httpx.AsyncClient(transport=transport, base_url="https://api") as api_client:
            yield api_client


@pytest.fixture
async def ig_account(sandbox: httpx.AsyncClient) -> dict[str, Any]:
    made: dict[str, Any] = (
        await sandbox.post(
            "/_sandbox/instagram/accounts", json={"username": f"c{secrets.token_hex(5)}"}
        )
    ).json()
    await sandbox.put("/_sandbox/oauth", json={"account_id": made["ig_user_id"], "deny": False})
    return made


async def _authorize(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    deny: bool = False,
) -> dict[str, str]:
    """Follow /connect to the sandbox's dialog; returns the callback's query."""
    start = await api.get("/api/instagram/connect", headers=issuer.creator(creator))
    assert start.status_code == 302
    authorize = urlsplit(start.headers["location"])
    query = parse_qs(authorize.query)
    assert query["scope"] == [
        "instagram_business_basic,instagram_business_manage_messages,"
        "instagram_business_manage_comments"
    ]
    params = authorize.query + ("&sandbox_deny=1" if deny else "")
    dialog = await sandbox.get(f"{authorize.path}?{params}")
    assert dialog.status_code == 302
    callback = urlsplit(dialog.headers["location"])
    assert callback.fragment == ("" if deny else "_")
    return {k: v[0] for k, v in parse_qs(callback.query).items()}


async def _connected(
    sessions: async_sessionmaker[AsyncSession], ig_user_id: str
) -> SocialAccount | None:
    async with sessions() as session:
        return await session.scalar(
            select(SocialAccount).where(SocialAccount.external_id == ig_user_id)
        )


async def test_connect_stores_an_encrypted_token_and_subscribes_webhooks(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    ig_account: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    settings: AllSettings,
) -> None:
    query = await _authorize(api, sandbox, issuer, creator)
    # Some clients keep Meta's "#_" on the code; it must be stripped before the exchange.
    done = await api.get(
        "/api/instagram/callback", params={"code": query["code"] + "#_", "state": query["state"]}
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "connected"

    account = await _connected(sessions, ig_account["ig_user_id"])
    assert account is not None and account.creator_id == creator
    assert account.status == "connected" and account.app_scoped_id == ig_account["id"]
    stored = account.access_token_encrypted or b""
    from shared.platform.crypto import TokenCipher

    token = TokenCipher.from_settings(settings).decrypt(stored)
    assert token.encode() not in stored and token not in done.text
    info = (await sandbox.get(f"/_sandbox/instagram/tokens/{token}")).json()
    assert info["kind"] == "long"
    accounts = (await sandbox.get("/_sandbox/instagram/accounts")).json()["data"]
    mine = next(a for a in accounts if a["ig_user_id"] == ig_account["ig_user_id"])
    assert "messages" in mine["subscribed_fields"] and "comments" in mine["subscribed_fields"]

    replay = await api.get("/api/instagram/callback", params=query)
    assert replay.status_code == 400  # single-use state


async def test_a_forged_state_or_a_cancelled_dialog_connects_nothing(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    ig_account: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    query = await _authorize(api, sandbox, issuer, creator)
    forged_state = query["state"][:-4] + "0000"
    forged = await api.get("/api/instagram/callback", params=query | {"state": forged_state})
    assert forged.status_code == 400

    cancelled_query = await _authorize(api, sandbox, issuer, creator, deny=True)
    cancelled = await api.get("/api/instagram/callback", params=cancelled_query)
    assert cancelled.json() == {"status": "cancelled", "reason": "user_denied"}
    assert await _connected(sessions, ig_account["ig_user_id"]) is None


async def test_a_callback_in_another_browser_is_refused_and_links_nothing(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    ig_account: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    start = await api.get("/api/instagram/connect", headers=issuer.creator(creator))
    cookie = start.headers["set-cookie"]
    assert cookie.startswith("autodm_ig_connect=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/api/instagram/callback" in cookie

    # The authorization link handed to somebody else: their browser has no binding cookie
    # (or a guessed one); a person's browser gets a page saying what happened.
    cases: list[tuple[dict[str, str], str]] = [
        ({}, "application/problem+json"),
        ({"Accept": "text/html"}, "text/html"),
        ({"Cookie": "autodm_ig_connect=guessed"}, "application/problem+json"),
    ]
    async with httpx.AsyncClient(transport=api._transport, base_url="https://api") as other:
        for headers, content_type in cases:
            query = await _authorize(api, sandbox, issuer, creator)
            refused = await other.get("/api/instagram/callback", params=query, headers=headers)
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"].startswith(content_type)
            assert "started in another browser" in refused.text
            assert "nothing was connected" in refused.text
            # Spent: the starting browser cannot use that link any more either.
            assert (await api.get("/api/instagram/callback", params=query)).status_code == 400
    assert await _connected(sessions, ig_account["ig_user_id"]) is None


async def test_reconnect_replaces_the_token_and_disconnect_leaves_none(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    ig_account: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await api.get("/api/instagram/callback", params=await _authorize(api, sandbox, issuer, creator))
    first = await _connected(sessions, ig_account["ig_user_id"])
    assert first is not None
    async with sessions.begin() as session:
        row = await session.get(SocialAccount, first.id)
        assert row is not None
        row.status = "reconnect_required"
    await api.get("/api/instagram/callback", params=await _authorize(api, sandbox, issuer, creator))
    second = await _connected(sessions, ig_account["ig_user_id"])
    assert second is not None and second.id == first.id and second.status == "connected"
    assert second.access_token_encrypted != first.access_token_encrypted

    lead_id = await _waiting_lead(sessions, creator)
    gone = await api.delete("/api/instagram/connection", headers=issuer.creator(creator))
    assert gone.json()["status"] == "disconnected" and gone.json()["skipped_dms"] == 1

    account = await _connected(sessions, ig_account["ig_user_id"])
    assert account is not None and account.status == "disconnected"
    assert account.access_token_encrypted is None  # no token left behind
    accounts = (await sandbox.get("/_sandbox/instagram/accounts")).json()["data"]
    mine = next(a for a in accounts if a["ig_user_id"] == ig_account["ig_user_id"])
    assert mine["subscribed_fields"] == []
    lead = await _wait_lead(sessions, lead_id, "skipped")
    assert lead.dm_reason == CREATOR_DISCONNECTED


async def _waiting_lead(sessions: async_sessionmaker[AsyncSession], creator: UUID) -> UUID:
    data = LeadIn.model_validate(
        {"creator_id": str(creator), "name": "Wa", "instagram": {"username": "wa.it"}}
    )
    async with sessions.begin() as session:
        lead = await create_lead(SessionWork(session), data, correlation_id="test-connect")
    await _wait_lead(sessions, lead.id, "awaiting_contact")
    return lead.id


async def _wait_lead(
    sessions: async_sessionmaker[AsyncSession], lead_id: UUID, status: str
) -> Lead:
    lead = None
    for _ in range(150):
        async with sessions() as session:
            lead = await session.get(Lead, lead_id)
        if lead is not None and lead.dm_status == status:
            return lead
        await asyncio.sleep(0.1)
    raise AssertionError(f"lead is {lead and lead.dm_status}, wanted {status}")


async def test_only_a_signed_in_creator_may_connect_or_disconnect(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    assert (await api.get("/api/instagram/connect")).status_code == 401
    admin = issuer.admin()
    refused = await api.get("/api/instagram/connect", headers=admin)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await api.delete("/api/instagram/connection", headers=admin)).status_code == 403
