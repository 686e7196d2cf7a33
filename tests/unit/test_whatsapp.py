"""WhatsApp rules without Kafka or a database: routing, template parameters, webhook
splitting and dedupe ids, status mapping, throttling backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from services.webhook_ingest.whatsapp_routes import split_whatsapp
from services.whatsapp_sender.limits import LimitPolicy, take_pair_slot, throttle_backoff
from services.whatsapp_sender.statuses import meta_time, status_event
from shared.contracts.lifecycle import DmStatus, Route
from shared.contracts.route_choice import CreatorChannels, LeadFacts, RoutingRules, choose_route
from shared.contracts.whatsapp_templates import (
    TemplateParameterError,
    lead_values,
    render_parameters,
)
from shared.db.models import WhatsAppContact, WhatsAppMessage

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def facts(**overrides: object) -> LeadFacts:
    base: dict[str, object] = {
        "has_instagram_handle": False,
        "igsid": None,
        "last_inbound_at": None,
        "comment_id": None,
        "commented_at": None,
        "private_reply_sent": False,
        "phone": "+44 20 7946 0958",
        "whatsapp_opt_in": False,
    }
    return LeadFacts(**{**base, **overrides})  # type: ignore[arg-type]


WA = CreatorChannels(
    instagram_connected=False, whatsapp_template_ready=True, whatsapp_connected=True
)


def route(lead: LeadFacts, channels: CreatorChannels = WA) -> Route:
    return choose_route(lead, channels, NOW, RoutingRules()).route


def test_open_window_gets_free_form_text_even_without_opt_in() -> None:
    assert route(facts(whatsapp_window_open=True)) == Route.WA_TEXT


def test_closed_window_needs_opt_in_and_a_template_else_the_link() -> None:
    assert route(facts(whatsapp_opt_in=True)) == Route.WA_TEMPLATE
    assert route(facts()) == Route.WA_LINK
    no_template = CreatorChannels(instagram_connected=False, whatsapp_connected=True)
    assert route(facts(whatsapp_opt_in=True), no_template) == Route.WA_LINK


def test_no_connected_number_never_routes_to_the_cloud_api() -> None:
    nothing = CreatorChannels(instagram_connected=False)
    assert route(facts(whatsapp_window_open=True, whatsapp_opt_in=True), nothing) == Route.WA_LINK


def test_parameters_come_from_lead_fields_in_order_and_are_cleaned() -> None:
    values = lead_values("Tess  Lee", "line one\nline\ttwo", None, None, "Cara")
    assert render_parameters(["first_name", "creator_name", "message"], values) == (
        "Tess",
        "Cara",
        "line one line two",
    )


@pytest.mark.parametrize(
    ("fields", "expected", "problem"),
    [
        (["phone"], None, "parameter 1: the lead has no phone"),
        (["nickname"], None, "unknown lead field"),
        (["name"], 2, "takes 2 parameters, 1 are mapped"),
    ],
)
def test_bad_parameters_are_refused_before_sending(
    fields: list[str], expected: int | None, problem: str
) -> None:
    values = lead_values("Tess", "hi", None, None, "Cara")
    with pytest.raises(TemplateParameterError, match=problem):
        render_parameters(fields, values, expected)


def _notification(statuses: list[dict[str, object]]) -> dict[str, object]:
    value = {"metadata": {"phone_number_id": "1055"}, "statuses": statuses}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }


def test_each_status_is_its_own_item_with_an_id_stable_across_meta_retries() -> None:
    sent = {"id": "wamid.A", "status": "sent", "timestamp": "1"}
    read = {"id": "wamid.A", "status": "read", "timestamp": "2"}
    first = split_whatsapp(_notification([sent, read]))
    retried = split_whatsapp(_notification([read]))
    assert [i.kind for i in first] == ["status", "status"]
    assert first[1].event_id == retried[0].event_id != first[0].event_id
    assert split_whatsapp({"object": "instagram", "entry": []}) == []


def _message() -> WhatsAppMessage:
    return WhatsAppMessage(
        wamid="wamid.A",
        account_id=uuid4(),
        lead_id=uuid4(),
        creator_id=uuid4(),
        route=Route.WA_TEMPLATE,
        attempt=2,
        wa_id="442079460958",
    )


def test_a_failed_status_carries_meta_error_and_the_send_attempt() -> None:
    item = {
        "id": "wamid.A",
        "status": "failed",
        "timestamp": "1764331200",
        "errors": [{"code": 131026, "title": "Message undeliverable"}],
    }
    source, message = uuid4(), _message()
    event = status_event(message, item, source, "c")
    assert event is not None
    assert (event.payload.status, event.payload.attempt) == (DmStatus.FAILED, 2)
    assert event.payload.error is not None and event.payload.error.code == 131026
    assert event.occurred_at == datetime.fromtimestamp(1764331200, UTC)
    assert status_event(message, item, source, "c") == event  # same id on redelivery


def test_unknown_status_values_are_ignored() -> None:
    assert status_event(_message(), {"id": "wamid.A", "status": "deleted"}, uuid4(), "c") is None


def test_throttling_backs_off_four_to_the_x_seconds() -> None:
    assert [throttle_backoff(x).total_seconds() for x in range(4)] == [1, 4, 16, 64]
    assert throttle_backoff(30) == timedelta(seconds=4096)


def test_a_message_without_a_timestamp_counts_as_written_when_it_came() -> None:
    received = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert meta_time({"timestamp": "1764331200"}, received) == datetime(
        2025, 11, 28, 12, tzinfo=UTC
    )
    assert meta_time({}, received) == received  # not 1970: it would never count as a reply
    assert meta_time({"timestamp": "soon"}, received) == received


def test_the_pair_slot_leaves_room_for_the_commit_and_the_call() -> None:
    """The next DM to the person is re-requested right when this slot ends (the deferral
    poller wakes at the due time): counted from the decision, a slot of exactly 6 s let it
    reach Meta less than 6 s after this one, which Meta refuses (131056)."""
    contact = WhatsAppContact(account_id=uuid4(), wa_id="447700900123")
    decided = datetime(2026, 1, 1, tzinfo=UTC)
    take_pair_slot(contact, decided, LimitPolicy())
    assert contact.next_send_at is not None
    assert contact.next_send_at - decided > LimitPolicy().pair_interval
