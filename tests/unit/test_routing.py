"""The routing rules of platform facts §1b/§1e/§6: never a cold DM, never by username."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.contracts.lifecycle import Route
from shared.contracts.route_choice import (
    CreatorChannels,
    LeadFacts,
    RouteOrder,
    RoutingRules,
    choose_route,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RULES = RoutingRules()
IG = CreatorChannels(instagram_connected=True)
NO_IG = CreatorChannels(instagram_connected=False)
BLANK = LeadFacts(
    has_instagram_handle=False,
    igsid=None,
    last_inbound_at=None,
    comment_id=None,
    commented_at=None,
    private_reply_sent=False,
    phone=None,
    whatsapp_opt_in=False,
)


def route(lead: LeadFacts, channels: CreatorChannels = IG) -> Route:
    return choose_route(lead, channels, NOW, RULES).route


def test_igsid_inside_the_24h_window_gets_a_dm() -> None:
    lead = replace(BLANK, igsid="123", last_inbound_at=NOW - timedelta(hours=23, minutes=59))
    assert route(lead) == Route.IG_DM


def test_window_closes_at_exactly_24h() -> None:
    lead = replace(BLANK, igsid="123", last_inbound_at=NOW - timedelta(hours=24))
    assert route(lead) == Route.IG_LINK


def test_igsid_without_any_inbound_message_is_never_cold_dmed() -> None:
    assert route(replace(BLANK, igsid="123")) == Route.IG_LINK


def test_username_alone_waits_for_contact_never_a_dm() -> None:
    assert route(replace(BLANK, has_instagram_handle=True)) == Route.IG_LINK


def test_comment_within_7_days_gets_one_private_reply() -> None:
    lead = replace(BLANK, comment_id="99", commented_at=NOW - timedelta(days=6, hours=23))
    assert route(lead) == Route.IG_PRIVATE_REPLY


def test_comment_older_than_7_days_gets_no_private_reply() -> None:
    lead = replace(BLANK, comment_id="99", commented_at=NOW - timedelta(days=7))
    assert route(lead) == Route.IG_LINK


def test_second_private_reply_to_the_same_comment_is_not_allowed() -> None:
    lead = replace(
        BLANK, comment_id="99", commented_at=NOW - timedelta(hours=1), private_reply_sent=True
    )
    assert route(lead) == Route.IG_LINK


def test_open_window_beats_private_reply() -> None:
    lead = replace(
        BLANK,
        igsid="1",
        last_inbound_at=NOW - timedelta(hours=1),
        comment_id="99",
        commented_at=NOW - timedelta(hours=1),
    )
    assert route(lead) == Route.IG_DM


def test_phone_only_goes_to_a_whatsapp_link() -> None:
    assert route(replace(BLANK, phone="+442079460958")) == Route.WA_LINK


def test_phone_with_opt_in_and_template_goes_to_a_template() -> None:
    lead = replace(BLANK, phone="+442079460958", whatsapp_opt_in=True)
    channels = CreatorChannels(instagram_connected=True, whatsapp_template_ready=True)
    assert route(lead, channels) == Route.WA_TEMPLATE


def test_opt_in_without_template_falls_back_to_the_link() -> None:
    assert route(replace(BLANK, phone="+442079460958", whatsapp_opt_in=True)) == Route.WA_LINK


@pytest.mark.parametrize(
    "lead",
    [
        replace(BLANK, igsid="1", last_inbound_at=NOW - timedelta(minutes=5)),
        replace(BLANK, comment_id="9", commented_at=NOW - timedelta(minutes=5)),
        replace(BLANK, has_instagram_handle=True),
    ],
)
def test_without_a_connected_instagram_account_nothing_goes_to_instagram(lead: LeadFacts) -> None:
    assert route(lead, NO_IG) == Route.NONE
    assert route(replace(lead, phone="+442079460958"), NO_IG) == Route.WA_LINK


def test_decision_says_why() -> None:
    decision = choose_route(BLANK, NO_IG, NOW, RULES)
    assert decision.route == Route.NONE
    assert "no allowed route" in decision.reason


def test_whatsapp_first_prefers_an_opted_in_phone_over_an_open_instagram_window() -> None:
    lead = replace(
        BLANK,
        igsid="123",
        last_inbound_at=NOW - timedelta(hours=1),
        phone="+44 20 7946 0958",
        whatsapp_opt_in=True,
    )
    channels = CreatorChannels(instagram_connected=True, whatsapp_template_ready=True)
    default = choose_route(lead, channels, NOW, RULES)
    preferred = choose_route(lead, channels, NOW, RULES, order=RouteOrder.WHATSAPP_FIRST)
    assert (default.route, preferred.route) == (Route.IG_DM, Route.WA_TEMPLATE)


def test_whatsapp_first_offers_the_wa_me_link_before_the_ig_me_link() -> None:
    lead = replace(BLANK, has_instagram_handle=True, phone="+44 20 7946 0958")
    preferred = choose_route(lead, IG, NOW, RULES, order=RouteOrder.WHATSAPP_FIRST)
    assert (route(lead), preferred.route) == (Route.IG_LINK, Route.WA_LINK)


# --- WhatsApp users known by business-scoped user id (issue 19) ---------------------------

WA = CreatorChannels(
    instagram_connected=True, whatsapp_connected=True, whatsapp_template_ready=True
)
BSUID = replace(BLANK, whatsapp_user_id="US.13491208655302741918")


def test_a_bsuid_without_a_phone_gets_free_text_inside_the_window() -> None:
    assert route(replace(BSUID, whatsapp_window_open=True), WA) == Route.WA_TEXT


def test_a_bsuid_without_a_phone_gets_the_template_with_opt_in() -> None:
    assert route(replace(BSUID, whatsapp_opt_in=True), WA) == Route.WA_TEMPLATE


def test_a_bsuid_without_a_phone_never_gets_a_wa_me_link() -> None:
    """wa.me is a link to a phone number: without one, nothing of WhatsApp is left."""
    no_ig = replace(WA, instagram_connected=False)
    assert route(BSUID, no_ig) == Route.NONE
    assert route(BSUID, WA) == Route.NONE  # nor an ig.me link for someone with no handle
