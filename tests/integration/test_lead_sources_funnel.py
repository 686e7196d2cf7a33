"""Lead sources, a message per source, tracked links and the funnel (issue 16, sections 3-5),
on real Kafka and PostgreSQL: the API, the lead.created contract (both versions routed),
Comment to DM's message, the /l/<ref> redirect and GET /api/funnel."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts import topics
from shared.contracts.events import (
    InstagramCommentPayload,
    InstagramCommentReceived,
    LeadCreated,
    LeadCreatedPayload,
)
from shared.db.models import Creator, Lead
from shared.messaging.broker import event_headers
from shared.platform.settings import Settings
from tests.api_app import create_app
from tests.integration.conftest import connect_instagram, running
from tests.integration.issuer import Issuer

pytestmark = pytest.mark.integration


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


def _ig_id() -> str:
    return str(secrets.randbelow(10**16) + 17841400000000000)


async def _status(
    client: httpx.AsyncClient, headers: dict[str, str], lead_id: str, want: str
) -> Any:
    for _ in range(200):
        lead = (await client.get(f"/api/leads/{lead_id}", headers=headers)).json()
        if lead["dm"]["status"] == want:
            return lead
        await _sleep()
    raise AssertionError(f"lead {lead_id} never reached {want}: {lead}")


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.1)


async def test_an_api_lead_records_its_source_in_the_contract_the_api_and_the_filter(
    app_client: httpx.AsyncClient, creator: UUID, issuer: Issuer, read_topic: Any
) -> None:
    created = await read_topic(topics.LEADS_CREATED)
    me = issuer.creator(creator)
    imported = await app_client.post(
        "/api/leads", headers=me, json={"name": "Imp", "phone": "+14155550101", "source": "import"}
    )
    plain = await app_client.post(
        "/api/leads", headers=me, json={"name": "Api", "phone": "+14155550102"}
    )
    assert imported.status_code == plain.status_code == 201, imported.text
    assert imported.json()["source"] == "import" and plain.json()["source"] == "api"

    event = await created.wait_for(
        lambda r: json.loads(r.value)["payload"]["lead_id"] == imported.json()["id"]
    )
    body = json.loads(event.value)
    assert (body["version"], body["payload"]["source"]) == (2, "import")

    page = (await app_client.get("/api/leads", headers=me, params={"source": "import"})).json()
    assert [item["id"] for item in page["items"]] == [imported.json()["id"]]
    assert page["items"][0]["source"] == "import"
    refused = await app_client.post(
        "/api/leads", headers=me, json={"name": "X", "phone": "+14155550103", "source": "comment"}
    )
    assert refused.status_code == 422  # only AutoDM's Comment to DM says `comment`


async def test_a_v1_lead_created_event_is_still_routed(
    settings: Settings,
    creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    read_topic: Any,
) -> None:
    """A record of the old version still in the topic (or from an older API) is not lost."""
    lead_id = uuid4()
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        session.add(
            Lead(
                id=lead_id,
                creator_id=creator,
                name="Old",
                message="",
                phone="+14155550104",
                ref=secrets.token_urlsafe(12),
                created_at=now,
                updated_at=now,
            )
        )
    event = LeadCreated(
        correlation_id="v1-lead",
        creator_id=creator,
        payload=LeadCreatedPayload(lead_id=lead_id, name="Old", message="", phone="+14155550104"),
    )
    requests = await read_topic(topics.DM_REQUESTED_WHATSAPP)
    app = create_app(settings)
    async with running(app):
        headers = [(k, v.encode()) for k, v in event_headers(event).items()]
        await producer.send_and_wait(
            topics.LEADS_CREATED,
            event.model_dump_json().encode(),
            key=str(creator).encode(),
            headers=headers,
        )
        request = await requests.wait_for(
            lambda r: json.loads(r.value)["payload"]["lead_id"] == str(lead_id)
        )
    assert json.loads(request.value)["payload"]["route"] == "wa_link"


async def test_a_comment_lead_gets_the_comment_message_and_records_its_post(
    settings: Settings,
    creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    read_topic: Any,
) -> None:
    account = await connect_instagram(sessions, settings, creator, _ig_id(), "shop", "tok")
    async with sessions.begin() as session:
        await session.execute(
            update(Creator)
            .where(Creator.id == creator)
            .values(
                comment_trigger="any",
                source_templates={"comment": "{name}, here is the guide from my post!"},
            )
        )
    comment = InstagramCommentReceived(
        correlation_id="comment-source",
        creator_id=creator,
        payload=InstagramCommentPayload(
            account_id=account,
            comment_id=str(secrets.randbelow(10**17) + 17900000000000000),
            igsid="9100000000001",
            username="fan_one",
            text="guide please",
            media_id="17800000000000042",
            commented_at=datetime.now(UTC),
        ),
    )
    requests = await read_topic(topics.DM_REQUESTED_INSTAGRAM)
    app = create_app(settings)
    async with running(app):
        headers = [(k, v.encode()) for k, v in event_headers(comment).items()]
        await producer.send_and_wait(
            topics.INSTAGRAM_COMMENTS,
            comment.model_dump_json().encode(),
            key=str(account).encode(),
            headers=headers,
        )
        request = await requests.wait_for(
            lambda r: (
                json.loads(r.value)["payload"]["recipient"]["comment_id"]
                == comment.payload.comment_id
            )
        )
    payload = json.loads(request.value)["payload"]
    assert payload["text"] == "fan_one, here is the guide from my post!"  # not the main template
    async with sessions() as session:
        lead = await session.get(Lead, UUID(payload["lead_id"]))
    assert lead is not None and (lead.source, lead.source_post) == ("comment", "17800000000000042")


async def test_a_per_source_message_is_checked_like_the_main_template(
    app_client: httpx.AsyncClient, creator: UUID, issuer: Issuer
) -> None:
    me = issuer.creator(creator)
    settings = (await app_client.get("/api/settings", headers=me)).json()
    body = {k: v for k, v in settings.items() if k not in ("creator_id", "paused_by_operator")}
    bad = await app_client.put(
        "/api/settings", headers=me, json=body | {"source_templates": {"form": "Hi {firstname}"}}
    )
    assert bad.status_code == 422
    assert "{firstname}" in bad.text and "{name}" in bad.text
    good = await app_client.put(
        "/api/settings", headers=me, json=body | {"source_templates": {"form": "Hi {name}!"}}
    )
    assert good.status_code == 200, good.text
    assert good.json()["source_templates"] == {"form": "Hi {name}!"}


async def test_the_tracked_link_counts_the_open_and_lands_on_the_lead_link(
    app_client: httpx.AsyncClient,
    creator: UUID,
    issuer: Issuer,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await connect_instagram(sessions, settings, creator, _ig_id(), "shop9", "tok")
    me = issuer.creator(creator)
    created = await app_client.post(
        "/api/leads", headers=me, json={"name": "Cold", "instagram": {"username": "cold"}}
    )
    lead = await _status(app_client, me, created.json()["id"], "awaiting_contact")
    async with sessions() as session:
        ref = (await session.get(Lead, UUID(lead["id"]))).ref  # type: ignore[union-attr]
    assert lead["dm"]["tracked_link"].endswith(f"/l/{ref}")
    before = _clicked("ig_link", "api")

    opened = await app_client.get(f"/l/{ref}")
    assert opened.status_code == 302
    assert opened.headers["location"] == f"https://ig.me/m/shop9?ref={ref}"
    assert opened.headers["cache-control"] == "no-store"
    await app_client.get(f"/l/{ref}")
    lead = (await app_client.get(f"/api/leads/{lead['id']}", headers=me)).json()
    assert lead["dm"]["link_clicks"] == 2
    assert _clicked("ig_link", "api") == before + 1  # the funnel counts the lead once

    assert (await app_client.get(f"/l/{secrets.token_urlsafe(12)}")).status_code == 404
    assert (await app_client.get("/l/https:%2F%2Fevil.example")).status_code == 404


async def test_a_stored_link_elsewhere_is_never_followed(
    app_client: httpx.AsyncClient, creator: UUID, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ref, now = secrets.token_urlsafe(12), datetime.now(UTC)
    async with sessions.begin() as session:
        session.add(
            Lead(
                id=uuid4(),
                creator_id=creator,
                name="Odd",
                message="",
                ref=ref,
                dm_status="awaiting_contact",
                dm_route="ig_link",
                dm_link="https://evil.example/phish",
                created_at=now,
                updated_at=now,
            )
        )
    answer = await app_client.get(f"/l/{ref}")
    assert answer.status_code == 404 and "location" not in answer.headers


async def test_the_funnel_counts_leads_sent_clicked_read_and_replied(
    app_client: httpx.AsyncClient,
    creator: UUID,
    issuer: Issuer,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)

    def lead(status: str, **extra: Any) -> Lead:
        return Lead(
            id=uuid4(),
            creator_id=creator,
            name="F",
            message="",
            ref=secrets.token_urlsafe(12),
            dm_status=status,
            created_at=now,
            updated_at=now,
            **extra,
        )

    async with sessions.begin() as session:
        session.add_all(
            [
                lead("replied", dm_route="ig_dm", sent_at=now, read_at=now, source="comment"),
                lead("read", dm_route="ig_dm", sent_at=now, read_at=now, source="form"),
                lead("sent", dm_route="wa_template", sent_at=now, source="api"),
                lead(
                    "awaiting_contact",
                    dm_route="ig_link",
                    dm_link="https://ig.me/m/x?ref=1",
                    link_clicks=1,
                    link_clicked_at=now,
                    source="form",
                ),
                lead("awaiting_contact", dm_route="ig_link", dm_link="https://ig.me/m/x?ref=2"),
                lead("failed", dm_route="ig_dm", source="form"),
            ]
        )
    answer = await app_client.get(
        "/api/funnel", headers=issuer.creator(creator), params={"days": 7}
    )
    assert answer.status_code == 200, answer.text
    funnel = answer.json()
    totals = funnel["totals"]
    assert (totals["leads"], totals["sent"], totals["read"], totals["replied"]) == (6, 4, 2, 1)
    assert (totals["clicked"], totals["with_link"], totals["click_through"]) == (1, 2, 0.5)
    routes = {g["key"]: g for g in funnel["by_route"]}
    assert (routes["ig_link"]["leads"], routes["ig_link"]["clicked"]) == (2, 1)
    sources = {g["key"]: g["leads"] for g in funnel["by_source"]}
    assert sources == {"api": 2, "comment": 1, "form": 3}
    assert len(funnel["by_day"]) == 7 and funnel["by_day"][-1]["leads"] == 6

    other = await app_client.get(
        "/api/funnel", headers=issuer.creator(uuid4()), params={"creator_id": str(creator)}
    )
    assert other.status_code == 403
    everyone = (await app_client.get("/api/funnel", headers=issuer.admin())).json()
    assert everyone["creator_id"] is None and everyone["totals"]["leads"] >= 6


def _clicked(route: str, source: str) -> float:
    labels = {"stage": "clicked", "route": route, "source": source}
    return REGISTRY.get_sample_value("autodm_funnel_total", labels) or 0.0
