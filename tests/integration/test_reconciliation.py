"""Ambiguous Instagram sends settled by Instagram's echo (shared.delivery.ambiguous_sends), on the
real database: whichever comes second, the echo or the sender's timeout, makes it `sent`
with Instagram's message id; a different message never settles it."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.schemas import LeadIn
from services.api.service_layer.leads import create_lead
from services.instagram_sender.sending import _park_unknown
from services.webhook_ingest.inbound import handle_webhook
from shared.contracts.events import (
    DmRequested,
    DmRequestedPayload,
    DmStatusChanged,
    InstagramWebhookReceived,
    Recipient,
)
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.db.models import DmSend
from shared.delivery.ambiguous_sends import text_digest
from shared.messaging.unit_of_work import UnitOfWorkFactory
from tests.fake_uow import SessionWork
from tests.integration.conftest import connect_instagram
from tests.integration.outboxed import outboxed_statuses
from tests.records import instagram_echo
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

TEXT = "Hi Ana, here is the guide!"


class Case:
    def __init__(self, creator: UUID, account: UUID, ig_id: str, lead: UUID, igsid: str) -> None:
        self.creator, self.account, self.ig_id = creator, account, ig_id
        self.lead, self.igsid = lead, igsid

    def request(self) -> DmRequested:
        return DmRequested(
            correlation_id="reconcile-test",
            creator_id=self.creator,
            payload=DmRequestedPayload(
                lead_id=self.lead,
                route=Route.IG_DM,
                provider=Provider.INSTAGRAM,
                account_id=self.account,
                recipient=Recipient(igsid=self.igsid),
                text=TEXT,
            ),
        )

    def echo(self, mid: str, text: str = TEXT) -> InstagramWebhookReceived:
        return instagram_echo(self.creator, self.account, self.ig_id, self.igsid, mid, text)


@pytest.fixture
async def case(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> Case:
    ig_id = str(random.randint(17_841_400_000_000_000, 17_841_499_999_999_999))
    igsid = str(random.randint(10**15, 10**16 - 1))
    account = await connect_instagram(sessions, settings, creator, ig_id, f"rc{ig_id[-6:]}", "t")
    data = LeadIn.model_validate(
        {"creator_id": creator, "name": "Ana", "instagram": {"username": "ana", "igsid": igsid}}
    )
    async with sessions.begin() as session:
        lead = await create_lead(SessionWork(session), data, "reconcile-test")
    return Case(creator, account, ig_id, lead.id, igsid)


async def _intent(sessions: async_sessionmaker[AsyncSession], case: Case, state: str) -> None:
    async with sessions.begin() as session:
        session.add(
            DmSend(
                lead_id=case.lead,
                route=Route.IG_DM,
                state=state,
                account_id=case.account,
                recipient_igsid=case.igsid,
                text_sha256=text_digest(TEXT),
            )
        )


async def _handle(sessions: async_sessionmaker[AsyncSession], event: Any) -> None:
    async with sessions.begin() as session:
        await handle_webhook(SessionWork(session), event)


async def _state(sessions: async_sessionmaker[AsyncSession], case: Case) -> tuple[str, str | None]:
    async with sessions() as session:
        intent = await session.get(DmSend, (case.lead, Route.IG_DM))
    assert intent is not None
    return intent.state, intent.provider_message_id


async def _statuses(sessions: async_sessionmaker[AsyncSession], case: Case) -> list[Any]:
    return [event.payload for event in await outboxed_statuses(sessions, case.lead)]


async def _time_out(
    sessions: async_sessionmaker[AsyncSession], case: Case
) -> list[DmStatusChanged]:
    """What the sender does when its request got no answer; returns what it published."""
    published: list[DmStatusChanged] = []

    async def publish(event: DmStatusChanged) -> None:
        published.append(event)

    deps: Any = SimpleNamespace(uow=UnitOfWorkFactory(sessions), publish=publish)
    await _park_unknown(deps, case.request(), "no answer from Instagram", None)
    return published


async def test_an_echo_settles_an_unknown_send_as_sent(
    sessions: async_sessionmaker[AsyncSession], case: Case
) -> None:
    await _intent(sessions, case, "unknown")
    await _handle(sessions, case.echo("mid.echoed"))
    assert await _state(sessions, case) == ("sent", "mid.echoed")
    [status] = await _statuses(sessions, case)
    assert (status.status, status.provider_message_id) == (DmStatus.SENT, "mid.echoed")
    assert "echo" in (status.reason or "")


async def test_an_echo_before_the_timeout_makes_the_timeout_settle_as_sent(
    sessions: async_sessionmaker[AsyncSession], case: Case
) -> None:
    await _intent(sessions, case, "sending")
    await _handle(sessions, case.echo("mid.early"))
    assert await _state(sessions, case) == ("sending", "mid.early")  # the sender decides
    published = await _time_out(sessions, case)
    assert await _state(sessions, case) == ("sent", "mid.early")
    [event] = published
    assert (event.payload.status, event.payload.provider_message_id) == (DmStatus.SENT, "mid.early")


async def test_a_timeout_without_an_echo_stays_unknown_and_another_message_settles_nothing(
    sessions: async_sessionmaker[AsyncSession], case: Case
) -> None:
    await _intent(sessions, case, "sending")
    published = await _time_out(sessions, case)
    assert published[0].payload.status == DmStatus.UNKNOWN
    await _handle(sessions, case.echo("mid.other", text="a message typed in the app"))
    assert await _state(sessions, case) == ("unknown", None)
    assert await _statuses(sessions, case) == []
