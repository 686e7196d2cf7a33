"""Instagram Send API rules: window, IGSID, private replies, size, rate limits, tokens."""

from __future__ import annotations

import json

import httpx

from sandbox.state import DEMO_ACCESS_TOKEN, DEMO_IG_USER_ID
from sandbox.tests.driver import SandboxDriver, graph_error

DAY = 86400


async def test_dm_inside_window_is_accepted_and_recorded(sb: SandboxDriver) -> None:
    acct = await sb.account()
    lead = await sb.dm_from(acct["ig_user_id"], "lead_one")
    response = await sb.send_ig(acct["access_token"], {"id": lead["igsid"]})
    assert response.status_code == 200
    body = response.json()
    assert body["recipient_id"] == lead["igsid"]
    assert body["message_id"].startswith("m_")
    log = await sb.control("GET", f"/instagram/messages?account_id={acct['ig_user_id']}")
    [sent] = log["data"]
    assert sent["recipient_id"] == lead["igsid"]
    assert sent["text"] == "hello from AutoDM"
    assert sent["message_id"] == body["message_id"]
    assert sent["comment_id"] is None


async def test_path_and_token_variants(sb: SandboxDriver, client: httpx.AsyncClient) -> None:
    acct = await sb.account()
    lead = await sb.dm_from(acct["ig_user_id"], "lead")
    token, recipient = acct["access_token"], {"id": lead["igsid"]}
    for path in (
        "/me/messages",
        f"/{acct['ig_user_id']}/messages",
        f"/v23.0/{acct['id']}/messages",
    ):
        assert (await sb.send_ig(token, recipient, path=path)).status_code == 200, path
    # access_token query param + Meta's form-encoded sample body.
    form = {"recipient": json.dumps(recipient), "message": json.dumps({"text": "hi"})}
    response = await client.post("/v21.0/me/messages", params={"access_token": token}, data=form)
    assert response.status_code == 200, response.text


async def test_window_never_opened_gives_2534022(sb: SandboxDriver) -> None:
    acct = await sb.account()
    commenter = await sb.comment_from(acct["ig_user_id"], "commenter")
    response = await sb.send_ig(acct["access_token"], {"id": commenter["igsid"]})
    assert response.status_code == 400
    assert graph_error(response) == (10, 2534022)
    assert response.json()["error"]["message"] == "This message is sent outside of allowed window."


async def test_window_closes_after_24_hours(sb: SandboxDriver) -> None:
    acct = await sb.account()
    lead = await sb.dm_from(acct["ig_user_id"], "lead")
    await sb.advance(DAY - 60)
    assert (await sb.send_ig(acct["access_token"], {"id": lead["igsid"]})).status_code == 200
    await sb.advance(120)
    response = await sb.send_ig(acct["access_token"], {"id": lead["igsid"]})
    assert graph_error(response) == (10, 2534022)
    # A new inbound message reopens it.
    await sb.dm_from(acct["ig_user_id"], "lead")
    assert (await sb.send_ig(acct["access_token"], {"id": lead["igsid"]})).status_code == 200


async def test_username_or_foreign_igsid_gives_2534014(sb: SandboxDriver) -> None:
    acct = await sb.account()
    other = await sb.account("other_creator")
    foreign = await sb.dm_from(other["ig_user_id"], "lead")
    await sb.dm_from(acct["ig_user_id"], "lead")
    for recipient_id in ("lead", "@lead", "123", foreign["igsid"]):
        response = await sb.send_ig(acct["access_token"], {"id": recipient_id})
        assert graph_error(response) == (100, 2534014), recipient_id
        assert response.json()["error"]["message"] == "No matching Instagram user"


async def test_text_over_1000_utf8_bytes_gives_2534015(sb: SandboxDriver) -> None:
    acct = await sb.account()
    lead = await sb.dm_from(acct["ig_user_id"], "lead")
    token, to = acct["access_token"], {"id": lead["igsid"]}
    assert (await sb.send_ig(token, to, text="a" * 1000)).status_code == 200
    # 334 characters but 1002 bytes: the limit is bytes, not characters.
    response = await sb.send_ig(token, to, text="€" * 334)
    assert graph_error(response) == (100, 2534015)
    assert graph_error(await sb.send_ig(token, to, text="")) == (100, 2534015)


async def test_private_reply_once_per_comment(sb: SandboxDriver) -> None:
    acct = await sb.account()
    comment = await sb.comment_from(acct["ig_user_id"], "fan")
    recipient = {"comment_id": comment["comment_id"]}
    path = f"/v23.0/{acct['ig_user_id']}/messages"
    first = await sb.send_ig(acct["access_token"], recipient, path=path)
    assert first.status_code == 200
    assert first.json()["recipient_id"] == comment["igsid"]
    second = await sb.send_ig(acct["access_token"], recipient, path=path)
    assert graph_error(second) == (100, 2534025)
    log = await sb.control("GET", "/instagram/messages")
    assert [m["comment_id"] for m in log["data"]] == [comment["comment_id"]]
    assert log["data"][0]["private_reply"] is True


async def test_private_reply_does_not_open_window(sb: SandboxDriver) -> None:
    acct = await sb.account()
    comment = await sb.comment_from(acct["ig_user_id"], "fan")
    reply = await sb.send_ig(acct["access_token"], {"comment_id": comment["comment_id"]})
    assert reply.status_code == 200
    dm = await sb.send_ig(acct["access_token"], {"id": comment["igsid"]})
    assert graph_error(dm) == (10, 2534022)


async def test_private_reply_limited_to_7_days(sb: SandboxDriver) -> None:
    acct = await sb.account()
    old = await sb.comment_from(acct["ig_user_id"], "fan")
    await sb.advance(7 * DAY - 60)
    recent = await sb.comment_from(acct["ig_user_id"], "fan2")
    ok = await sb.send_ig(acct["access_token"], {"comment_id": old["comment_id"]})
    assert ok.status_code == 200
    await sb.advance(120)
    late = await sb.send_ig(acct["access_token"], {"comment_id": recent["comment_id"]})
    assert late.status_code == 200
    old2 = await sb.comment_from(acct["ig_user_id"], "fan3")
    await sb.advance(7 * DAY)
    expired = await sb.send_ig(acct["access_token"], {"comment_id": old2["comment_id"]})
    assert graph_error(expired) == (100, 2534025)


async def test_private_reply_to_unknown_or_foreign_comment(sb: SandboxDriver) -> None:
    acct = await sb.account()
    other = await sb.account("other")
    foreign = await sb.comment_from(other["ig_user_id"], "fan")
    for comment_id in ("17900000000000000", foreign["comment_id"]):
        response = await sb.send_ig(acct["access_token"], {"comment_id": comment_id})
        assert graph_error(response) == (100, 2534025)


async def test_send_rate_limit_gives_613_with_buc_header(sb: SandboxDriver) -> None:
    await sb.settings(instagram_send_per_second=3)
    acct = await sb.account()
    lead = await sb.dm_from(acct["ig_user_id"], "lead")
    for _ in range(3):
        ok = await sb.send_ig(acct["access_token"], {"id": lead["igsid"]})
        assert ok.status_code == 200
    limited = await sb.send_ig(acct["access_token"], {"id": lead["igsid"]})
    assert limited.status_code == 400
    assert graph_error(limited) == (613, 2534040)
    assert limited.json()["error"]["message"] == "Calls to this api have exceeded the rate limit."
    usage = json.loads(limited.headers["X-Business-Use-Case-Usage"])
    [entry] = usage[acct["ig_user_id"]]
    assert entry["type"] == "instagram"
    assert entry["call_count"] == 100
    assert entry["estimated_time_to_regain_access"] >= 1
    assert {"total_cputime", "total_time"} <= entry.keys()
    await sb.advance(1.5)
    assert (await sb.send_ig(acct["access_token"], {"id": lead["igsid"]})).status_code == 200


async def test_buc_header_on_every_messaging_response(sb: SandboxDriver) -> None:
    acct = await sb.account()
    lead = await sb.dm_from(acct["ig_user_id"], "lead")
    ok = await sb.send_ig(acct["access_token"], {"id": lead["igsid"]})
    refused = await sb.send_ig(acct["access_token"], {"id": "username"})
    for response in (ok, refused):
        usage = json.loads(response.headers["X-Business-Use-Case-Usage"])
        assert usage[acct["ig_user_id"]][0]["estimated_time_to_regain_access"] == 0


async def test_private_reply_hourly_limit(sb: SandboxDriver) -> None:
    await sb.settings(instagram_private_replies_per_hour=2, rate_limit_http_status=429)
    acct = await sb.account()
    comments = [await sb.comment_from(acct["ig_user_id"], f"fan{i}") for i in range(4)]
    for comment in comments[:2]:
        ok = await sb.send_ig(acct["access_token"], {"comment_id": comment["comment_id"]})
        assert ok.status_code == 200
    limited = await sb.send_ig(acct["access_token"], {"comment_id": comments[2]["comment_id"]})
    assert limited.status_code == 429
    assert graph_error(limited) == (613, 2534040)
    usage = json.loads(limited.headers["X-Business-Use-Case-Usage"])
    assert 1 <= usage[acct["ig_user_id"]][0]["estimated_time_to_regain_access"] <= 60
    await sb.advance(3601)
    ok = await sb.send_ig(acct["access_token"], {"comment_id": comments[2]["comment_id"]})
    assert ok.status_code == 200


async def test_invalid_and_missing_token(sb: SandboxDriver, client: httpx.AsyncClient) -> None:
    response = await sb.send_ig("IGAAnot-a-real-token", {"id": "1"})
    assert response.status_code == 401
    assert graph_error(response) == (190, 467)
    assert response.json()["error"]["type"] == "OAuthException"
    assert response.json()["error"]["fbtrace_id"]
    missing = await client.post("/v23.0/me/messages", json={})
    assert graph_error(missing) == (104, None)


async def test_revoked_token_gives_190(sb: SandboxDriver) -> None:
    acct = await sb.account()
    lead = await sb.dm_from(acct["ig_user_id"], "lead")
    await sb.control("POST", f"/instagram/accounts/{acct['ig_user_id']}/revoke")
    response = await sb.send_ig(acct["access_token"], {"id": lead["igsid"]})
    assert graph_error(response) == (190, 467)


async def test_expired_token_gives_190_463(sb: SandboxDriver) -> None:
    acct = await sb.account()
    lead = await sb.dm_from(acct["ig_user_id"], "lead")
    patch = {"access_token": acct["access_token"], "expires_in": -1}
    await sb.control("PATCH", "/instagram/tokens", patch)
    response = await sb.send_ig(acct["access_token"], {"id": lead["igsid"]})
    assert graph_error(response) == (190, 463)


async def test_missing_permission(sb: SandboxDriver) -> None:
    acct = await sb.account()
    token = await sb.control(
        "POST",
        "/instagram/tokens",
        {
            "account_id": acct["ig_user_id"],
            "permissions": ["instagram_business_basic", "instagram_business_manage_messages"],
        },
    )
    comment = await sb.comment_from(acct["ig_user_id"], "fan")
    response = await sb.send_ig(token["value"], {"comment_id": comment["comment_id"]})
    assert graph_error(response) == (10, None)


async def test_foreign_node_is_rejected(sb: SandboxDriver) -> None:
    acct = await sb.account()
    response = await sb.send_ig(
        acct["access_token"], {"id": "1"}, path=f"/{DEMO_IG_USER_ID}/messages"
    )
    assert graph_error(response) == (100, 33)


async def test_echo_webhook_and_stats(sb: SandboxDriver) -> None:
    lead = await sb.dm_from(DEMO_IG_USER_ID, "lead")
    assert (await sb.send_ig(DEMO_ACCESS_TOKEN, {"id": lead["igsid"]})).status_code == 200
    await sb.send_ig(DEMO_ACCESS_TOKEN, {"id": "nobody"})
    await sb.drain()
    echoes = await sb.control("GET", "/webhooks?event=message_echo")
    [echo] = echoes["data"]
    event = echo["payload"]["entry"][0]["messaging"][0]
    assert event["message"]["is_echo"] is True
    assert event["sender"]["id"] == DEMO_IG_USER_ID
    assert event["recipient"]["id"] == lead["igsid"]
    stats = await sb.control("GET", "/stats")
    assert stats["instagram"]["accepted"] == 1
    assert stats["instagram"]["rejected"] == {"100/2534014": 1}
