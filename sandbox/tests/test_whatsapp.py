"""WhatsApp Cloud API rules: window, templates, params, pair rate, throughput, statuses."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx

from sandbox.settings import SandboxSettings
from sandbox.tests.driver import WA_WEBHOOK_URL, Receiver, SandboxDriver, graph_error

LEAD = "4915112345678"


def _text(to: str = LEAD, body: str = "Hi!") -> dict[str, Any]:
    return {"recipient_type": "individual", "to": to, "type": "text", "text": {"body": body}}


def _template(name: str = "lead_hello", lang: str = "en_US", *params: str) -> dict[str, Any]:
    template: dict[str, Any] = {"name": name, "language": {"code": lang}}
    if params:
        parameters = [{"type": "text", "text": p} for p in params]
        template["components"] = [{"type": "body", "parameters": parameters}]
    return {"to": LEAD, "type": "template", "template": template}


async def _inbound(sb: SandboxDriver, number: dict[str, Any], sender: str = LEAD) -> dict[str, Any]:
    body = {"phone_number_id": number["phone_number_id"], "from": sender, "text": "hello"}
    return await sb.control("POST", "/whatsapp/users/message", body)


async def _register_template(sb: SandboxDriver, body_params: int = 1) -> None:
    body = {"name": "lead_hello", "language": "en_US", "body_params": body_params}
    await sb.control("POST", "/whatsapp/templates", body)


async def test_free_form_outside_window_gives_131047(sb: SandboxDriver) -> None:
    await sb.settings(whatsapp_window_error_mode="sync")
    number = await sb.wa_number()
    response = await sb.wa_send(number, _text())
    assert response.status_code == 400
    assert graph_error(response) == (131047, None)
    error = response.json()["error"]
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["error_data"]["details"]
    assert error["fbtrace_id"]


async def test_free_form_inside_window(sb: SandboxDriver) -> None:
    number = await sb.wa_number()
    await _inbound(sb, number)
    response = await sb.wa_send(number, _text(to="+" + LEAD))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["messaging_product"] == "whatsapp"
    [contact] = body["contacts"]
    assert (contact["input"], contact["wa_id"]) == ("+" + LEAD, LEAD)
    assert contact["user_id"].startswith("GB.") or contact["user_id"].startswith("US.")
    [message] = body["messages"]
    assert message["id"].startswith("wamid.")
    assert "message_status" not in message
    log = await sb.control("GET", f"/whatsapp/messages?to={LEAD}")
    assert [m["message_id"] for m in log["data"]] == [message["id"]]


async def test_window_closes_after_24_hours(sb: SandboxDriver) -> None:
    await sb.settings(whatsapp_window_error_mode="sync")
    number = await sb.wa_number()
    await _inbound(sb, number)
    await sb.advance(86400 + 1)
    assert graph_error(await sb.wa_send(number, _text())) == (131047, None)


async def test_async_window_error_mode_is_the_default(
    sb: SandboxDriver, receiver: Receiver
) -> None:
    """Meta usually accepts free-form text outside the window and fails it later."""
    number = await sb.wa_number()
    response = await sb.wa_send(number, _text())
    assert response.status_code == 200
    await sb.drain()
    [payload] = receiver.payloads(WA_WEBHOOK_URL)
    [status] = payload["entry"][0]["changes"][0]["value"]["statuses"]
    assert status["status"] == "failed"
    assert status["errors"][0]["code"] == 131047


async def test_template_must_exist(sb: SandboxDriver) -> None:
    number = await sb.wa_number()
    assert graph_error(await sb.wa_send(number, _template("nope", "en_US", "x"))) == (132001, None)
    await _register_template(sb)
    wrong_lang = await sb.wa_send(number, _template("lead_hello", "de", "x"))
    assert graph_error(wrong_lang) == (132001, None)


async def test_template_param_count(sb: SandboxDriver) -> None:
    number = await sb.wa_number()
    await _register_template(sb, body_params=2)
    for params in ((), ("a",), ("a", "b", "c")):
        response = await sb.wa_send(number, _template("lead_hello", "en_US", *params))
        assert graph_error(response) == (132000, None), params


async def test_template_outside_window_is_accepted(sb: SandboxDriver) -> None:
    number = await sb.wa_number()
    await _register_template(sb, body_params=1)
    response = await sb.wa_send(number, _template("lead_hello", "en_US", "Ana"))
    assert response.status_code == 200, response.text
    [message] = response.json()["messages"]
    assert message["message_status"] == "accepted"
    [logged] = (await sb.control("GET", "/whatsapp/messages"))["data"]
    assert logged["template"] == "lead_hello"
    assert logged["params"] == ["Ana"]


async def test_pair_rate_limit(sb: SandboxDriver) -> None:
    number = await sb.wa_number()
    await _register_template(sb, body_params=0)
    assert (await sb.wa_send(number, _template())).status_code == 200
    second = await sb.wa_send(number, _template())
    assert graph_error(second) == (131056, None)
    other = await sb.wa_send(number, _template() | {"to": "4915100000001"})
    assert other.status_code == 200
    await sb.advance(6)
    assert (await sb.wa_send(number, _template())).status_code == 200


async def test_pair_rate_burst(sb: SandboxDriver) -> None:
    await sb.settings(whatsapp_pair_burst=2)
    number = await sb.wa_number()
    await _register_template(sb, body_params=0)
    for _ in range(3):
        assert (await sb.wa_send(number, _template())).status_code == 200
    assert graph_error(await sb.wa_send(number, _template())) == (131056, None)


async def test_throughput_limit(sb: SandboxDriver) -> None:
    await sb.settings(whatsapp_messages_per_second=2)
    number = await sb.wa_number()
    await _register_template(sb, body_params=0)
    for i in range(2):
        ok = await sb.wa_send(number, _template() | {"to": f"491510000000{i}"})
        assert ok.status_code == 200
    limited = await sb.wa_send(number, _template() | {"to": "4915100000009"})
    assert graph_error(limited) == (130429, None)
    # The refused message did not consume the pair quota of its recipient.
    await sb.advance(1.1)
    assert (await sb.wa_send(number, _template() | {"to": "4915100000009"})).status_code == 200


async def test_token_and_payload_validation(sb: SandboxDriver, client: httpx.AsyncClient) -> None:
    number = await sb.wa_number()
    path = f"/v23.0/{number['phone_number_id']}/messages"
    bad_token = await client.post(
        path,
        json={"messaging_product": "whatsapp"} | _text(),
        headers={"Authorization": "Bearer x"},
    )
    assert graph_error(bad_token) == (190, 467)
    assert graph_error(await sb.wa_send(number, _text(to="lead@example.com"))) == (100, None)
    headers = {"Authorization": f"Bearer {number['access_token']}"}
    no_product = await client.post(path, json=_text(), headers=headers)
    assert graph_error(no_product) == (100, None)


async def test_status_webhooks_default_order(
    sb: SandboxDriver, receiver: Receiver, settings: SandboxSettings
) -> None:
    number = await sb.wa_number("15550001111")
    await _inbound(sb, number)
    wamid = (await sb.wa_send(number, _text())).json()["messages"][0]["id"]
    await sb.drain()
    inbound, *status_payloads = receiver.payloads(WA_WEBHOOK_URL)
    assert inbound["entry"][0]["changes"][0]["value"]["messages"][0]["text"] == {"body": "hello"}
    statuses = [p["entry"][0]["changes"][0]["value"]["statuses"][0] for p in status_payloads]
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    assert {s["id"] for s in statuses} == {wamid}
    assert statuses[0]["recipient_id"] == LEAD
    assert statuses[0]["pricing"]["type"] == "free_customer_service"
    envelope = status_payloads[0]
    assert envelope["object"] == "whatsapp_business_account"
    assert envelope["entry"][0]["id"] == settings.whatsapp_waba_id
    value = envelope["entry"][0]["changes"][0]["value"]
    assert value["metadata"] == {
        "display_phone_number": "15550001111",
        "phone_number_id": number["phone_number_id"],
    }
    for request in receiver.requests:
        digest = hmac.new(settings.app_secret.encode(), request.content, hashlib.sha256)
        assert request.headers["X-Hub-Signature-256"] == "sha256=" + digest.hexdigest()


async def test_status_webhooks_out_of_order(sb: SandboxDriver, receiver: Receiver) -> None:
    order = {"order": ["read", "sent", "delivered"], "delay_ms": 20}
    await sb.control("PUT", "/whatsapp/status_order", order)
    number = await sb.wa_number()
    await _inbound(sb, number)
    await sb.wa_send(number, _text())
    await sb.drain()
    statuses = [
        p["entry"][0]["changes"][0]["value"]["statuses"][0]["status"]
        for p in receiver.payloads(WA_WEBHOOK_URL)
        if "statuses" in p["entry"][0]["changes"][0]["value"]
    ]
    assert statuses == ["read", "sent", "delivered"]


def _statuses(receiver: Receiver) -> list[dict[str, Any]]:
    values = [p["entry"][0]["changes"][0]["value"] for p in receiver.payloads(WA_WEBHOOK_URL)]
    return [v["statuses"][0] for v in values if "statuses" in v]


async def test_callback_data_is_echoed_in_every_status(
    sb: SandboxDriver, receiver: Receiver
) -> None:
    number = await sb.wa_number()
    other = "4915100000001"
    await _inbound(sb, number)
    await _inbound(sb, number, other)
    await sb.wa_send(number, _text() | {"biz_opaque_callback_data": "job:42"})
    await sb.wa_send(number, _text(to=other))  # none given: none echoed
    await sb.drain()
    statuses = _statuses(receiver)
    echoed = [s["biz_opaque_callback_data"] for s in statuses if s["recipient_id"] == LEAD]
    assert echoed == ["job:42", "job:42", "job:42"]
    assert all("biz_opaque_callback_data" not in s for s in statuses if s["recipient_id"] != LEAD)
    log = await sb.client.get("/_sandbox/whatsapp/messages", params={"to": LEAD})
    assert log.json()["data"][0]["callback_data"] == "job:42"


async def test_callback_data_over_512_characters_is_refused(sb: SandboxDriver) -> None:
    number = await sb.wa_number()
    await _register_template(sb, body_params=0)
    response = await sb.wa_send(number, _template() | {"biz_opaque_callback_data": "x" * 513})
    assert graph_error(response) == (100, None)
    accepted = await sb.wa_send(number, _template() | {"biz_opaque_callback_data": "x" * 512})
    assert accepted.status_code == 200


async def test_a_number_answers_its_fields_only_to_its_own_token(sb: SandboxDriver) -> None:
    number, other = await sb.wa_number(), await sb.wa_number("15550002222")
    path = f"/v23.0/{number['phone_number_id']}"
    fields = {"fields": "id,display_phone_number,verified_name"}
    own = await sb.client.get(
        path, params=fields, headers={"Authorization": f"Bearer {number['access_token']}"}
    )
    assert own.status_code == 200, own.text
    assert own.json()["id"] == number["phone_number_id"]
    assert own.json()["display_phone_number"] == "15550001111"
    foreign = await sb.client.get(
        path, params=fields, headers={"Authorization": f"Bearer {other['access_token']}"}
    )
    assert graph_error(foreign)[0] == 190
    assert graph_error(await sb.client.get(path, params=fields))[0] == 104
