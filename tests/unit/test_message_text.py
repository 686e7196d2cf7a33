"""A DM's text (services.api.service_layer.message_text): one pass over the template, unknown
placeholders
named on save, and each platform's limit checked instead of cutting the text."""

from __future__ import annotations

import pytest

from services.api.service_layer.message_text import (
    placeholder_problem,
    render,
    too_long,
    unknown_placeholders,
)
from services.api.service_layer.retry_policy import RetryFacts, retry_verdict
from shared.contracts.lifecycle import DmStatus, Route


def test_a_leads_values_are_never_expanded_again() -> None:
    text = render("Hi {name}: {message}", {"name": "{message}", "message": "a {name} b"})
    assert text == "Hi {message}: a {name} b"


def test_an_empty_template_is_the_default_greeting() -> None:
    assert render("", {"name": "Jo", "message": ""}) == "Hi Jo!"


def test_braces_that_are_not_placeholders_stay_as_written() -> None:
    assert render("{} { name } {0} {{name}}", {"name": "Jo"}) == "{} { name } {0} {Jo}"


def test_unknown_placeholders_are_named_once_in_order() -> None:
    template = "Hi {first_name} {name} {link} {first_name}"
    assert unknown_placeholders(template) == ["{first_name}", "{link}"]
    problem = placeholder_problem(template)
    assert problem is not None
    assert "{first_name}, {link}" in problem and "{name}" in problem and "{message}" in problem
    assert placeholder_problem("Hi {name}, re: {message}") is None


@pytest.mark.parametrize("route", [Route.IG_DM, Route.IG_PRIVATE_REPLY, Route.IG_LINK])
def test_instagram_counts_bytes_of_utf8(route: Route) -> None:
    assert too_long("é" * 500, route) is None  # exactly 1,000 bytes
    over = too_long("é" * 501, route)
    assert over is not None and (over.size, over.limit) == (1002, 1000)
    assert "Instagram allows 1,000" in over.reason


def test_whatsapp_text_counts_characters_and_links_carry_no_dm() -> None:
    assert too_long("é" * 4096, Route.WA_TEXT) is None
    assert too_long("a" * 4097, Route.WA_TEXT) is not None
    assert too_long("a" * 5000, Route.WA_LINK) is None


def test_a_dm_that_was_too_long_may_be_retried_after_the_template_changes() -> None:
    facts = RetryFacts(
        status=DmStatus.FAILED,
        error_class="too_long",
        reached_person=False,
        account_connected=True,
        contacted_since_failure=False,
        route_now=Route.IG_DM,
        route_reason="",
    )
    assert retry_verdict(facts).allowed
