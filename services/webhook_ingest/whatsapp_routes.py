"""WhatsApp webhooks (`object: whatsapp_business_account`, platform facts §4e): Meta's
GET verification and signed POSTs -> one event per status / inbound message on
`webhooks.whatsapp`. The whatsapp_sender consumes them (it owns the WhatsApp state).

Signed with the Meta app's secret (AUTODM_WHATSAPP_APP_SECRET). Accepted like Instagram's
(accept.py: Kafka alone, `webhooks.received`; the number is resolved by resolver.py);
event ids derive from the wamid, so Meta's retries (for up to 7 days) dedupe downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhook_ingest.accept import Acceptance, accept
from services.webhook_ingest.ingest import Received, received_events
from services.webhook_ingest.settings import WebhookIngestSettings
from services.webhook_ingest.signatures import answer_verification, signed_json
from shared.contracts.events import (
    WebhookReceived,
    WhatsAppWebhookPayload,
    WhatsAppWebhookReceived,
)
from shared.contracts.lifecycle import Provider
from shared.db.models import SocialAccount
from shared.platform.logs import get_logger
from shared.providers.whatsapp_identity import WaUser, contact_for

log = get_logger(__name__)


@dataclass(frozen=True)
class WhatsAppIngestDeps:
    acceptance: Acceptance
    app_secrets: list[str]
    verify_token: str


@dataclass(frozen=True)
class WhatsAppItem:
    phone_number_id: str
    kind: str  # "status" | "message"
    item: dict[str, Any]
    profile_name: str | None
    # Whom the item is about, BSUID first (a username user's webhooks may show no phone).
    user: WaUser | None = None

    @property
    def event_id(self) -> UUID:
        # A status is identified by (wamid, status); an inbound message by its own wamid.
        suffix = self.item.get("status", "message")
        return uuid5(NAMESPACE_URL, f"whatsapp:{self.item.get('id')}:{suffix}")


def install(app: FastAPI, settings: WebhookIngestSettings, acceptance: Acceptance) -> None:
    """Mount the WhatsApp endpoints on the ingest app."""
    app.state.whatsapp_deps = WhatsAppIngestDeps(
        acceptance=acceptance,
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
    events = whatsapp_received(split_whatsapp(payload), correlation_id)
    return {"published": await accept(deps.acceptance, "whatsapp", events)}


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
    contacts = [c for c in value.get("contacts") or [] if isinstance(c, dict)]
    names = {}
    for c in contacts:
        for key in (c.get("user_id"), c.get("wa_id")):
            if key:
                names[key] = (c.get("profile") or {}).get("name")
    items = [
        WhatsAppItem(number, "status", s, None, contact_for(s, contacts, "status"))
        for s in value.get("statuses") or []
    ]
    for m in value.get("messages") or []:
        user = contact_for(m, contacts, "message")
        name = names.get(user.user_id or "") or names.get(user.phone or "")
        items.append(WhatsAppItem(number, "message", m, name, user))
    return [i for i in items if i.item.get("id")]


def whatsapp_received(items: list[WhatsAppItem], correlation: str) -> list[WebhookReceived]:
    """A WhatsApp POST's items as `webhook.received` events."""
    received: list[Received] = [
        (
            i.phone_number_id,
            i.event_id,
            {
                "kind": i.kind,
                "item": i.item,
                "profile_name": (i.profile_name or None) and str(i.profile_name)[:200],
                "contact": (i.user.as_contact() or None) if i.user else None,
            },
        )
        for i in items
    ]
    return received_events("whatsapp", received, correlation)


async def resolve(
    session: AsyncSession, received: Sequence[WebhookReceived]
) -> list[WhatsAppWebhookReceived]:
    """The items of connected numbers as `whatsapp.webhook` events (the consumer's side)."""
    accounts = await _known_numbers(session, [r.payload.external_account_id for r in received])
    events = [
        _event(r, *accounts[r.payload.external_account_id])
        for r in received
        if r.payload.external_account_id in accounts
    ]
    if len(events) < len(received):
        dropped = len(received) - len(events)
        log.warning("whatsapp items for unknown numbers dropped", dropped=dropped)
    return events


async def _known_numbers(
    session: AsyncSession, phone_number_ids: Sequence[str]
) -> dict[str, tuple[UUID, UUID]]:
    rows = await session.execute(
        select(SocialAccount.external_id, SocialAccount.id, SocialAccount.creator_id).where(
            SocialAccount.provider == Provider.WHATSAPP,
            SocialAccount.external_id.in_(set(phone_number_ids)),
        )
    )
    return {ext: (account, creator) for ext, account, creator in rows}


def _event(r: WebhookReceived, account_id: UUID, creator_id: UUID) -> WhatsAppWebhookReceived:
    p = r.payload
    return WhatsAppWebhookReceived(
        id=p.item_event_id,
        correlation_id=r.correlation_id,
        creator_id=creator_id,
        occurred_at=r.occurred_at,
        payload=WhatsAppWebhookPayload(
            account_id=account_id,
            phone_number_id=p.external_account_id,
            kind="status" if p.kind == "status" else "message",
            item=p.item,
            profile_name=p.profile_name,
            contact=p.contact,
        ),
    )
