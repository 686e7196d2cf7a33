"""HTTP entrypoints: validate, call the service layer, shape the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.leads import UnknownCreator, create_lead, get_lead
from services.api.schemas import LeadIn, LeadOut
from shared.logs import bind_correlation_id
from shared.outbox import OutboxRelay


@dataclass(frozen=True)
class ApiDeps:
    sessions: async_sessionmaker[AsyncSession]
    relay: OutboxRelay


def get_deps(request: Request) -> ApiDeps:
    deps: ApiDeps = request.app.state.deps
    return deps


def correlation_id(
    response: Response,
    x_correlation_id: Annotated[str | None, Header(max_length=128)] = None,
) -> str:
    value = x_correlation_id or str(uuid4())
    bind_correlation_id(value)
    response.headers["X-Correlation-ID"] = value
    return value


Deps = Annotated[ApiDeps, Depends(get_deps)]
CorrelationId = Annotated[str, Depends(correlation_id)]

router = APIRouter(prefix="/api", tags=["leads"])


@router.post(
    "/leads",
    status_code=status.HTTP_201_CREATED,
    response_model=LeadOut,
    summary="Accept a lead; its DM is routed and sent asynchronously",
    responses={404: {"description": "Unknown creator"}, 422: {"description": "Invalid lead"}},
)
async def post_lead(body: LeadIn, deps: Deps, corr: CorrelationId, response: Response) -> LeadOut:
    try:
        async with deps.sessions.begin() as session:
            lead = await create_lead(session, body, corr)
    except UnknownCreator as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"creator {exc} not found") from exc
    deps.relay.wake.set()
    async with deps.sessions() as session:
        out = await get_lead(session, lead.id)
    assert out is not None
    response.headers["Location"] = f"/api/leads/{lead.id}"
    return out


@router.get(
    "/leads/{lead_id}",
    response_model=LeadOut,
    summary="A lead with its DM status and the log of transitions",
    responses={404: {"description": "Unknown lead"}},
)
async def read_lead(lead_id: UUID, deps: Deps) -> LeadOut:
    async with deps.sessions() as session:
        out = await get_lead(session, lead_id)
    if out is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"lead {lead_id} not found")
    return out
