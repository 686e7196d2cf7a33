"""The router's decision path on the fake unit of work (no database): given the facts read,
which request is published, or which waiting state the lead takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from services.api.service_layer.lead_routing import RouterConfig, route_loaded
from services.api.service_layer.routing_facts import RoutingFacts
from shared.contracts.events import (
    DmRequested,
    DmRetryRequested,
    DmRetryRequestedPayload,
    LeadCreated,
    LeadCreatedPayload,
)
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.route_choice import RoutingRules
from shared.db.models import Creator, DmLogEntry, Lead, SocialAccount
from shared.messaging.dead_letters import PoisonMessage
from tests.fake_uow import FakeUnitsOfWork

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CONFIG = RouterConfig(RoutingRules(), instagram_link_base="https://ig.me/m")


def _lead(creator_id: UUID, **fields: object) -> Lead:
    values: dict[str, object] = {
        "id": uuid4(),
        "creator_id": creator_id,
        "name": "Ana",
        "message": "hi",
        "ref": "ref-1",
        "whatsapp_opt_in": False,
        "dm_status": DmStatus.QUEUED,
        "dm_attempt": 1,
        "dm_attempts": 0,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Lead(**(values | fields))


def _facts(creator: Creator, instagram: SocialAccount | None) -> RoutingFacts:
    accounts = {(creator.id, Provider.INSTAGRAM.value): instagram} if instagram else {}
    return RoutingFacts({creator.id: creator}, accounts, frozenset(), {}, {}, {}, set())


def _creator(template: str = "Hi {name}") -> Creator:
    return Creator(
        id=uuid4(), name="C", slug="c", dm_template=template, route_order="instagram_first"
    )


def _account(creator: Creator) -> SocialAccount:
    return SocialAccount(
        id=uuid4(),
        creator_id=creator.id,
        provider=Provider.INSTAGRAM,
        username="creator.ig",
        status="connected",
    )


def _created(lead: Lead) -> LeadCreated:
    return LeadCreated(
        correlation_id="c",
        creator_id=lead.creator_id,
        payload=LeadCreatedPayload(lead_id=lead.id, name=lead.name, message=lead.message),
    )


async def test_a_lead_inside_the_24_h_window_gets_an_instagram_dm_request() -> None:
    creator = _creator()
    account = _account(creator)
    lead = _lead(creator.id, igsid="IG1", last_inbound_at=NOW - timedelta(hours=1))
    uow = FakeUnitsOfWork()
    async with uow() as work:
        routed = route_loaded(
            work, [_created(lead)], {lead.id: lead}, _facts(creator, account), CONFIG, NOW
        )
    assert routed == 1
    [(topic, key, request)] = uow.published
    assert topic == "dm.requested.instagram"
    assert key == str(account.id)
    assert isinstance(request, DmRequested)
    assert request.payload.route == Route.IG_DM
    assert request.payload.recipient.igsid == "IG1"
    assert request.payload.text == "Hi Ana"
    assert (lead.dm_route, lead.dm_account_id, lead.dm_status) == (
        Route.IG_DM,
        account.id,
        DmStatus.QUEUED,  # the sender moves it on
    )


async def test_a_handle_without_an_open_window_waits_for_contact_with_a_link() -> None:
    creator = _creator()
    account = _account(creator)
    lead = _lead(creator.id, instagram_username="ana.ig")
    uow = FakeUnitsOfWork()
    async with uow() as work:
        route_loaded(work, [_created(lead)], {lead.id: lead}, _facts(creator, account), CONFIG, NOW)
    assert uow.published == []
    assert lead.dm_status == DmStatus.AWAITING_CONTACT
    assert lead.dm_route == Route.IG_LINK
    assert lead.dm_link == "https://ig.me/m/creator.ig?ref=ref-1"
    [line] = uow.of(DmLogEntry)
    assert (line.status, line.detail["link"]) == (DmStatus.AWAITING_CONTACT, lead.dm_link)


async def test_no_channel_at_all_skips_the_dm_with_the_reason() -> None:
    creator = _creator()
    lead = _lead(creator.id)
    uow = FakeUnitsOfWork()
    async with uow() as work:
        route_loaded(work, [_created(lead)], {lead.id: lead}, _facts(creator, None), CONFIG, NOW)
    assert uow.published == []
    assert lead.dm_status == DmStatus.SKIPPED
    assert lead.dm_reason is not None and "no allowed route" in lead.dm_reason


async def test_a_dm_over_the_platform_limit_fails_instead_of_being_cut() -> None:
    creator = _creator("x" * 5000 + " {name}")
    account = _account(creator)
    lead = _lead(creator.id, igsid="IG1", last_inbound_at=NOW - timedelta(hours=1))
    uow = FakeUnitsOfWork()
    async with uow() as work:
        route_loaded(work, [_created(lead)], {lead.id: lead}, _facts(creator, account), CONFIG, NOW)
    assert uow.published == []
    assert lead.dm_status == DmStatus.FAILED


async def test_a_superseded_retry_and_an_erased_lead_are_not_routed() -> None:
    creator = _creator()
    account = _account(creator)
    retried = _lead(creator.id, dm_attempt=3, igsid="IG1", last_inbound_at=NOW)
    erased = _lead(creator.id, erased_at=NOW, igsid="IG2", last_inbound_at=NOW)
    old_retry = DmRetryRequested(
        correlation_id="c",
        creator_id=creator.id,
        payload=DmRetryRequestedPayload(lead_id=retried.id, attempt=2, requested_by="x"),
    )
    leads = {retried.id: retried, erased.id: erased}
    uow = FakeUnitsOfWork()
    async with uow() as work:
        routed = route_loaded(
            work, [old_retry, _created(erased)], leads, _facts(creator, account), CONFIG, NOW
        )
    assert routed == 0
    assert uow.published == []


async def test_a_lead_of_another_creator_is_poison_and_nothing_commits() -> None:
    creator = _creator()
    lead = _lead(creator.id)
    event = _created(lead).model_copy(update={"creator_id": uuid4()})
    uow = FakeUnitsOfWork()
    with pytest.raises(PoisonMessage):
        async with uow() as work:
            route_loaded(work, [event], {lead.id: lead}, _facts(creator, None), CONFIG, NOW)
    assert (uow.commits, uow.published) == (0, [])
