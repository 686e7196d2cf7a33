"""The dm.status projection on the real database, for orders the senders and webhooks
really produce: a read that overtakes the send, a sender's fallback to another route."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.workers.status_projection import project_statuses
from shared.contracts.events import DmStatusChanged, DmStatusPayload, utcnow
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.db.models import Lead
from tests.fake_uow import SessionWork

pytestmark = pytest.mark.integration


async def _lead(sessions: async_sessionmaker[AsyncSession], creator: UUID, route: Route) -> UUID:
    lead_id = uuid4()
    async with sessions.begin() as session:
        session.add(
            Lead(
                id=lead_id,
                creator_id=creator,
                name="Rita",
                message="hi",
                phone="+44 20 7946 0958",
                ref=lead_id.hex,
                dm_status="queued",
                dm_route=route,
                dm_attempt=1,
                dm_attempts=0,
            )
        )
    return lead_id


def _event(
    creator: UUID, lead_id: UUID, status: DmStatus, route: Route, at_s: float, **fields: str
) -> DmStatusChanged:
    return DmStatusChanged(
        correlation_id="it",
        creator_id=creator,
        occurred_at=utcnow() + timedelta(seconds=at_s),
        payload=DmStatusPayload(
            lead_id=lead_id,
            status=status,
            route=route,
            provider=route.provider or Provider.INSTAGRAM,
            **fields,
        ),
    )


async def _project(
    sessions: async_sessionmaker[AsyncSession], *batches: list[DmStatusChanged]
) -> Lead:
    for events in batches:  # one batch per poll, as the projection's consumer gets them
        async with sessions.begin() as session:
            await project_statuses(SessionWork(session), events)
    async with sessions() as session:
        lead = await session.get(Lead, batches[0][0].payload.lead_id)
    assert lead is not None
    return lead


async def test_a_read_that_overtakes_the_send_leaves_sent_at_set(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    """Issue 14: the read receipt came before the sender's `sent`: a read DM was sent."""
    lead_id = await _lead(sessions, creator, Route.IG_DM)
    sending = _event(creator, lead_id, DmStatus.SENDING, Route.IG_DM, 0)
    read = _event(creator, lead_id, DmStatus.READ, Route.IG_DM, 2, provider_message_id="m_1")
    sent = _event(creator, lead_id, DmStatus.SENT, Route.IG_DM, 1, provider_message_id="m_1")

    after_read = await _project(sessions, [sending], [read])
    assert (after_read.dm_status, after_read.sent_at) == (DmStatus.READ, read.occurred_at)

    lead = await _project(sessions, [sent])
    assert lead.dm_status == DmStatus.READ  # the late `sent` never moves it back ...
    assert lead.sent_at == sent.occurred_at  # ... but says when it went out
    assert lead.provider_message_id == "m_1"


async def test_a_fallback_from_free_text_to_the_link_is_shown(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    """Issue 21: 131047 on the free text, no opt-in: `sending` then the wa.me link."""
    lead_id = await _lead(sessions, creator, Route.WA_TEXT)
    link = "https://wa.me/442079460958?text=Hi"
    lead = await _project(
        sessions,
        [_event(creator, lead_id, DmStatus.SENDING, Route.WA_TEXT, 0)],
        [_event(creator, lead_id, DmStatus.LINK_READY, Route.WA_LINK, 1, link=link)],
    )
    assert (lead.dm_status, lead.dm_route, lead.dm_link) == (
        DmStatus.LINK_READY,
        Route.WA_LINK,
        link,
    )
