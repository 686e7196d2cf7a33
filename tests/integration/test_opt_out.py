"""Opt-out and human takeover on real PostgreSQL: the suppression list's API (who, when, why;
add, remove, CSV, an admin's counts, settings), a STOP or an echo the creator typed acted
on by the webhook consumer, and the router holding a later lead of the same person."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.service_layer.lead_routing import RouterConfig, route_lead
from services.webhook_ingest.inbound import handle_webhook
from shared.contracts.events import (
    InstagramWebhookPayload,
    InstagramWebhookReceived,
    LeadCreated,
    LeadCreatedPayload,
    utcnow,
)
from shared.contracts.route_choice import RoutingRules
from shared.db.models import (
    ConversationTakeover,
    DmSend,
    Lead,
    OutboxRecord,
    SuppressedContact,
)
from shared.delivery.ambiguous_sends import text_digest
from shared.delivery.dm_guard import held_leads
from shared.delivery.reasons import CREATOR_REPLIED, OPTED_OUT
from shared.platform.settings import Settings
from tests.api_app import create_app
from tests.fake_uow import SessionWork
from tests.integration.conftest import connect_instagram, running
from tests.integration.issuer import Issuer

pytestmark = pytest.mark.integration


def _ig_user() -> str:
    return "1784" + str(uuid4().int)[:13]


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def _lead(
    sessions: async_sessionmaker[AsyncSession],
    creator: UUID,
    *,
    igsid: str | None = None,
    handle: str | None = None,
    phone: str | None = None,
    status: str = "queued",
) -> UUID:
    lead_id = uuid4()
    async with sessions.begin() as session:
        session.add(
            Lead(
                id=lead_id,
                creator_id=creator,
                name="Pat",
                message="",
                igsid=igsid,
                instagram_username=handle,
                phone=phone,
                ref=uuid4().hex,
                dm_status=status,
                dm_route="ig_dm" if igsid else None,
            )
        )
    return lead_id


def _webhook(
    creator: UUID, account: UUID, item: dict[str, Any], ig_user: str
) -> InstagramWebhookReceived:
    return InstagramWebhookReceived(
        id=uuid4(),
        correlation_id="it-opt-out",
        creator_id=creator,
        payload=InstagramWebhookPayload(
            account_id=account,
            ig_account_id=ig_user,
            kind="messaging",
            field="message",
            item=item,
            entry_time=int(utcnow().timestamp() * 1000),
        ),
    )


def _message(sender: str, recipient: str, text: str, *, echo: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": f"m_{uuid4().hex}", "text": text}
    if echo:
        message["is_echo"] = True
    ms = int(utcnow().timestamp() * 1000)
    return {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": ms} | {
        "message": message
    }


async def _skipped_events(session: AsyncSession, lead_id: UUID) -> list[str]:
    rows = await session.scalars(
        select(OutboxRecord).where(
            OutboxRecord.key == str(lead_id), OutboxRecord.topic == "dm.status"
        )
    )
    events = [json.loads(r.payload)["payload"] for r in rows]
    return [e["reason"] for e in events if e["status"] == "skipped"]


async def test_stop_suppresses_the_writer_and_ends_their_pending_dms(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, creator: UUID
) -> None:
    ig_user = _ig_user()
    account = await connect_instagram(sessions, settings, creator, ig_user, "acct", "tok")
    pending = await _lead(sessions, creator, igsid="901", handle="Pat.One")
    other = await _lead(sessions, creator, igsid="902")
    async with sessions.begin() as session:
        await handle_webhook(
            SessionWork(session),
            _webhook(creator, account, _message("901", ig_user, "STOP"), ig_user),
        )
    async with sessions() as session:
        (row,) = (
            await session.scalars(
                select(SuppressedContact).where(SuppressedContact.creator_id == creator)
            )
        ).all()
        assert (row.igsid, row.handle, row.source, row.note) == (
            "901",
            "pat.one",
            "instagram_stop",
            "STOP",
        )
        assert await _skipped_events(session, pending) == [OPTED_OUT]
        assert await _skipped_events(session, other) == []
        # A later form lead of the same person, by the handle alone, is held too.
        later = await _lead(sessions, creator, handle="@PAT.ONE")
        leads = (await session.scalars(select(Lead).where(Lead.id.in_([later, other])))).all()
        assert await held_leads(session, leads, utcnow()) == {later: OPTED_OUT}

    async with sessions.begin() as session:  # START lifts it
        await handle_webhook(
            SessionWork(session),
            _webhook(creator, account, _message("901", ig_user, "start"), ig_user),
        )
    async with sessions() as session:
        assert (
            await session.scalar(
                select(SuppressedContact).where(SuppressedContact.creator_id == creator)
            )
            is None
        )


async def test_an_echo_autodm_did_not_send_hands_the_conversation_to_the_creator(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, creator: UUID
) -> None:
    ig_user = _ig_user()
    account = await connect_instagram(sessions, settings, creator, ig_user, "acct", "tok")
    ours = await _lead(sessions, creator, igsid="801", status="sent")
    async with sessions.begin() as session:
        session.add(
            DmSend(
                lead_id=ours,
                route="ig_dm",
                state="sent",
                attempt=1,
                account_id=account,
                recipient_igsid="801",
                text_sha256=text_digest("Hi Pat, here is the guide!"),
                provider_message_id="m_ours",
            )
        )
    pending = await _lead(sessions, creator, igsid="801")

    own_echo = _message(ig_user, "801", "Hi Pat, here is the guide!", echo=True)
    async with sessions.begin() as session:
        await handle_webhook(SessionWork(session), _webhook(creator, account, own_echo, ig_user))
    async with sessions() as session:
        assert await session.get(ConversationTakeover, (account, "801")) is None

    typed = _message(ig_user, "801", "Hey Pat, it's me, let's talk", echo=True)
    async with sessions.begin() as session:
        await handle_webhook(SessionWork(session), _webhook(creator, account, typed, ig_user))
    async with sessions() as session:
        taken = await session.get(ConversationTakeover, (account, "801"))
        assert taken is not None
        assert timedelta(hours=23) < taken.until - utcnow() <= timedelta(hours=24)
        assert await _skipped_events(session, pending) == [CREATOR_REPLIED]
        lead = await session.get(Lead, pending)
        assert lead is not None
        assert await held_leads(session, [lead], utcnow()) == {pending: CREATOR_REPLIED}


async def test_the_router_skips_a_suppressed_persons_new_lead(
    sessions: async_sessionmaker[AsyncSession],
    creator: UUID,
    api: httpx.AsyncClient,
    issuer: Issuer,
) -> None:
    added = await api.post(
        "/api/suppressions",
        json={"phone": "+44 20 7946 0958", "note": "asked by email"},
        headers=issuer.creator(creator),
    )
    assert added.status_code == 201, added.text
    lead_id = await _lead(sessions, creator, phone="+442079460958")
    payload = LeadCreatedPayload(lead_id=lead_id, name="Pat", message="", phone="+442079460958")
    event = LeadCreated(correlation_id="it", creator_id=creator, payload=payload)
    async with sessions.begin() as session:
        assert await route_lead(SessionWork(session), event, RouterConfig(RoutingRules()), utcnow())
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        assert (lead.dm_status, lead.dm_reason) == ("skipped", OPTED_OUT)


async def test_the_suppression_list_api(
    sessions: async_sessionmaker[AsyncSession],
    creator: UUID,
    api: httpx.AsyncClient,
    issuer: Issuer,
) -> None:
    mine = issuer.creator(creator)
    lead_id = await _lead(sessions, creator, igsid="701", handle="ann", phone="+44 20 7946 0959")
    added = await api.post("/api/suppressions", json={"lead_id": str(lead_id)}, headers=mine)
    assert added.status_code == 201, added.text
    entry = added.json()
    assert entry | {"id": None, "created_at": None, "created_by": None} == {
        "id": None,
        "creator_id": str(creator),
        "instagram_username": "ann",
        "igsid": "701",
        "whatsapp": "+442079460959",
        "source": "creator",
        "note": None,
        "created_by": None,
        "created_at": None,
    }
    assert entry["created_by"] and entry["created_at"]  # who and when
    again = await api.post("/api/suppressions", json={"instagram_username": "ANN"}, headers=mine)
    assert again.json()["id"] == entry["id"]  # the same person: one entry

    listed = (await api.get("/api/suppressions", headers=mine)).json()["items"]
    assert [e["id"] for e in listed] == [entry["id"]]
    exported = await api.get("/api/suppressions.csv", headers=mine)
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["instagram_username"], r["whatsapp"], r["source"]) for r in rows] == [
        ("ann", "+442079460959", "creator")
    ]

    counts = (await api.get("/api/admin/suppressions", headers=issuer.admin())).json()
    assert {"creator_id": str(creator), "source": "creator", "count": 1} in counts["items"]
    assert (await api.get("/api/admin/suppressions", headers=mine)).status_code == 403

    stranger = issuer.creator(uuid4())
    assert (await api.get("/api/suppressions", headers=stranger)).json()["items"] == []
    gone = await api.delete(f"/api/suppressions/{entry['id']}", headers=stranger)
    assert gone.status_code == 404
    assert (await api.delete(f"/api/suppressions/{entry['id']}", headers=mine)).status_code == 204
    assert (await api.get("/api/suppressions", headers=mine)).json()["items"] == []
    nobody = await api.post("/api/suppressions", json={"note": "who?"}, headers=mine)
    assert nobody.status_code == 422
    unknown = await api.post(
        "/api/suppressions",
        params={"creator_id": str(uuid4())},
        json={"igsid": "0"},
        headers=issuer.admin(),
    )
    assert unknown.status_code == 404


async def test_opt_out_settings_and_hand_back(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    creator: UUID,
    api: httpx.AsyncClient,
    issuer: Issuer,
) -> None:
    mine = issuer.creator(creator)
    assert (await api.get("/api/opt-out/settings", headers=mine)).json() == {
        "stop_words": [],
        "takeover_hours": 24,
    }
    saved = await api.put(
        "/api/opt-out/settings",
        json={"stop_words": ["Ya Basta!", "ya basta"], "takeover_hours": 2},
        headers=mine,
    )
    assert saved.json() == {"stop_words": ["ya basta"], "takeover_hours": 2}

    ig_user = _ig_user()
    account = await connect_instagram(sessions, settings, creator, ig_user, "acct", "tok")
    lead_id = await _lead(sessions, creator, igsid="601")
    async with sessions.begin() as session:  # the creator's own stop word
        await handle_webhook(
            SessionWork(session),
            _webhook(creator, account, _message("601", ig_user, "YA BASTA"), ig_user),
        )
        typed = _message(ig_user, "602", "hello from the app", echo=True)
        await handle_webhook(SessionWork(session), _webhook(creator, account, typed, ig_user))
    assert len((await api.get("/api/suppressions", headers=mine)).json()["items"]) == 1

    taken_lead = await _lead(sessions, creator, igsid="602", status="skipped")
    taken = (await api.get(f"/api/leads/{taken_lead}/takeover", headers=mine)).json()
    assert taken["in_creator_hands"] is True
    async with sessions() as session:
        row = await session.get(ConversationTakeover, (account, "602"))
        assert row is not None and row.until - row.started_at == timedelta(hours=2)
    back = await api.post(f"/api/leads/{taken_lead}/hand-back", headers=mine)
    assert back.json()["in_creator_hands"] is False
    taken = (await api.get(f"/api/leads/{taken_lead}/takeover", headers=mine)).json()
    assert taken["in_creator_hands"] is False
    assert (
        await api.get(f"/api/leads/{lead_id}/takeover", headers=issuer.creator(uuid4()))
    ).status_code == 404
