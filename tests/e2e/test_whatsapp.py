"""WhatsApp end to end: every service as its own process on real Kafka and PostgreSQL, the
sandbox playing the Cloud API (templates, window rules, pair rate, signed status webhooks).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse
from uuid import UUID

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from demo import DemoCreator, settings_from
from sqlalchemy import update
from stack import Stack

from shared.contracts.events import DmRequested, DmRequestedPayload, Recipient, utcnow
from shared.contracts.lifecycle import Provider, Route
from shared.contracts.topics import DM_REQUESTED_WHATSAPP
from shared.db.models import WhatsAppContact, WhatsAppDeferredSend, WhatsAppNumber
from shared.db.session import make_engine, make_sessionmaker
from shared.messaging.broker import event_headers
from tests.e2e.test_backbone import settle

pytestmark = pytest.mark.e2e

TEMPLATE = {"name": "guide_offer", "language": "en_US", "body_params": 1}
_phones = itertools.count(100)


def new_phone() -> tuple[str, str]:
    """A valid, unused UK number (Ofcom's drama range): as typed, and as wa_id digits."""
    n = next(_phones)
    return f"+44 20 7946 0{n:03d}", f"442079460{n:03d}"


@dataclass(frozen=True)
class Number:
    account_id: str
    phone_number_id: str


@pytest.fixture
async def number(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator
) -> Number:
    """A sandbox number connected through the API, with an approved one-parameter template.
    Statuses come exactly sent, delivered, read (the sandbox's default now and then drops or
    swaps `delivered`, like Meta: these tests assert whole sequences)."""
    order = {"order": ["sent", "delivered", "read"]}
    (await sandbox.put("/_sandbox/whatsapp/status_order", json=order)).raise_for_status()
    registered = (
        await sandbox.post("/_sandbox/whatsapp/numbers", json={"display_phone_number": "+1555"})
    ).json()
    await sandbox.post("/_sandbox/whatsapp/templates", json=TEMPLATE)
    params = {"creator_id": str(creator.creator_id)}
    connected = await api.post(
        "/api/whatsapp/numbers",
        params=params,
        json={
            "phone_number_id": registered["phone_number_id"],
            "access_token": registered["access_token"],
            "display_phone_number": "+1 555 0100",
        },
    )
    assert connected.status_code == 201, connected.text
    assert "access_token" not in connected.text
    account_id = connected.json()["account_id"]
    template = await api.post(
        f"/api/whatsapp/numbers/{account_id}/templates",
        params=params,
        json={"name": "guide_offer", "language": "en_US", "parameters": ["first_name"]},
    )
    assert template.status_code == 201, template.text
    return Number(account_id, registered["phone_number_id"])


@pytest.fixture
async def sandbox_settings(sandbox: httpx.AsyncClient) -> AsyncIterator[dict[str, Any]]:
    """Sandbox settings/status order a test changes, restored afterwards."""
    before = (await sandbox.get("/_sandbox/settings")).json()
    yield before
    keys = ("whatsapp_pair_burst", "whatsapp_window_error_mode", "whatsapp_username_share")
    await sandbox.patch("/_sandbox/settings", json={k: before[k] for k in keys})
    await sandbox.put(
        "/_sandbox/whatsapp/status_order", json={"order": ["sent", "delivered", "read"]}
    )


async def new_lead(
    api: httpx.AsyncClient, creator: DemoCreator, name: str, phone: str, opt_in: bool
) -> str:
    body = {
        "creator_id": str(creator.creator_id),
        "name": name,
        "phone": phone,
        "whatsapp_opt_in": opt_in,
    }
    created = await api.post("/api/leads", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def sent_to(sandbox: httpx.AsyncClient, number: Number, wa_id: str) -> list[dict[str, Any]]:
    params = {"phone_number_id": number.phone_number_id, "to": wa_id}
    return list((await sandbox.get("/_sandbox/whatsapp/messages", params=params)).json()["data"])


async def test_opted_in_cold_lead_gets_the_template_then_delivered_read_replied(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator, number: Number
) -> None:
    phone, wa_id = new_phone()
    lead_id = await new_lead(api, creator, "Tess Lee", phone, opt_in=True)

    lead = await settle(api, lead_id, "read")
    assert lead["dm"]["route"] == "wa_template"
    statuses = [entry["status"] for entry in lead["dm"]["log"]]
    assert statuses[-3:] == ["sent", "delivered", "read"]
    (message,) = await sent_to(sandbox, number, wa_id)
    assert (message["type"], message["template"], message["params"]) == (
        "template",
        "guide_offer",
        ["Tess"],
    )
    assert lead["dm"]["provider_message_id"] == message["message_id"]

    # The lead answers: the 24 h window opens and the DM is `replied`; a new lead with the
    # same phone now gets free-form text (inside the window, no template needed). WhatsApp
    # timestamps are whole seconds: only a message written after the send's second counts.
    await asyncio.sleep(1.1)
    reply = {"phone_number_id": number.phone_number_id, "from": wa_id, "text": "yes please"}
    (await sandbox.post("/_sandbox/whatsapp/users/message", json=reply)).raise_for_status()
    await settle(api, lead_id, "replied")
    second = await new_lead(api, creator, "Tess Lee", phone, opt_in=False)
    warm = await settle(api, second, "read", timeout_s=30)
    assert warm["dm"]["route"] == "wa_text"
    assert [m["type"] for m in await sent_to(sandbox, number, wa_id)] == ["template", "text"]


async def test_no_opt_in_gets_a_link_and_free_form_outside_the_window_never_leaves(
    stack: Stack,
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    number: Number,
) -> None:
    phone, wa_id = new_phone()
    lead_id = await new_lead(api, creator, "Nora", phone, opt_in=False)
    lead = await settle(api, lead_id, "link_ready")
    link = urlparse(lead["dm"]["link"])
    assert (link.scheme, link.netloc, link.path) == ("https", "wa.me", f"/{wa_id}")
    assert parse_qs(link.query)["text"][0].startswith("Hi Nora!")

    # Someone asks for free-form text although the lead never wrote: the sender checks the
    # window itself, falls back to what the rules allow (the link), and calls nobody.
    await _request(stack, creator, number, lead_id, Route.WA_TEXT, phone, attempt=2)
    lead = await settle_attempt(api, lead_id, 2, "link_ready")
    assert lead["dm"]["route"] == "wa_link"
    assert await sent_to(sandbox, number, wa_id) == []


async def test_meta_saying_the_window_closed_switches_to_the_template(
    stack: Stack,
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    number: Number,
) -> None:
    phone, wa_id = new_phone()
    hello = {"phone_number_id": number.phone_number_id, "from": wa_id, "text": "hello"}
    (await sandbox.post("/_sandbox/whatsapp/users/message", json=hello)).raise_for_status()
    sessions, engine = _db(stack)
    try:
        await _window_seen(sessions, UUID(number.account_id), wa_id)
    finally:
        await engine.dispose()
    # Meta's clock runs 25 h ahead of AutoDM's record: AutoDM believes the window is open.
    # Meta accepts the free-form text and fails it with 131047 in a status webhook (its
    # usual way, the sandbox's default): the DM's attempt ends `failed` for the closed
    # window, and the opted-in lead gets the template.
    (await sandbox.put("/_sandbox/clock", json={"offset_seconds": 25 * 3600})).raise_for_status()
    try:
        lead_id = await new_lead(api, creator, "Rita", phone, opt_in=True)
        lead = await settle_attempt(api, lead_id, 2, "read", timeout_s=30)
    finally:
        await sandbox.put("/_sandbox/clock", json={"offset_seconds": 0})
    assert lead["dm"]["route"] == "wa_template"
    sent = await sent_to(sandbox, number, wa_id)
    assert [(m["type"], m["error_code"]) for m in sent] == [("text", 131047), ("template", None)]
    failed = [e for e in lead["dm"]["log"] if e["status"] == "failed"]
    assert [(e["attempt"], e["detail"]["error"]["code"]) for e in failed] == [(1, 131047)]
    assert "not written to you recently" in failed[0]["detail"]["reason"]


async def test_meta_saying_the_window_closed_without_opt_in_ends_with_the_link(
    stack: Stack,
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    number: Number,
    sandbox_settings: dict[str, Any],
) -> None:
    """Issue 21: AutoDM's window looked open, no opt-in, Meta answers 131047: the lead
    shows the fallback (`link_ready` with its wa.me link), never stays `sending`. Meta
    refusing the send itself (the synchronous 131047) is chosen explicitly."""
    await sandbox.patch("/_sandbox/settings", json={"whatsapp_window_error_mode": "sync"})
    phone, wa_id = new_phone()
    hello = {"phone_number_id": number.phone_number_id, "from": wa_id, "text": "hello"}
    (await sandbox.post("/_sandbox/whatsapp/users/message", json=hello)).raise_for_status()
    sessions, engine = _db(stack)
    try:
        await _window_seen(sessions, UUID(number.account_id), wa_id)
    finally:
        await engine.dispose()
    (await sandbox.put("/_sandbox/clock", json={"offset_seconds": 25 * 3600})).raise_for_status()
    try:
        lead_id = await new_lead(api, creator, "Ines", phone, opt_in=False)
        lead = await settle(api, lead_id, "link_ready")
    finally:
        await sandbox.put("/_sandbox/clock", json={"offset_seconds": 0})
    assert lead["dm"]["route"] == "wa_link"
    link = urlparse(lead["dm"]["link"])
    assert (link.scheme, link.netloc, link.path) == ("https", "wa.me", f"/{wa_id}")
    statuses = [(e["status"], e["attempt"]) for e in lead["dm"]["log"]]
    assert statuses == [("queued", 1), ("sending", 1), ("link_ready", 1)]
    assert await sent_to(sandbox, number, wa_id) == []  # the free text never left
    rejected = (await sandbox.get("/_sandbox/stats")).json()["whatsapp"]["rejected"]
    assert rejected.get("131047", 0) >= 1
    # A retry is judged by the rules for a link that waits for the lead, not refused as
    # "still on its way".
    retry = await api.post(
        f"/api/dm/retry/{lead_id}", params={"creator_id": str(creator.creator_id)}
    )
    assert retry.status_code == 409, retry.text
    assert "open the link" in retry.text
    assert "still on its way" not in retry.text


async def test_a_burst_to_one_person_goes_out_one_per_six_seconds(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    number: Number,
    sandbox_settings: dict[str, Any],
) -> None:
    # Strict 1 per 6 s in the sandbox (no borrowed burst): a faster send would get 131056.
    await sandbox.patch("/_sandbox/settings", json={"whatsapp_pair_burst": 0})
    before = (await sandbox.get("/_sandbox/stats")).json()["whatsapp"]["rejected"].get("131056", 0)
    phone, wa_id = new_phone()
    leads = [await new_lead(api, creator, f"Burst {i}", phone, opt_in=True) for i in range(3)]

    for lead_id in leads:
        await settle(api, lead_id, "read", timeout_s=40)
    times = sorted(m["time"] for m in await sent_to(sandbox, number, wa_id))
    assert len(times) == 3
    assert all(b - a >= 5.9 for a, b in itertools.pairwise(times)), times
    after = (await sandbox.get("/_sandbox/stats")).json()["whatsapp"]["rejected"].get("131056", 0)
    assert after == before  # never refused: AutoDM paced, it did not hammer


async def test_out_of_order_statuses_end_at_read(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    number: Number,
    sandbox_settings: dict[str, Any],
) -> None:
    order = {"order": ["read", "delivered", "sent", "delivered"], "delay_ms": 150}
    (await sandbox.put("/_sandbox/whatsapp/status_order", json=order)).raise_for_status()
    phone, _ = new_phone()
    lead_id = await new_lead(api, creator, "Otto", phone, opt_in=True)

    await settle(api, lead_id, "read")
    await sandbox.post("/_sandbox/webhooks/drain")
    await asyncio.sleep(1.0)  # the late sent/delivered have been consumed by now
    lead = (await api.get(f"/api/leads/{lead_id}")).json()
    assert lead["dm"]["status"] == "read"
    assert [e["status"] for e in lead["dm"]["log"]].count("read") == 1


async def test_the_daily_tier_defers_and_never_drops(
    stack: Stack,
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    number: Number,
) -> None:
    sessions, engine = _db(stack)
    try:
        async with sessions.begin() as session:  # a tier of one person, to see it bite
            await session.execute(
                update(WhatsAppNumber)
                .where(WhatsAppNumber.account_id == UUID(number.account_id))
                .values(daily_limit=1)
            )
        first_phone, first_wa = new_phone()
        second_phone, second_wa = new_phone()
        first = await new_lead(api, creator, "Day One", first_phone, opt_in=True)
        await settle(api, first, "read")
        second = await new_lead(api, creator, "Day Two", second_phone, opt_in=True)

        deferred = await _deferred(sessions, UUID(second))
        assert deferred.reason.startswith("the number's daily limit (1 people")
        assert deferred.not_before > utcnow() + timedelta(hours=23)
        assert (await api.get(f"/api/leads/{second}")).json()["dm"]["status"] == "queued"
        assert await sent_to(sandbox, number, second_wa) == []

        # A day passes for the tier: the first person no longer counts; the DM goes.
        async with sessions.begin() as session:
            await session.execute(
                update(WhatsAppContact)
                .where(WhatsAppContact.wa_id == first_wa)
                .values(tier_counted_at=utcnow() - timedelta(hours=25))
            )
            await session.execute(
                update(WhatsAppDeferredSend)
                .where(WhatsAppDeferredSend.lead_id == UUID(second))
                .values(not_before=utcnow())
            )
        await settle(api, second, "read")
        assert len(await sent_to(sandbox, number, second_wa)) == 1
    finally:
        await engine.dispose()


# --- helpers ----------------------------------------------------------------------------------


async def settle_attempt(
    api: httpx.AsyncClient, lead_id: str, attempt: int, wanted: str, timeout_s: float = 20
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    lead: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        lead = (await api.get(f"/api/leads/{lead_id}")).json()
        if (lead["dm"]["attempt"], lead["dm"]["status"]) == (attempt, wanted):
            return lead
        await asyncio.sleep(0.1)
    raise AssertionError(f"lead stayed {lead['dm']}, wanted {wanted!r} in attempt {attempt}")


async def _request(
    stack: Stack,
    creator: DemoCreator,
    number: Number,
    lead_id: str,
    route: Route,
    phone: str,
    attempt: int,
) -> None:
    request = DmRequested(
        correlation_id="e2e-whatsapp",
        creator_id=creator.creator_id,
        payload=DmRequestedPayload(
            lead_id=UUID(lead_id),
            route=route,
            provider=Provider.WHATSAPP,
            account_id=UUID(number.account_id),
            recipient=Recipient(phone=phone),
            text="Hi Nora! Free-form, please.",
            attempt=attempt,
        ),
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.env["AUTODM_KAFKA_BOOTSTRAP"])
    await producer.start()
    try:
        headers = [(k, v.encode()) for k, v in event_headers(request).items()]
        await producer.send_and_wait(
            DM_REQUESTED_WHATSAPP,
            request.model_dump_json().encode(),
            key=number.account_id.encode(),
            headers=headers,
        )
    finally:
        await producer.stop()


def _db(stack: Stack) -> tuple[Any, Any]:
    engine = make_engine(settings_from(stack.env))
    return make_sessionmaker(engine), engine


async def _window_seen(sessions: Any, account_id: UUID, wa_id: str, timeout_s: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        async with sessions() as session:
            contact = await session.get(WhatsAppContact, (account_id, wa_id))
        if contact is not None and contact.last_inbound_at is not None:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the inbound message never opened the window")


async def _deferred(sessions: Any, lead_id: UUID, timeout_s: float = 15) -> WhatsAppDeferredSend:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        async with sessions() as session:
            row = await session.get(WhatsAppDeferredSend, (lead_id, Route.WA_TEMPLATE.value))
        if row is not None:
            return row  # type: ignore[no-any-return]
        await asyncio.sleep(0.2)
    raise AssertionError("the DM was not deferred")


HANG = {
    "error": "timeout",
    "scope": "whatsapp",
    # Longer than the sender's provider timeout (10 s): Meta accepts the message (and its
    # status webhooks go out), then its answer never comes.
    "timeout_seconds": 12,
    "timeout_records_message": True,
    "count": 1,
}


async def _ambiguous_send(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    number: Number,
    wanted: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A template send whose answer never comes, settled by the message's status webhooks."""
    phone, wa_id = new_phone()
    (await sandbox.put("/_sandbox/faults", json=HANG)).raise_for_status()
    try:
        lead_id = await new_lead(api, creator, "Hana Ito", phone, opt_in=True)
        lead = await settle(api, lead_id, wanted, timeout_s=45)
    finally:
        await sandbox.delete("/_sandbox/faults")
    return lead, await sent_to(sandbox, number, wa_id)


async def test_a_send_whose_answer_never_came_is_settled_by_statuses_that_came_meanwhile(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator, number: Number
) -> None:
    lead, sent = await _ambiguous_send(api, sandbox, creator, number, "read")
    [message] = sent  # exactly one: never resent
    assert message["callback_data"].startswith("autodm-send:")
    assert lead["dm"]["provider_message_id"] == message["message_id"]
    assert "status webhook" in (lead["dm"]["reason"] or "")
    statuses = [entry["status"] for entry in lead["dm"]["log"]]
    assert "unknown" not in statuses  # the statuses were there when the timeout came


async def test_an_unknown_send_is_settled_by_a_status_that_comes_later(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    number: Number,
    sandbox_settings: dict[str, Any],
) -> None:
    # Meta's first status comes 13 s after it accepted: the send is `unknown` by then.
    order = {"order": ["sent", "read"], "delay_ms": 13_000}
    (await sandbox.put("/_sandbox/whatsapp/status_order", json=order)).raise_for_status()
    lead, sent = await _ambiguous_send(api, sandbox, creator, number, "read")
    [message] = sent
    assert lead["dm"]["provider_message_id"] == message["message_id"]
    assert "status webhook" in (lead["dm"]["reason"] or "")
    statuses = [entry["status"] for entry in lead["dm"]["log"]]
    assert statuses[-3:] == ["unknown", "sent", "read"]
