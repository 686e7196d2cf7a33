"""The sandbox's WhatsApp against an independent client (issue 19): pywa 4.5.0, a
maintained WhatsApp Cloud API library, is pointed at a running sandbox. Every send answer
and every webhook kind the sandbox emits must parse there without error and mean the same
as in AutoDM's own parser (shared.providers.whatsapp, webhook_ingest.whatsapp_routes). A
sandbox and a client that agree only with each other would pass every other test.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from pywa.client import WhatsApp
from pywa.errors import WhatsAppError
from pywa.types.base_update import RawUpdate
from pywa.types.message import Message
from pywa.types.message_status import MessageStatus
from pywa.types.sent_update import RecipientType, SentMessage
from pywa.types.system import PhoneNumberChange

from sandbox.app import create_app
from sandbox.settings import SandboxSettings
from sandbox.tests.driver import WA_WEBHOOK_URL, Receiver
from services.webhook_ingest.whatsapp_routes import WhatsAppItem, split_whatsapp
from services.whatsapp_sender.statuses import STATUSES
from shared.providers.graph_http import decode_error
from shared.providers.whatsapp import accepted_from, addressed
from shared.providers.whatsapp_identity import identity_change

API = "v23.0"
SHOWN, HIDDEN, COLD = "4915112340001", "4915112340002", "4915112340003"


@dataclass
class Sandbox:
    url: str
    receiver: Receiver
    number: dict[str, Any]

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, f"{self.url}/_sandbox{path}", json=body, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def graph(self, body: dict[str, Any], token: str | None = None) -> httpx.Response:
        """A raw send, for the bytes both parsers read."""
        headers = {"Authorization": f"Bearer {token or self.number['access_token']}"}
        path = f"{self.url}/{API}/{self.number['phone_number_id']}/messages"
        body = {"messaging_product": "whatsapp"} | body
        return httpx.post(path, json=body, headers=headers, timeout=10)

    def webhooks(self) -> list[dict[str, Any]]:
        assert self.control("POST", "/webhooks/drain")["drained"]
        return self.receiver.payloads(WA_WEBHOOK_URL)


class _ToSandbox(httpx.BaseTransport):
    """pywa always calls graph.facebook.com: its requests go to the sandbox instead."""

    def __init__(self, url: str) -> None:
        self._url = httpx.URL(url)
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self._url.scheme, host=self._url.host, port=self._url.port
        )
        return self._inner.handle_request(request)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The sandbox served by uvicorn in a thread (pywa's client is synchronous)."""
    settings = SandboxSettings(
        whatsapp_webhook_url=WA_WEBHOOK_URL,
        webhook_retry_backoff_ms=0,
        whatsapp_status_delay_ms=0,
        whatsapp_status_jitter_ms=0,
        # Every kind, every time: no `delivered` left out (its shape is no other kind).
        whatsapp_missing_delivered_share=0,
    )
    receiver = Receiver()
    app = create_app(settings, webhook_transport=receiver.transport())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        number = httpx.post(
            f"{url}/_sandbox/whatsapp/numbers", json={"display_phone_number": "15550001111"}
        ).json()
        yield Sandbox(url, receiver, number)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


@pytest.fixture
def wa(sandbox: Sandbox) -> WhatsApp:
    return WhatsApp(
        phone_id=sandbox.number["phone_number_id"],
        token=sandbox.number["access_token"],
        session=httpx.Client(transport=_ToSandbox(sandbox.url)),
        api_version=API.removeprefix("v"),
        validate_updates=True,
    )


def _write(sandbox: Sandbox, phone: str, hide: bool) -> dict[str, Any]:
    body = {
        "phone_number_id": sandbox.number["phone_number_id"],
        "from": phone,
        "text": f"hello from {phone}",
        "hide_phone": hide,
    }
    return dict(sandbox.control("POST", "/whatsapp/users/message", body))


def _sent_by_pywa(wa: WhatsApp, answer: dict[str, Any], to: str) -> SentMessage:
    kind = RecipientType.BSUID if "." in to else RecipientType.PHONE_NUMBER
    return SentMessage.from_sent_update(
        client=wa, update=answer, from_phone_id=str(wa.phone_id), recipient_type=kind
    )


def _pywa_update(wa: WhatsApp, payload: dict[str, Any]) -> Any:
    """What pywa makes of a webhook, as its server would (its handler table)."""
    raw = RawUpdate(json.dumps(payload).encode(), hmac_header=None, update_hash="t")
    handler = wa._get_handler_type(raw)
    assert handler is not None, payload
    return wa._handlers_to_updates[handler].from_update(client=wa, update=raw)


def test_sends_and_errors_mean_the_same_to_pywa_and_autodm(sandbox: Sandbox, wa: WhatsApp) -> None:
    shown, hidden = _write(sandbox, SHOWN, False), _write(sandbox, HIDDEN, True)
    assert hidden["wa_id"] is None and hidden["user_id"]
    sandbox.control("POST", "/whatsapp/templates", {"name": "hi", "language": "en_US"})

    # Text by phone, text by BSUID (`recipient`), a template, through pywa's own client.
    for to in (SHOWN, hidden["user_id"]):
        sent = wa.send_message(to=to, text="Hi!", tracker="lead:1")
        assert sent.id.startswith("wamid.")
    assert wa.mark_message_as_read(message_id=shown["wamid"]).success is True

    # The same answers' bytes through both parsers.
    for to, body in (
        (SHOWN, {"type": "text", "text": {"body": "x"}}),
        (hidden["user_id"], {"type": "text", "text": {"body": "x"}}),
        (COLD, {"type": "template", "template": {"name": "hi", "language": {"code": "en_US"}}}),
    ):
        response = sandbox.graph(addressed(to) | body)
        assert response.status_code == 200, response.text
        theirs, ours = _sent_by_pywa(wa, response.json(), to), accepted_from(response.json())
        assert theirs.id == ours.wamid
        assert theirs.chat.id in {ours.wa_id, ours.user_id}
        if "." in to:
            assert (ours.user_id, ours.wa_id) == (to, None)  # never the hidden phone
        else:
            assert ours.wa_id == to and ours.user_id

    # Refusals: the same code in pywa's exception and AutoDM's MetaError.
    sandbox.control("PATCH", "/settings", {"whatsapp_window_error_mode": "sync"})
    refusals = {
        131047: sandbox.graph({"to": COLD, "type": "text", "text": {"body": "cold"}}),
        132001: sandbox.graph(
            {"to": COLD, "type": "template", "template": {"name": "no", "language": {"code": "x"}}}
        ),
        132000: sandbox.graph(
            {
                "to": COLD,
                "type": "template",
                "template": {
                    "name": "hi",
                    "language": {"code": "en_US"},
                    "components": [{"type": "body", "parameters": [{"type": "text", "text": "a"}]}],
                },
            }
        ),
        190: sandbox.graph({"to": COLD, "type": "text", "text": {"body": "x"}}, token="EAAwrong"),
    }
    for code, response in refusals.items():
        refused = WhatsAppError.from_dict(error=response.json()["error"], response=response)
        assert (refused.code, decode_error(response).code) == (code, code)


def test_every_webhook_kind_means_the_same_to_pywa_and_autodm(
    sandbox: Sandbox, wa: WhatsApp
) -> None:
    shown, hidden = _write(sandbox, SHOWN, False), _write(sandbox, HIDDEN, True)
    for to in (SHOWN, hidden["user_id"]):
        wa.send_message(to=to, text="Hi!", tracker="lead:1")
    wa.send_message(to=COLD, text="outside the window")  # accepted, then `failed` 131047
    for user in (shown, hidden):
        body = {"phone_number_id": sandbox.number["phone_number_id"], "user_id": user["user_id"]}
        sandbox.control("POST", "/whatsapp/users/change_user_id", body)

    kinds: set[str] = set()
    for payload in sandbox.webhooks():
        [item] = split_whatsapp(payload)
        kinds.add(_agree(wa, payload, item))
    assert kinds == {
        "message",
        "status:sent",
        "status:delivered",
        "status:read",
        "status:failed",
        "user_changed_user_id",
        "user_changed_user_id (phone hidden)",
    }


def _agree(wa: WhatsApp, payload: dict[str, Any], item: WhatsAppItem) -> str:
    """pywa's reading of one webhook against AutoDM's; the kind it was."""
    change = identity_change(item.item)
    if change is not None:
        return _agree_on_change(wa, payload, change.new_user_id, change.old.phone)
    update = _pywa_update(wa, payload)
    assert item.user is not None
    assert update.from_user.bsuid == item.user.user_id
    assert update.from_user.wa_id == item.user.phone
    assert update.from_user.username == item.user.username
    if item.kind == "message":
        assert isinstance(update, Message)
        assert (update.id, update.text) == (item.item["id"], item.item["text"]["body"])
        assert item.profile_name == update.from_user.name
        return "message"
    assert isinstance(update, MessageStatus)
    status = item.item["status"]
    assert update.id == item.item["id"]
    assert STATUSES[status].value == str(update.status.value)
    assert update.tracker == item.item.get("biz_opaque_callback_data")
    # Meta prices a message on `sent` and `delivered`, not on `read` or `failed`.
    assert (update.pricing is not None) == (status in ("sent", "delivered"))
    if status == "failed":
        assert update.error is not None
        assert update.error.code == item.item["errors"][0]["code"] == 131047
    return f"status:{status}"


def _agree_on_change(
    wa: WhatsApp, payload: dict[str, Any], new_user_id: str | None, old_phone: str | None
) -> str:
    if old_phone is None:
        # Meta: "user_changed_user_id ... no phone number is included". pywa 4.5.0 reads
        # `messages[0].from` unconditionally for this system type, so it cannot build the
        # update of a user who hides their phone; AutoDM's parser must not depend on it.
        with pytest.raises(KeyError, match="from"):
            _pywa_update(wa, payload)
        return "user_changed_user_id (phone hidden)"
    update = _pywa_update(wa, payload)
    assert isinstance(update, PhoneNumberChange)
    assert update.new_user_id == new_user_id
    assert update.old_wa_id == old_phone
    return "user_changed_user_id"
