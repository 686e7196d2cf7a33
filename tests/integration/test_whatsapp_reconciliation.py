"""Ambiguous WhatsApp sends settled by the status webhooks of the message, on the real
database: each send carries its callback data; a status naming it, whether it came while
the send hung or after it was parked `unknown`, settles it with its wamid; nothing is ever
sent twice (services/whatsapp_sender/reconciliation.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.workers.status_projection import project_statuses
from services.webhook_ingest.whatsapp_routes import WhatsAppItem
from services.whatsapp_sender.reconciliation import (
    RECONCILED_FAILED_REASON,
    RECONCILED_REASON,
    SendRef,
)
from services.whatsapp_sender.sending import send_whatsapp
from services.whatsapp_sender.statuses import handle_webhook
from shared.contracts.events import DmStatusChanged, WhatsAppWebhookPayload, WhatsAppWebhookReceived
from shared.contracts.lifecycle import DmStatus
from shared.db.models import DmSend, Lead, WhatsAppMessage, WhatsAppStatusBacklog
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.providers.meta_errors import ErrorClass, MetaError
from shared.providers.whatsapp import AcceptedMessage, TemplateMessage
from tests.fake_uow import SessionWork
from tests.integration.outboxed import outboxed_statuses
from tests.integration.test_whatsapp_sender import (
    RecordingClient,
    _deps,
    _never,
    _request,
    _world,
)
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

WA_ID = "442079460958"


class HungClient(RecordingClient):
    """Meta accepts the template (its status webhooks may come at once) but its answer
    never reaches us: the request times out."""

    def __init__(self) -> None:
        super().__init__()
        self.wamid = f"wamid.hung.{uuid4().hex}"
        self.during_hang: list[str] = []
        self.on_hang: Any = None

    async def send_template(
        self,
        number: str,
        token: str,
        to: str,
        template: TemplateMessage,
        callback_data: str | None = None,
    ) -> AcceptedMessage:
        self.calls.append((to, template))
        self.callback_data.append(callback_data)
        for status in self.during_hang:
            await self.on_hang(status)
        raise MetaError(ErrorClass.AMBIGUOUS, "no answer in time: ReadTimeout")


def _status(
    account_id: UUID, creator: UUID, wamid: str, status: str, data: str | None, **extra: Any
) -> WhatsAppWebhookReceived:
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": "1764331200"}
    item |= {"recipient_id": WA_ID} | extra
    if data is not None:
        item["biz_opaque_callback_data"] = data
    return WhatsAppWebhookReceived(
        # As webhook_ingest names it: Meta's retries of a status are the same event.
        id=WhatsAppItem("1", "status", item, None).event_id,
        correlation_id="it",
        creator_id=creator,
        payload=WhatsAppWebhookPayload(
            account_id=account_id, phone_number_id="1", kind="status", item=item
        ),
    )


async def _project(
    sessions: async_sessionmaker[AsyncSession], events: list[DmStatusChanged]
) -> Lead:
    """The API's projection of everything published, as the DM's page would show it."""
    async with sessions.begin() as session:
        await project_statuses(SessionWork(session), events)
    async with sessions() as session:
        lead = await session.get(Lead, events[0].payload.lead_id)
    assert lead is not None
    return lead


async def _intent(sessions: async_sessionmaker[AsyncSession], lead_id: UUID) -> DmSend:
    async with sessions() as session:
        intent = await session.scalar(select(DmSend).where(DmSend.lead_id == lead_id))
    assert intent is not None
    return intent


async def test_statuses_that_came_during_the_hang_settle_the_send_when_it_times_out(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    account_id, lead_id = await _world(sessions, settings, creator)
    client = HungClient()
    deps, published = _deps(sessions, settings, client)
    woken: list[int] = []
    deps = replace(deps, wake=lambda: woken.append(1))  # the sender's outbox relay

    async def webhook(status: str) -> None:
        data = client.callback_data[-1]
        event = _status(account_id, creator, client.wamid, status, data)
        await handle_webhook(UnitOfWorkFactory(sessions), deps.publish, _never, event)

    client.during_hang, client.on_hang = ["sent", "delivered"], webhook
    await send_whatsapp(deps, _request(creator, account_id, lead_id))

    assert len(client.calls) == 1
    ref = SendRef.parse(client.callback_data[0])
    assert ref is not None and (ref.lead_id, ref.attempt) == (lead_id, 1)
    sending, settled = published
    # Those that came during the hang left the backlog for the outbox, in the transaction
    # that settled the send: a crash after it cannot lose them.
    backlog = await outboxed_statuses(sessions, lead_id)
    assert woken == [1]  # the unit of work woke the relay once, after that commit
    assert sending.payload.status == DmStatus.SENDING
    assert (settled.payload.status, settled.payload.provider_message_id) == (
        DmStatus.SENT,
        client.wamid,
    )
    # The statuses that came during the hang, in any order (the projection ranks them).
    assert {(e.payload.status, e.payload.provider_message_id) for e in backlog} == {
        (DmStatus.SENT, client.wamid),
        (DmStatus.DELIVERED, client.wamid),
    }
    lead = await _project(sessions, published + backlog)
    assert (lead.dm_status, lead.provider_message_id) == (DmStatus.DELIVERED, client.wamid)
    assert lead.dm_reason == RECONCILED_REASON
    intent = await _intent(sessions, lead_id)
    assert (intent.state, intent.provider_message_id) == ("sent", client.wamid)
    async with sessions() as session:
        message = await session.get(WhatsAppMessage, client.wamid)
        left = await session.scalars(
            select(WhatsAppStatusBacklog).where(WhatsAppStatusBacklog.wamid == client.wamid)
        )
        assert message is not None and message.reconciled and message.wa_id == WA_ID
        assert left.all() == []


async def test_a_status_after_the_send_was_parked_unknown_settles_it_once(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    account_id, lead_id = await _world(sessions, settings, creator)
    client = HungClient()
    deps, published = _deps(sessions, settings, client)
    request = _request(creator, account_id, lead_id)
    await send_whatsapp(deps, request)
    assert [e.payload.status for e in published] == [DmStatus.SENDING, DmStatus.UNKNOWN]
    assert (await _intent(sessions, lead_id)).state == "unknown"

    data = client.callback_data[0]
    read = _status(account_id, creator, client.wamid, "read", data)
    await handle_webhook(UnitOfWorkFactory(sessions), deps.publish, _never, read)
    await handle_webhook(UnitOfWorkFactory(sessions), deps.publish, _never, read)  # Meta's retry
    await send_whatsapp(deps, request)  # a redelivered request: never sent again

    settled, retried, announced = published[2:]
    assert settled == retried  # the same event: projected once
    assert (settled.payload.status, settled.payload.reason) == (DmStatus.READ, RECONCILED_REASON)
    assert announced.payload.status == DmStatus.SENT
    assert len(client.calls) == 1
    lead = await _project(sessions, published)
    assert (lead.dm_status, lead.provider_message_id) == (DmStatus.READ, client.wamid)
    assert lead.dm_reason == RECONCILED_REASON
    intent = await _intent(sessions, lead_id)
    assert (intent.state, intent.provider_message_id) == ("sent", client.wamid)


async def test_a_status_naming_another_attempt_or_nothing_of_ours_settles_nothing(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    account_id, lead_id = await _world(sessions, settings, creator)
    client = HungClient()
    deps, published = _deps(sessions, settings, client)
    await send_whatsapp(deps, _request(creator, account_id, lead_id))
    ref = SendRef.parse(client.callback_data[0])
    assert ref is not None
    other_attempt = SendRef(ref.lead_id, ref.route, 2, ref.sent_as).callback_data()

    for data in (other_attempt, "someone-else:42", None):
        event = _status(account_id, creator, f"wamid.other.{uuid4().hex}", "sent", data)
        await handle_webhook(UnitOfWorkFactory(sessions), deps.publish, _never, event)

    assert [e.payload.status for e in published] == [DmStatus.SENDING, DmStatus.UNKNOWN]
    assert (await _intent(sessions, lead_id)).state == "unknown"


async def test_a_failed_status_settles_it_as_failed_and_nothing_is_sent_again(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    account_id, lead_id = await _world(sessions, settings, creator)
    client = HungClient()
    deps, published = _deps(sessions, settings, client)
    await send_whatsapp(deps, _request(creator, account_id, lead_id))

    errors = [{"code": 131026, "title": "Message undeliverable"}]
    failed = _status(
        account_id, creator, client.wamid, "failed", client.callback_data[0], errors=errors
    )
    await handle_webhook(UnitOfWorkFactory(sessions), deps.publish, _never, failed)
    request = _request(creator, account_id, lead_id)
    retry = request.model_copy(
        update={"payload": request.payload.model_copy(update={"attempt": 2})}
    )
    await send_whatsapp(deps, retry)  # even a later attempt finds the send made

    assert len(client.calls) == 1
    event = published[2]
    assert (event.payload.status, event.payload.provider_message_id) == (
        DmStatus.FAILED,
        client.wamid,
    )
    assert (event.payload.reason or "").startswith(RECONCILED_FAILED_REASON)
    assert event.payload.error is not None and event.payload.error.code == 131026
    assert (await _intent(sessions, lead_id)).state == "sent"
