"""The WhatsApp sender on real PostgreSQL with a recording Cloud API client: at most one
message per (lead, route), early status webhooks kept until their send is recorded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.whatsapp_sender.links import WhatsAppDeps
from services.whatsapp_sender.sending import SenderDeps, send_whatsapp
from services.whatsapp_sender.statuses import handle_webhook
from shared.contracts.consent import FORM_ORIGIN
from shared.contracts.events import (
    DmRequested,
    DmRequestedPayload,
    DmStatusChanged,
    LeadContactOpened,
    Recipient,
    WhatsAppWebhookPayload,
    WhatsAppWebhookReceived,
    utcnow,
)
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.topics import LEADS_CONTACTS
from shared.db.models import (
    Creator,
    DeliveryCircuit,
    Lead,
    OutboxRecord,
    SocialAccount,
    WhatsAppContact,
    WhatsAppDeferredSend,
    WhatsAppMessage,
    WhatsAppNumber,
    WhatsAppTemplate,
)
from shared.delivery.deferrals import DeferralPoller
from shared.delivery.gate import DeliveryGate
from shared.delivery.kill_switch import (
    creator_scope,
    pause_in_scope,
    pause_sending,
    resume_in_scope,
    resume_sending,
)
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.crypto import TokenCipher
from shared.providers.meta_errors import ErrorClass, MetaError
from shared.providers.whatsapp import AcceptedMessage, TemplateMessage
from tests.integration.outboxed import outboxed_statuses
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


class RecordingClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.callback_data: list[str | None] = []

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
        return AcceptedMessage(wamid=f"wamid.{len(self.calls)}.{uuid4().hex}", wa_id=to)

    async def send_text(
        self, number: str, token: str, to: str, text: str, callback_data: str | None = None
    ) -> AcceptedMessage:
        self.calls.append((to, text))
        self.callback_data.append(callback_data)
        return AcceptedMessage(wamid=f"wamid.{len(self.calls)}.{uuid4().hex}", wa_id=to)


async def _world(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> tuple[UUID, UUID]:
    account_id, lead_id = uuid4(), uuid4()
    async with sessions.begin() as session:
        session.add(
            SocialAccount(
                id=account_id,
                creator_id=creator,
                provider="whatsapp",
                external_id=str(uuid4().int)[:15],
                status="connected",
                access_token_encrypted=TokenCipher.from_settings(settings).encrypt("EAAtoken"),
            )
        )
        await session.flush()
        session.add(WhatsAppNumber(account_id=account_id, daily_limit=250, messages_per_second=80))
        session.add(
            WhatsAppTemplate(
                id=uuid4(),
                account_id=account_id,
                name="guide_offer",
                language="en_US",
                parameters=["first_name"],
                is_default=True,
            )
        )
        session.add(_opted_in_lead(lead_id, creator, "Ada Byron", "+44 20 7946 0958"))
    return account_id, lead_id


async def _world_of_two(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> tuple[UUID, UUID, UUID]:
    """A number and two opted-in leads (two people) of the creator."""
    account_id, first = await _world(sessions, settings, creator)
    second = uuid4()
    async with sessions.begin() as session:
        session.add(_opted_in_lead(second, creator, "Grace Hopper", "+44 20 7946 0959"))
    return account_id, first, second


def _opted_in_lead(lead_id: UUID, creator: UUID, name: str, phone: str) -> Lead:
    return Lead(
        id=lead_id,
        creator_id=creator,
        name=name,
        message="hi",
        phone=phone,
        whatsapp_opt_in=True,
        ref=uuid4().hex,
    )


def _request(creator: UUID, account_id: UUID, lead_id: UUID) -> DmRequested:
    return DmRequested(
        correlation_id="it",
        creator_id=creator,
        payload=DmRequestedPayload(
            lead_id=lead_id,
            route=Route.WA_TEMPLATE,
            provider=Provider.WHATSAPP,
            account_id=account_id,
            recipient=Recipient(phone="+44 20 7946 0958"),
            text="Hi Ada!",
        ),
    )


def _deps(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, client: RecordingClient
) -> tuple[SenderDeps, list[DmStatusChanged]]:
    published: list[DmStatusChanged] = []

    async def publish(event: DmStatusChanged) -> None:
        published.append(event)

    deps = SenderDeps(
        sessions=sessions,
        client=client,  # type: ignore[arg-type]
        cipher=TokenCipher.from_settings(settings),
        publish=publish,
        links=WhatsAppDeps(publish=publish),
        gate=DeliveryGate(sessions, Provider.WHATSAPP, settings),
    )
    return deps, published


async def test_a_redelivered_request_never_sends_twice(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    account_id, lead_id = await _world(sessions, settings, creator)
    client = RecordingClient()
    deps, published = _deps(sessions, settings, client)
    request = _request(creator, account_id, lead_id)

    await send_whatsapp(deps, request)
    await send_whatsapp(deps, request)

    assert [(to, t.body_parameters) for to, t in client.calls] == [("442079460958", ("Ada",))]
    assert [e.payload.status for e in published] == [
        DmStatus.SENDING,
        DmStatus.SENT,
        DmStatus.SENT,  # the duplicate re-announces, it does not resend
    ]


async def test_a_status_before_its_send_is_recorded_is_applied_when_it_is(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    account_id, lead_id = await _world(sessions, settings, creator)
    client = RecordingClient()
    deps, published = _deps(sessions, settings, client)
    wamid = f"wamid.early.{uuid4().hex}"

    async def accept_as_known(*_: Any, **__: Any) -> AcceptedMessage:
        # Meta's webhook overtakes its own HTTP answer: the status arrives first.
        early = WhatsAppWebhookReceived(
            correlation_id="it",
            creator_id=creator,
            payload=WhatsAppWebhookPayload(
                account_id=account_id,
                phone_number_id="1",
                kind="status",
                item={"id": wamid, "status": "delivered", "timestamp": "1764331200"},
            ),
        )
        await handle_webhook(UnitOfWorkFactory(sessions), deps.publish, _never, early)
        return AcceptedMessage(wamid=wamid, wa_id="442079460958")

    client.send_template = accept_as_known  # type: ignore[method-assign]
    await send_whatsapp(deps, _request(creator, account_id, lead_id))

    assert [(e.payload.status, e.payload.provider_message_id) for e in published][1:] == [
        (DmStatus.SENT, wamid),
    ]
    # The early status goes out through the outbox, committed with the send it waited for.
    early = await outboxed_statuses(sessions, lead_id)
    assert [(e.payload.status, e.payload.provider_message_id) for e in early] == [
        (DmStatus.DELIVERED, wamid),
    ]


async def _never(_: DmRequested) -> None:
    raise AssertionError("no re-request expected")


class ThrottledClient(RecordingClient):
    """Meta answers the first template with 130429 (throughput exceeded), Retry-After 60 s."""

    async def send_template(
        self,
        number: str,
        token: str,
        to: str,
        template: TemplateMessage,
        callback_data: str | None = None,
    ) -> AcceptedMessage:
        if not self.calls:
            self.calls.append((to, template))
            raise MetaError(ErrorClass.THROTTLED, "throughput exceeded", 130429, retry_after_s=60)
        return await super().send_template(number, token, to, template, callback_data)


async def _deferred(sessions: async_sessionmaker[AsyncSession], lead_id: UUID) -> str | None:
    async with sessions() as session:
        row = await session.get(WhatsAppDeferredSend, (lead_id, Route.WA_TEMPLATE))
    return row.reason if row else None


async def test_a_paused_number_sends_nothing_until_resumed(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    account_id, lead_id = await _world(sessions, settings, creator)
    client = RecordingClient()
    deps, published = _deps(sessions, settings, client)
    async with sessions.begin() as session:
        await pause_sending(session, account_id, "holiday", "test")
    await deps.gate.refresh()

    await send_whatsapp(deps, _request(creator, account_id, lead_id))
    assert client.calls == []
    assert "paused" in (await _deferred(sessions, lead_id) or "")

    async with sessions.begin() as session:
        await resume_sending(session, account_id)
    await deps.gate.refresh()
    await send_whatsapp(deps, _request(creator, account_id, lead_id))  # the poller's re-request
    assert len(client.calls) == 1
    assert [e.payload.status for e in published][-1] == DmStatus.SENT


async def test_the_creators_pause_covers_a_number_connected_after_it(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    async with sessions.begin() as session:
        await pause_in_scope(session, creator_scope(creator), "paused by the creator", "test")
    account_id, lead_id = await _world(sessions, settings, creator)  # connected while paused
    client = RecordingClient()
    deps, _ = _deps(sessions, settings, client)
    await deps.gate.refresh()

    await send_whatsapp(deps, _request(creator, account_id, lead_id))
    assert client.calls == []
    assert "paused" in (await _deferred(sessions, lead_id) or "")

    async with sessions.begin() as session:
        await resume_in_scope(session, creator_scope(creator))
    await deps.gate.refresh()
    await send_whatsapp(deps, _request(creator, account_id, lead_id))
    assert len(client.calls) == 1


async def test_the_creators_pacing_holds_the_next_dm_of_the_number(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    account_id, first, second = await _world_of_two(sessions, settings, creator)
    async with sessions.begin() as session:
        (await session.get_one(Creator, creator)).dm_pace_per_h = 2  # one per 30 minutes
    client = RecordingClient()
    deps, _ = _deps(sessions, settings, client)
    await deps.gate.refresh()

    await send_whatsapp(deps, _request(creator, account_id, first))
    await send_whatsapp(deps, _request(creator, account_id, second))
    assert len(client.calls) == 1
    assert "pacing" in (await _deferred(sessions, second) or "")


async def test_a_throttling_answer_holds_the_numbers_other_dms_until_metas_time(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    account_id, first, second = await _world_of_two(sessions, settings, creator)
    client = ThrottledClient()
    deps, _ = _deps(sessions, settings, client)
    try:
        await send_whatsapp(deps, _request(creator, account_id, first))
        await send_whatsapp(deps, _request(creator, account_id, second))

        assert len(client.calls) == 1  # the second DM never reached Meta
        assert "rate limiting" in (await _deferred(sessions, second) or "")
        assert await _deferred(sessions, first) is not None  # the throttled one waits too
    finally:
        # The open breaker is persisted; other suites' admin overviews must not see it.
        async with sessions.begin() as session:
            await session.execute(
                delete(DeliveryCircuit).where(DeliveryCircuit.account_id == account_id)
            )


def _inbound(creator: UUID, account_id: UUID, written_at: int) -> WhatsAppWebhookReceived:
    return WhatsAppWebhookReceived(
        correlation_id="it",
        creator_id=creator,
        payload=WhatsAppWebhookPayload(
            account_id=account_id,
            phone_number_id="1",
            kind="message",
            item={
                "from": "442079460958",
                "id": f"wamid.in.{uuid4().hex}",
                "timestamp": str(written_at),
            },
        ),
    )


async def test_only_a_message_written_after_the_send_second_is_a_reply(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    account_id, lead_id = await _world(sessions, settings, creator)
    deps, published = _deps(sessions, settings, RecordingClient())
    await send_whatsapp(deps, _request(creator, account_id, lead_id))
    async with sessions() as session:
        sent_at = await session.scalar(
            select(WhatsAppMessage.created_at).where(WhatsAppMessage.lead_id == lead_id)
        )
    assert sent_at is not None
    second = int(sent_at.timestamp())  # WhatsApp's whole seconds

    # Written earlier or within the send's second (delivered late): not an answer to it.
    for written in (second - 5, second):
        await handle_webhook(
            UnitOfWorkFactory(sessions),
            deps.publish,
            _never,
            _inbound(creator, account_id, written),
        )
    assert DmStatus.REPLIED not in [e.payload.status for e in published]

    await handle_webhook(
        UnitOfWorkFactory(sessions), deps.publish, _never, _inbound(creator, account_id, second + 1)
    )
    assert published[-1].payload.status == DmStatus.REPLIED
    assert published[-1].payload.lead_id == lead_id


async def test_a_persons_paced_dms_go_out_in_the_order_their_leads_came(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    """Issue 21: DMs held by the pair rate (1 per 6 s per person) came back in any order,
    and a new lead's DM could take the free slot before the ones waiting."""
    account_id, _ = await _world(sessions, settings, creator)
    phone, t0 = "+44 20 7946 0970", utcnow()
    names = ["One", "Two", "Three", "Four"]
    leads = [uuid4() for _ in names]
    async with sessions.begin() as session:
        for i, (lead_id, name) in enumerate(zip(leads, names, strict=True)):
            lead = _opted_in_lead(lead_id, creator, f"{name} Lee", phone)
            lead.created_at = t0 + timedelta(seconds=i)
            session.add(lead)
    client = RecordingClient()
    deps, published = _deps(sessions, settings, client)
    clock = [t0]
    deps = replace(deps, now=lambda: clock[0])
    again: list[DmRequested] = []

    async def request_again(request: DmRequested, headers: dict[str, str]) -> None:
        if request.payload.account_id == account_id:  # other tests' deferred rows stay
            again.append(request)

    routes = [Route.WA_TEXT, Route.WA_TEMPLATE]
    poller = DeferralPoller(sessions, request_again, poll_s=1, routes=routes, provider="whatsapp")
    for lead_id in leads[:3]:  # the first goes, the next two wait for the pair rate
        await send_whatsapp(deps, _request(creator, account_id, lead_id))
    clock[0] = t0 + timedelta(seconds=7)  # the slot is free before the poller runs ...
    await send_whatsapp(deps, _request(creator, account_id, leads[3]))  # ... a new lead comes
    assert [t.body_parameters for _, t in client.calls] == [("One",)]  # it waits its turn

    for _ in range(8):
        await poller.dispatch_due(clock[0])
        # Handled in the reverse order of their dispatch: order must not rest on it.
        for request in reversed(again):
            await send_whatsapp(deps, request)
        again.clear()
        clock[0] += timedelta(seconds=7)
        if len(client.calls) == len(names):
            break

    sent_names = [t.body_parameters[0] for _, t in client.calls]
    assert sent_names == names
    sent = [e.payload.lead_id for e in published if e.payload.status == DmStatus.SENT]
    assert sent == leads


async def _form_lead(
    sessions: async_sessionmaker[AsyncSession], creator: UUID, status: DmStatus
) -> Lead:
    """A public-form lead: a typed number, the box ticked, nobody's proof yet."""
    lead = _opted_in_lead(uuid4(), creator, "Typed Number", "+44 20 7946 0958")
    lead.origin, lead.whatsapp_consent_source = FORM_ORIGIN, FORM_ORIGIN
    lead.ref, lead.dm_status = uuid4().hex[:16], status
    async with sessions.begin() as session:
        session.add(lead)
    return lead


async def test_a_number_typed_into_the_form_never_gets_a_template(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    """Even asked for a template (e.g. after 131047), the sender's own check holds."""
    account_id, _ = await _world(sessions, settings, creator)
    lead = await _form_lead(sessions, creator, DmStatus.QUEUED)
    client = RecordingClient()
    deps, published = _deps(sessions, settings, client)
    await send_whatsapp(deps, _request(creator, account_id, lead.id))
    assert client.calls == []
    assert [e.payload.status for e in published] == [DmStatus.LINK_READY]


def _writes(
    creator: UUID, account_id: UUID, wa_id: str, text: str, written_at: int
) -> WhatsAppWebhookReceived:
    event = _inbound(creator, account_id, written_at)
    item = event.payload.item | {"from": wa_id, "type": "text", "text": {"body": text}}
    return event.model_copy(update={"payload": event.payload.model_copy(update={"item": item})})


async def _contacts_for(sessions: async_sessionmaker[AsyncSession], lead_id: UUID) -> list[Any]:
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxRecord.payload).where(
                OutboxRecord.topic == LEADS_CONTACTS, OutboxRecord.key == str(lead_id)
            )
        )
        return [LeadContactOpened.model_validate_json(row) for row in rows]


async def test_a_message_naming_a_waiting_lead_binds_the_number_that_wrote(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    account_id, _ = await _world(sessions, settings, creator)
    lead = await _form_lead(sessions, creator, DmStatus.LINK_READY)
    deps, _ = _deps(sessions, settings, RecordingClient())
    now = int(datetime.now(UTC).timestamp())
    # Without the reference (or with a word that merely looks like one): nothing binds.
    for text in ("hi", f"hi {lead.ref}"):
        unnamed = _writes(creator, account_id, "447700900123", text, now)
        await handle_webhook(UnitOfWorkFactory(sessions), deps.publish, _never, unnamed)
    assert await _contacts_for(sessions, lead.id) == []

    named = _writes(creator, account_id, "447700900123", f"Hi Cara! (ref {lead.ref})", now)
    await handle_webhook(UnitOfWorkFactory(sessions), deps.publish, _never, named)
    await handle_webhook(UnitOfWorkFactory(sessions), deps.publish, _never, named)  # Meta's retry
    opened = await _contacts_for(sessions, lead.id)
    assert {e.id for e in opened} == {opened[0].id}  # one event: the router claims it once
    p = opened[0].payload
    assert (p.wa_id, p.igsid, p.via, p.account_id) == ("447700900123", None, "whatsapp", account_id)
    async with sessions() as session:
        contact = await session.get(WhatsAppContact, (account_id, "447700900123"))
    assert contact is not None and contact.last_inbound_at is not None  # the window opened
