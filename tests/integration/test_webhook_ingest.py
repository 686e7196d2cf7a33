"""webhook_ingest on real Kafka and PostgreSQL, with the sandbox (in-process) delivering
signed webhooks to it and the API consuming what it emits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbox.app import create_app as create_sandbox
from sandbox.settings import SandboxSettings
from services.api.http.schemas import LeadIn
from services.api.service_layer.lead_routing import RouterConfig, open_contact
from services.api.service_layer.leads import create_lead
from services.instagram_sender.sending import CLAIM
from services.webhook_ingest.app import create_app as create_ingest
from shared.contracts import topics
from shared.contracts.events import LeadContactOpened, LeadContactOpenedPayload
from shared.contracts.route_choice import RoutingRules
from shared.db.models import (
    DmSend,
    InstagramComment,
    InstagramContact,
    Lead,
    OutboxRecord,
    SocialAccount,
)
from tests.api_app import create_app as create_api
from tests.fake_uow import SessionWork
from tests.integration.conftest import connect_instagram, running
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def ingest_app(settings: AllSettings) -> AsyncIterator[FastAPI]:
    # Data deletion's topic erasure checks often here (a request completes in a few ticks).
    app = create_ingest(settings.model_copy(update={"data_deletion_poll_interval_s": 0.3}))
    async with running(app):
        yield app


@pytest.fixture(scope="module")
async def ingest(ingest_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=ingest_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        yield client


@pytest.fixture(scope="module")
async def api(settings: AllSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_api(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


@pytest.fixture(scope="module")
async def sandbox(ingest_app: FastAPI, settings: AllSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The Meta sandbox, its webhooks POSTed straight into the ingest app."""
    sandbox_settings = SandboxSettings(
        app_secret=settings.instagram_app_secret.get_secret_value(),
        instagram_webhook_url="http://ingest/webhooks/instagram",
        webhook_retries=0,
    )
    ingest_transport = httpx.ASGITransport(app=ingest_app)
    app = create_sandbox(sandbox_settings, webhook_transport=ingest_transport)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


@pytest.fixture
async def account(
    sandbox: httpx.AsyncClient,
    creator: UUID,
    settings: AllSettings,
    sessions: async_sessionmaker[AsyncSession],
) -> dict[str, Any]:
    username = f"shop{creator.hex[:8]}"
    created = (
        await sandbox.post("/_sandbox/instagram/accounts", json={"username": username})
    ).json()
    account_id = await connect_instagram(
        sessions, settings, creator, created["ig_user_id"], username, created["access_token"]
    )
    async with sessions.begin() as session:
        row = await session.get(SocialAccount, account_id)
        assert row is not None
        row.app_scoped_id = created["id"]
    return {**created, "account_id": account_id, "creator_id": creator}


def _sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _value(record: Any) -> dict[str, Any]:
    return json.loads(record.value)  # type: ignore[no-any-return]


async def _create_lead(
    sessions: async_sessionmaker[AsyncSession], creator: UUID, instagram: dict[str, Any]
) -> str:
    # Through the API's service layer: the HTTP route's auth is not what is tested here.
    data = LeadIn.model_validate({"creator_id": str(creator), "name": "Bo", "instagram": instagram})
    async with sessions.begin() as session:
        lead = await create_lead(
            SessionWork(session), data, correlation_id=f"test-{creator.hex[:8]}"
        )
    return str(lead.id)


async def _cold_lead(
    sessions: async_sessionmaker[AsyncSession], creator: UUID, username: str
) -> str:
    lead_id = await _create_lead(sessions, creator, {"username": username})
    await _wait_status(sessions, lead_id, "awaiting_contact")
    return lead_id


async def _wait_status(
    sessions: async_sessionmaker[AsyncSession], lead_id: str, status: str
) -> Lead:
    lead = None
    for _ in range(150):
        async with sessions() as session:
            lead = await session.get(Lead, UUID(lead_id))
        if lead is not None and lead.dm_status == status:
            return lead
        await asyncio.sleep(0.1)
    raise AssertionError(f"lead {lead_id} is {lead and lead.dm_status}, wanted {status}")


async def _ref(sessions: async_sessionmaker[AsyncSession], lead_id: str) -> str:
    async with sessions() as session:
        lead = await session.get(Lead, UUID(lead_id))
        assert lead is not None
        return lead.ref


async def test_verification_echoes_the_challenge_only_for_our_verify_token(
    ingest: httpx.AsyncClient, settings: AllSettings
) -> None:
    token = settings.webhook_verify_token.get_secret_value()
    query = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"}
    ok = await ingest.get("/webhooks/instagram", params=query)
    assert (ok.status_code, ok.text) == (200, "1158201444")
    wrong = await ingest.get("/webhooks/instagram", params=query | {"hub.verify_token": "x"})
    assert wrong.status_code == 403
    assert (await ingest.get("/webhooks/instagram")).status_code == 403


async def test_forged_or_unsigned_webhooks_are_refused_and_nothing_is_published(
    ingest: httpx.AsyncClient, account: dict[str, Any], settings: AllSettings, read_topic: Any
) -> None:
    webhooks = await read_topic(topics.WEBHOOKS_RECEIVED)
    ig = account["ig_user_id"]

    def body(mid: str) -> bytes:
        item: dict[str, Any] = {"sender": {"id": "5550001"}, "recipient": {"id": ig}}
        item["message"] = {"mid": mid, "text": "hi"}
        note = {"object": "instagram", "entry": [{"id": ig, "time": 1, "messaging": [item]}]}
        return json.dumps(note).encode()

    unsigned = await ingest.post("/webhooks/instagram", content=body("m_forged1"))
    forged = await ingest.post(
        "/webhooks/instagram",
        content=body("m_forged2"),
        headers={"X-Hub-Signature-256": _sign(body("m_forged2"), "not-the-app-secret")},
    )
    assert (unsigned.status_code, forged.status_code) == (401, 403)

    secret = settings.instagram_app_secret.get_secret_value()
    good = await ingest.post(
        "/webhooks/instagram",
        content=body("m_genuine"),
        headers={"X-Hub-Signature-256": _sign(body("m_genuine"), secret)},
    )
    assert good.json() == {"published": 1}
    # Kafka keeps order per partition and all three share the account key: had a forged
    # one been published, it would come first.
    first = await webhooks.wait_for(lambda r: r.key == ig.encode())
    assert _value(first)["payload"]["item"]["message"]["mid"] == "m_genuine"


async def test_a_cold_lead_opening_its_ig_me_link_is_requested_as_a_dm_once(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    account: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    read_topic: Any,
) -> None:
    requests = await read_topic(topics.DM_REQUESTED_INSTAGRAM)
    lead_id = await _cold_lead(sessions, account["creator_id"], "bo.cold")
    opened = await sandbox.post(
        "/_sandbox/instagram/users/open_link",
        json={
            "account_id": account["ig_user_id"],
            "username": "bo.cold",
            "ref": await _ref(sessions, lead_id),
        },
    )
    igsid = opened.json()["igsid"]

    request = await requests.wait_for(lambda r: _value(r)["payload"]["lead_id"] == lead_id)
    assert _value(request)["payload"]["route"] == "ig_dm"
    assert _value(request)["payload"]["recipient"]["igsid"] == igsid
    async with sessions() as session:
        lead = await session.get(Lead, UUID(lead_id))
        contact = await session.get(InstagramContact, (account["account_id"], igsid))
    assert lead is not None and lead.igsid == igsid and lead.dm_route == "ig_dm"
    assert contact is not None and contact.last_inbound_at is not None

    # Meta retries for 36 h: the same delivery again changes nothing.
    await sandbox.post(f"/_sandbox/webhooks/{opened.json()['webhook_id']}/redeliver")
    await sandbox.post("/_sandbox/webhooks/drain")
    await asyncio.sleep(2)
    assert [r for r in requests.records if _value(r)["payload"]["lead_id"] == lead_id] == [request]
    async with sessions() as session:
        reroutes = await session.scalar(
            select(func.count())
            .select_from(OutboxRecord)
            .where(OutboxRecord.topic == topics.LEADS_CONTACTS, OutboxRecord.key == lead_id)
        )
    assert reroutes == 1


async def test_read_and_reply_webhooks_become_dm_statuses(
    sandbox: httpx.AsyncClient,
    account: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    read_topic: Any,
) -> None:
    statuses = await read_topic(topics.DM_STATUS)
    user = (
        await sandbox.post(
            "/_sandbox/instagram/users/message",
            json={"account_id": account["ig_user_id"], "username": "rita", "text": "hi"},
        )
    ).json()
    await _wait_for_contacts(sessions, account["account_id"], 1)  # "hi" came before the DM
    lead_id = await _sent_lead(sessions, account, user["igsid"], "m_sent_1")

    await sandbox.post(
        "/_sandbox/instagram/users/read",
        json={"account_id": account["ig_user_id"], "igsid": user["igsid"], "mid": "m_sent_1"},
    )
    read = await statuses.wait_for(lambda r: _value(r)["payload"]["lead_id"] == str(lead_id))
    assert _value(read)["payload"]["status"] == "read"

    await sandbox.post(
        "/_sandbox/instagram/users/message",
        json={"account_id": account["ig_user_id"], "username": "rita", "text": "thanks!"},
    )
    replied = await statuses.wait_for(
        lambda r: (
            _value(r)["payload"]
            == _value(r)["payload"] | {"lead_id": str(lead_id), "status": "replied"}
        )
    )
    assert _value(replied)["creator_id"] == str(account["creator_id"])


async def _sent_lead(
    sessions: async_sessionmaker[AsyncSession], account: dict[str, Any], igsid: str, mid: str
) -> UUID:
    from uuid import uuid4

    lead_id = uuid4()
    async with sessions.begin() as session:
        session.add(
            Lead(
                id=lead_id,
                creator_id=account["creator_id"],
                name="Rita",
                message="",
                igsid=igsid,
                ref=lead_id.hex,
                dm_status="sent",
                dm_route="ig_dm",
                dm_provider="instagram",
                dm_account_id=account["account_id"],
                dm_attempt=1,
                dm_attempts=1,
                provider_message_id=mid,
                sent_at=datetime.now(UTC),
            )
        )
    return lead_id


async def test_a_comment_is_recorded_and_a_lead_naming_it_routes_to_a_private_reply(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    account: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    read_topic: Any,
) -> None:
    comments = await read_topic(topics.INSTAGRAM_COMMENTS)
    requests = await read_topic(topics.DM_REQUESTED_INSTAGRAM)
    made = (
        await sandbox.post(
            "/_sandbox/instagram/users/comment",
            json={"account_id": account["ig_user_id"], "username": "cora", "text": "guide!"},
        )
    ).json()
    event = await comments.wait_for(
        lambda r: _value(r)["payload"]["comment_id"] == made["comment_id"]
    )
    assert _value(event)["payload"]["igsid"] == made["igsid"]
    async with sessions() as session:
        comment = await session.get(InstagramComment, made["comment_id"])
    assert comment is not None and comment.account_id == account["account_id"]

    instagram = {
        "username": "cora",
        "comment_id": made["comment_id"],
        "commented_at": comment.commented_at.isoformat(),
    }
    lead_id = await _create_lead(sessions, account["creator_id"], instagram)
    request = await requests.wait_for(lambda r: _value(r)["payload"]["lead_id"] == lead_id)
    assert _value(request)["payload"]["route"] == "ig_private_reply"
    assert _value(request)["payload"]["recipient"]["comment_id"] == made["comment_id"]


def _signed_request(user_id: str, secret: str, **fields: int) -> str:
    issued_at = int(datetime.now(UTC).timestamp())
    data = {"user_id": user_id, "algorithm": "HMAC-SHA256", "issued_at": issued_at, **fields}
    payload = json.dumps(data)
    encoded = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
    sig = hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(sig).rstrip(b"=").decode() + "." + encoded


async def test_deauthorize_disconnects_and_ends_waiting_dms_skipped(
    api: httpx.AsyncClient,
    ingest: httpx.AsyncClient,
    account: dict[str, Any],
    settings: AllSettings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    lead_id = await _cold_lead(sessions, account["creator_id"], "dee")
    forged = await ingest.post(
        "/webhooks/instagram/deauthorize",
        data={"signed_request": _signed_request(account["id"], "wrong-secret")},
    )
    assert forged.status_code == 403

    secret = settings.instagram_app_secret.get_secret_value()
    response = await ingest.post(
        "/webhooks/instagram/deauthorize",
        data={"signed_request": _signed_request(account["id"], secret)},
    )
    assert response.json() == {"success": True, "disconnected": 1}
    lead = await _wait_status(sessions, lead_id, "skipped")
    assert lead.dm_reason is not None and "removed AutoDM" in lead.dm_reason
    async with sessions() as session:
        row = await session.get(SocialAccount, account["account_id"])
    assert row is not None and row.status == "disconnected"
    assert row.access_token_encrypted is None


async def test_stale_or_replayed_deauthorize_requests_change_nothing(
    ingest: httpx.AsyncClient,
    account: dict[str, Any],
    settings: AllSettings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    secret = settings.instagram_app_secret.get_secret_value()
    path = "/webhooks/instagram/deauthorize"
    for stale in (
        _signed_request(account["id"], secret, issued_at=1291836800, expires=1291840400),
        _signed_request(account["id"], secret, expires=int(datetime.now(UTC).timestamp()) - 1),
    ):
        refused = await ingest.post(path, data={"signed_request": stale})
        assert refused.status_code == 403
    assert (await _account_row(sessions, account)).status == "connected"

    signed = _signed_request(account["id"], secret)
    first = await ingest.post(path, data={"signed_request": signed})
    assert first.json() == {"success": True, "disconnected": 1}
    # The creator reconnects; the captured request replayed must not disconnect them again.
    async with sessions.begin() as session:
        row = await session.get(SocialAccount, account["account_id"])
        assert row is not None
        row.status, row.access_token_encrypted = "connected", b"token"
    replayed = await ingest.post(path, data={"signed_request": signed})
    assert replayed.json() == {"success": True, "disconnected": 0}
    assert (await _account_row(sessions, account)).status == "connected"


async def test_data_deletion_of_a_creator_answers_a_status_url_pending_then_completed(
    ingest: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    account: dict[str, Any],
    settings: AllSettings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await sandbox.post(
        "/_sandbox/instagram/users/message",
        json={"account_id": account["ig_user_id"], "username": "del.me", "text": "hi"},
    )
    await _wait_for_contacts(sessions, account["account_id"], 1)
    secret = settings.instagram_app_secret.get_secret_value()
    signed = _signed_request(account["id"], secret)
    response = await ingest.post(
        "/webhooks/instagram/data-deletion", data={"signed_request": signed}
    )
    body = response.json()
    assert body["confirmation_code"].isalnum()
    assert body["url"].endswith(f"/webhooks/instagram/data-deletion/{body['confirmation_code']}")
    first = await ingest.get(f"/webhooks/instagram/data-deletion/{body['confirmation_code']}")
    # The topics still hold the records until every consumer has read past them.
    assert first.json()["status"] == "pending"
    done = await _wait_deletion(ingest, body["confirmation_code"], "completed")
    assert done["removed"]["creator_accounts_disconnected"] == 1
    assert done["removed"]["topic_records_truncated"] > 0
    await _wait_for_contacts(sessions, account["account_id"], 0)
    row = await _account_row(sessions, account)
    assert row.access_token_encrypted is None and row.app_scoped_id is None
    # A replay is answered with the same code and starts nothing new.
    again = await ingest.post("/webhooks/instagram/data-deletion", data={"signed_request": signed})
    assert again.json() == body


async def test_data_deletion_of_a_person_anonymises_their_leads_and_blocks_waiting_dms(
    ingest: httpx.AsyncClient,
    account: dict[str, Any],
    settings: AllSettings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    igsid, phone = f"9{uuid4().int % 10**15:015d}", "+442079460977"
    waiting, form = uuid4(), uuid4()
    async with sessions.begin() as session:
        for lead_id, fields in (
            (waiting, {"igsid": igsid, "instagram_username": "Per.Son", "phone": phone}),
            (form, {"phone": phone}),  # a form lead that gave only the phone
        ):
            session.add(
                Lead(
                    id=lead_id,
                    creator_id=account["creator_id"],
                    name="Per",
                    message="the guide please",
                    ref=lead_id.hex,
                    dm_status="queued",
                    dm_route="ig_dm",
                    **fields,
                )
            )
        await session.flush()
        # Its DM waits, deferred, to be re-requested when due.
        session.add(
            DmSend(
                lead_id=waiting, route="ig_dm", state="deferred", attempt=1, recipient_igsid=igsid
            )
        )
    secret = settings.instagram_app_secret.get_secret_value()
    body = (
        await ingest.post(
            "/webhooks/instagram/data-deletion",
            data={"signed_request": _signed_request(igsid, secret)},
        )
    ).json()
    done = await _wait_deletion(ingest, body["confirmation_code"], "completed")
    assert done["removed"]["leads_anonymised"] == 2
    async with sessions() as session:
        for lead_id in (waiting, form):
            lead = await session.get(Lead, lead_id)
            assert lead is not None and lead.dm_status == "skipped"
            assert (lead.name, lead.message, lead.igsid, lead.phone) == (
                "(deleted)",
                "",
                None,
                None,
            )
        intent = await session.get(DmSend, (waiting, "ig_dm"))
        assert intent is not None and intent.recipient_igsid is None
    # The retry coming due may not claim the DM (it would send and write the IGSID back).
    async with sessions.begin() as session:
        claimed = await session.scalar(
            CLAIM,
            {
                "c_lead_id": waiting,
                "c_route": "ig_dm",
                "c_attempt": 2,
                "c_account_id": account["account_id"],
                "c_recipient_igsid": igsid,
                "c_text_sha256": None,
                "c_updated_at": datetime.now(UTC),
            },
        )
    assert claimed is None
    # The person's ig.me visit still in leads.contacts does not write their IGSID back.
    opened = LeadContactOpened(
        correlation_id="test-erased",
        creator_id=account["creator_id"],
        payload=LeadContactOpenedPayload(
            lead_id=waiting,
            account_id=account["account_id"],
            igsid=igsid,
            opened_at=datetime.now(UTC),
            via="referral",
        ),
    )
    async with sessions.begin() as session:
        await open_contact(
            SessionWork(session), opened, RouterConfig(RoutingRules()), datetime.now(UTC)
        )
    async with sessions() as session:
        lead = await session.get(Lead, waiting)
        assert lead is not None and lead.igsid is None and lead.dm_status == "skipped"


async def test_data_deletion_of_an_unknown_user_is_not_found_with_a_code(
    ingest: httpx.AsyncClient, settings: AllSettings
) -> None:
    secret = settings.instagram_app_secret.get_secret_value()
    signed = _signed_request("17840000000000404", secret)
    body = (
        await ingest.post("/webhooks/instagram/data-deletion", data={"signed_request": signed})
    ).json()
    assert body["confirmation_code"].isalnum()
    status = (
        await ingest.get(f"/webhooks/instagram/data-deletion/{body['confirmation_code']}")
    ).json()
    assert status["status"] == "not_found" and status["completed_at"] is not None
    stale = _signed_request("17840000000000404", secret, issued_at=1291836800)
    refused = await ingest.post("/webhooks/instagram/data-deletion", data={"signed_request": stale})
    assert refused.status_code == 403


async def _account_row(
    sessions: async_sessionmaker[AsyncSession], account: dict[str, Any]
) -> SocialAccount:
    async with sessions() as session:
        row = await session.get(SocialAccount, account["account_id"])
    assert row is not None
    return row


async def _wait_deletion(ingest: httpx.AsyncClient, code: str, wanted: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for _ in range(300):
        found = (await ingest.get(f"/webhooks/instagram/data-deletion/{code}")).json()
        if found["status"] == wanted:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"deletion {found}, wanted {wanted}")


async def _wait_for_contacts(
    sessions: async_sessionmaker[AsyncSession], account_id: UUID, count: int
) -> None:
    found = -1
    for _ in range(100):
        async with sessions() as session:
            found = (
                await session.scalar(
                    select(func.count())
                    .select_from(InstagramContact)
                    .where(InstagramContact.account_id == account_id)
                )
                or 0
            )
        if found == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{found} contacts, wanted {count}")
