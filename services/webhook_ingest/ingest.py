"""A verified webhook POST -> one versioned `instagram.webhook` event per item.

Meta batches items (entry[] x messaging[]/changes[]) and retries a delivery for up to 36 h.
Each item becomes its own event whose id is derived from Meta's ids (mid, comment id...),
so a retry produces the same event id and the idempotent consumers skip it.

Two steps, so that accepting needs Kafka alone (services/webhook_ingest/accept.py): the POST
publishes each item as `webhook.received` (no database), answered once Kafka acknowledged
every item, so a 200 means nothing can be lost; the consumer of `webhooks.received`
(resolver.py) looks the account up and handles the `instagram.webhook` event in place
(inbound.py), riding out a database outage by redelivery.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.accounts.lifecycle import DISCONNECTED
from shared.contracts.events import (
    InstagramWebhookPayload,
    InstagramWebhookReceived,
    WebhookReceived,
    WebhookReceivedPayload,
)
from shared.contracts.lifecycle import Provider
from shared.db.models import SocialAccount
from shared.platform.logs import get_logger

log = get_logger(__name__)

MESSAGING_FIELDS = ("message", "read", "referral", "reaction", "postback", "optin")


@dataclass(frozen=True)
class WebhookItem:
    ig_account_id: str
    kind: Literal["messaging", "change"]
    field: str
    item: dict[str, Any]
    entry_time: int
    dedupe_key: str

    @property
    def event_id(self) -> UUID:
        return uuid5(NAMESPACE_URL, f"instagram:{self.ig_account_id}:{self.dedupe_key}")


@dataclass(frozen=True)
class AccountRef:
    id: UUID
    creator_id: UUID


def split_instagram(payload: Any) -> list[WebhookItem]:
    """Every item of an `object: instagram` notification (a list of them is accepted too)."""
    notifications = payload if isinstance(payload, list) else [payload]
    items: list[WebhookItem] = []
    for note in notifications:
        if not isinstance(note, dict) or note.get("object") != "instagram":
            continue
        for entry in note.get("entry") or []:
            items.extend(_entry_items(entry))
    return items


def _entry_items(entry: dict[str, Any]) -> list[WebhookItem]:
    account = str(entry.get("id", ""))
    time = int(entry.get("time") or 0)
    items = []
    for m in entry.get("messaging") or []:
        field = next((f for f in MESSAGING_FIELDS if f in m), "other")
        items.append(WebhookItem(account, "messaging", field, m, time, _messaging_key(field, m)))
    for change in entry.get("changes") or []:
        field = str(change.get("field", "other"))
        items.append(
            WebhookItem(account, "change", field, change, time, _change_key(field, change))
        )
    return items


def _messaging_key(field: str, m: dict[str, Any]) -> str:
    sender = (m.get("sender") or {}).get("id")
    if field == "message" and (mid := (m.get("message") or {}).get("mid")):
        return f"message:{mid}"
    if field == "read" and (mid := (m.get("read") or {}).get("mid")):
        return f"read:{sender}:{mid}"
    if field == "referral":
        return f"referral:{sender}:{m['referral'].get('ref')}:{m.get('timestamp')}"
    return f"{field}:{_digest(m)}"


def _change_key(field: str, change: dict[str, Any]) -> str:
    value = change.get("value") or {}
    if field == "comments" and (comment_id := value.get("id") or value.get("comment_id")):
        return f"comments:{comment_id}"
    return f"{field}:{_digest(change)}"


def _digest(item: dict[str, Any]) -> str:
    """Meta retries the same bytes; a canonical hash dedupes items without an id of their own."""
    return hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:32]


async def known_accounts(
    session: AsyncSession, ig_account_ids: Sequence[str]
) -> dict[str, AccountRef]:
    rows = await session.execute(
        select(SocialAccount.external_id, SocialAccount.id, SocialAccount.creator_id).where(
            SocialAccount.provider == Provider.INSTAGRAM,
            SocialAccount.external_id.in_(set(ig_account_ids)),
            SocialAccount.status != DISCONNECTED,
        )
    )
    return {ext: AccountRef(id=id_, creator_id=creator) for ext, id_, creator in rows}


# (the account id Meta names, the resolved event's id, the payload's other fields)
Received = tuple[str, UUID, dict[str, Any]]


def received_events(
    provider: Literal["instagram", "whatsapp"], items: Sequence[Received], correlation_id: str
) -> list[WebhookReceived]:
    """What a webhook POST publishes: each item as it came, no database involved. An item
    whose account id is no Graph id cannot name an account of ours: dropped here."""
    usable = [i for i in items if i[0].isdigit() and len(i[0]) <= 32]
    if len(usable) < len(items):
        log.warning(
            "webhook items without an account id dropped",
            provider=provider,
            dropped=len(items) - len(usable),
        )
    return [
        WebhookReceived(
            id=uuid5(NAMESPACE_URL, f"received:{event_id}"),
            correlation_id=correlation_id,
            payload=WebhookReceivedPayload(
                provider=provider,
                external_account_id=account_id,
                item_event_id=event_id,
                **fields,
            ),
        )
        for account_id, event_id, fields in usable
    ]


def instagram_received(items: list[WebhookItem], correlation_id: str) -> list[WebhookReceived]:
    """An Instagram POST's items as `webhook.received` events."""
    received: list[Received] = [
        (
            i.ig_account_id,
            i.event_id,
            {"kind": i.kind, "field": i.field, "item": i.item, "entry_time": i.entry_time},
        )
        for i in items
    ]
    return received_events("instagram", received, correlation_id)


async def resolve(
    session: AsyncSession, received: Sequence[WebhookReceived]
) -> list[InstagramWebhookReceived]:
    """The items of connected accounts as `instagram.webhook` events (the consumer's side
    of the POST: the account lookup needs the database)."""
    accounts = await known_accounts(session, [r.payload.external_account_id for r in received])
    events = [
        _event(r, accounts[r.payload.external_account_id])
        for r in received
        if r.payload.external_account_id in accounts
    ]
    if len(events) < len(received):
        dropped = len(received) - len(events)
        log.warning("webhook items for unknown accounts dropped", dropped=dropped)
    return events


def _event(r: WebhookReceived, account: AccountRef) -> InstagramWebhookReceived:
    p = r.payload
    return InstagramWebhookReceived(
        id=p.item_event_id,
        correlation_id=r.correlation_id,
        creator_id=account.creator_id,
        # When Meta delivered it, not when the database came back.
        occurred_at=r.occurred_at,
        payload=InstagramWebhookPayload(
            account_id=account.id,
            ig_account_id=p.external_account_id,
            kind="change" if p.kind == "change" else "messaging",
            field=p.field,
            item=p.item,
            entry_time=p.entry_time,
        ),
    )
