"""Signed Instagram webhooks, retries, redelivery and the ig.me link."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import httpx

from sandbox.settings import SandboxSettings
from sandbox.state import DEMO_ACCESS_TOKEN, DEMO_IG_USER_ID
from sandbox.tests.driver import IG_WEBHOOK_URL, Receiver, SandboxDriver


def _valid_signature(request: httpx.Request, secret: str) -> bool:
    expected = hmac.new(secret.encode(), request.content, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers["X-Hub-Signature-256"], f"sha256={expected}")


async def test_message_webhook_is_signed_and_shaped(
    sb: SandboxDriver, receiver: Receiver, settings: SandboxSettings
) -> None:
    sent = await sb.dm_from(DEMO_IG_USER_ID, "lead", text="äöå hi")
    await sb.drain()
    [request] = receiver.requests
    assert str(request.url) == IG_WEBHOOK_URL
    assert request.headers["content-type"] == "application/json"
    assert _valid_signature(request, settings.app_secret)
    assert not _valid_signature(request, "wrong-secret")
    # Meta signs the escaped-unicode rendering of the payload.
    assert b"\\u00e4\\u00f6\\u00e5" in request.content
    payload = json.loads(request.content)
    assert payload["object"] == "instagram"
    [entry] = payload["entry"]
    assert entry["id"] == DEMO_IG_USER_ID
    [event] = entry["messaging"]
    assert event["sender"] == {"id": sent["igsid"]}
    assert event["recipient"] == {"id": DEMO_IG_USER_ID}
    assert event["message"] == {"mid": sent["mid"], "text": "äöå hi"}
    assert isinstance(event["timestamp"], int)


async def test_comment_webhook(sb: SandboxDriver, receiver: Receiver) -> None:
    body = {"account_id": DEMO_IG_USER_ID, "username": "fan", "text": "price?", "media_id": "42"}
    comment = await sb.control("POST", "/instagram/users/comment", body)
    await sb.drain()
    [payload] = receiver.payloads()
    [change] = payload["entry"][0]["changes"]
    assert change["field"] == "comments"
    assert change["value"] == {
        "id": comment["comment_id"],
        "from": {"id": comment["igsid"], "username": "fan"},
        "text": "price?",
        "media": {"id": "42", "media_product_type": "FEED"},
    }


async def test_open_link_sends_referral_and_opens_window(
    sb: SandboxDriver, receiver: Receiver
) -> None:
    body = {"account_id": DEMO_IG_USER_ID, "username": "visitor", "ref": "campaign42"}
    opened = await sb.control("POST", "/instagram/users/open_link", body)
    await sb.drain()
    [payload] = receiver.payloads()
    event = payload["entry"][0]["messaging"][0]
    assert event["sender"] == {"id": opened["igsid"]}
    assert event["referral"] == {
        "ref": "campaign42",
        "source": "IGME_SOURCE_LINK",
        "type": "OPEN_THREAD",
    }
    assert (await sb.send_ig(DEMO_ACCESS_TOKEN, {"id": opened["igsid"]})).status_code == 200


async def test_ig_me_link_can_be_tapped(
    client: httpx.AsyncClient, sb: SandboxDriver, receiver: Receiver
) -> None:
    response = await client.get("/ig.me/m/autodm_demo", params={"ref": "bio", "as": "tapper"})
    assert response.status_code == 200
    opened = response.json()
    await sb.drain()
    event = receiver.payloads()[0]["entry"][0]["messaging"][0]
    assert event["referral"]["ref"] == "bio"
    users = await sb.control("GET", f"/instagram/users?account_id={DEMO_IG_USER_ID}")
    assert [u["username"] for u in users["data"]] == ["tapper"]
    assert users["data"][0]["igsid"] == opened["igsid"]


async def test_read_webhook(sb: SandboxDriver, receiver: Receiver) -> None:
    lead = await sb.dm_from(DEMO_IG_USER_ID, "lead")
    sent = await sb.send_ig(DEMO_ACCESS_TOKEN, {"id": lead["igsid"]})
    mid = sent.json()["message_id"]
    body = {"account_id": DEMO_IG_USER_ID, "igsid": lead["igsid"], "mid": mid}
    await sb.control("POST", "/instagram/users/read", body)
    await sb.drain()
    reads = [p for p in receiver.payloads() if "read" in p["entry"][0]["messaging"][0]]
    assert reads[0]["entry"][0]["messaging"][0]["read"] == {"mid": mid}


async def test_failed_delivery_is_retried(sb: SandboxDriver, receiver: Receiver) -> None:
    receiver.fail_next = 2
    sent = await sb.dm_from(DEMO_IG_USER_ID, "lead")
    await sb.drain()
    log = {d["id"]: d for d in (await sb.control("GET", "/webhooks"))["data"]}
    delivery = log[sent["webhook_id"]]
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 3
    assert len(receiver.requests) == 3
    assert len({r.content for r in receiver.requests}) == 1


async def test_delivery_gives_up_and_is_logged(sb: SandboxDriver, receiver: Receiver) -> None:
    receiver.always_fail = True
    await sb.dm_from(DEMO_IG_USER_ID, "lead")
    await sb.drain()
    [delivery] = (await sb.control("GET", "/webhooks?status=failed"))["data"]
    assert delivery["attempts"] == 3
    assert delivery["last_error"] == "HTTP 500"
    stats = await sb.control("GET", "/stats")
    assert stats["webhooks"] == {"failed": 1}


async def test_redelivery_sends_identical_bytes(
    sb: SandboxDriver, receiver: Receiver, settings: SandboxSettings
) -> None:
    sent = await sb.dm_from(DEMO_IG_USER_ID, "lead")
    await sb.drain()
    copy = await sb.control("POST", f"/webhooks/{sent['webhook_id']}/redeliver")
    assert copy["redelivery_of"] == sent["webhook_id"]
    await sb.drain()
    first, second = receiver.requests
    assert first.content == second.content
    assert first.headers["X-Hub-Signature-256"] == second.headers["X-Hub-Signature-256"]
    assert _valid_signature(second, settings.app_secret)


async def test_without_url_events_are_logged_as_skipped(
    sb: SandboxDriver, receiver: Receiver
) -> None:
    await sb.settings(instagram_webhook_url=None)
    await sb.dm_from(DEMO_IG_USER_ID, "lead")
    [delivery] = (await sb.control("GET", "/webhooks"))["data"]
    assert delivery["status"] == "skipped"
    assert delivery["payload"]["object"] == "instagram"
    assert receiver.requests == []


async def test_messaging_is_retried_immediately_then_given_up_other_fields_later(
    sb: SandboxDriver, receiver: Receiver
) -> None:
    # A tiny time scale: the later retries of a comment come after milliseconds.
    await sb.settings(webhook_time_scale=0.00001)
    receiver.always_fail = True
    message = await sb.dm_from(DEMO_IG_USER_ID, "lead")
    comment = await sb.comment_from(DEMO_IG_USER_ID, "fan")
    await sb.drain()
    log = {d["id"]: d for d in (await sb.control("GET", "/webhooks"))["data"]}
    assert log[message["webhook_id"]]["attempts"] == 3  # immediate retries only
    assert log[comment["webhook_id"]]["attempts"] > 3  # then fewer and fewer, for 36 h


async def test_an_hour_of_failures_disables_the_subscription_until_resubscribed(
    sb: SandboxDriver, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    await sb.settings(webhook_time_scale=0.00001)  # the hour is 36 ms
    fields = {"subscribed_fields": "messages,comments"}
    auth = {"Authorization": f"Bearer {DEMO_ACCESS_TOKEN}"}
    await client.post("/v23.0/me/subscribed_apps", params=fields, headers=auth)
    receiver.always_fail = True
    await sb.dm_from(DEMO_IG_USER_ID, "lead")
    await sb.drain()
    assert (await sb.control("GET", "/webhooks/subscriptions"))["data"][0]["disabled"] is False
    await asyncio.sleep(0.1)
    await sb.dm_from(DEMO_IG_USER_ID, "lead")
    await sb.drain()
    [sub] = (await sb.control("GET", "/webhooks/subscriptions"))["data"]
    assert (sub["account"], sub["disabled"]) == (DEMO_IG_USER_ID, True)
    subscribed = await client.get("/v23.0/me/subscribed_apps", headers=auth)
    assert subscribed.json() == {"data": []}  # Meta unsubscribed the app

    receiver.always_fail = False
    skipped = await sb.dm_from(DEMO_IG_USER_ID, "lead")
    log = {d["id"]: d for d in (await sb.control("GET", "/webhooks"))["data"]}
    assert log[skipped["webhook_id"]]["status"] == "skipped"

    await client.post("/v23.0/me/subscribed_apps", params=fields, headers=auth)
    again = await sb.dm_from(DEMO_IG_USER_ID, "lead")
    await sb.drain()
    log = {d["id"]: d for d in (await sb.control("GET", "/webhooks"))["data"]}
    assert log[again["webhook_id"]]["status"] == "delivered"
    assert (await sb.control("GET", "/webhooks/subscriptions"))["data"] == []


async def test_a_success_resets_the_failure_period(sb: SandboxDriver, receiver: Receiver) -> None:
    await sb.settings(webhook_time_scale=0.00001)
    receiver.always_fail = True
    await sb.dm_from(DEMO_IG_USER_ID, "lead")
    await sb.drain()
    receiver.always_fail = False
    await sb.dm_from(DEMO_IG_USER_ID, "lead")
    await sb.drain()
    await asyncio.sleep(0.1)
    receiver.always_fail = True
    await sb.dm_from(DEMO_IG_USER_ID, "lead")
    await sb.drain()
    [sub] = (await sb.control("GET", "/webhooks/subscriptions"))["data"]
    assert sub["disabled"] is False
