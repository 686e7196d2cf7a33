"""Which events travel on each topic, and which AutoDM process publishes to it.

The send side of every service's AsyncAPI document (docs/asyncapi/) is declared from
here (shared/messaging/publishers.py), as its receive side is from its subscribers; a
test checks that every topic has a publisher and a consumer somewhere.
"""

from __future__ import annotations

from shared.contracts import topics as t
from shared.contracts.events import (
    DmRequested,
    DmRetryRequested,
    DmStatusChanged,
    InstagramCommentReceived,
    InstagramWebhookReceived,
    LeadContactOpened,
    LeadCreated,
    LeadSubmitted,
    Unattributed,
    WebhookReceived,
    WhatsAppWebhookReceived,
)

# The dlq topic carries the parked record's own bytes, whatever its topic's event was.
TOPIC_EVENTS: dict[str, tuple[type[Unattributed], ...]] = {
    t.LEADS_CREATED: (LeadCreated,),
    t.LEADS_SUBMITTED: (LeadSubmitted,),
    t.LEADS_RETRIES: (DmRetryRequested,),
    t.LEADS_CONTACTS: (LeadContactOpened,),
    t.DM_REQUESTED_INSTAGRAM: (DmRequested,),
    t.DM_REQUESTED_WHATSAPP: (DmRequested,),
    t.DM_STATUS: (DmStatusChanged,),
    t.WEBHOOKS_RECEIVED: (WebhookReceived,),
    t.WEBHOOKS_INSTAGRAM: (InstagramWebhookReceived,),
    t.WEBHOOKS_WHATSAPP: (WhatsAppWebhookReceived,),
    t.INSTAGRAM_COMMENTS: (InstagramCommentReceived,),
    t.DLQ: (),
}

# Process (the name its broker is made with) -> the topics it publishes to, directly or
# through its outbox relay. The API's HTTP process writes outbox rows that its workers'
# relay publishes, so they count as the workers'. Other teams' services publish
# leads.submitted (docs/EVENTS.md).
PUBLISHED_BY: dict[str, tuple[str, ...]] = {
    "api_workers": (
        t.LEADS_CREATED,
        t.LEADS_RETRIES,
        t.DM_REQUESTED_INSTAGRAM,
        t.DM_REQUESTED_WHATSAPP,
        t.DM_STATUS,
        t.DLQ,
    ),
    "instagram_sender": (t.DM_STATUS, t.DLQ),
    "whatsapp_sender": (t.DM_STATUS, t.DM_REQUESTED_WHATSAPP, t.LEADS_CONTACTS, t.DLQ),
    "webhook_ingest": (
        t.WEBHOOKS_RECEIVED,
        t.WEBHOOKS_INSTAGRAM,
        t.WEBHOOKS_WHATSAPP,
        t.LEADS_CONTACTS,
        t.INSTAGRAM_COMMENTS,
        t.DM_STATUS,
        t.DLQ,
    ),
    "token_refresher": (t.DM_STATUS,),
}
EXTERNALLY_PUBLISHED: tuple[str, ...] = (t.LEADS_SUBMITTED,)
