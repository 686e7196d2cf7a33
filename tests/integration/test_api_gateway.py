"""The API gateway on real Kafka/PostgreSQL: authentication, tenancy, validation, and the
/api/dm endpoints (send with Idempotency-Key, status, retry), lead lists, admin overview."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.service_layer.idempotency_keys import (
    ClaimLost,
    KeyOwner,
    KeyPolicy,
    StoredResponse,
    claim,
    complete,
    release,
    request_hash,
)
from services.whatsapp_sender.app import create_app as whatsapp_app
from shared.contracts.events import utcnow
from shared.db.models import Creator, DmLogEntry, Lead, SocialAccount
from shared.messaging.unit_of_work import UnitOfWorkFactory
from tests.api_app import create_app
from tests.integration.conftest import connect_instagram, running
from tests.integration.issuer import Issuer, bearer
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def _ig_id() -> str:
    return str(secrets.randbelow(10**16) + 17841400000000000)


@pytest.fixture
async def api(settings: AllSettings) -> AsyncIterator[httpx.AsyncClient]:
    # The WhatsApp sender too: it turns wa_link requests into link_ready.
    app = create_app(settings)
    async with running(app), running(whatsapp_app(settings)):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


@pytest.fixture
async def other_creator(sessions: async_sessionmaker[AsyncSession]) -> UUID:
    creator_id = uuid4()
    async with sessions.begin() as session:
        session.add(Creator(id=creator_id, name="Other", slug=f"o-{creator_id.hex[:12]}"))
    return creator_id


def _problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://autodm.dev/problems/{kind}"
    assert body["status"] == status and body["detail"]
    return body


async def _send(api: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("name", "Jo")
    body.setdefault("phone", "+14155550100")
    response = await api.post("/api/dm/send", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return dict(response.json())


async def _wait_status(
    api: httpx.AsyncClient, headers: dict[str, str], lead_id: str, wanted: str
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    for _ in range(100):
        status = (await api.get(f"/api/dm/status/{lead_id}", headers=headers)).json()
        if status["status"] == wanted:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"stuck at {status.get('status')}, wanted {wanted}: {status}")


# --- authentication -----------------------------------------------------------------------


def _bad_tokens(issuer: Issuer) -> dict[str, str]:
    now = int(utcnow().timestamp())
    return {
        "alg none": issuer.unsigned(issuer.claims()),
        "HS256 keyed with the public key": issuer.hs256_with_public_key(issuer.claims()),
        "expired": issuer.signed(issuer.claims(exp=now - 120, iat=now - 700, nbf=now - 700)),
        "not yet valid": issuer.signed(issuer.claims(nbf=now + 600)),
        "wrong issuer": issuer.signed(issuer.claims(iss="https://evil.example")),
        "wrong audience": issuer.signed(issuer.claims(aud="some-other-api")),
        "unknown kid": issuer.signed(issuer.claims(), kid="never-published"),
        "signed by another key": issuer.signed_by_stranger(issuer.claims()),
        "no role": issuer.signed(issuer.claims(role=None)),
        "creator without creator id": issuer.signed(issuer.claims(role="creator")),
        "not a jwt": "hello",
    }


async def test_every_rejected_token_kind_is_401_problem(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    for label, token in _bad_tokens(issuer).items():
        response = await api.get("/api/admin/dm/overview", headers=bearer(token))
        _problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer"), label
    _problem(await api.get("/api/leads"), 401, "unauthorized")


async def test_small_clock_skew_is_tolerated(api: httpx.AsyncClient, issuer: Issuer) -> None:
    now = int(utcnow().timestamp())
    token = issuer.signed(issuer.claims(exp=now - 5, nbf=now + 5))
    assert (await api.get("/api/admin/dm/overview", headers=bearer(token))).status_code == 200


async def test_a_rotated_key_is_fetched_on_its_first_unknown_kid(
    api: httpx.AsyncClient, issuer: Issuer
) -> None:
    assert (await api.get("/api/leads", headers=issuer.admin())).status_code == 200
    rotated = issuer.keys.rotate("RS256").kid
    token = issuer.token("user_admin", "admin")
    assert issuer.keys.current.kid == rotated
    assert (await api.get("/api/leads", headers=bearer(token))).status_code == 200


# --- tenancy ------------------------------------------------------------------------------


async def test_a_creator_never_sees_another_creators_lead(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID, other_creator: UUID
) -> None:
    mine, theirs = issuer.creator(creator), issuer.creator(other_creator)
    lead_id = (await _send(api, mine))["lead_id"]
    for method, path in (
        ("GET", f"/api/dm/status/{lead_id}"),
        ("POST", f"/api/dm/retry/{lead_id}"),
        ("GET", f"/api/leads/{lead_id}"),
    ):
        response = await api.request(method, path, headers=theirs)
        body = _problem(response, 404, "not-found")
        assert body["detail"] == f"lead {lead_id} not found"  # same as a lead that isn't there
    listed = (await api.get("/api/leads", headers=theirs)).json()["items"]
    assert lead_id not in {item["id"] for item in listed}
    assert (await api.get(f"/api/dm/status/{lead_id}", headers=issuer.admin())).status_code == 200


async def test_lead_ownership_comes_from_the_token(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID, other_creator: UUID
) -> None:
    own = await _send(api, issuer.creator(creator))
    assert own["creator_id"] == str(creator)
    response = await api.post(
        "/api/dm/send",
        json={"name": "Jo", "phone": "+14155550100", "creator_id": str(other_creator)},
        headers=issuer.creator(creator),
    )
    _problem(response, 403, "forbidden")
    for headers in (issuer.admin(), issuer.service()):
        missing = await api.post(
            "/api/leads", json={"name": "Jo", "phone": "+1415555"}, headers=headers
        )
        _problem(missing, 422, "creator-required")
    named = await _send(api, issuer.service(), creator_id=str(other_creator))
    assert named["creator_id"] == str(other_creator)


async def test_overview_is_for_admins_only(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID
) -> None:
    _problem(
        await api.get("/api/admin/dm/overview", headers=issuer.creator(creator)), 403, "forbidden"
    )
    _problem(await api.get("/api/admin/dm/overview", headers=issuer.service()), 403, "forbidden")


# --- validation ---------------------------------------------------------------------------


async def test_invalid_bodies_are_problems_with_field_errors(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID
) -> None:
    headers = issuer.creator(creator)
    # 300 emoji: 300 characters but 1,200 bytes, over Meta's 1,000-byte limit.
    body = {"name": "Jo", "phone": "call me", "message": "\U0001f600" * 300, "extra": 1}
    response = await api.post("/api/dm/send", json=body, headers=headers)
    fields = {e["field"] for e in _problem(response, 422, "validation")["errors"]}
    assert {"phone", "message", "extra"} <= fields
    ok = await api.post(
        "/api/dm/send",
        json={"name": "Jo", "phone": "+14155550100", "message": "é" * 500},
        headers=headers,
    )
    assert ok.status_code == 202  # exactly 1,000 bytes
    _problem(await api.get("/api/dm/status/not-a-uuid", headers=headers), 422, "validation")


async def test_oversized_bodies_are_413_before_parsing(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID
) -> None:
    big = b'{"name": "' + b"x" * (70 * 1024) + b'"}'
    response = await api.post(
        "/api/dm/send",
        content=big,
        headers={**issuer.creator(creator), "content-type": "application/json"},
    )
    _problem(response, 413, "payload-too-large")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b"x" * 1024

    chunked = await api.post("/api/dm/send", content=chunks(), headers={**issuer.creator(creator)})
    _problem(chunked, 413, "payload-too-large")


# --- send and idempotency -----------------------------------------------------------------


async def test_idempotency_key_replays_refuses_other_bodies_and_reports_in_flight(
    api: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    headers = {**issuer.creator(creator), "Idempotency-Key": f"k-{uuid4()}"}
    body = {"name": "Ida", "phone": "+14155550101"}
    first = await api.post("/api/dm/send", json=body, headers=headers)
    assert first.status_code == 202
    again = await api.post("/api/dm/send", json=dict(reversed(body.items())), headers=headers)
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await api.post("/api/dm/send", json={**body, "name": "Ivo"}, headers=headers)
    _problem(other, 422, "idempotency-key-reused")

    # A request holding a key: a duplicate arriving meanwhile is told to come back.
    key, owner = f"k-{uuid4()}", KeyOwner(creator, f"user_{creator.hex[:8]}")
    fingerprint = request_hash(
        "POST",
        "/api/dm/send",
        {
            **body,
            "creator_id": None,
            "instagram": None,
            "message": "",
            "provider": None,
            "whatsapp_opt_in": False,
            "whatsapp_consent_source": None,
            "whatsapp_user_id": None,
        },
    )
    policy = KeyPolicy(in_flight=timedelta(seconds=30), ttl=timedelta(hours=24))
    assert (
        await claim(UnitOfWorkFactory(sessions), owner, key, fingerprint, policy, utcnow()) is None
    )
    busy = await api.post("/api/dm/send", json=body, headers={**headers, "Idempotency-Key": key})
    _problem(busy, 409, "idempotency-in-flight")
    assert int(busy.headers["retry-after"]) >= 1


async def test_a_request_whose_key_was_taken_over_cannot_complete_or_release_it(
    creator: UUID, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The broker drill: a POST slowed past `in_flight` was taken over by the client's retry,
    and both committed their lead (two DMs to one person). The slow one must fail now."""
    key, owner = f"k-{uuid4()}", KeyOwner(creator, "svc-drill")
    policy = KeyPolicy(in_flight=timedelta(seconds=30), ttl=timedelta(hours=24))
    uow = UnitOfWorkFactory(sessions)
    slow_at = utcnow()
    assert await claim(uow, owner, key, "h", policy, slow_at) is None
    retry_at = slow_at + timedelta(seconds=31)
    assert await claim(uow, owner, key, "h", policy, retry_at) is None  # taken over
    with pytest.raises(ClaimLost):
        async with uow() as work:
            await complete(work, owner, key, StoredResponse(202, {}), slow_at)
    await release(uow, owner, key, slow_at)  # the slow one gives up: not the retry's
    async with uow() as work:
        await complete(work, owner, key, StoredResponse(202, {"lead_id": "x"}), retry_at)
    replay = await claim(uow, owner, key, "h", policy, retry_at + timedelta(seconds=1))
    assert replay == StoredResponse(202, {"lead_id": "x"})


async def _count_leads(sessions: async_sessionmaker[AsyncSession], creator_id: UUID) -> int:
    async with sessions() as session:
        found = await session.scalars(select(Lead.id).where(Lead.creator_id == creator_id))
        return len(found.all())


async def test_an_agency_reusing_a_key_for_two_creators_gets_two_leads(
    api: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    other_creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # One person (one `sub`) signed in for two creators: the same key and body for each.
    sub, key = f"agency-{uuid4().hex[:8]}", f"k-{uuid4()}"
    body = {"name": "Ada", "phone": "+14155550102"}
    answers = {}
    for acting in (creator, other_creator):
        headers = {**bearer(issuer.token(sub, "creator", acting)), "Idempotency-Key": key}
        answers[acting] = await api.post("/api/dm/send", json=body, headers=headers)
        assert answers[acting].status_code == 202, answers[acting].text
        assert "idempotent-replayed" not in answers[acting].headers
        assert answers[acting].json()["creator_id"] == str(acting)
    assert answers[creator].json()["lead_id"] != answers[other_creator].json()["lead_id"]
    assert await _count_leads(sessions, other_creator) == 1

    # Within one creator the key still replays.
    headers = {**bearer(issuer.token(sub, "creator", other_creator)), "Idempotency-Key": key}
    again = await api.post("/api/dm/send", json=body, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == answers[other_creator].json()
    assert await _count_leads(sessions, other_creator) == 1


async def test_a_service_reusing_a_key_for_two_named_creators_gets_two_leads(
    api: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    other_creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    headers = {**issuer.service(), "Idempotency-Key": f"k-{uuid4()}"}
    body = {"name": "Sam", "phone": "+14155550103"}
    first, second = [
        await api.post("/api/dm/send", json={**body, "creator_id": str(c)}, headers=headers)
        for c in (creator, other_creator)
    ]
    assert first.status_code == second.status_code == 202, second.text
    assert "idempotent-replayed" not in second.headers
    assert second.json()["creator_id"] == str(other_creator)
    assert first.json()["lead_id"] != second.json()["lead_id"]

    body["creator_id"] = str(other_creator)
    again = await api.post("/api/dm/send", json=body, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == second.json()
    assert await _count_leads(sessions, other_creator) == 1
    # A changed body within one creator is still refused.
    _problem(
        await api.post("/api/dm/send", json={**body, "name": "Sue"}, headers=headers),
        422,
        "idempotency-key-reused",
    )


async def test_send_routes_by_the_named_provider_and_status_shows_the_link(
    api: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    settings: AllSettings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await connect_instagram(sessions, settings, creator, _ig_id(), "shop7", "tok")
    headers = issuer.creator(creator)
    body = {"instagram": {"username": "jo"}, "phone": "+14155550100"}
    by_rules = await _send(api, headers, **body)
    whatsapp = await _send(api, headers, **body, provider="whatsapp")
    assert by_rules["status"] == "queued" and by_rules["log"][0]["status"] == "queued"
    ig = await _wait_status(api, headers, by_rules["lead_id"], "awaiting_contact")
    assert ig["route"] == "ig_link" and ig["link"].startswith("https://ig.me/m/shop7?ref=")
    wa = await _wait_status(api, headers, whatsapp["lead_id"], "link_ready")
    assert wa["route"] == "wa_link" and wa["link"].startswith("https://wa.me/14155550100")
    assert wa["retry"] == {"allowed": False, "detail": wa["retry"]["detail"]}


# --- retry --------------------------------------------------------------------------------


async def test_retry_of_a_skipped_dm_waits_for_a_route_then_starts_attempt_two(
    api: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    settings: AllSettings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    headers = issuer.creator(creator)
    lead_id = (await _send(api, headers, phone=None, instagram={"username": "ann"}))["lead_id"]
    skipped = await _wait_status(api, headers, lead_id, "skipped")
    assert skipped["retry"]["allowed"] is False
    refused = _problem(
        await api.post(f"/api/dm/retry/{lead_id}", headers=headers), 409, "retry-not-allowed"
    )
    assert "no route" in refused["detail"]

    await connect_instagram(sessions, settings, creator, _ig_id(), "shop8", "tok")
    response = await api.post(f"/api/dm/retry/{lead_id}", headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["attempt"] == 2 and response.json()["status"] == "queued"
    waiting = await _wait_status(api, headers, lead_id, "awaiting_contact")
    assert waiting["attempt"] == 2 and waiting["reason"] != skipped["reason"]
    assert [(e["status"], e["attempt"]) for e in waiting["log"]] == [
        ("queued", 1),
        ("skipped", 1),
        ("queued", 2),
        ("awaiting_contact", 2),
    ]
    again = await api.post(f"/api/dm/retry/{lead_id}", headers=headers)
    _problem(again, 409, "retry-not-allowed")


async def _fail(
    sessions: async_sessionmaker[AsyncSession], lead_id: str, status: str, error_class: str | None
) -> None:
    """Put the lead where a sender would have left it."""
    async with sessions.begin() as session:
        lead = await session.get(Lead, UUID(lead_id))
        assert lead is not None
        lead.dm_status = status
        session.add(
            DmLogEntry(
                lead_id=lead.id,
                event_id=uuid4(),
                status=status,
                attempt=lead.dm_attempt,
                detail={"error": {"error_class": error_class}} if error_class else {},
                occurred_at=utcnow(),
            )
        )


async def test_retry_after_a_token_failure_needs_the_account_reconnected(
    api: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    settings: AllSettings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await connect_instagram(sessions, settings, creator, _ig_id(), "shop9", "t")
    headers = issuer.creator(creator)
    lead_id = (await _send(api, headers, instagram={"username": "bo"}))["lead_id"]
    await _wait_status(api, headers, lead_id, "awaiting_contact")
    async with sessions.begin() as session:
        await session.execute(
            update(SocialAccount)
            .where(SocialAccount.id == account)
            .values(status="reconnect_required")
        )
        await session.execute(
            update(Lead).where(Lead.id == UUID(lead_id)).values(dm_account_id=account)
        )
    await _fail(sessions, lead_id, "failed", "token")
    refused = _problem(
        await api.post(f"/api/dm/retry/{lead_id}", headers=headers), 409, "retry-not-allowed"
    )
    assert "reconnect" in refused["detail"]

    overview = (await api.get("/api/admin/dm/overview", headers=issuer.admin())).json()
    assert str(account) in {a["account_id"] for a in overview["accounts_needing_reconnection"]}

    async with sessions.begin() as session:
        await session.execute(
            update(SocialAccount).where(SocialAccount.id == account).values(status="connected")
        )
    assert (await api.post(f"/api/dm/retry/{lead_id}", headers=headers)).status_code == 202


@pytest.mark.parametrize(
    ("status", "error_class", "why"),
    [
        ("unknown", None, "never resent"),
        ("sent", None, "already sent"),
        ("failed", "invalid", "invalid"),
        ("failed", "recipient", "write first"),
    ],
)
async def test_retry_is_refused_when_the_cause_cannot_change(
    api: httpx.AsyncClient,
    issuer: Issuer,
    creator: UUID,
    sessions: async_sessionmaker[AsyncSession],
    status: str,
    error_class: str | None,
    why: str,
) -> None:
    headers = issuer.creator(creator)
    lead_id = (await _send(api, headers))["lead_id"]
    await _wait_status(api, headers, lead_id, "link_ready")
    await _fail(sessions, lead_id, status, error_class)
    refused = _problem(
        await api.post(f"/api/dm/retry/{lead_id}", headers=headers), 409, "retry-not-allowed"
    )
    assert why in refused["detail"]


# --- lists and overview -------------------------------------------------------------------


async def test_lead_list_filters_and_pages_with_a_cursor(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID
) -> None:
    headers = issuer.creator(creator)
    sent = [(await _send(api, headers, name=f"L{i}"))["lead_id"] for i in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/leads", params=params, headers=headers)).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[:5] == list(reversed(sent))  # newest first, nothing twice, nothing lost
    assert len(seen) == len(set(seen))

    await _wait_status(api, headers, sent[0], "link_ready")
    ready = (
        await api.get(
            "/api/leads", params={"status": "link_ready", "provider": "whatsapp"}, headers=headers
        )
    ).json()
    assert sent[0] in {i["id"] for i in ready["items"]}
    assert all(i["dm_status"] == "link_ready" for i in ready["items"])
    future = (utcnow() + timedelta(days=1)).isoformat()
    none = (await api.get("/api/leads", params={"created_from": future}, headers=headers)).json()
    assert none["items"] == []
    _problem(
        await api.get("/api/leads", params={"cursor": "garbage"}, headers=headers),
        422,
        "invalid-cursor",
    )


async def test_overview_counts_by_status_and_provider_with_dlq_size(
    api: httpx.AsyncClient, issuer: Issuer, creator: UUID
) -> None:
    headers = issuer.creator(creator)
    lead_id = (await _send(api, headers))["lead_id"]
    await _wait_status(api, headers, lead_id, "link_ready")
    body = (await api.get("/api/admin/dm/overview", headers=issuer.admin())).json()
    assert body["counts_by_status"]["link_ready"] >= 1
    assert body["counts_by_provider"]["whatsapp"] >= 1
    assert isinstance(body["dlq"]["size"], int)
    assert body["breakers"] == []
    assert isinstance(body["top_failure_reasons"], list)
