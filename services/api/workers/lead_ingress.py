"""The lead ingress: a `lead.submitted` event from another service becomes a lead exactly
as `POST /api/leads` makes one (the same validation, the same lead and lead.created).

Idempotent on the producer's event id, per producer: the same event published twice (or
redelivered) makes one lead. Tenancy: the producer named by the record's
`x-autodm-producer` header may publish only for the creators configured for it
(`AUTODM_LEAD_INGRESS_PRODUCERS`); Kafka ACLs decide who may write to the topic at all.
What can never become a lead (an unknown or unauthorised producer, an invalid lead, an
unknown creator) is parked in the DLQ with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import ValidationError

from services.api.http.schemas import LeadIn
from services.api.service_layer.leads import UnknownCreator, create_lead
from shared.contracts.events import LeadSubmitted
from shared.db.models import Lead
from shared.messaging.dead_letters import PoisonMessage
from shared.messaging.unit_of_work import UnitOfWork

CONSUMER = "lead-intake"
PRODUCER_HEADER = "x-autodm-producer"
ANY_CREATOR = "*"


class ProducerRefused(PoisonMessage):
    """The record's producer may not publish this lead (DLQ reason `producer_refused`)."""

    reason = "producer_refused"


class InvalidLead(PoisonMessage):
    """The lead breaks a rule of `POST /api/leads` (DLQ reason `invalid_lead`)."""

    reason = "invalid_lead"


def producer_of(headers: Mapping[str, str | bytes] | None) -> str:
    """The producer a record names, or "" when it names none."""
    value = (headers or {}).get(PRODUCER_HEADER, "")
    return (value.decode() if isinstance(value, bytes) else value).strip()


def check_producer(
    producer: str, creator_id: UUID, allowed: Mapping[str, Sequence[str]]
) -> str | None:
    """Why `producer` may not publish a lead for `creator_id`, or None if it may."""
    if not producer:
        return f"no {PRODUCER_HEADER} header: the producer is unknown"
    creators = allowed.get(producer)
    if creators is None:
        return f"producer {producer!r} is not configured for the lead ingress"
    if ANY_CREATOR in creators or str(creator_id) in creators:
        return None
    return f"producer {producer!r} may not publish leads for creator {creator_id}"


def lead_in(event: LeadSubmitted) -> LeadIn:
    """The event's lead as `POST /api/leads` would take it (PoisonMessage if invalid)."""
    p = event.payload
    body = p.model_dump(exclude_none=True) | {"creator_id": event.creator_id}
    try:
        return LeadIn.model_validate(body)
    except ValidationError as error:
        fields = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'lead'}: {e['msg']}"
            for e in error.errors()
        )
        raise InvalidLead(f"invalid lead: {fields}"[:900]) from None


async def lead_from_submission(
    uow: UnitOfWork,
    event: LeadSubmitted,
    producer: str,
    allowed: Mapping[str, Sequence[str]],
) -> Lead | None:
    """The lead the event makes, or None for an event already taken (in the caller's
    transaction: the lead, its lead.created and the claim commit together)."""
    refusal = check_producer(producer, event.creator_id, allowed)
    if refusal is not None:
        raise ProducerRefused(refusal)
    data = lead_in(event)
    # Two producers may pick the same event id: the claim is per producer.
    if not await uow.claim(CONSUMER, [uuid5(NAMESPACE_URL, f"{producer}/{event.id}")]):
        return None
    try:
        return await create_lead(uow, data, event.correlation_id)
    except UnknownCreator:
        raise PoisonMessage(f"creator {event.creator_id} not found") from None
