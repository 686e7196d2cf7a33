"""The topic registry: every Kafka topic AutoDM uses, in one place.

Producers and consumers import these constants; `autodm topics provision` creates exactly
this list (broker auto-creation is off, so a misspelt name fails loudly), and deletes the
`RETIRED` topics once nothing is left in them (shared/messaging/topic_admin.py).
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    purpose: str
    # Other teams' services may produce to / consume from it under the compatibility policy
    # of docs/EVENTS.md (checked against schemas/released/ in `make test`).
    public: bool = False

    @property
    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete"}


LEADS_CREATED = "leads.created"
LEADS_SUBMITTED = "leads.submitted"
DM_REQUESTED_INSTAGRAM = "dm.requested.instagram"
DM_REQUESTED_WHATSAPP = "dm.requested.whatsapp"
DM_STATUS = "dm.status"
WEBHOOKS_INSTAGRAM = "webhooks.instagram"
WEBHOOKS_WHATSAPP = "webhooks.whatsapp"
WEBHOOKS_RECEIVED = "webhooks.received"
LEADS_CONTACTS = "leads.contacts"
INSTAGRAM_COMMENTS = "instagram.comments"
LEADS_RETRIES = "leads.retries"
DLQ = "dlq"

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(LEADS_CREATED, 6, 7 * DAY_MS, "api outbox -> router; key creator id"),
    TopicSpec(DM_REQUESTED_INSTAGRAM, 12, 7 * DAY_MS, "router -> instagram_sender; key account"),
    TopicSpec(DM_REQUESTED_WHATSAPP, 12, 7 * DAY_MS, "router -> whatsapp_sender; key account"),
    TopicSpec(
        DM_STATUS, 12, 7 * DAY_MS, "senders, webhooks -> api projection; key lead id", public=True
    ),
    # The lead ingress: other services publish leads here instead of calling the API.
    TopicSpec(
        LEADS_SUBMITTED, 6, 7 * DAY_MS, "other services -> api lead intake; key creator", True
    ),
    # A signed webhook is accepted once it is here (Kafka alone, no database): the durable
    # buffer through a PostgreSQL outage; webhook_ingest's consumer resolves the account.
    TopicSpec(WEBHOOKS_RECEIVED, 6, 7 * DAY_MS, "webhook_ingest HTTP -> resolver; key entry id"),
    TopicSpec(WEBHOOKS_INSTAGRAM, 6, 7 * DAY_MS, "webhook_ingest -> consumers; key account"),
    TopicSpec(WEBHOOKS_WHATSAPP, 6, 7 * DAY_MS, "webhook_ingest -> consumers; key number"),
    TopicSpec(LEADS_CONTACTS, 6, 7 * DAY_MS, "webhook consumers -> router (re-route); key lead"),
    TopicSpec(
        INSTAGRAM_COMMENTS, 6, 7 * DAY_MS, "webhook_ingest -> api comment leads; key account"
    ),
    TopicSpec(LEADS_RETRIES, 6, 7 * DAY_MS, "api outbox -> router (retry); key lead"),
    # Poison messages are kept long enough for an admin to look at them after a holiday.
    TopicSpec(DLQ, 3, 30 * DAY_MS, "any consumer -> admin replay; key original key"),
)

BY_NAME: dict[str, TopicSpec] = {spec.name: spec for spec in TOPICS}

# Topics earlier versions provisioned and nothing uses any more: the provisioning deletes
# them from an upgraded cluster once they hold nothing unread (or when told to).
RETIRED: dict[str, str] = {
    # Account lifecycle events, produced and never consumed.
    "accounts.events": "produced by the API and the token refresher, consumed by nothing",
    # Provisioned, never produced: WhatsApp defers in PostgreSQL (docs/RELIABILITY.md).
    "dm.retry.whatsapp": "never used: WhatsApp's deferred sends wait in PostgreSQL",
    # Instagram's delayed retries, until both senders deferred in PostgreSQL: what an
    # upgraded cluster still holds there is moved into deferred_sends by the Instagram
    # sender (shared.delivery.retry_topic_drain), after which it is empty of unread records.
    "dm.retry.instagram": "replaced by deferred_sends (one deferral mechanism)",
}


def dm_requested_topic(provider: str) -> str:
    """The per-provider request topic; an unknown provider is a programming error."""
    topic = f"dm.requested.{provider}"
    if topic not in BY_NAME:
        raise KeyError(f"no request topic for provider {provider!r}")
    return topic
