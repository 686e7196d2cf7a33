"""CORS on the API (services/api/http/cors.py): exact configured origins only, for /api/ only,
never with credentials, preflights cacheable."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.api_app import create_app
from tests.integration.conftest import running
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

ALLOWED = "https://app.partner.example"


@pytest.fixture
async def api(settings: AllSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"cors_allowed_origins": [ALLOWED]}))
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
    }


async def test_a_configured_origin_gets_a_cacheable_preflight_without_credentials(
    api: httpx.AsyncClient,
) -> None:
    answer = await api.options("/api/leads", headers=_preflight(ALLOWED))
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    assert answer.headers["access-control-max-age"] == "600"
    assert "idempotency-key" in answer.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in answer.headers


async def test_any_other_origin_is_refused(api: httpx.AsyncClient) -> None:
    for origin in ("https://evil.example", "https://app.partner.example.evil.example", "null"):
        answer = await api.options("/api/leads", headers=_preflight(origin))
        assert answer.status_code == 400
        assert "access-control-allow-origin" not in answer.headers
        plain = await api.get("/api/leads", headers={"Origin": origin})
        assert "access-control-allow-origin" not in plain.headers


async def test_the_html_pages_get_no_cors_headers(api: httpx.AsyncClient) -> None:
    answer = await api.get("/app", headers={"Origin": ALLOWED})
    assert "access-control-allow-origin" not in answer.headers
    simple = await api.get("/api/leads", headers={"Origin": ALLOWED})
    assert simple.headers["access-control-allow-origin"] == ALLOWED  # a 401, still readable
    assert "location" in simple.headers["access-control-expose-headers"].lower()
