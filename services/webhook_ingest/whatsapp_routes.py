"""WhatsApp webhooks (`object: whatsapp_business_account`, platform facts §4e): Meta's
GET verification and signed POSTs -> one event per status / inbound message on
`webhooks.whatsapp`. The whatsapp_sender consumes them (it owns the WhatsApp state).

Signed with the Meta app's secret (AUTODM_WHATSAPP_APP_SECRET). The POST is answered once
Kafka acknowledged every item; event ids derive from the wamid, so Meta's retries (for up
to 7 days) dedupe downstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import PlainTextResponse
from faststream.kafka import KafkaBroker
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.webhook_ingest.signatures import answer_verification, signed_json
from shared.broker import publish_event
from shared.db.models import SocialAccount
from shared.events import WhatsAppWebhookPayload, WhatsAppWebhookReceived
from shared.lifecycle import Provider
from shared.logs import get_logger
from shared.settings import Settings
from shared.topics import WEBHOOKS_WHATSAPP

log = get_logger(__name__)


@dataclass(frozen=True)
class WhatsAppIngestDeps:
    broker: KafkaBroker
    sessions: async_sessionmaker[AsyncSession]
    app_secrets: list[str]
    verify_token: str


@dataclass(frozen=True)
class WhatsAppItem:
    phone_number_id: str
    kind: str  # "status" | "message"
    item: dict[str, Any]
    profile_name: str | None

    @property
    def event_id(self) -> UUID:
        # A status is identified by (wamid, status); an inbound message by its own wamid.
        suffix = self.item.get("status", "message")
        return uuid5(NAMESPACE_URL, f"whatsapp:{self.item.get('id')}:{suffix}")


def install(app: FastAPI, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
    """Mount the WhatsApp endpoints on the ingest app (its broker must be on app.state)."""
    app.state.whatsapp_deps = WhatsAppIngestDeps(
        broker=app.state.broker,
        sessions=sessions,
        app_secrets=[settings.whatsapp_app_secret.get_secret_value()],
        verify_token=settings.webhook_verify_token.get_secret_value(),
    )
    app.include_router(router)


def get_deps(request: Request) -> WhatsAppIngestDeps:
    deps: WhatsAppIngestDeps = request.app.state.whatsapp_deps
    return deps


Deps = Annotated[WhatsAppIngestDeps, Depends(get_deps)]
router = APIRouter(prefix="/webhooks/whatsapp", tags=["webhooks"])


@router.get("", response_class=PlainTextResponse, summary="Meta's subscription verification")
async def verify_subscription(
    deps: Deps,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge")] = None,
) -> str:
    return answer_verification(mode, token, challenge, deps.verify_token)


@router.post("", summary="Signed WhatsApp event notifications")
async def receive(request: Request, deps: Deps) -> dict[str, int]:
    payload, correlation_id = await signed_json(request, deps.app_secrets, "whatsapp")
    return {"published": await _publish(deps, split_whatsapp(payload), correlation_id)}


def split_whatsapp(payload: Any) -> list[WhatsAppItem]:
    """Every status and inbound message of a notification (entry[] x changes[] x items)."""
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        return []
    items: list[WhatsAppItem] = []
    for entry in payload.get("entry") or []:
        for change in entry.get("changes") or []:
            if change.get("field") == "messages":
                items.extend(_change_items(change.get("value") or {}))
    return items


def _change_items(value: dict[str, Any]) -> list[WhatsAppItem]:
    number = str((value.get("metadata") or {}).get("phone_number_id", ""))
    names = {
        c.get("wa_id"): (c.get("profile") or {}).get("name") for c in value.get("contacts") or []
    }
    items = [WhatsAppItem(number, "status", s, None) for s in value.get("statuses") or []]
    items += [
        WhatsAppItem(number, "message", m, names.get(m.get("from")))
        for m in value.get("messages") or []
    ]
    return [i for i in items if i.item.get("id")]


async def _publish(deps: WhatsAppIngestDeps, items: list[WhatsAppItem], correlation: str) -> int:
    if not items:
        return 0
    async with deps.sessions() as session:
        accounts = await _known_numbers(session, [i.phone_number_id for i in items])
    events = [
        _event(item, *accounts[item.phone_number_id], correlation)
        for item in items
        if item.phone_number_id in accounts
    ]
    if len(events) < len(items):
        log.warning("whatsapp items for unknown numbers dropped", dropped=len(items) - len(events))
    await asyncio.gather(
        *(
            publish_event(deps.broker, WEBHOOKS_WHATSAPP, e.payload.phone_number_id, e)
            for e in events
        )
    )
    return len(events)


async def _known_numbers(
    session: AsyncSession, phone_number_ids: Sequence[str]
) -> dict[str, tuple[UUID, UUID]]:
    rows = await session.execute(
        select(SocialAccount.external_id, SocialAccount.id, SocialAccount.creator_id).where(
            SocialAccount.provider == Provider.WHATSAPP,
            SocialAccount.external_id.in_(set(phone_number_ids)),
        )
    )
    return {ext: (account, creator) for ext, account, creator in rows.tuples()}


def _event(
    item: WhatsAppItem, account_id: UUID, creator_id: UUID, correlation: str
) -> WhatsAppWebhookReceived:
    return WhatsAppWebhookReceived(
        id=item.event_id,
        correlation_id=correlation,
        creator_id=creator_id,
        payload=WhatsAppWebhookPayload(
            account_id=account_id,
            phone_number_id=item.phone_number_id,
            kind="status" if item.kind == "status" else "message",
            item=item.item,
            profile_name=(item.profile_name or None) and str(item.profile_name)[:200],
        ),
    )
