"""The local issuer's sign-in (authorization code + PKCE): a code is single use, bound to
its redirect URI and to the verifier whose challenge the sign-in started with."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from fastapi.testclient import TestClient

from local_issuer.app import create_app
from local_issuer.settings import IssuerSettings
from services.api.http.web.sign_in import pkce_challenge

REDIRECT = "http://127.0.0.1:8000/auth/callback"
VERIFIER = "v" * 50


@pytest.fixture
def issuer() -> TestClient:
    return TestClient(create_app(IssuerSettings(key_file=None)), follow_redirects=False)


def _code(issuer: TestClient, redirect_uri: str = REDIRECT) -> str:
    page = issuer.get(
        "/authorize",
        params={"redirect_uri": redirect_uri, "state": "s1", "code_challenge": "x"},
    )
    assert page.status_code == 200 and 'name="code_challenge" value="x"' in page.text
    answer = issuer.post(
        "/authorize",
        data={
            "redirect_uri": redirect_uri,
            "state": "s1",
            "role": "creator",
            "creator_id": "7f1f8c3e-1c2b-4d5e-9f00-000000000001",
            "sub": "u1",
            "code_challenge": pkce_challenge(VERIFIER),
        },
    )
    assert answer.status_code == 303
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["s1"]
    return query["code"][0]


def _token(issuer: TestClient, code: str, verifier: str = VERIFIER) -> int:
    form = {"code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    return issuer.post("/oauth/token", data=form).status_code


def test_the_code_gives_a_creator_token_once(issuer: TestClient) -> None:
    code = _code(issuer)
    form = {"code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
    answer = issuer.post("/oauth/token", data=form)
    assert answer.status_code == 200
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert (claims["role"], claims["creator_id"]) == (
        "creator",
        "7f1f8c3e-1c2b-4d5e-9f00-000000000001",
    )
    assert _token(issuer, code) == 400  # single use


def test_a_wrong_verifier_gets_nothing(issuer: TestClient) -> None:
    assert _token(issuer, _code(issuer), verifier="w" * 50) == 400


def test_only_loopback_redirects(issuer: TestClient) -> None:
    page = issuer.get("/authorize", params={"redirect_uri": "https://evil.example/cb"})
    assert page.status_code == 400


def test_an_unknown_audience_is_refused_and_its_own_accepted(issuer: TestClient) -> None:
    params = {"redirect_uri": REDIRECT, "code_challenge": "x"}
    assert issuer.get("/authorize", params={**params, "audience": "autodm-api"}).status_code == 200
    refused = issuer.get("/authorize", params={**params, "audience": "someone-else"})
    assert refused.status_code == 400 and "unknown audience" in refused.text


def test_the_sign_in_page_refuses_to_be_framed(issuer: TestClient) -> None:
    page = issuer.get("/authorize", params={"redirect_uri": REDIRECT, "state": "s1"})
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
