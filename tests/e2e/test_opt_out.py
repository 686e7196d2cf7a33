"""Opt-out and human takeover end to end: every service as its own process on real Kafka and
PostgreSQL, the sandbox playing Instagram and WhatsApp (the person writing STOP, WhatsApp
refusing with 131050, the creator writing from the Instagram app)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from demo import DemoCreator, settings_from, user_messages
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from stack import Stack

from shared.contracts.events import utcnow
from shared.db.models import WhatsAppDeferredSend, WhatsAppNumber
from shared.db.session import make_engine, make_sessionmaker
from shared.delivery.kill_switch import pause_sending, resume_sending
from shared.delivery.reasons import CREATOR_REPLIED, OPTED_OUT
from tests.e2e.test_backbone import sandbox_messages, settle
from tests.e2e.test_whatsapp import (  # noqa: F401 (the `number` fixture)
    TEMPLATE,
    Number,
    _deferred,
    new_lead,
    new_phone,
    number,
    sent_to,
)

pytestmark = pytest.mark.e2e

REFRESH_S = 1.5  # senders re-read pauses every AUTODM_DELIVERY_STATE_REFRESH_S


@pytest.fixture
async def sessions(stack: Stack) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(settings_from(stack.env))
    yield make_sessionmaker(engine)
    await engine.dispose()


async def ig_writes(sandbox: httpx.AsyncClient, creator: DemoCreator, who: str, text: str) -> None:
    body = {"account_id": creator.ig_user_id, "username": who, "text": text}
    (await sandbox.post("/_sandbox/instagram/users/message", json=body)).raise_for_status()


async def ig_lead(api: httpx.AsyncClient, creator: DemoCreator, who: str, igsid: str | None) -> str:
    instagram: dict[str, Any] = {"username": who}
    if igsid:
        instagram |= {"igsid": igsid, "last_inbound_at": utcnow().isoformat()}
    body = {"creator_id": str(creator.creator_id), "name": who, "instagram": instagram}
    created = await api.post("/api/leads", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def suppressions(api: httpx.AsyncClient, creator: DemoCreator) -> list[dict[str, Any]]:
    params = {"creator_id": str(creator.creator_id)}
    listed = await api.get("/api/suppressions", params=params)
    assert listed.status_code == 200, listed.text
    return list(listed.json()["items"])


def held(lead: dict[str, Any], code: str, reason: str) -> None:
    assert lead["dm"]["status"] == "skipped"
    assert lead["dm"]["reason_code"] == code
    assert lead["dm"]["reason"] == reason


async def test_a_lead_who_writes_stop_gets_nothing_more_even_a_dm_already_deferred(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        await pause_sending(session, creator.account_id, "test", "e2e")
    await asyncio.sleep(REFRESH_S)
    igsid = await user_messages(sandbox, creator, "stop.one")
    deferred = await ig_lead(api, creator, "stop.one", igsid)
    status: dict[str, Any] = {}
    for _ in range(100):  # deferred to the retry topic while sending is paused
        status = (await api.get(f"/api/dm/status/{deferred}")).json()
        if status.get("waiting"):
            break
        await asyncio.sleep(0.2)
    assert status["waiting"]["reason"] == "paused", status

    await ig_writes(sandbox, creator, "stop.one", "Stop!")
    held(await settle(api, deferred, "skipped"), "opted_out", OPTED_OUT)
    (entry,) = await suppressions(api, creator)
    assert (entry["igsid"], entry["instagram_username"]) == (igsid, "stop.one")
    assert (entry["source"], entry["note"]) == ("instagram_stop", "Stop!")

    # A new lead of the same person, known by the handle alone (a form), and one by IGSID.
    by_handle = await ig_lead(api, creator, "Stop.One", None)
    held(await settle(api, by_handle, "skipped"), "opted_out", OPTED_OUT)
    by_igsid = await ig_lead(api, creator, "stop.one", igsid)
    held(await settle(api, by_igsid, "skipped"), "opted_out", OPTED_OUT)

    async with sessions.begin() as session:
        await resume_sending(session, creator.account_id)
    await asyncio.sleep(REFRESH_S + 3)  # the retry topic's record comes back, and is held
    assert await sandbox_messages(sandbox, creator) == []
    assert (await api.get(f"/api/leads/{deferred}")).json()["dm"]["status"] == "skipped"

    # START lifts it: the next lead gets its DM.
    await ig_writes(sandbox, creator, "stop.one", "START")
    for _ in range(100):
        if not await suppressions(api, creator):
            break
        await asyncio.sleep(0.2)
    assert await suppressions(api, creator) == []
    again = await ig_lead(api, creator, "stop.one", igsid)
    await settle(api, again, "sent")
    assert len(await sandbox_messages(sandbox, creator)) == 1


async def test_stop_on_whatsapp_holds_a_dm_deferred_for_the_daily_tier(
    stack: Stack,
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    number: Number,  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:  # a tier of one person, so the second waits
        await session.execute(
            update(WhatsAppNumber)
            .where(WhatsAppNumber.account_id == UUID(number.account_id))
            .values(daily_limit=1)
        )
    first_phone, _ = new_phone()
    await settle(api, await new_lead(api, creator, "Day One", first_phone, opt_in=True), "read")
    phone, wa_id = new_phone()
    lead_id = await new_lead(api, creator, "Wes Stop", phone, opt_in=True)
    await _deferred(sessions, UUID(lead_id))

    body = {"phone_number_id": number.phone_number_id, "from": wa_id, "text": "UNSUBSCRIBE"}
    (await sandbox.post("/_sandbox/whatsapp/users/message", json=body)).raise_for_status()
    held(await settle(api, lead_id, "skipped"), "opted_out", OPTED_OUT)
    (entry,) = await suppressions(api, creator)
    assert (entry["whatsapp"], entry["source"]) == (f"+{wa_id}", "whatsapp_stop")

    async with sessions.begin() as session:  # the tier frees up and the wait is over
        await session.execute(
            update(WhatsAppNumber)
            .where(WhatsAppNumber.account_id == UUID(number.account_id))
            .values(daily_limit=250)
        )
        await session.execute(
            update(WhatsAppDeferredSend)
            .where(WhatsAppDeferredSend.lead_id == UUID(lead_id))
            .values(not_before=utcnow())
        )
    for _ in range(100):  # the poller re-requested it and the sender held it
        async with sessions() as session:
            if await session.get(WhatsAppDeferredSend, (UUID(lead_id), "wa_template")) is None:
                break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)
    assert await sent_to(sandbox, number, wa_id) == []


async def test_whatsapp_131050_suppresses_the_person(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    number: Number,  # noqa: F811
) -> None:
    await sandbox.post("/_sandbox/whatsapp/templates", json=TEMPLATE | {"category": "marketing"})
    try:
        phone, wa_id = new_phone()
        stopped = await sandbox.post(
            "/_sandbox/whatsapp/users/stop_marketing", json={"from": wa_id}
        )
        stopped.raise_for_status()
        first = await new_lead(api, creator, "Mia Market", phone, opt_in=True)
        failed = await settle(api, first, "failed")
        assert failed["dm"]["reason_code"] == "opted_out"
        assert failed["dm"]["error"]["code"] == 131050
        for _ in range(50):
            if entries := await suppressions(api, creator):
                break
            await asyncio.sleep(0.2)
        (entry,) = entries
        assert (entry["whatsapp"], entry["source"]) == (f"+{wa_id}", "whatsapp_131050")

        second = await new_lead(api, creator, "Mia Again", phone, opt_in=True)
        held(await settle(api, second, "skipped"), "opted_out", OPTED_OUT)
        assert len(await sent_to(sandbox, number, wa_id)) == 1
    finally:
        await sandbox.post("/_sandbox/whatsapp/templates", json=TEMPLATE)


async def test_the_creator_writing_from_the_app_stops_the_queued_dm_until_handed_back(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        await pause_sending(session, creator.account_id, "test", "e2e")
    await asyncio.sleep(REFRESH_S)
    igsid = await user_messages(sandbox, creator, "take.over")
    lead_id = await ig_lead(api, creator, "take.over", igsid)
    for _ in range(100):
        if (await api.get(f"/api/dm/status/{lead_id}")).json().get("waiting"):
            break
        await asyncio.sleep(0.2)

    body = {"account_id": creator.ig_user_id, "username": "take.over", "text": "Hey, it's me!"}
    (await sandbox.post("/_sandbox/instagram/creator/message", json=body)).raise_for_status()
    lead = await settle(api, lead_id, "skipped")
    held(lead, "creator_replied", CREATOR_REPLIED)
    assert [e["detail"].get("reason") for e in lead["dm"]["log"]][-1] == CREATOR_REPLIED
    takeover = (await api.get(f"/api/leads/{lead_id}/takeover")).json()
    assert takeover["in_creator_hands"] is True

    async with sessions.begin() as session:
        await resume_sending(session, creator.account_id)
    await asyncio.sleep(REFRESH_S + 3)
    assert await sandbox_messages(sandbox, creator) == []

    refused = await api.post(f"/api/dm/retry/{lead_id}")  # not while it is the creator's
    assert refused.status_code == 409
    assert "hand the conversation back first" in refused.json()["detail"]

    # Handed back, a retry sends it; AutoDM's own echo is not the creator writing.
    handed = await api.post(f"/api/leads/{lead_id}/hand-back")
    assert handed.status_code == 200, handed.text
    assert (await api.post(f"/api/dm/retry/{lead_id}")).status_code == 202
    await settle(api, lead_id, "sent")
    await asyncio.sleep(2)  # the echo of AutoDM's DM has been consumed by now
    takeover = (await api.get(f"/api/leads/{lead_id}/takeover")).json()
    assert takeover["in_creator_hands"] is False
    assert len(await sandbox_messages(sandbox, creator)) == 1
