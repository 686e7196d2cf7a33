"""The router on the real database never asks Meta for what it knows Meta will refuse: a
comment's one private reply, used by any lead, is not tried again (in a later batch or the
same one); a DM over its platform's limit ends `failed` with the reason, never cut."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.schemas import LeadIn
from services.api.service_layer.dm_requests import _error_class
from services.api.service_layer.lead_routing import RouterConfig, route_leads
from services.api.service_layer.leads import create_lead
from shared.contracts.events import LeadCreated, LeadCreatedPayload, utcnow
from shared.contracts.lifecycle import DmStatus, Route
from shared.contracts.route_choice import RoutingRules
from shared.contracts.topics import DM_REQUESTED_INSTAGRAM
from shared.db.models import Creator, DmLogEntry, DmSend, InstagramContact, Lead, OutboxRecord
from tests.fake_uow import SessionWork
from tests.integration.conftest import connect_instagram
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


async def _creator(sessions: async_sessionmaker[AsyncSession], template: str) -> UUID:
    creator_id = uuid4()
    async with sessions.begin() as session:
        slug = f"c-{creator_id.hex[:12]}"
        session.add(Creator(id=creator_id, name="C", slug=slug, dm_template=template))
    return creator_id


async def _created(
    sessions: async_sessionmaker[AsyncSession], creator: UUID, data: dict[str, Any]
) -> LeadCreated:
    async with sessions.begin() as session:
        lead = await create_lead(
            SessionWork(session), LeadIn(creator_id=creator, **data), "router-rules"
        )
    return LeadCreated(
        correlation_id="router-rules",
        creator_id=creator,
        payload=LeadCreatedPayload(lead_id=lead.id, name=lead.name, message=""),
    )


async def _route(sessions: async_sessionmaker[AsyncSession], *events: LeadCreated) -> None:
    async with sessions.begin() as session:
        await route_leads(
            SessionWork(session), list(events), RouterConfig(RoutingRules()), utcnow()
        )


async def _lead(sessions: async_sessionmaker[AsyncSession], lead_id: UUID) -> Lead:
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
    assert lead is not None
    return lead


async def _requested_routes(sessions: async_sessionmaker[AsyncSession], lead_id: UUID) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxRecord.payload).where(OutboxRecord.topic == DM_REQUESTED_INSTAGRAM)
        )
        bodies = [json.loads(row)["payload"] for row in rows]
    return [b["route"] for b in bodies if b["lead_id"] == str(lead_id)]


def _commenter(comment_id: str, name: str, igsid: str | None = None) -> dict[str, Any]:
    commented = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    instagram: dict[str, Any] = {"comment_id": comment_id, "commented_at": commented}
    instagram |= {"username": name.lower()} | ({"igsid": igsid} if igsid else {})
    return {"name": name, "instagram": instagram}


@pytest.fixture
async def creator_with_account(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings
) -> tuple[UUID, UUID]:
    creator = await _creator(sessions, "Hi {name}")
    account = await connect_instagram(sessions, settings, creator, uuid4().hex[:16], "acct", "t")
    return creator, account


async def test_a_comment_whose_reply_another_lead_sent_gets_the_link_not_a_second_reply(
    sessions: async_sessionmaker[AsyncSession], creator_with_account: tuple[UUID, UUID]
) -> None:
    creator, _ = creator_with_account
    comment = str(uuid4().int)[:17]
    first = await _created(sessions, creator, _commenter(comment, "Ann"))
    await _route(sessions, first)
    assert await _requested_routes(sessions, first.payload.lead_id) == ["ig_private_reply"]
    async with sessions.begin() as session:  # the sender sent it
        session.add(
            DmSend(lead_id=first.payload.lead_id, route=Route.IG_PRIVATE_REPLY, state="sent")
        )

    second = await _created(sessions, creator, _commenter(comment, "Ann"))
    await _route(sessions, second)

    lead = await _lead(sessions, second.payload.lead_id)
    assert (lead.dm_route, lead.dm_status) == (Route.IG_LINK, DmStatus.AWAITING_CONTACT)
    assert lead.dm_link and "ig.me/m/acct?ref=" in lead.dm_link
    assert await _requested_routes(sessions, second.payload.lead_id) == []


async def test_a_used_reply_with_an_open_window_becomes_a_dm(
    sessions: async_sessionmaker[AsyncSession], creator_with_account: tuple[UUID, UUID]
) -> None:
    creator, account = creator_with_account
    comment, igsid = str(uuid4().int)[:17], str(uuid4().int)[:15]
    async with sessions.begin() as session:
        wrote = datetime.now(UTC) - timedelta(minutes=5)
        session.add(InstagramContact(account_id=account, igsid=igsid, last_inbound_at=wrote))
    first = await _created(sessions, creator, _commenter(comment, "Cy", igsid))
    async with sessions.begin() as session:  # an earlier lead's reply, still being sent
        session.add(
            DmSend(lead_id=first.payload.lead_id, route=Route.IG_PRIVATE_REPLY, state="deferred")
        )
    second = await _created(sessions, creator, _commenter(comment, "Cy", igsid))
    await _route(sessions, second)
    assert await _requested_routes(sessions, second.payload.lead_id) == ["ig_dm"]


async def test_two_leads_of_one_comment_in_one_batch_get_one_reply(
    sessions: async_sessionmaker[AsyncSession], creator_with_account: tuple[UUID, UUID]
) -> None:
    creator, _ = creator_with_account
    comment = str(uuid4().int)[:17]
    a = await _created(sessions, creator, _commenter(comment, "Di"))
    b = await _created(sessions, creator, _commenter(comment, "Di"))
    await _route(sessions, a, b)
    routes = [
        await _requested_routes(sessions, a.payload.lead_id),
        await _requested_routes(sessions, b.payload.lead_id),
    ]
    assert sorted(routes) == [[], ["ig_private_reply"]]


async def test_a_reply_that_failed_leaves_the_comment_usable(
    sessions: async_sessionmaker[AsyncSession], creator_with_account: tuple[UUID, UUID]
) -> None:
    creator, _ = creator_with_account
    comment = str(uuid4().int)[:17]
    first = await _created(sessions, creator, _commenter(comment, "Eve"))
    async with sessions.begin() as session:
        session.add(
            DmSend(lead_id=first.payload.lead_id, route=Route.IG_PRIVATE_REPLY, state="failed")
        )
    second = await _created(sessions, creator, _commenter(comment, "Eve"))
    await _route(sessions, second)
    assert await _requested_routes(sessions, second.payload.lead_id) == ["ig_private_reply"]


async def test_a_dm_over_instagrams_limit_fails_with_the_reason_and_is_never_cut(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings
) -> None:
    creator = await _creator(sessions, "Hello {name}! You wrote: {message} " + "x" * 400)
    account = await connect_instagram(sessions, settings, creator, uuid4().hex[:16], "big", "t")
    igsid = str(uuid4().int)[:15]
    async with sessions.begin() as session:
        wrote = datetime.now(UTC) - timedelta(minutes=5)
        session.add(InstagramContact(account_id=account, igsid=igsid, last_inbound_at=wrote))
    data = {"name": "Fay", "message": "m" * 900, "instagram": {"igsid": igsid}}
    event = await _created(sessions, creator, data)

    await _route(sessions, event)

    lead = await _lead(sessions, event.payload.lead_id)
    assert (lead.dm_route, lead.dm_status) == (Route.IG_DM, DmStatus.FAILED)
    assert lead.dm_reason is not None
    assert "Instagram allows 1,000" in lead.dm_reason and "template" in lead.dm_reason
    assert await _requested_routes(sessions, event.payload.lead_id) == []
    async with sessions() as session:
        failure = await session.scalar(
            select(DmLogEntry).where(
                DmLogEntry.lead_id == lead.id, DmLogEntry.status == DmStatus.FAILED
            )
        )
    assert _error_class(lead, failure) == "too_long"  # a retry may render it again


async def test_a_leads_own_text_is_never_expanded_again(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings
) -> None:
    creator = await _creator(sessions, "Hi {name}, you said: {message}")
    account = await connect_instagram(sessions, settings, creator, uuid4().hex[:16], "one", "t")
    igsid = str(uuid4().int)[:15]
    async with sessions.begin() as session:
        wrote = datetime.now(UTC) - timedelta(minutes=5)
        session.add(InstagramContact(account_id=account, igsid=igsid, last_inbound_at=wrote))
    data = {"name": "{message}", "message": "secret {name}", "instagram": {"igsid": igsid}}
    event = await _created(sessions, creator, data)
    await _route(sessions, event)
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxRecord.payload).where(OutboxRecord.topic == DM_REQUESTED_INSTAGRAM)
        )
        texts = [
            json.loads(r)["payload"]["text"]
            for r in rows
            if json.loads(r)["payload"]["lead_id"] == str(event.payload.lead_id)
        ]
    assert texts == ["Hi {message}, you said: secret {name}"]
