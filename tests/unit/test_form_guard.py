"""The public form's tokens (signed, expiring, a nonce each) and the challenge's page policy."""

from __future__ import annotations

import pytest

from services.api.http.web.form_challenge import PROVIDERS, Challenge
from services.api.http.web.form_tokens import FormTokens
from tests.settings import AllSettings

TOKENS = FormTokens(b"k1", ttl_s=60)


def test_a_form_token_is_bound_to_the_creator_and_expires() -> None:
    token = TOKENS.issue("jane", now=1000)
    assert TOKENS.valid("jane", token, now=1030)
    assert not TOKENS.valid("other", token, now=1030)
    assert not TOKENS.valid("jane", token, now=1061)
    assert not FormTokens(b"other-key", 60).valid("jane", token, now=1030)
    issued, nonce, signature = token.split(".")
    assert not TOKENS.valid("jane", f"{issued}.{nonce}x.{signature}", now=1030)
    assert not TOKENS.valid("jane", f"{issued}.{signature}", now=1030)  # the old format


def test_the_challenge_widens_only_what_its_widget_needs() -> None:
    challenge = Challenge(PROVIDERS["turnstile"], "site", "secret", "http://127.0.0.1:9/")
    policy = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    widened = challenge.widen_csp(policy)
    origin = "https://challenges.cloudflare.com"
    assert f"script-src 'self' {origin}" in widened
    assert f"frame-src 'self' {origin}" in widened
    assert "form-action 'self'" in widened and "frame-ancestors 'none'" in widened


def test_no_challenge_by_default_and_none_without_its_keys() -> None:
    assert Challenge.from_settings(AllSettings()) is None
    with pytest.raises(ValueError, match="site key and secret"):
        AllSettings(lead_form_challenge="hcaptcha")
    chosen = Challenge.from_settings(
        AllSettings(
            lead_form_challenge="hcaptcha",
            lead_form_challenge_site_key="site",
            lead_form_challenge_secret="secret",  # type: ignore[arg-type]
        )
    )
    assert chosen is not None and chosen.verify_url == "https://api.hcaptcha.com/siteverify"


def test_no_proxy_is_trusted_by_default() -> None:
    assert AllSettings().trusted_proxies == ""
