"""The lead ingress's rules without Kafka (services/api/workers/lead_ingress.py): who may publish
for whom, and a lead validated exactly as `POST /api/leads` validates it."""

from __future__ import annotations

from uuid import uuid4

import pytest

from services.api.workers.lead_ingress import (
    InvalidLead,
    ProducerRefused,
    check_producer,
    lead_in,
    producer_of,
)
from shared.contracts.events import InstagramContact, LeadSubmitted, LeadSubmittedPayload
from shared.messaging.dead_letters import classify

CREATOR = uuid4()
ALLOWED = {"crm": ["*"], "shop": [str(CREATOR)]}


def test_a_producer_publishes_only_for_the_creators_configured_for_it() -> None:
    assert check_producer("crm", uuid4(), ALLOWED) is None
    assert check_producer("shop", CREATOR, ALLOWED) is None
    other = uuid4()
    refusal = check_producer("shop", other, ALLOWED)
    assert refusal is not None and "'shop'" in refusal and str(other) in refusal
    assert "not configured" in (check_producer("stranger", CREATOR, ALLOWED) or "")
    assert "no x-autodm-producer" in (check_producer("", CREATOR, ALLOWED) or "")


def test_the_producer_header_is_read_from_kafka_bytes() -> None:
    assert producer_of({"x-autodm-producer": b" crm "}) == "crm"
    assert producer_of({}) == ""
    assert producer_of(None) == ""


def _event(**payload: object) -> LeadSubmitted:
    return LeadSubmitted(
        correlation_id="crm-1", creator_id=CREATOR, payload=LeadSubmittedPayload(**payload)
    )


def test_a_lead_is_validated_as_the_http_api_validates_it() -> None:
    data = lead_in(_event(name="Ann", instagram=InstagramContact(username="ann")))
    assert (data.creator_id, data.name, data.instagram and data.instagram.username) == (
        CREATOR,
        "Ann",
        "ann",
    )
    with pytest.raises(InvalidLead, match="Instagram handle or id, or a phone"):
        lead_in(_event(name="Nobody"))  # POST /api/leads: 422 for the same body
    with pytest.raises(InvalidLead, match="phone"):
        lead_in(_event(name="Bo", phone="call me"))


def test_refused_and_invalid_leads_are_parked_with_their_own_reason() -> None:
    with pytest.raises(InvalidLead) as invalid:
        lead_in(_event(name="Nobody"))
    assert classify(invalid.value)[0] == "invalid_lead"
    refused = ProducerRefused("producer 'shop' may not publish leads for creator x")
    assert classify(refused)[0] == "producer_refused"
