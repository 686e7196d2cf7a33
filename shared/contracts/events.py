"""Versioned event contracts. Every record on Kafka is one of these envelopes.

The envelope is the same for all events (id, type, version, occurred_at, correlation id,
creator id); `payload` is the event's own, versioned body. A breaking change to a payload
gets a new `version` literal and a new class, never an edit in place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from shared.contracts.lead_sources import LeadSource
from shared.contracts.lifecycle import DmStatus, Provider, Route


def utcnow() -> datetime:
    return datetime.now(UTC)


class Contract(BaseModel):
    # Unknown fields are an error: a producer that drifts from the contract is caught at the
    # first consumer, not silently half-read.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Unattributed(Contract):
    """The envelope without a tenant: only for what arrives before AutoDM can tell whose
    it is (a webhook accepted without the database, `webhook.received`)."""

    id: UUID = Field(default_factory=uuid4, description="Event id, the dedupe key")
    type: str
    version: int
    occurred_at: datetime = Field(default_factory=utcnow)
    correlation_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Envelope(Unattributed):
    creator_id: UUID = Field(description="The tenant: the creator the event belongs to")


# --- lead.created -------------------------------------------------------------------------


class InstagramContact(Contract):
    """What is known of the lead on Instagram. Only an IGSID can be messaged (§1b)."""

    username: str | None = Field(default=None, max_length=30)
    igsid: str | None = Field(default=None, pattern=r"^\d{1,32}$")
    last_inbound_at: datetime | None = None
    comment_id: str | None = Field(default=None, pattern=r"^\d{1,32}$")
    commented_at: datetime | None = None


class LeadCreatedPayload(Contract):
    lead_id: UUID
    name: str = Field(max_length=200)
    message: str = Field(max_length=1000)
    phone: str | None = Field(default=None, max_length=32)
    whatsapp_opt_in: bool = False
    instagram: InstagramContact = Field(default_factory=InstagramContact)


class LeadCreated(Envelope):
    type: Literal["lead.created"] = "lead.created"
    version: Literal[1] = 1
    payload: LeadCreatedPayload


class LeadCreatedPayloadV2(LeadCreatedPayload):
    """v1 and where the lead came from (shared.contracts.lead_sources), and for a comment its
    post."""

    source: LeadSource = Field(description="form | api | comment | ig_referral | import")
    source_post: str | None = Field(
        default=None, max_length=64, description="The commented media's id (Comment to DM)"
    )


class LeadCreatedV2(Envelope):
    """What the API publishes since lead sources; the router takes v1 (still in the topic's
    retention, or from an older producer) and v2 alike (LEAD_CREATED_VERSIONS)."""

    type: Literal["lead.created"] = "lead.created"
    version: Literal[2] = 2
    payload: LeadCreatedPayloadV2


AnyLeadCreated = Annotated[LeadCreated | LeadCreatedV2, Field(discriminator="version")]
LEAD_CREATED_VERSIONS: TypeAdapter[LeadCreated | LeadCreatedV2] = TypeAdapter(AnyLeadCreated)


# --- lead.submitted (public: the lead ingress, docs/EVENTS.md) ---------------------------


class LeadSubmittedPayload(Contract):
    """A lead another service wants DMed: the body of `POST /api/leads`, validated the
    same way (services/api/schemas.LeadIn) by the intake consumer."""

    name: str = Field(min_length=1, max_length=200)
    message: str = Field(default="", max_length=1000, description="<= 1,000 bytes of UTF-8")
    phone: str | None = Field(default=None, max_length=32)
    whatsapp_opt_in: bool = False
    instagram: InstagramContact | None = None
    source: Literal["api", "import", "ig_referral"] | None = Field(
        default=None, description="Where the lead came from; `api` when absent"
    )


class LeadSubmitted(Envelope):
    """Published by another service to `leads.submitted`, keyed by creator id, with the
    header `x-autodm-producer` naming the producer. `id` is the dedupe key: the same event
    published again makes no second lead; `correlation_id` is carried onto the lead's
    `lead.created` and `dm.status` events, so the producer can follow its lead."""

    type: Literal["lead.submitted"] = "lead.submitted"
    version: Literal[1] = 1
    payload: LeadSubmittedPayload


# --- dm.requested -------------------------------------------------------------------------


class Recipient(Contract):
    igsid: str | None = None
    comment_id: str | None = None
    phone: str | None = None
    # A WhatsApp user known by business-scoped user id alone (no phone): sent by `recipient`.
    whatsapp_user_id: str | None = Field(default=None, max_length=160)


class DmRequestedPayload(Contract):
    lead_id: UUID
    route: Route
    provider: Provider
    account_id: UUID | None = Field(
        description="The creator's sending account, if the route needs one"
    )
    recipient: Recipient
    text: str = Field(max_length=4096)
    attempt: int = Field(default=1, ge=1)


class DmRequested(Envelope):
    type: Literal["dm.requested"] = "dm.requested"
    version: Literal[1] = 1
    payload: DmRequestedPayload


# --- dm.status ----------------------------------------------------------------------------


class ProviderError(Contract):
    code: int | None = None
    subcode: int | None = None
    message: str = Field(max_length=1000)
    error_class: str = Field(description="throttled | token | recipient | transient | invalid")


class DmStatusPayload(Contract):
    lead_id: UUID
    status: DmStatus
    attempt: int = Field(default=1, ge=1)
    route: Route | None = None
    provider: Provider | None = None
    provider_message_id: str | None = None
    link: str | None = None
    reason: str | None = Field(default=None, max_length=500)
    error: ProviderError | None = None


class DmStatusChanged(Envelope):
    type: Literal["dm.status"] = "dm.status"
    version: Literal[1] = 1
    payload: DmStatusPayload


# --- webhooks.instagram -------------------------------------------------------------------

IgId = Annotated[str, StringConstraints(pattern=r"^\d{1,32}$")]


class InstagramWebhookPayload(Contract):
    """One item of a Meta webhook POST, as Meta sent it (a POST may batch many).

    The envelope id is derived from Meta's own ids (mid, comment id...), so a retried
    delivery yields the same event id and idempotent consumers skip it.
    """

    account_id: UUID = Field(description="The AutoDM social account the webhook is for")
    ig_account_id: IgId = Field(description="entry.id: the professional account id")
    kind: Literal["messaging", "change"]
    field: str = Field(max_length=64, description="message, read, referral, comments, ...")
    item: dict[str, Any] = Field(description="entry.messaging[i] or entry.changes[i], raw")
    entry_time: int


class InstagramWebhookReceived(Envelope):
    type: Literal["instagram.webhook"] = "instagram.webhook"
    version: Literal[1] = 1
    payload: InstagramWebhookPayload


# --- leads.contacts -----------------------------------------------------------------------


class LeadContactOpenedPayload(Contract):
    """The lead reached the account (ig.me link or a message): their IGSID is known and the
    24 h window is open, so a waiting DM can go now. On WhatsApp (`via` "whatsapp") the
    number that wrote naming the lead, `wa_id`, proves it and becomes the lead's."""

    lead_id: UUID
    account_id: UUID
    igsid: IgId | None = None
    wa_id: str | None = Field(default=None, pattern=r"^[0-9]{6,20}$")
    opened_at: datetime
    via: Literal["referral", "message", "whatsapp"]
    # The writer's business-scoped user id: a username user may show no phone (`wa_id`).
    wa_user_id: str | None = Field(default=None, max_length=160)

    @model_validator(mode="after")
    def _one_contact(self) -> LeadContactOpenedPayload:
        if (self.igsid is None) == (self.wa_id is None and self.wa_user_id is None):
            raise ValueError("exactly one of igsid (Instagram) and wa_id (WhatsApp)")
        return self


class LeadContactOpened(Envelope):
    type: Literal["lead.contact_opened"] = "lead.contact_opened"
    version: Literal[1] = 1
    payload: LeadContactOpenedPayload


# --- instagram.comments -------------------------------------------------------------------


class InstagramCommentPayload(Contract):
    """A comment on the account's media: a lead-able event (one private reply, 7 days)."""

    account_id: UUID
    comment_id: IgId
    igsid: IgId
    username: str | None = Field(default=None, max_length=64)
    text: str = Field(max_length=2200)
    media_id: str | None = Field(default=None, max_length=64)
    commented_at: datetime


class InstagramCommentReceived(Envelope):
    type: Literal["instagram.comment_received"] = "instagram.comment_received"
    version: Literal[1] = 1
    payload: InstagramCommentPayload


# --- dm.retry_requested --------------------------------------------------------------------


class DmRetryRequestedPayload(Contract):
    """A creator (or admin, or service) asked for a new attempt of a failed or skipped DM.

    The API has already moved the lead to `queued` under the new attempt number; the router
    routes it again from the lead's current facts."""

    lead_id: UUID
    attempt: int = Field(ge=2, description="The new attempt number")
    requested_by: str = Field(max_length=128, description="`sub` of the caller's token")


class DmRetryRequested(Envelope):
    type: Literal["dm.retry_requested"] = "dm.retry_requested"
    version: Literal[1] = 1
    payload: DmRetryRequestedPayload


# --- webhooks.whatsapp --------------------------------------------------------------------


class WhatsAppWebhookPayload(Contract):
    """One item of a WhatsApp (`whatsapp_business_account`) webhook POST: a status of a
    message we sent, or a message a user sent. The envelope id derives from the wamid (and
    the status), so Meta's retries dedupe."""

    account_id: UUID = Field(description="The AutoDM social account of the business number")
    phone_number_id: IgId = Field(description="value.metadata.phone_number_id")
    kind: Literal["status", "message"]
    item: dict[str, Any] = Field(description="value.statuses[i] or value.messages[i], raw")
    profile_name: str | None = Field(default=None, max_length=200)
    contact: dict[str, str] | None = Field(
        default=None,
        description="The user's value.contacts[] entry: user_id (BSUID), wa_id, username, "
        "parent_user_id, whichever Meta sent",
    )


class WhatsAppWebhookReceived(Envelope):
    type: Literal["whatsapp.webhook"] = "whatsapp.webhook"
    version: Literal[1] = 1
    payload: WhatsAppWebhookPayload


# --- webhooks.received --------------------------------------------------------------------


class WebhookReceivedPayload(Contract):
    """One item of a signed Meta webhook POST, as accepted with Kafka alone: the account it
    names is resolved (and the item dropped if AutoDM has none) by webhook_ingest's consumer,
    which publishes `instagram.webhook` / `whatsapp.webhook` with `item_event_id`."""

    provider: Literal["instagram", "whatsapp"]
    external_account_id: IgId = Field(description="entry.id, or value.metadata.phone_number_id")
    item_event_id: UUID = Field(description="The id of the resolved event (from Meta's ids)")
    kind: str = Field(max_length=16, description="messaging | change | status | message")
    field: str = Field(default="", max_length=64)
    item: dict[str, Any] = Field(description="The item, raw")
    entry_time: int = 0
    profile_name: str | None = Field(default=None, max_length=200)
    contact: dict[str, str] | None = Field(
        default=None, description="WhatsApp: the user's identity from value.contacts[]"
    )


class WebhookReceived(Unattributed):
    type: Literal["webhook.received"] = "webhook.received"
    version: Literal[1] = 1
    payload: WebhookReceivedPayload


EVENT_MODELS: tuple[type[Unattributed], ...] = (
    LeadSubmitted,
    LeadCreated,
    LeadCreatedV2,
    DmRequested,
    DmStatusChanged,
    DmRetryRequested,
    InstagramWebhookReceived,
    WhatsAppWebhookReceived,
    LeadContactOpened,
    InstagramCommentReceived,
    WebhookReceived,
)


# Other teams' services produce or consume these (docs/EVENTS.md): their schemas only grow
# within a version, checked against schemas/released/ (scripts/contract_compat.py).
PUBLIC_EVENTS: tuple[type[Envelope], ...] = (LeadSubmitted, DmStatusChanged)


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every event, keyed `<type>.v<version>`, as exported to schemas/."""
    out: dict[str, dict[str, Any]] = {}
    for model in EVENT_MODELS:
        type_field = model.model_fields["type"].default
        version = model.model_fields["version"].default
        out[f"{type_field}.v{version}"] = model.model_json_schema()
    return out
