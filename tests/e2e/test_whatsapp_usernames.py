"""WhatsApp after usernames (issue 19), end to end on real Kafka and PostgreSQL: users
known by business-scoped user id (BSUID), some never showing a phone; identity changes;
Meta's usual asynchronous 131047.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID

import httpx
import pytest
from demo import DemoCreator
from sqlalchemy import select
from stack import Stack

from shared.db.models import Lead, WhatsAppContact
from tests.e2e import test_whatsapp as wa_e2e
from tests.e2e.test_backbone import settle
from tests.e2e.test_whatsapp import (
    Number,
    _db,
    _window_seen,
    new_lead,
    new_phone,
    sent_to,
    settle_attempt,
)

pytestmark = pytest.mark.e2e
number = wa_e2e.number  # the fixture: a connected sandbox number with a template


async def _ref_of(stack: Stack, lead_id: str) -> str:
    sessions, engine = _db(stack)
    try:
        async with sessions() as session:
            lead = await session.get_one(Lead, UUID(lead_id))
            return lead.ref
    finally:
        await engine.dispose()


async def _writes(
    sandbox: httpx.AsyncClient, number: Number, text: str, **who: Any
) -> dict[str, Any]:
    body = {"phone_number_id": number.phone_number_id, "text": text} | who
    response = await sandbox.post("/_sandbox/whatsapp/users/message", json=body)
    response.raise_for_status()
    return dict(response.json())


async def _webhooks_naming(sandbox: httpx.AsyncClient, user_id: str) -> list[str]:
    await sandbox.post("/_sandbox/webhooks/drain")
    log = (await sandbox.get("/_sandbox/webhooks", params={"platform": "whatsapp"})).json()
    bodies = [json.dumps(d["payload"]) for d in log["data"]]
    return [b for b in bodies if user_id in b]


async def test_a_username_user_without_a_phone_writes_first_and_gets_the_dm_in_the_window(
    stack: Stack,
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    number: Number,
) -> None:
    # The lead came with a number (no opt-in): a wa.me link waits for them.
    typed, typed_wa_id = new_phone()
    lead_id = await new_lead(api, creator, "Uma", typed, opt_in=False)
    await settle(api, lead_id, "link_ready")
    ref = await _ref_of(stack, lead_id)

    # They write from WhatsApp naming the lead, as a username user hiding their phone.
    _, hidden_phone = new_phone()
    wrote = await _writes(
        sandbox, number, f"Hi! (ref {ref})", **{"from": hidden_phone, "hide_phone": True}
    )
    user_id = wrote["user_id"]
    assert wrote["wa_id"] is None and user_id

    lead = await settle(api, lead_id, "read", timeout_s=40)
    assert lead["dm"]["route"] == "wa_text"  # inside the window their message opened
    assert (lead["phone"], lead["whatsapp_user_id"]) == (None, user_id)
    assert [s["status"] for s in lead["dm"]["log"]][-3:] == ["sent", "delivered", "read"]
    [message] = await sent_to(sandbox, number, user_id)
    assert (message["addressed_by"], message["type"]) == ("recipient", "text")
    assert await sent_to(sandbox, number, typed_wa_id) == []  # nobody proved the typed one
    # Every webhook about them named them by BSUID alone.
    about_them = await _webhooks_naming(sandbox, user_id)
    assert len(about_them) >= 4  # their message, sent, delivered, read
    assert all(hidden_phone not in body for body in about_them)


async def test_a_bsuid_change_keeps_the_history_and_the_opt_in(
    stack: Stack,
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    number: Number,
) -> None:
    phone, wa_id = new_phone()
    wrote = await _writes(sandbox, number, "hello", **{"from": wa_id, "hide_phone": False})
    old = wrote["user_id"]
    sessions, engine = _db(stack)
    try:
        await _window_seen(sessions, UUID(number.account_id), wa_id)
    finally:
        await engine.dispose()
    lead_id = await new_lead(api, creator, "Bea", phone, opt_in=True)
    lead = await settle(api, lead_id, "read")
    assert lead["dm"]["route"] == "wa_text"

    body = {"phone_number_id": number.phone_number_id, "user_id": old}
    changed = (await sandbox.post("/_sandbox/whatsapp/users/change_user_id", json=body)).json()
    new = changed["user_id"]
    contact = await _contact_named(stack, UUID(number.account_id), new)
    assert (contact.wa_id, contact.phone) == (wa_id, wa_id)  # the same row, re-keyed

    # They adopt a username: from now on no phone. Their answer still answers the DM.
    await asyncio.sleep(1.1)  # whole-second timestamps: written after the send's second
    await _writes(sandbox, number, "thanks!", from_user_id=new, hide_phone=True)
    lead = await settle(api, lead_id, "replied")
    assert lead["whatsapp_opt_in"] is True
    contacts = await _contacts(stack, UUID(number.account_id), wa_id)
    assert [(c.user_id, c.phone) for c in contacts] == [(new, wa_id)]


async def test_an_asynchronous_131047_without_opt_in_ends_with_the_link(
    stack: Stack,
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    number: Number,
) -> None:
    """Meta accepts the text, then its `failed` status says 131047: the attempt ends
    `failed` for the closed window, and without opt-in the rules leave the wa.me link."""
    phone, wa_id = new_phone()
    await _writes(sandbox, number, "hello", **{"from": wa_id, "hide_phone": False})
    sessions, engine = _db(stack)
    try:
        await _window_seen(sessions, UUID(number.account_id), wa_id)
    finally:
        await engine.dispose()
    (await sandbox.put("/_sandbox/clock", json={"offset_seconds": 25 * 3600})).raise_for_status()
    try:
        lead_id = await new_lead(api, creator, "Ivo", phone, opt_in=False)
        lead = await settle_attempt(api, lead_id, 2, "link_ready", timeout_s=30)
    finally:
        await sandbox.put("/_sandbox/clock", json={"offset_seconds": 0})
    assert lead["dm"]["route"] == "wa_link"
    assert lead["dm"]["link"].startswith(f"https://wa.me/{wa_id}")
    log = [(e["status"], e["attempt"]) for e in lead["dm"]["log"]]
    assert log[:4] == [("queued", 1), ("sending", 1), ("sent", 1), ("failed", 1)]
    failed = next(e for e in lead["dm"]["log"] if e["status"] == "failed")
    assert failed["detail"]["error"]["code"] == 131047
    assert "not written to you recently" in failed["detail"]["reason"]
    [text] = await sent_to(sandbox, number, wa_id)  # accepted once, never resent
    assert (text["type"], text["error_code"]) == ("text", 131047)


async def _contact_named(
    stack: Stack, account_id: UUID, user_id: str, timeout_s: float = 20
) -> WhatsAppContact:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        found = [c for c in await _contacts(stack, account_id) if c.user_id == user_id]
        if found:
            return found[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no contact of {user_id} after {timeout_s} s")


async def _contacts(
    stack: Stack, account_id: UUID, phone: str | None = None
) -> list[WhatsAppContact]:
    sessions, engine = _db(stack)
    try:
        async with sessions() as session:
            query = select(WhatsAppContact).where(WhatsAppContact.account_id == account_id)
            if phone:
                query = query.where(WhatsAppContact.phone == phone)
            return list(await session.scalars(query))
    finally:
        await engine.dispose()
