"""HTTP entrypoints of webhook_ingest: Meta's verification, signed event POSTs, and the
deauthorize / data-deletion callbacks. Each verifies first and answers fast."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse
from faststream.kafka import KafkaBroker

from services.webhook_ingest.accept import Acceptance, accept
from services.webhook_ingest.callbacks import (
    SignedCallback,
    StaleSignedRequest,
    deauthorize,
    delete_user_data,
    deletion_status,
    fresh_callback,
)
from services.webhook_ingest.ingest import instagram_received, split_instagram
from services.webhook_ingest.signatures import (
    InvalidSignedRequest,
    answer_verification,
    parse_signed_request,
    signed_json,
)
from shared.contracts.events import utcnow
from shared.messaging.unit_of_work import UnitsOfWork
from shared.platform.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class IngestDeps:
    broker: KafkaBroker
    uow: UnitsOfWork  # wakes the in-process relay after a commit that published
    # Event POSTs are accepted with Kafka alone (accept.py): no database on that path.
    acceptance: Acceptance
    app_secrets: list[str]
    verify_token: str
    public_base_url: str
    # Deauthorize / data deletion: how far `issued_at` may be from now.
    signed_request_max_age: timedelta = timedelta(minutes=10)


async def get_deps(request: Request) -> IngestDeps:
    # async: FastAPI runs a plain `def` dependency in its thread pool, per request.
    deps: IngestDeps = request.app.state.deps
    return deps


Deps = Annotated[IngestDeps, Depends(get_deps)]
router = APIRouter(prefix="/webhooks/instagram", tags=["webhooks"])


@router.get("", response_class=PlainTextResponse, summary="Meta's subscription verification")
async def verify_subscription(
    deps: Deps,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge")] = None,
) -> str:
    return answer_verification(mode, token, challenge, deps.verify_token)


@router.post("", summary="Signed Instagram event notifications")
async def receive(request: Request, deps: Deps) -> dict[str, int]:
    payload, correlation_id = await signed_json(request, deps.app_secrets, "instagram")
    events = instagram_received(split_instagram(payload), correlation_id)
    return {"published": await accept(deps.acceptance, "instagram", events)}


@router.post("/deauthorize", summary="Meta: the user removed the app")
async def deauthorize_callback(request: Request, deps: Deps) -> dict[str, Any]:
    signed = await _verified_user(request, deps)
    async with deps.uow() as uow:
        disconnected = await deauthorize(uow.session, signed, utcnow(), deps.signed_request_max_age)
    return {"success": True, "disconnected": disconnected}


@router.post("/data-deletion", summary="Meta: the user asked to delete their data")
async def data_deletion_callback(request: Request, deps: Deps) -> dict[str, str]:
    signed = await _verified_user(request, deps)
    async with deps.uow() as uow:
        code = await delete_user_data(uow.session, signed, utcnow(), deps.signed_request_max_age)
    url = f"{deps.public_base_url}/webhooks/instagram/data-deletion/{code}"
    return {"url": url, "confirmation_code": code}


@router.get("/data-deletion/{code}", summary="Where a user follows their deletion request")
async def data_deletion_status(code: str, deps: Deps) -> dict[str, Any]:
    async with deps.uow() as uow:
        session = uow.session
        found = await deletion_status(session, code)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown confirmation code")
    return {
        "confirmation_code": found.confirmation_code,
        "status": found.status,
        "removed": found.summary,
        "requested_at": found.requested_at.isoformat(),
        "completed_at": found.completed_at.isoformat() if found.completed_at else None,
    }


async def _verified_user(request: Request, deps: IngestDeps) -> SignedCallback:
    # A urlencoded form with one field; parsed here to need no multipart dependency.
    form = parse_qs((await request.body()).decode(errors="replace"))
    signed_request = (form.get("signed_request") or [""])[0]
    try:
        data = parse_signed_request(signed_request, deps.app_secrets)
    except InvalidSignedRequest as exc:
        log.warning("signed_request rejected", reason=str(exc))
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid signed_request") from exc
    try:
        return fresh_callback(data, utcnow(), deps.signed_request_max_age)
    except StaleSignedRequest as exc:
        # Correctly signed but old: a captured request replayed later.
        log.warning("signed_request rejected", reason=str(exc))
        raise HTTPException(status.HTTP_403_FORBIDDEN, "stale signed_request") from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
