"""Fault injection: 5xx, throttling storms, token faults, latency and ambiguous timeouts."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from sandbox.state import DEMO_ACCESS_TOKEN, DEMO_IG_USER_ID
from sandbox.tests.driver import WA_WEBHOOK_URL, Receiver, SandboxDriver, graph_error


async def _lead(sb: SandboxDriver) -> dict[str, str]:
    lead = await sb.dm_from(DEMO_IG_USER_ID, "lead")
    return {"id": lead["igsid"]}


async def _faults(sb: SandboxDriver, **spec: Any) -> None:
    await sb.control("PUT", "/faults", spec)


async def test_5xx_is_graph_code_2(sb: SandboxDriver) -> None:
    to = await _lead(sb)
    await _faults(sb, error="5xx", http_status=500, count=1)
    response = await sb.send_ig(DEMO_ACCESS_TOKEN, to)
    assert response.status_code == 500
    error = response.json()["error"]
    assert (error["code"], error["is_transient"]) == (2, True)
    assert error["message"] == "An unexpected error has occurred. Please retry your request later."
    assert (await sb.send_ig(DEMO_ACCESS_TOKEN, to)).status_code == 200


async def test_bare_gateway_errors(sb: SandboxDriver) -> None:
    to = await _lead(sb)
    await _faults(sb, error="5xx", http_status=502)
    response = await sb.send_ig(DEMO_ACCESS_TOKEN, to)
    assert response.status_code == 502
    assert response.text == "Bad Gateway"
    await _faults(sb, error="5xx", seed=7, count=20)
    statuses = {(await sb.send_ig(DEMO_ACCESS_TOKEN, to)).status_code for _ in range(20)}
    assert statuses == {500, 502, 503}


async def test_throttle_storm_then_recovery(sb: SandboxDriver) -> None:
    to = await _lead(sb)
    await _faults(sb, error="throttle", count=3, retry_after_seconds=120)
    for _ in range(3):
        response = await sb.send_ig(DEMO_ACCESS_TOKEN, to)
        assert graph_error(response) == (80002, None)
        assert response.headers["Retry-After"] == "120"
        usage = json.loads(response.headers["X-Business-Use-Case-Usage"])
        assert usage[DEMO_IG_USER_ID][0]["estimated_time_to_regain_access"] == 2
    assert (await sb.send_ig(DEMO_ACCESS_TOKEN, to)).status_code == 200
    faults = await sb.control("GET", "/faults")
    assert (faults["injected"], faults["remaining"]) == (3, 0)
    stats = await sb.control("GET", "/stats")
    assert stats["instagram"]["rejected"] == {"80002": 3}


async def test_throttle_codes(sb: SandboxDriver) -> None:
    to = await _lead(sb)
    for code, subcode in ((613, 2534040), (4, None), (17, None)):
        await _faults(sb, error="throttle", throttle_code=code)
        assert graph_error(await sb.send_ig(DEMO_ACCESS_TOKEN, to)) == (code, subcode)


async def test_token_fault(sb: SandboxDriver, client: httpx.AsyncClient) -> None:
    await _faults(sb, error="token", scope="instagram")
    response = await client.get("/me", params={"access_token": DEMO_ACCESS_TOKEN})
    assert graph_error(response) == (190, 463)


async def test_scope_and_error_rate(sb: SandboxDriver) -> None:
    to = await _lead(sb)
    await _faults(sb, error="5xx", scope="whatsapp")
    assert (await sb.send_ig(DEMO_ACCESS_TOKEN, to)).status_code == 200
    await _faults(sb, error="5xx", error_rate=0)
    assert (await sb.send_ig(DEMO_ACCESS_TOKEN, to)).status_code == 200
    await _faults(sb, error="5xx", http_status=500)
    assert (await sb.send_ig(DEMO_ACCESS_TOKEN, to)).status_code == 500
    await sb.control("DELETE", "/faults")
    assert (await sb.send_ig(DEMO_ACCESS_TOKEN, to)).status_code == 200


async def test_whatsapp_throttle_fault(sb: SandboxDriver) -> None:
    number = await sb.wa_number()
    await _faults(sb, error="throttle", scope="whatsapp")
    body = {"to": "4915112345678", "type": "text", "text": {"body": "x"}}
    response = await sb.wa_send(number, body)
    assert graph_error(response) == (130429, None)
    assert response.json()["error"]["error_data"]["messaging_product"] == "whatsapp"


async def test_latency(sb: SandboxDriver) -> None:
    to = await _lead(sb)
    await _faults(sb, latency_ms=150)
    started = time.monotonic()
    assert (await sb.send_ig(DEMO_ACCESS_TOKEN, to)).status_code == 200
    assert time.monotonic() - started >= 0.15


@pytest.mark.parametrize("records", [True, False])
async def test_timeout_is_ambiguous_or_not(sb: SandboxDriver, records: bool) -> None:
    to = await _lead(sb)
    await _faults(sb, error="timeout", timeout_seconds=5, timeout_records_message=records, count=1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sb.send_ig(DEMO_ACCESS_TOKEN, to), timeout=0.2)
    log = await sb.control("GET", "/instagram/messages")
    assert len(log["data"]) == (1 if records else 0)


async def test_timeout_eventually_answers(sb: SandboxDriver) -> None:
    to = await _lead(sb)
    await _faults(sb, error="timeout", timeout_seconds=0.05, timeout_records_message=False)
    response = await sb.send_ig(DEMO_ACCESS_TOKEN, to)
    assert graph_error(response) == (2, None)


async def test_whatsapp_timeout_accepts_then_hangs(sb: SandboxDriver, receiver: Receiver) -> None:
    """The ambiguous WhatsApp send: no answer, yet the message was sent and its status
    webhooks (with the callback data) go out."""
    number = await sb.wa_number()
    await sb.control("POST", "/whatsapp/templates", {"name": "hi", "language": "en_US"})
    await _faults(sb, error="timeout", scope="whatsapp", timeout_seconds=5, count=1)
    body = {
        "to": "4915112345678",
        "type": "template",
        "template": {"name": "hi", "language": {"code": "en_US"}},
        "biz_opaque_callback_data": "send:1",
    }
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sb.wa_send(number, body), timeout=0.2)
    await sb.drain()
    log = (await sb.client.get("/_sandbox/whatsapp/messages")).json()["data"]
    assert [m["callback_data"] for m in log] == ["send:1"]
    statuses = [
        p["entry"][0]["changes"][0]["value"]["statuses"][0]
        for p in receiver.payloads(WA_WEBHOOK_URL)
    ]
    assert [(s["status"], s["biz_opaque_callback_data"]) for s in statuses] == [
        ("sent", "send:1"),
        ("delivered", "send:1"),
        ("read", "send:1"),
    ]
