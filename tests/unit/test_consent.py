"""WhatsApp consent (docs/WEB.md, "WhatsApp consent"): a phone typed into the public form is
nobody's consent until its owner writes naming the lead; the router and the sender agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.contracts.consent import FORM_ORIGIN, phone_proven, ref_text, refs_in, template_allowed
from shared.contracts.events import LeadContactOpenedPayload
from shared.contracts.lifecycle import Route
from shared.contracts.route_choice import (
    RECENTLY_MESSAGED,
    CreatorChannels,
    LeadFacts,
    RoutingRules,
    choose_route,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
WA = CreatorChannels(
    instagram_connected=True, whatsapp_template_ready=True, whatsapp_connected=True
)


def facts(**overrides: object) -> LeadFacts:
    base: dict[str, object] = {
        "has_instagram_handle": False,
        "igsid": None,
        "last_inbound_at": None,
        "comment_id": None,
        "commented_at": None,
        "private_reply_sent": False,
        "phone": "+44 20 7946 0958",
        "whatsapp_opt_in": True,
    }
    return LeadFacts(**{**base, **overrides})  # type: ignore[arg-type]


def route(lead: LeadFacts) -> Route:
    return choose_route(lead, WA, NOW, RoutingRules()).route


def test_a_typed_phone_with_the_box_ticked_gets_no_template_only_the_link() -> None:
    unproven = facts(phone_proven=False)
    assert route(unproven) == Route.WA_LINK
    # Not even free text when the number happens to have written to the creator lately:
    # that is not this form's lead asking.
    assert route(facts(phone_proven=False, whatsapp_window_open=True)) == Route.WA_LINK
    # With a handle too, the Instagram link (nothing is sent either way).
    assert route(facts(phone_proven=False, has_instagram_handle=True)) == Route.IG_LINK


def test_a_vouched_or_proven_phone_is_messaged_as_before() -> None:
    assert route(facts()) == Route.WA_TEMPLATE
    assert route(facts(whatsapp_window_open=True)) == Route.WA_TEXT


def test_someone_messaged_recently_is_not_messaged_again_for_a_form() -> None:
    decision = choose_route(
        facts(recently_messaged=True, whatsapp_window_open=True), WA, NOW, RoutingRules()
    )
    assert (decision.route, decision.reason) == (Route.NONE, RECENTLY_MESSAGED)


def test_only_the_public_form_needs_proof() -> None:
    assert phone_proven(None, None)
    assert not phone_proven(FORM_ORIGIN, None)
    assert phone_proven(FORM_ORIGIN, NOW - timedelta(minutes=1))
    assert template_allowed(True, None, None)
    assert not template_allowed(True, FORM_ORIGIN, None)
    assert not template_allowed(False, FORM_ORIGIN, NOW)


def test_the_wa_me_text_carries_a_ref_the_consumer_finds() -> None:
    ref = "AbC-_0123456789x"
    assert refs_in(f"Hi Cara! {ref_text(ref)}") == [ref]
    assert refs_in(f"Hi! ({ref}) thanks") == [ref]  # the older pre-filled form
    assert refs_in("supercalifragilistic words without brackets") == []
    assert refs_in("") == []


def test_a_contact_is_either_instagram_or_whatsapp() -> None:
    common = {"lead_id": "00000000-0000-0000-0000-000000000001", "opened_at": NOW}
    common["account_id"] = common["lead_id"]
    wa = LeadContactOpenedPayload.model_validate(
        common | {"wa_id": "447700900123", "via": "whatsapp"}
    )
    assert wa.igsid is None
    with pytest.raises(ValidationError):
        LeadContactOpenedPayload.model_validate(common | {"via": "message"})
    with pytest.raises(ValidationError):
        LeadContactOpenedPayload.model_validate(
            common | {"igsid": "1", "wa_id": "447700900123", "via": "whatsapp"}
        )
