"""Ambiguous WhatsApp sends: the callback data every send carries, and what a status that
settles one says (services/whatsapp_sender/reconciliation.py)."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import httpx
import pytest

from services.whatsapp_sender.reconciliation import (
    RECONCILED_FAILED_REASON,
    RECONCILED_REASON,
    SendRef,
)
from services.whatsapp_sender.statuses import _re_engagement, status_event
from shared.contracts.lifecycle import DmStatus, Route
from shared.db.models import WhatsAppMessage
from shared.providers.whatsapp import TemplateMessage, WhatsAppClient


def _ref() -> SendRef:
    return SendRef(uuid4(), Route.WA_TEXT, 3, sent_as=Route.WA_TEMPLATE)


def test_callback_data_names_the_intent_the_attempt_and_the_route_it_went_by() -> None:
    ref = _ref()
    data = ref.callback_data()
    assert len(data) <= 512
    assert SendRef.parse(data) == ref
    assert ref.key == f"{ref.lead_id}:wa_text:3"


@pytest.mark.parametrize(
    "data",
    [
        None,
        42,
        "job:42",
        f"other-app:{uuid4()}:wa_text:1:wa_text",
        "autodm-send:not-a-uuid:wa_text:1:wa_text",
        f"autodm-send:{uuid4()}:sms:1:wa_text",
        f"autodm-send:{uuid4()}:wa_text:one:wa_text",
        f"autodm-send:{uuid4()}:wa_text:1:wa_text:extra",
    ],
)
def test_callback_data_not_ours_names_no_send(data: object) -> None:
    assert SendRef.parse(data) is None


def _message(route: Route = Route.WA_TEXT, reconciled: bool = True) -> WhatsAppMessage:
    return WhatsAppMessage(
        wamid="wamid.R",
        account_id=uuid4(),
        lead_id=uuid4(),
        creator_id=uuid4(),
        route=route,
        attempt=1,
        wa_id="442079460958",
        reconciled=reconciled,
    )


@pytest.mark.parametrize(
    ("webhook", "status"),
    [("sent", DmStatus.SENT), ("delivered", DmStatus.DELIVERED), ("read", DmStatus.READ)],
)
def test_a_status_that_settles_an_unknown_send_moves_it_there_and_says_why(
    webhook: str, status: DmStatus
) -> None:
    item = {"id": "wamid.R", "status": webhook, "timestamp": "1764331200"}
    event = status_event(_message(), item, uuid4(), "c")
    assert event is not None
    assert (event.payload.status, event.payload.provider_message_id) == (status, "wamid.R")
    assert event.payload.reason == RECONCILED_REASON
    plain = status_event(_message(reconciled=False), item, uuid4(), "c")
    assert plain is not None and plain.payload.reason is None


def test_a_failed_status_settles_an_unknown_send_as_failed_with_metas_error() -> None:
    item = {
        "id": "wamid.R",
        "status": "failed",
        "timestamp": "1764331200",
        "errors": [{"code": 131026, "title": "Message undeliverable"}],
    }
    event = status_event(_message(), item, uuid4(), "c")
    assert event is not None and event.payload.status == DmStatus.FAILED
    assert event.payload.reason is not None
    assert event.payload.reason.startswith(RECONCILED_FAILED_REASON)
    # Meta's title is the admin's detail (error); the creator's reason is plain words.
    assert "Message undeliverable" not in event.payload.reason
    assert "WhatsApp" in event.payload.reason
    assert event.payload.error is not None and event.payload.error.code == 131026
    assert "Message undeliverable" in event.payload.error.message


def test_a_reconciled_text_is_not_followed_by_a_template_after_131047() -> None:
    item = {"id": "wamid.R", "status": "failed", "errors": [{"code": 131047}]}
    assert _re_engagement(_message(reconciled=False), item)
    assert not _re_engagement(_message(reconciled=True), item)


async def test_every_send_carries_its_callback_data() -> None:
    bodies: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"messages": [{"id": "wamid.X"}]})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="https://graph")
    client = WhatsAppClient(http, "v23.0")
    await client.send_text("1", "t", "44", "Hi", callback_data="autodm-send:a")
    await client.send_template("1", "t", "44", TemplateMessage("x", "en", ()), "autodm-send:b")
    await client.send_text("1", "t", "44", "Hi")
    echoed = [b.get("biz_opaque_callback_data") for b in bodies]
    assert echoed == ["autodm-send:a", "autodm-send:b", None]
    with pytest.raises(ValueError):
        await client.send_text("1", "t", "44", "Hi", callback_data="x" * 513)
