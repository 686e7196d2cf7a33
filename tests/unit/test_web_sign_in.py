"""The web sign-in's side of the authorization-code flow: what the provider is asked for,
and a token answer that holds no token is a clear sign-in failure, not a crash."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from services.api.http.web.pages_deps import PageError, SignInConfig
from services.api.http.web.sign_in import _token_of, authorize_location, pkce_challenge

CONFIG = SignInConfig(
    authorize_url="https://idp.example/authorize",
    token_url="https://idp.example/oauth/token",
    client_id="autodm-web",
    redirect_uri="https://autodm.example/auth/callback",
)


def _query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


def test_the_provider_is_asked_for_a_code_with_pkce_and_no_audience_by_default() -> None:
    query = _query(authorize_location(CONFIG, "st", "verifier"))
    assert query == {
        "response_type": ["code"],
        "client_id": ["autodm-web"],
        "redirect_uri": ["https://autodm.example/auth/callback"],
        "scope": ["openid"],
        "state": ["st"],
        "code_challenge": [pkce_challenge("verifier")],
        "code_challenge_method": ["S256"],
    }


def test_a_configured_audience_and_scope_are_asked_for() -> None:
    config = replace(CONFIG, audience="autodm-api", scope="openid email")
    query = _query(authorize_location(config, "st", "verifier"))
    assert query["audience"] == ["autodm-api"]
    assert query["scope"] == ["openid email"]


def test_a_token_answer_gives_the_token_and_its_lifetime() -> None:
    answer = httpx.Response(200, json={"access_token": "abc", "expires_in": 600})
    assert _token_of(answer) == ("abc", 600)
    assert _token_of(httpx.Response(200, json={"access_token": "abc"})) == ("abc", 3600)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"id_token": "only-an-id-token"}),
        httpx.Response(200, json={"access_token": ""}),
        httpx.Response(200, json={"access_token": 5}),
        httpx.Response(200, json=["access_token"]),
        httpx.Response(200, json={"access_token": "abc", "expires_in": "soon"}),
        httpx.Response(200, text="<html>login</html>"),
    ],
)
def test_an_answer_without_an_access_token_is_a_sign_in_failure(answer: httpx.Response) -> None:
    with pytest.raises(PageError) as failure:
        _token_of(answer)
    assert failure.value.status == 502
