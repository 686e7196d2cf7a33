"""The web session's security without a browser: CSRF tokens bound to the session and to
this site's origin, the signed sign-in state, `__Host-` cookies, HSTS, and /docs served
from the API itself with the pages' policy."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from urllib.parse import urlencode
from uuid import uuid4

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.requests import Request

from services.api.http.web import admin_dlq, admin_overview, creator_account, creator_leads, sign_in
from services.api.http.web.security import CSRF_FIELD, CsrfRejected, WebSecurity
from tests.api_app import create_app
from tests.settings import AllSettings

SITE = "https://autodm.example"
SECURITY = WebSecurity(b"k1", True, 60, public_origin=SITE)


def _post(
    cookies: dict[str, str], form: dict[str, str], headers: dict[str, str] | None = None
) -> Request:
    body = urlencode(form).encode()
    raw = {
        "host": "autodm.example",
        "content-type": "application/x-www-form-urlencoded",
        "cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
        **(headers or {}),
    }
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "https",
        "path": "/app/settings",
        "query_string": b"",
        "server": ("autodm.example", 443),
        "headers": [(k.encode(), v.encode()) for k, v in raw.items()],
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def _token_of(session: str) -> str:
    return SECURITY.csrf_token(_post({SECURITY.session_cookie: session}, {}))


def _check(request: Request) -> None:
    asyncio.run(SECURITY.check_csrf(request))


def test_the_csrf_token_is_the_sessions_own() -> None:
    mine, theirs = _token_of("victim-session"), _token_of("attacker-session")
    assert mine and mine != theirs
    _check(_post({SECURITY.session_cookie: "victim-session"}, {CSRF_FIELD: mine}))
    # Cookie tossing: whatever else the attacker plants, their token is not this session's.
    tossed = {SECURITY.session_cookie: "victim-session", "autodm_csrf": "attacker-seed"}
    with pytest.raises(CsrfRejected):
        _check(_post(tossed, {CSRF_FIELD: theirs}))
    with pytest.raises(CsrfRejected):  # no session, no token that could match
        _check(_post({}, {CSRF_FIELD: mine}))


def test_a_signed_out_page_has_no_csrf_token() -> None:
    assert SECURITY.csrf_token(_post({}, {})) == ""


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "same-site"},  # a sibling subdomain, or another port of the host
        {"sec-fetch-site": "cross-site"},
        {"origin": "https://evil.autodm.example"},
        {"origin": "http://autodm.example:8080"},
        {"origin": "null"},
    ],
)
def test_a_post_from_another_origin_is_refused_even_with_the_token(
    headers: dict[str, str],
) -> None:
    request = _post({SECURITY.session_cookie: "s"}, {CSRF_FIELD: _token_of("s")}, headers)
    with pytest.raises(CsrfRejected):
        _check(request)


def test_a_post_from_this_site_passes() -> None:
    headers = {"sec-fetch-site": "same-origin", "origin": SITE}
    _check(_post({SECURITY.session_cookie: "s"}, {CSRF_FIELD: _token_of("s")}, headers))


def test_the_sign_in_state_is_signed_and_expires() -> None:
    sealed = SECURITY.seal("login-state", "st|verifier|/app/leads", 600, now=1000)
    assert SECURITY.unseal("login-state", sealed, now=1500) == "st|verifier|/app/leads"
    assert SECURITY.unseal("login-state", sealed, now=1601) is None  # expired
    assert SECURITY.unseal("other-purpose", sealed, now=1000) is None
    forged = sealed.replace("verifier", "attacker")
    assert SECURITY.unseal("login-state", forged, now=1000) is None
    assert SECURITY.unseal("login-state", "st|verifier|", now=1000) is None  # main's format
    other_key = WebSecurity(b"k2", True, 60).seal("login-state", "st|v|", 600, now=1000)
    assert SECURITY.unseal("login-state", other_key, now=1000) is None


def test_cookies_are_host_only_on_https() -> None:
    assert SECURITY.session_cookie == "__Host-autodm_session"
    assert SECURITY.login_cookie == "__Host-autodm_login"
    plain = WebSecurity(b"k1", False, 60)
    assert (plain.session_cookie, plain.login_cookie) == ("autodm_session", "autodm_login")


def _client(**settings: object) -> Iterator[TestClient]:
    app = create_app(AllSettings(environment="test", **settings))  # type: ignore[arg-type]
    yield TestClient(app)  # no lifespan: neither Kafka nor the database is needed here


@pytest.fixture
def client() -> Iterator[TestClient]:
    yield from _client()


def test_hsts_is_a_setting_on_by_default_outside_development() -> None:
    assert AllSettings(environment="test").hsts_max_age_s == 0
    assert AllSettings(environment="test", web_hsts_max_age_s=600).hsts_max_age_s == 600
    production = AllSettings(
        environment="production",
        database_url=SecretStr("postgresql+asyncpg://u:p@db/autodm"),
        instagram_app_secret=SecretStr("real"),
        whatsapp_app_secret=SecretStr("real-wa"),
        oauth_state_key=SecretStr("state-key"),
        web_csrf_key=SecretStr("csrf-key"),
        webhook_verify_token=SecretStr("verify"),
        token_encryption_keys=[SecretStr("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")],
    )
    assert production.hsts_max_age_s == 365 * 86400


def test_hsts_header_on_pages_and_api_when_set() -> None:
    for client in _client(web_hsts_max_age_s=31536000):
        for path in ("/", "/docs", "/api/leads"):
            answer = client.get(path)
            assert answer.headers["strict-transport-security"] == "max-age=31536000"
    for client in _client():
        assert "strict-transport-security" not in client.get("/").headers


def test_docs_load_their_assets_from_the_api_and_refuse_framing(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "<script>" not in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        answer = client.get(f"/docs/assets/{asset}")
        assert answer.status_code == 200 and len(answer.content) > 10_000
        assert answer.headers["x-frame-options"] == "DENY"
    assert client.get("/docs/assets/redoc.standalone.js").status_code == 404
    assert client.get("/static/api-docs.js").status_code == 200
    assert client.get("/redoc").status_code == 404  # it would load from a CDN


def test_docs_can_be_turned_off() -> None:
    for client in _client(api_docs_enabled=False):
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").status_code == 404


def _page_writes() -> list[str]:
    """Every state-changing route of the signed-in pages (with made-up path parameters)."""
    paths = []
    for module in (sign_in, creator_leads, creator_account, admin_overview, admin_dlq):
        for route in module.router.routes:
            if isinstance(route, APIRoute) and route.methods - {"GET", "HEAD"}:
                paths.append(re.sub(r"\{[^}]+\}", str(uuid4()), route.path))
    return paths


def test_every_page_write_refuses_another_origin_before_its_handler(client: TestClient) -> None:
    writes = _page_writes()
    assert {"/logout", "/app/settings", "/app/instagram/disconnect"} <= set(writes)
    for path in writes:
        for headers in ({"sec-fetch-site": "same-site"}, {"origin": "http://127.0.0.1:1"}):
            answer = client.post(path, headers={**headers, "accept": "text/html"})
            assert answer.status_code == 403, path
            assert "Form expired" in answer.text
