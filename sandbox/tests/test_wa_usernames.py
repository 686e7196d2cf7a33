"""WhatsApp after usernames (issue 19): BSUIDs in every webhook, users hiding their phone,
sends by `recipient`, mark-as-read, pricing where Meta puts it, status timing like Meta's."""

from __future__ import annotations

from typing import Any

from sandbox.settings import SandboxSettings
from sandbox.state import StatusOrder
from sandbox.tests.driver import WA_WEBHOOK_URL, Receiver, SandboxDriver, graph_error
from sandbox.wa_users import status_plan

SHOWN, HIDDEN = "4915112345601", "4915112345602"


async def _writes(
    sb: SandboxDriver, number: dict[str, Any], phone: str, hide: bool | None
) -> dict[str, Any]:
    body = {"phone_number_id": number["phone_number_id"], "from": phone, "text": "hi"}
    if hide is not None:
        body["hide_phone"] = hide
    return await sb.control("POST", "/whatsapp/users/message", body)


def _values(receiver: Receiver) -> list[dict[str, Any]]:
    return [p["entry"][0]["changes"][0]["value"] for p in receiver.payloads(WA_WEBHOOK_URL)]


async def test_inbound_names_the_user_by_bsuid_and_a_hidden_phone_nowhere(
    sb: SandboxDriver, receiver: Receiver
) -> None:
    number = await sb.wa_number()
    shown = await _writes(sb, number, SHOWN, hide=False)
    hidden = await _writes(sb, number, HIDDEN, hide=True)
    await sb.drain()
    first, second = _values(receiver)
    assert first["contacts"][0] | {"profile": None} == {
        "profile": None,
        "user_id": shown["user_id"],
        "wa_id": SHOWN,
    }
    assert first["messages"][0]["from"] == SHOWN
    assert first["messages"][0]["from_user_id"] == shown["user_id"]
    [contact], [message] = second["contacts"], second["messages"]
    assert contact["user_id"] == message["from_user_id"] == hidden["user_id"]
    assert contact["profile"]["username"] == hidden["username"]
    assert "wa_id" not in contact and "from" not in message
    assert HIDDEN not in str(second)


async def test_a_share_of_users_hides_their_phone(sb: SandboxDriver) -> None:
    number = await sb.wa_number()
    await sb.settings(whatsapp_username_share=1.0)
    assert (await _writes(sb, number, SHOWN, hide=None))["wa_id"] is None
    await sb.settings(whatsapp_username_share=0.0)
    assert (await _writes(sb, number, HIDDEN, hide=None))["wa_id"] == HIDDEN


async def test_a_send_by_recipient_reaches_the_user_and_statuses_name_the_bsuid(
    sb: SandboxDriver, receiver: Receiver
) -> None:
    number = await sb.wa_number()
    user_id = (await _writes(sb, number, HIDDEN, hide=True))["user_id"]
    text = {"recipient": user_id, "type": "text", "text": {"body": "Hi!"}}
    response = await sb.wa_send(number, text)
    assert response.status_code == 200, response.text
    assert response.json()["contacts"] == [{"input": user_id, "user_id": user_id}]
    both = await sb.wa_send(number, text | {"to": HIDDEN})
    assert graph_error(both) == (100, None)
    unknown = await sb.wa_send(number, text | {"recipient": "US.1"})
    assert graph_error(unknown) == (100, None)

    await sb.drain()
    statuses = [v for v in _values(receiver) if "statuses" in v]
    assert [v["statuses"][0]["status"] for v in statuses] == ["sent", "delivered", "read"]
    for value in statuses:
        [status], [contact] = value["statuses"], value["contacts"]
        assert status["recipient_user_id"] == contact["user_id"] == user_id
        assert "recipient_id" not in status and "wa_id" not in contact
    # Pricing (and, before v24, the conversation) on sent and delivered, not on read.
    assert ["pricing" in v["statuses"][0] for v in statuses] == [True, True, False]
    assert ["conversation" in v["statuses"][0] for v in statuses] == [True, True, False]


async def test_free_form_outside_the_window_is_accepted_then_fails_without_pricing(
    sb: SandboxDriver, receiver: Receiver
) -> None:
    number = await sb.wa_number()
    text = {"to": SHOWN, "type": "text", "text": {"body": "cold"}}
    assert (await sb.wa_send(number, text)).status_code == 200
    await sb.drain()
    [value] = _values(receiver)
    [status] = value["statuses"]
    assert (status["status"], status["errors"][0]["code"]) == ("failed", 131047)
    assert "pricing" not in status and value["contacts"][0]["user_id"]


async def test_mark_as_read_answers_success(sb: SandboxDriver) -> None:
    number = await sb.wa_number()
    wamid = (await _writes(sb, number, SHOWN, hide=False))["wamid"]
    read = await sb.wa_send(number, {"status": "read", "message_id": wamid})
    assert (read.status_code, read.json()) == (200, {"success": True})
    assert graph_error(await sb.wa_send(number, {"status": "read"})) == (100, None)


async def test_a_bsuid_change_is_a_system_message_and_the_old_bsuid_stops_working(
    sb: SandboxDriver, receiver: Receiver
) -> None:
    number = await sb.wa_number()
    old = (await _writes(sb, number, SHOWN, hide=False))["user_id"]
    body = {"phone_number_id": number["phone_number_id"], "user_id": old}
    new = (await sb.control("POST", "/whatsapp/users/change_user_id", body))["user_id"]
    await sb.drain()
    change = _values(receiver)[-1]
    assert "contacts" not in change  # like every system message
    [message] = change["messages"]
    assert (message["type"], message["from_user_id"]) == ("system", old)
    assert (message["system"]["type"], message["system"]["user_id"]) == (
        "user_changed_user_id",
        new,
    )
    text = {"type": "text", "text": {"body": "Hi!"}}
    assert graph_error(await sb.wa_send(number, text | {"recipient": old})) == (100, None)
    # The window they opened is theirs, whatever their id: the new one is inside it.
    assert (await sb.wa_send(number, text | {"recipient": new})).status_code == 200


def test_default_statuses_are_spaced_and_now_and_then_drop_or_swap_delivered() -> None:
    spaced = SandboxSettings(
        whatsapp_status_delay_ms=200,
        whatsapp_status_jitter_ms=0,
        whatsapp_missing_delivered_share=0,
        whatsapp_out_of_order_share=0,
    )
    assert status_plan(spaced, StatusOrder(), failure=False) == [
        ("sent", 0.2),
        ("delivered", 0.2),
        ("read", 0.2),
    ]
    missing = SandboxSettings(whatsapp_missing_delivered_share=1.0)
    assert [s for s, _ in status_plan(missing, StatusOrder(), False)] == ["sent", "read"]
    swapped = SandboxSettings(whatsapp_missing_delivered_share=0, whatsapp_out_of_order_share=1)
    assert [s for s, _ in status_plan(swapped, StatusOrder(), False)] == [
        "sent",
        "read",
        "delivered",
    ]
    # An order a test set is played exactly, whatever the shares.
    exact = StatusOrder(["sent", "delivered", "read"], delay_ms=10, explicit=True)
    assert status_plan(missing, exact, False) == [
        ("sent", 0.01),
        ("delivered", 0.01),
        ("read", 0.01),
    ]
    assert [s for s, _ in status_plan(missing, exact, failure=True)] == ["failed"]
