"""Per-caller rate limits of the JSON API (services/api/http/rate_limits.py), on the real database:
429 problem+json with Retry-After past the limit, one count per (subject, creator) shared by
every API process, and the RateLimit headers on every /api/ answer.

The limiter's clock is frozen mid-window (ten minutes ahead, where no housekeeping sweep
reaches), so the window never turns during a test and `t` is exactly known."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.auth import Principal, Role
from services.api.http.rate_limits import ApiRateLimits
from shared.db.models import Creator
from tests.api_app import create_app
from tests.integration.conftest import running
from tests.integration.issuer import Issuer, bearer
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
LIMIT = 3
WINDOW_S = 60
RESET_S = 30  # the frozen clock stands this far before its window's end
FROZEN = (math.floor(time.time() / WINDOW_S) + 10) * WINDOW_S + (WINDOW_S - RESET_S)


def _limited(settings: AllSettings, limit: int = LIMIT) -> FastAPI:
    app = create_app(
        settings.model_copy(
            update={
                "api_rate_limit_creator": limit,
                "api_rate_limit_admin": limit,
                "api_rate_limit_service": limit,
                "api_rate_limit_window_s": WINDOW_S,
            }
        )
    )
    limits: ApiRateLimits = app.state.api_rate_limits
    limits.clock = lambda: FROZEN
    return app


@pytest.fixture
async def api(settings: AllSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = _limited(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


@pytest.fixture
async def other_creator(sessions: async_sessionmaker[AsyncSession]) -> UUID:
    creator_id = uuid4()
    async with sessions.begin() as session:
        session.add(Creator(id=creator_id, name="Other", slug=f"o-{creator_id.hex[:12]}"))
    return creator_id


@pytest.fixture
async def two_apis(settings: AllSettings) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two API processes' apps on the same database."""
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            app = _limited(settings)
            await stack.enter_async_context(running(app))
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a")
            clients.append(await stack.enter_async_context(client))
        yield clients


def _admin(issuer: Issuer) -> dict[str, str]:
    return bearer(issuer.token(f"admin_{uuid4().hex[:12]}", "admin"))


def _service(issuer: Issuer) -> dict[str, str]:
    sub = f"svc_{uuid4().hex[:12]}"
    return bearer(issuer.token(sub, "service", audience=issuer.service_audience))


def _counted(answer: httpx.Response, role: str, remaining: int) -> None:
    assert answer.headers["ratelimit-policy"] == f'"{role}";q={LIMIT};w={WINDOW_S}'
    assert answer.headers["ratelimit"] == f'"{role}";r={remaining};t={RESET_S}', answer.text


def _refused(answer: httpx.Response, role: str) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["type"] == "https://autodm.dev/problems/rate-limited"
    assert body["status"] == 429 and body["detail"]
    assert answer.headers["retry-after"] == str(RESET_S)
    _counted(answer, role, 0)


async def test_a_caller_over_its_limit_gets_429_and_another_caller_does_not(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID, other_creator: UUID
) -> None:
    mine = issuer.creator(creator)
    for remaining in range(LIMIT - 1, -1, -1):
        answer = await api.get("/api/leads", headers=mine)
        assert answer.status_code == 200, answer.text
        _counted(answer, "creator", remaining)
    _refused(await api.get("/api/leads", headers=mine), "creator")
    _refused(await api.get(f"/api/leads/{uuid4()}", headers=mine), "creator")

    theirs = await api.get("/api/leads", headers=issuer.creator(other_creator))
    assert theirs.status_code == 200
    _counted(theirs, "creator", LIMIT - 1)


async def test_the_same_subject_acting_for_another_creator_has_its_own_count(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID, other_creator: UUID
) -> None:
    admin = _admin(issuer)
    for _ in range(LIMIT):
        answer = await api.get("/api/leads", params={"creator_id": str(creator)}, headers=admin)
        assert answer.status_code == 200, answer.text
    over = await api.get("/api/leads", params={"creator_id": str(creator)}, headers=admin)
    _refused(over, "admin")
    other = await api.get("/api/leads", params={"creator_id": str(other_creator)}, headers=admin)
    assert other.status_code == 200
    _counted(other, "admin", LIMIT - 1)

    # A service names its creator in the body: counted per creator there too (these bodies
    # are invalid leads, refused with 422 once counted).
    service = _service(issuer)
    for _ in range(LIMIT):
        answer = await api.post("/api/leads", json={"creator_id": str(creator)}, headers=service)
        assert answer.status_code == 422, answer.text
    over = await api.post("/api/leads", json={"creator_id": str(creator)}, headers=service)
    _refused(over, "service")
    other = await api.post("/api/leads", json={"creator_id": str(other_creator)}, headers=service)
    assert other.status_code == 422
    _counted(other, "service", LIMIT - 1)


async def test_two_api_processes_share_one_count(
    two_apis: list[httpx.AsyncClient], issuer: Issuer, creator: UUID
) -> None:
    first, second = two_apis
    mine = issuer.creator(creator)
    _counted(await first.get("/api/leads", headers=mine), "creator", 2)
    _counted(await second.get("/api/leads", headers=mine), "creator", 1)
    _counted(await first.get("/api/leads", headers=mine), "creator", 0)
    _refused(await second.get("/api/leads", headers=mine), "creator")
    _refused(await first.get("/api/leads", headers=mine), "creator")


async def test_every_api_answer_carries_the_headers(
    settings: AllSettings, issuer: Issuer, creator: UUID
) -> None:
    app = _limited(settings, limit=100)
    mine = issuer.creator(creator)
    async with (
        running(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as api,
    ):
        counted = [
            await api.get("/api/leads", headers=mine),  # 200
            await api.get(f"/api/leads/{uuid4()}", headers=mine),  # 404
            await api.get(f"/api/dm/status/{uuid4()}", headers=mine),  # 404
            await api.get("/api/leads", params={"created_from": "x"}, headers=mine),  # 422
            await api.post("/api/leads", json={"name": 1}, headers=mine),  # 422
            await api.get("/api/admin/dm/overview", headers=mine),  # 403
            await api.get("/api/settings", headers=mine),
        ]
        for n, answer in enumerate(counted, start=1):
            assert answer.headers["ratelimit-policy"] == f'"creator";q=100;w={WINDOW_S}'
            assert answer.headers["ratelimit"] == f'"creator";r={100 - n};t={RESET_S}'
        assert {a.status_code for a in counted} >= {200, 403, 404, 422}

        # Nobody to count (no token, a bad one, no such route): the policies, no standing.
        uncounted = [
            await api.get("/api/leads"),
            await api.get("/api/leads", headers=bearer("not-a-jwt")),
            await api.get("/api/no-such-thing", headers=mine),
        ]
        for answer in uncounted:
            assert answer.status_code in (401, 404)
            assert answer.headers["ratelimit-policy"] == ", ".join(
                f'"{role}";q=100;w={WINDOW_S}' for role in ("creator", "admin", "service")
            )
            assert "ratelimit" not in answer.headers

        page = await api.get("/healthz")  # not the JSON API: no headers
        assert "ratelimit-policy" not in page.headers


async def test_counting_a_request_is_one_statement_outside_any_transaction(
    settings: AllSettings,
) -> None:
    """The hot path's budget (POST /api/leads is benchmarked): one statement per request,
    on an autocommit connection, so no BEGIN/COMMIT round trips and no lock held longer."""
    limits: ApiRateLimits = _limited(settings).state.api_rate_limits
    assert limits.engine.get_execution_options()["isolation_level"] == "AUTOCOMMIT"
    statements: list[str] = []

    def seen(_c: object, _cur: object, statement: str, *_rest: object) -> None:
        statements.append(statement)

    sync_engine = limits.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", seen)
    try:
        user = Principal(f"svc_{uuid4().hex[:12]}", Role.SERVICE)
        first = await limits.charge(user, "")
        second = await limits.charge(user, "")
    finally:
        event.remove(sync_engine, "before_cursor_execute", seen)
        await limits.engine.dispose()  # the app never ran: its lifespan would have
    assert first is not None and second is not None
    assert (first.hits, second.hits) == (1, 2)
    assert len(statements) == 2 and all("api_rate_counts" in s for s in statements)
