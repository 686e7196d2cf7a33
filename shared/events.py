"""Versioned event contracts. Every record on Kafka is one of these envelopes.

The envelope is the same for all events (id, type, version, occurred_at, correlation id,
creator id); `payload` is the event's own, versioned body. A breaking change to a payload
gets a new `version` literal and a new class, never an edit in place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.lifecycle import DmStatus, Provider, Route


def utcnow() -> datetime:
    return datetime.now(UTC)


class Contract(BaseModel):
    # Unknown fields are an error: a producer that drifts from the contract is caught at the
    # first consumer, not silently half-read.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Envelope(Contract):
    id: UUID = Field(default_factory=uuid4, description="Event id, the dedupe key")
    type: str
    version: int
    occurred_at: datetime = Field(default_factory=utcnow)
    correlation_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
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


# --- dm.requested -------------------------------------------------------------------------


class Recipient(Contract):
    igsid: str | None = None
    comment_id: str | None = None
    phone: str | None = None


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


EVENT_MODELS: tuple[type[Envelope], ...] = (LeadCreated, DmRequested, DmStatusChanged)


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every event, keyed `<type>.v<version>`, as exported to schemas/."""
    out: dict[str, dict[str, Any]] = {}
    for model in EVENT_MODELS:
        type_field = model.model_fields["type"].default
        version = model.model_fields["version"].default
        out[f"{type_field}.v{version}"] = model.model_json_schema()
    return out
