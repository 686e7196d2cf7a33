"""The lead intake on the fake unit of work (no database): who may create a lead for whom,
and that the lead, its first log line and its lead.created commit together or not at all."""

from __future__ import annotations

from uuid import uuid4

import pytest

from services.api.http.auth import Principal, Role
from services.api.http.schemas import DmSendIn, LeadIn
from services.api.service_layer.dm_requests import accept_lead
from services.api.service_layer.errors import Forbidden, Invalid
from services.api.service_layer.leads import create_lead
from shared.contracts.consent import API_CONSENT, FORM_ORIGIN
from shared.contracts.events import LeadCreatedV2
from shared.contracts.lifecycle import DmStatus, Provider
from shared.contracts.topics import LEADS_CREATED
from shared.db.models import DmLogEntry, Lead
from tests.fake_uow import FakeUnitsOfWork

CREATOR = uuid4()
ME = Principal(subject="creator-1", role=Role.CREATOR, creator_id=CREATOR)
ADMIN = Principal(subject="admin-1", role=Role.ADMIN)


def _body(**fields: object) -> LeadIn:
    return LeadIn.model_validate({"name": "Ana", "phone": "+14155550123"} | fields)


async def test_a_creators_lead_is_stored_with_its_queued_line_and_lead_created() -> None:
    uow = FakeUnitsOfWork()
    async with uow() as work:
        lead = await accept_lead(work, ME, _body(whatsapp_opt_in=True), "corr-1")
    assert uow.commits == 1
    assert uow.of(Lead) == [lead]
    assert (lead.creator_id, lead.dm_status, lead.dm_attempt) == (CREATOR, DmStatus.QUEUED, 1)
    assert lead.whatsapp_consent_source == API_CONSENT  # the token vouches for it
    [line] = uow.of(DmLogEntry)
    assert (line.lead_id, line.status, line.attempt) == (lead.id, DmStatus.QUEUED, 1)
    [(topic, key, event)] = uow.published
    assert (topic, key) == (LEADS_CREATED, str(CREATOR))
    assert isinstance(event, LeadCreatedV2)  # v2: it says where the lead came from
    assert (event.payload.lead_id, event.correlation_id, line.event_id) == (
        lead.id,
        "corr-1",
        event.id,
    )


async def test_an_admin_names_the_creator_and_a_dm_send_keeps_the_provider_asked_for() -> None:
    uow = FakeUnitsOfWork()
    body = DmSendIn.model_validate(
        {"name": "Ana", "phone": "+14155550123", "creator_id": str(CREATOR), "provider": "whatsapp"}
    )
    async with uow() as work:
        lead = await accept_lead(work, ADMIN, body, "corr-2")
    assert (lead.creator_id, lead.dm_requested_provider) == (CREATOR, Provider.WHATSAPP)


async def test_a_caller_who_may_not_act_for_the_creator_creates_nothing() -> None:
    uow = FakeUnitsOfWork()
    with pytest.raises(Forbidden):
        async with uow() as work:
            await accept_lead(work, ME, _body(creator_id=str(uuid4())), "c")
    with pytest.raises(Invalid) as missing:
        async with uow() as work:
            await accept_lead(work, ADMIN, _body(), "c")
    assert missing.value.kind == "creator-required"
    assert (uow.commits, uow.published, uow.rows) == (0, [], {})


async def test_a_failure_after_the_lead_publishes_nothing() -> None:
    uow = FakeUnitsOfWork()
    with pytest.raises(RuntimeError):
        async with uow() as work:
            await accept_lead(work, ME, _body(), "c")
            raise RuntimeError("the transaction fails after the insert")
    assert (uow.commits, uow.published, uow.rows) == (0, [], {})


async def test_a_form_opt_in_is_nobodys_consent_until_proven() -> None:
    uow = FakeUnitsOfWork()
    data = _body(creator_id=str(CREATOR), whatsapp_opt_in=True, whatsapp_consent_source="x")
    async with uow() as work:
        lead = await create_lead(work, data, "c", origin=FORM_ORIGIN)
    assert (lead.origin, lead.whatsapp_consent_source) == (FORM_ORIGIN, FORM_ORIGIN)
