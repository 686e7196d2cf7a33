"""Which failed or skipped DMs a creator may retry: only when the cause can have changed,
and never when the message may already have reached the person."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.api.service_layer.retry_policy import RetryFacts, retry_verdict
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.route_choice import CreatorChannels, LeadFacts, RoutingRules, choose_route

FAILED = RetryFacts(
    status=DmStatus.FAILED,
    error_class="token",
    reached_person=False,
    account_connected=False,
    contacted_since_failure=False,
    route_now=Route.IG_DM,
    route_reason="the lead messaged the account within 24 h",
)


@pytest.mark.parametrize(
    ("change", "allowed"),
    [
        ({}, False),  # token expired, still not reconnected
        ({"account_connected": True}, True),
        ({"error_class": "recipient"}, False),
        ({"error_class": "recipient", "contacted_since_failure": True}, True),
        ({"error_class": "throttled"}, True),
        ({"error_class": "transient"}, True),
        ({"error_class": "invalid"}, False),
        ({"error_class": None}, False),
        ({"account_connected": True, "reached_person": True}, False),
        ({"account_connected": True, "route_now": Route.NONE}, False),
    ],
)
def test_failed_dm(change: dict[str, object], allowed: bool) -> None:
    assert retry_verdict(replace(FAILED, **change)).allowed is allowed  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "status", [s for s in DmStatus if s not in (DmStatus.FAILED, DmStatus.SKIPPED)]
)
def test_only_failed_or_skipped_dms_are_retried(status: DmStatus) -> None:
    verdict = retry_verdict(replace(FAILED, status=status, account_connected=True))
    assert not verdict.allowed and verdict.detail


def test_skipped_dm_is_retried_once_a_route_exists() -> None:
    skipped = replace(FAILED, status=DmStatus.SKIPPED, error_class=None, route_now=Route.NONE)
    assert not retry_verdict(skipped).allowed
    assert retry_verdict(replace(skipped, route_now=Route.IG_LINK)).allowed


def test_unknown_is_never_retried() -> None:
    verdict = retry_verdict(replace(FAILED, status=DmStatus.UNKNOWN, account_connected=True))
    assert not verdict.allowed and "never resent" in verdict.detail


NOW = datetime(2026, 11, 28, tzinfo=UTC)
WARM = LeadFacts(
    has_instagram_handle=True,
    igsid="1",
    last_inbound_at=NOW,
    comment_id=None,
    commented_at=None,
    private_reply_sent=False,
    phone="+14155550100",
    whatsapp_opt_in=False,
)


def test_a_named_provider_keeps_routing_to_its_routes() -> None:
    channels, rules = CreatorChannels(instagram_connected=True), RoutingRules()
    assert choose_route(WARM, channels, NOW, rules).route == Route.IG_DM
    assert choose_route(WARM, channels, NOW, rules, Provider.WHATSAPP).route == Route.WA_LINK
    no_phone = replace(WARM, phone=None)
    decision = choose_route(no_phone, channels, NOW, rules, Provider.WHATSAPP)
    assert decision.route == Route.NONE and "whatsapp" in decision.reason
