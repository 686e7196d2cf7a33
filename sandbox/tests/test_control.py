"""Control API housekeeping: reset, clock, settings, Graph-style unknown paths."""

from __future__ import annotations

import httpx

from sandbox.state import DEMO_ACCESS_TOKEN, DEMO_IG_USER_ID
from sandbox.tests.driver import SandboxDriver, graph_error


async def test_reset_restores_demo_world(sb: SandboxDriver, client: httpx.AsyncClient) -> None:
    acct = await sb.account()
    await sb.settings(latency_ms=5)
    await sb.advance(100)
    await sb.control("POST", "/reset")
    accounts = (await sb.control("GET", "/instagram/accounts"))["data"]
    assert [a["ig_user_id"] for a in accounts] == [DEMO_IG_USER_ID]
    assert (await sb.control("GET", "/clock"))["offset_seconds"] == 0
    assert (await sb.control("GET", "/settings"))["latency_ms"] == 0
    gone = await client.get("/me", params={"access_token": acct["access_token"]})
    assert graph_error(gone) == (190, 467)
    demo = await client.get("/me", params={"access_token": DEMO_ACCESS_TOKEN})
    assert demo.status_code == 200


async def test_clock(sb: SandboxDriver) -> None:
    before = await sb.control("PUT", "/clock", {"offset_seconds": 3600})
    assert before["offset_seconds"] == 3600
    after = await sb.control("POST", "/clock/advance", {"seconds": 60})
    assert after["offset_seconds"] == 3660


async def test_settings_patch_validates(client: httpx.AsyncClient) -> None:
    unknown = await client.patch("/_sandbox/settings", json={"nope": 1})
    assert unknown.status_code == 422
    invalid = await client.patch("/_sandbox/settings", json={"instagram_send_per_second": 0})
    assert invalid.status_code == 422


async def test_account_conflicts_and_custom_ids(
    sb: SandboxDriver, client: httpx.AsyncClient
) -> None:
    body = {"username": "brand", "ig_user_id": "17841499999999999", "access_token": "IGAAfixed"}
    acct = await sb.control("POST", "/instagram/accounts", body)
    assert (acct["ig_user_id"], acct["access_token"]) == ("17841499999999999", "IGAAfixed")
    duplicate = await client.post("/_sandbox/instagram/accounts", json=body)
    assert duplicate.status_code == 409


async def test_unknown_graph_path(client: httpx.AsyncClient) -> None:
    response = await client.get("/v23.0/me/unknown/thing")
    assert response.status_code == 400
    assert graph_error(response) == (2500, None)
    control = await client.get("/_sandbox/nothing")
    assert control.status_code == 404
