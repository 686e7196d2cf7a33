"""Business Login for Instagram, token exchange/refresh, /me and subscribed_apps."""
# ruff: noqa: S105 - token fixtures and `token_type == "bearer"` assertions, not secrets

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from sandbox.settings import SandboxSettings
from sandbox.state import DEMO_ACCESS_TOKEN, DEMO_APP_SCOPED_ID, DEMO_IG_USER_ID
from sandbox.tests.driver import SandboxDriver, graph_error

REDIRECT = "https://autodm.test/oauth/callback"
SCOPE = "instagram_business_basic,instagram_business_manage_messages"
DAY = 86400


async def _authorize(client: httpx.AsyncClient, settings: SandboxSettings, **extra: str) -> str:
    params = {
        "client_id": settings.app_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": SCOPE,
        "state": "csrf-123",
    } | extra
    response = await client.get("/oauth/authorize", params=params)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def _code(location: str) -> str:
    assert location.endswith("#_")
    return parse_qs(urlsplit(location).query)["code"][0]


async def _exchange(
    client: httpx.AsyncClient, settings: SandboxSettings, code: str, redirect: str = REDIRECT
) -> httpx.Response:
    form = {
        "client_id": settings.app_id,
        "client_secret": settings.app_secret,
        "grant_type": "authorization_code",
        "redirect_uri": redirect,
        "code": code,
    }
    return await client.post("/oauth/access_token", data=form)


async def test_full_flow(client: httpx.AsyncClient, settings: SandboxSettings) -> None:
    location = await _authorize(client, settings)
    assert location.startswith(REDIRECT + "?")
    assert parse_qs(urlsplit(location).query)["state"] == ["csrf-123"]
    response = await _exchange(client, settings, _code(location))
    assert response.status_code == 200, response.text
    [item] = response.json()["data"]
    assert item["user_id"] == DEMO_APP_SCOPED_ID
    assert item["permissions"] == SCOPE
    me = await client.get(
        "/v23.0/me",
        params={"fields": "user_id,username", "access_token": item["access_token"]},
    )
    assert me.json() == {
        "user_id": DEMO_IG_USER_ID,
        "username": "autodm_demo",
        "id": DEMO_APP_SCOPED_ID,
    }


async def test_code_is_single_use(client: httpx.AsyncClient, settings: SandboxSettings) -> None:
    code = _code(await _authorize(client, settings))
    assert (await _exchange(client, settings, code)).status_code == 200
    again = await _exchange(client, settings, code)
    assert again.status_code == 400
    assert again.json() == {
        "error_type": "OAuthException",
        "code": 400,
        "error_message": "Matching code was not found or was already used",
    }


async def test_code_with_fragment_is_not_a_code(
    client: httpx.AsyncClient, settings: SandboxSettings
) -> None:
    code = _code(await _authorize(client, settings))
    response = await _exchange(client, settings, code + "#_")
    assert response.json()["error_message"] == "Matching code was not found or was already used"


async def test_code_needs_same_redirect_and_expires(
    client: httpx.AsyncClient, settings: SandboxSettings, sb: SandboxDriver
) -> None:
    code = _code(await _authorize(client, settings))
    wrong = await _exchange(client, settings, code, redirect=REDIRECT + "/")
    assert wrong.status_code == 400
    assert "redirect_uri" in wrong.json()["error_message"]
    stale = _code(await _authorize(client, settings))
    await sb.advance(3601)
    expired = await _exchange(client, settings, stale)
    assert expired.json()["error_message"] == "This authorization code has expired"


async def test_multipart_exchange_and_flat_shape(
    client: httpx.AsyncClient, settings: SandboxSettings, sb: SandboxDriver
) -> None:
    await sb.settings(oauth_exchange_response_shape="flat")
    code = _code(await _authorize(client, settings))
    fields = {
        "client_id": settings.app_id,
        "client_secret": settings.app_secret,
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
        "code": code,
    }
    # curl -F style multipart/form-data, as in Meta's sample.
    files = {name: (None, value) for name, value in fields.items()}
    response = await client.post("/oauth/access_token", files=files)
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == DEMO_APP_SCOPED_ID
    assert response.json()["access_token"].startswith("IGAA")


async def test_wrong_client_secret(client: httpx.AsyncClient, settings: SandboxSettings) -> None:
    code = _code(await _authorize(client, settings))
    form = {
        "client_id": settings.app_id,
        "client_secret": "nope",
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
        "code": code,
    }
    response = await client.post("/oauth/access_token", data=form)
    assert response.json()["error_type"] == "OAuthException"


async def test_denied_by_query_or_control_flag(
    client: httpx.AsyncClient, settings: SandboxSettings, sb: SandboxDriver
) -> None:
    for extra, flag in (({"sandbox_deny": "1"}, False), ({}, True)):
        await sb.control("PUT", "/oauth", {"deny": flag})
        location = await _authorize(client, settings, **extra)
        query = parse_qs(urlsplit(location).query)
        assert query["error"] == ["access_denied"]
        assert query["error_reason"] == ["user_denied"]
        assert query["error_description"] == ["The user denied your request"]
        assert query["state"] == ["csrf-123"]
        assert "code" not in query


async def test_dialog_logs_in_as_configured_account(
    client: httpx.AsyncClient, settings: SandboxSettings, sb: SandboxDriver
) -> None:
    acct = await sb.account("brand")
    await sb.control("PUT", "/oauth", {"account_id": "brand"})
    response = await _exchange(client, settings, _code(await _authorize(client, settings)))
    assert response.json()["data"][0]["user_id"] == acct["id"]
    # Per-request override, e.g. for parallel tests.
    location = await _authorize(client, settings, sandbox_account="autodm_demo")
    response = await _exchange(client, settings, _code(location))
    assert response.json()["data"][0]["user_id"] == DEMO_APP_SCOPED_ID


async def test_authorize_rejects_bad_requests(
    client: httpx.AsyncClient, settings: SandboxSettings
) -> None:
    base = {"client_id": settings.app_id, "redirect_uri": REDIRECT, "response_type": "code"}
    for params in (
        base | {"scope": SCOPE, "client_id": "123"},
        base | {"scope": "business_basic"},
        base | {"scope": SCOPE, "response_type": "token"},
    ):
        response = await client.get("/oauth/authorize", params=params)
        assert response.status_code == 400
        assert response.json()["error_type"] == "OAuthException"


async def _short_lived(client: httpx.AsyncClient, settings: SandboxSettings) -> str:
    response = await _exchange(client, settings, _code(await _authorize(client, settings)))
    token: str = response.json()["data"][0]["access_token"]
    return token


async def test_long_lived_exchange(client: httpx.AsyncClient, settings: SandboxSettings) -> None:
    short = await _short_lived(client, settings)
    params = {"grant_type": "ig_exchange_token", "client_secret": settings.app_secret}
    response = await client.get("/access_token", params=params | {"access_token": short})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 5183944
    # A long-lived token cannot be exchanged again; a wrong secret is refused.
    again = await client.get(
        "/access_token", params=params | {"access_token": body["access_token"]}
    )
    assert graph_error(again) == (100, None)
    bad = params | {"client_secret": "x", "access_token": short}
    assert graph_error(await client.get("/v23.0/access_token", params=bad)) == (101, None)


async def test_short_lived_token_expires_after_an_hour(
    client: httpx.AsyncClient, settings: SandboxSettings, sb: SandboxDriver
) -> None:
    short = await _short_lived(client, settings)
    await sb.advance(3601)
    response = await client.get("/me", params={"access_token": short})
    assert graph_error(response) == (190, 463)


async def test_refresh_requires_24_hours(client: httpx.AsyncClient, sb: SandboxDriver) -> None:
    acct = await sb.account()
    params = {"grant_type": "ig_refresh_token", "access_token": acct["access_token"]}
    young = await client.get("/refresh_access_token", params=params)
    assert graph_error(young) == (190, None)
    await sb.advance(DAY + 1)
    response = await client.get("/refresh_access_token", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == 5183944
    assert body["token_type"] == "bearer"
    assert body["access_token"] != acct["access_token"]


async def test_refresh_with_aged_token_override(
    client: httpx.AsyncClient, sb: SandboxDriver
) -> None:
    patch = {"access_token": DEMO_ACCESS_TOKEN, "age_seconds": DAY}
    await sb.control("PATCH", "/instagram/tokens", patch)
    params = {"grant_type": "ig_refresh_token", "access_token": DEMO_ACCESS_TOKEN}
    assert (await client.get("/v23.0/refresh_access_token", params=params)).status_code == 200


async def test_refresh_refuses_expired_token(client: httpx.AsyncClient, sb: SandboxDriver) -> None:
    acct = await sb.account()
    await sb.advance(61 * DAY)
    params = {"grant_type": "ig_refresh_token", "access_token": acct["access_token"]}
    assert graph_error(await client.get("/refresh_access_token", params=params)) == (190, 463)


async def test_me_fields(client: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {DEMO_ACCESS_TOKEN}"}
    plain = await client.get("/me", headers=headers)
    assert plain.json() == {"id": DEMO_APP_SCOPED_ID}
    by_id = await client.get(
        f"/v23.0/{DEMO_IG_USER_ID}", params={"fields": "username"}, headers=headers
    )
    assert by_id.json() == {"username": "autodm_demo", "id": DEMO_APP_SCOPED_ID}
    bad = await client.get("/me", params={"fields": "email"}, headers=headers)
    assert graph_error(bad) == (100, None)


async def test_subscribed_apps(client: httpx.AsyncClient, settings: SandboxSettings) -> None:
    headers = {"Authorization": f"Bearer {DEMO_ACCESS_TOKEN}"}
    path = f"/v23.0/{DEMO_IG_USER_ID}/subscribed_apps"
    fields = {"subscribed_fields": "comments,messages"}
    created = await client.post(path, params=fields, headers=headers)
    assert created.json() == {"success": True}
    listed = await client.get(path, headers=headers)
    assert listed.json() == {
        "data": [{"app_id": settings.app_id, "subscribed_fields": ["comments", "messages"]}]
    }
    bad = await client.post(path, params={"subscribed_fields": "emails"}, headers=headers)
    assert graph_error(bad) == (100, None)
    assert graph_error(await client.post(path, headers=headers)) == (100, None)
    deleted = await client.delete(path, headers=headers)
    assert deleted.json() == {"success": True}
    assert (await client.get(path, headers=headers)).json() == {"data": []}


async def test_webhooks_can_require_subscription(
    client: httpx.AsyncClient, sb: SandboxDriver
) -> None:
    await sb.settings(require_webhook_subscription=True)
    acct = await sb.account()
    first = await sb.dm_from(acct["ig_user_id"], "lead")
    headers = {"Authorization": f"Bearer {acct['access_token']}"}
    await client.post(
        "/me/subscribed_apps", params={"subscribed_fields": "messages"}, headers=headers
    )
    second = await sb.dm_from(acct["ig_user_id"], "lead")
    log = {d["id"]: d for d in (await sb.control("GET", "/webhooks"))["data"]}
    assert log[first["webhook_id"]]["status"] == "skipped"
    assert log[second["webhook_id"]]["status"] in ("pending", "delivered")
