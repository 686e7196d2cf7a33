"""Event contracts: the checked-in JSON Schemas and AsyncAPI documents are what the code
says, and real events validate against the exported schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import jsonschema
import pytest
from pydantic import ValidationError

from scripts.export_contracts import SCHEMA_DIR, rendered
from shared.contracts.events import (
    DmRequested,
    DmRequestedPayload,
    DmStatusChanged,
    DmStatusPayload,
    LeadCreated,
    LeadCreatedPayload,
    Recipient,
)
from shared.contracts.lifecycle import DmStatus, Provider, Route


def test_checked_in_contracts_match_the_code() -> None:
    stale = [
        str(path)
        for path, text in rendered().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"run `make contracts`: stale {stale}"


def _schema(name: str) -> dict[str, object]:
    return json.loads((SCHEMA_DIR / f"{name}.json").read_text())  # type: ignore[no-any-return]


def test_events_validate_against_their_exported_schema() -> None:
    creator, lead = uuid4(), uuid4()
    samples = {
        "lead.created.v1": LeadCreated(
            correlation_id="c",
            creator_id=creator,
            payload=LeadCreatedPayload(
                lead_id=lead, name="Ann", message="hi", phone="+14155550100"
            ),
        ),
        "dm.requested.v1": DmRequested(
            correlation_id="c",
            creator_id=creator,
            payload=DmRequestedPayload(
                lead_id=lead,
                route=Route.IG_DM,
                provider=Provider.INSTAGRAM,
                account_id=uuid4(),
                recipient=Recipient(igsid="123"),
                text="hello",
            ),
        ),
        "dm.status.v1": DmStatusChanged(
            correlation_id="c",
            creator_id=creator,
            payload=DmStatusPayload(lead_id=lead, status=DmStatus.SENT, provider_message_id="m_1"),
        ),
    }
    for name, event in samples.items():
        jsonschema.validate(json.loads(event.model_dump_json()), _schema(name))


def test_schema_rejects_unknown_fields_and_wrong_versions() -> None:
    event = json.loads(
        DmStatusChanged(
            correlation_id="c",
            creator_id=uuid4(),
            payload=DmStatusPayload(lead_id=uuid4(), status=DmStatus.READ),
        ).model_dump_json()
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**event, "surprise": 1}, _schema("dm.status.v1"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**event, "version": 2}, _schema("dm.status.v1"))
    with pytest.raises(ValidationError):
        DmStatusChanged.model_validate({**event, "version": 2})


def test_envelope_round_trips() -> None:
    event = LeadCreated(
        correlation_id="corr",
        creator_id=uuid4(),
        occurred_at=datetime(2026, 11, 28, tzinfo=UTC),
        payload=LeadCreatedPayload(lead_id=uuid4(), name="Ann", message=""),
    )
    assert LeadCreated.model_validate_json(event.model_dump_json()) == event
    assert Path(SCHEMA_DIR).is_dir()
