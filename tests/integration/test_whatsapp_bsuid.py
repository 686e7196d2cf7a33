"""WhatsApp contacts by business-scoped user id (issue 19), on real PostgreSQL: a username
user whose webhooks show no phone is matched, answered by `recipient`, bound to the lead
they name; an identity change re-keys the contact without losing its window or history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.service_layer.lead_routing import RouterConfig, open_contact
from services.whatsapp_sender.sending import send_whatsapp
from services.whatsapp_sender.statuses import handle_webhook
from shared.contracts.events import (
    DmRequested,
    DmRequestedPayload,
    Recipient,
    WhatsAppWebhookPayload,
    WhatsAppWebhookReceived,
)
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.route_choice import RoutingRules
from shared.db.models import Lead, WhatsAppContact, WhatsAppMessage
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.settings import Settings
from shared.providers.whatsapp import addressed
from tests.fake_uow import SessionWork
from tests.integration.test_whatsapp_sender import (
    RecordingClient,
    _contacts_for,
    _deps,
    _form_lead,
    _never,
    _world,
)

pytestmark = pytest.mark.integration


def _bsuid() -> str:
    return f"US.{uuid4().int % 10**20:020d}"


def _webhook(
    creator: UUID,
    account_id: UUID,
    item: dict[str, Any],
    contact: dict[str, str] | None,
    kind: str = "message",
) -> WhatsAppWebhookReceived:
    return WhatsAppWebhookReceived(
        correlation_id="it",
        creator_id=creator,
        payload=WhatsAppWebhookPayload(
            account_id=account_id,
            phone_number_id="1",
            kind="status" if kind == "status" else "message",
            item={"id": f"wamid.{uuid4().hex}", "timestamp": str(_now())} | item,
            contact=contact,
        ),
    )


def _text(
    creator: UUID, account_id: UUID, user_id: str, phone: str | None, body: str = "hi"
) -> WhatsAppWebhookReceived:
    """A user's text as Meta sends it since usernames: `from` only if the phone is shown."""
    item: dict[str, Any] = {"from_user_id": user_id, "type": "text", "text": {"body": body}}
    contact = {"user_id": user_id, "username": "ada.codes"}
    if phone:
        item["from"], contact["wa_id"] = phone, phone
    return _webhook(creator, account_id, item, contact)


def _now() -> int:
    return int(datetime.now(UTC).timestamp())


async def _contacts(
    sessions: async_sessionmaker[AsyncSession], account_id: UUID
) -> list[WhatsAppContact]:
    async with sessions() as session:
        rows = await session.scalars(
            select(WhatsAppContact).where(WhatsAppContact.account_id == account_id)
        )
        return list(rows)


def _text_request(creator: UUID, account_id: UUID, lead_id: UUID, attempt: int = 1) -> DmRequested:
    return DmRequested(
        correlation_id="it",
        creator_id=creator,
        payload=DmRequestedPayload(
            lead_id=lead_id,
            route=Route.WA_TEXT,
            provider=Provider.WHATSAPP,
            account_id=account_id,
            recipient=Recipient(),
            text="Hi Ada!",
            attempt=attempt,
        ),
    )


def test_a_send_names_a_phone_by_to_and_a_bsuid_by_recipient() -> None:
    assert addressed("442079460958") == {"to": "442079460958"}
    assert addressed("US.13491208655302741918") == {"recipient": "US.13491208655302741918"}


async def test_a_username_user_without_a_phone_writes_names_a_lead_and_gets_the_dm_by_bsuid(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, creator: UUID
) -> None:
    account_id, _ = await _world(sessions, settings, creator)
    lead = await _form_lead(sessions, creator, DmStatus.LINK_READY)
    client = RecordingClient()
    deps, published = _deps(sessions, settings, client)
    user_id = _bsuid()

    named = _text(creator, account_id, user_id, None, f"Hi! (ref {lead.ref})")
    await handle_webhook(UnitOfWorkFactory(sessions), deps.publish, _never, named)

    [contact] = await _contacts(sessions, account_id)
    assert (contact.wa_id, contact.user_id, contact.phone) == (user_id, user_id, None)
    assert contact.username == "ada.codes" and contact.last_inbound_at is not None
    [opened] = await _contacts_for(sessions, lead.id)
    assert (opened.payload.wa_user_id, opened.payload.wa_id) == (user_id, None)

    # The router binds the BSUID (and drops the typed number nobody proved).
    async with sessions.begin() as session:
        await open_contact(
            SessionWork(session), opened, RouterConfig(RoutingRules()), datetime.now(UTC)
        )
    async with sessions() as session:
        bound = await session.get_one(Lead, lead.id)
    assert (bound.whatsapp_user_id, bound.phone) == (user_id, None)

    # Inside the window the DM goes as text, addressed by the BSUID.
    await send_whatsapp(deps, _text_request(creator, account_id, lead.id, attempt=2))
    assert client.calls == [(user_id, "Hi Ada!")]
    assert published[-1].payload.status == DmStatus.SENT
    async with sessions() as session:
        [message] = await session.scalars(
            select(WhatsAppMessage).where(WhatsAppMessage.lead_id == lead.id)
        )
    assert message.wa_id == user_id

    # Its statuses name the recipient by BSUID alone; the one after `read` is the reply.
    status = {"id": message.wamid, "status": "read", "recipient_user_id": user_id}
    await handle_webhook(
        UnitOfWorkFactory(sessions),
        deps.publish,
        _never,
        _webhook(creator, account_id, status, None, "status"),
    )
    assert published[-1].payload.status == DmStatus.READ
    reply = _text(creator, account_id, user_id, None, "thanks!")
    reply.payload.item["timestamp"] = str(_now() + 2)
    await handle_webhook(UnitOfWorkFactory(sessions), deps.publish, _never, reply)
    assert published[-1].payload.status == DmStatus.REPLIED


async def test_a_bsuid_change_keeps_the_window_the_history_and_the_leads(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, creator: UUID
) -> None:
    account_id, lead_id = await _world(sessions, settings, creator)
    client = RecordingClient()
    deps, published = _deps(sessions, settings, client)
    phone, old, new = "442079460958", _bsuid(), _bsuid()
    async with sessions.begin() as session:
        (await session.get_one(Lead, lead_id)).whatsapp_user_id = old

    await handle_webhook(
        UnitOfWorkFactory(sessions), deps.publish, _never, _text(creator, account_id, old, phone)
    )
    await send_whatsapp(deps, _text_request(creator, account_id, lead_id))
    assert client.calls == [(phone, "Hi Ada!")]  # the phone when AutoDM has one

    change = {
        "from_user_id": old,
        "type": "system",
        "system": {"type": "user_changed_user_id", "body": "changed", "user_id": new},
    }
    await handle_webhook(
        UnitOfWorkFactory(sessions),
        deps.publish,
        _never,
        _webhook(creator, account_id, change, None),
    )
    [contact] = await _contacts(sessions, account_id)
    assert (contact.wa_id, contact.user_id, contact.phone) == (phone, new, phone)
    assert contact.last_inbound_at is not None  # the window stayed open
    async with sessions() as session:
        lead = await session.get_one(Lead, lead_id)
    assert (lead.whatsapp_user_id, lead.whatsapp_opt_in) == (new, True)

    # They write under the new BSUID, phone hidden now: the earlier DM is answered.
    reply = _text(creator, account_id, new, None, "got it")
    reply.payload.item["timestamp"] = str(_now() + 2)
    await handle_webhook(UnitOfWorkFactory(sessions), deps.publish, _never, reply)
    assert published[-1].payload.status == DmStatus.REPLIED
    assert published[-1].payload.lead_id == lead_id
    assert len(await _contacts(sessions, account_id)) == 1


async def test_one_person_met_by_phone_and_by_bsuid_alone_becomes_one_contact(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, creator: UUID
) -> None:
    account_id, _ = await _world(sessions, settings, creator)
    deps, _ = _deps(sessions, settings, RecordingClient())
    phone, user_id = "442079460977", _bsuid()
    legacy = _webhook(creator, account_id, {"from": phone, "type": "text"}, {"wa_id": phone})
    await handle_webhook(
        UnitOfWorkFactory(sessions), deps.publish, _never, legacy
    )  # a webhook from before BSUIDs
    await handle_webhook(
        UnitOfWorkFactory(sessions), deps.publish, _never, _text(creator, account_id, user_id, None)
    )
    assert len(await _contacts(sessions, account_id)) == 2  # nothing told them apart yet

    await handle_webhook(
        UnitOfWorkFactory(sessions),
        deps.publish,
        _never,
        _text(creator, account_id, user_id, phone),
    )
    [contact] = await _contacts(sessions, account_id)
    assert (contact.wa_id, contact.user_id, contact.phone) == (phone, user_id, phone)
