"""/api/leads: accept a lead, list leads, read one with its DM and log."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from services.api.http.deps import AUTH_ERRORS, CorrelationId, CurrentUser, Deps
from services.api.http.etags import NOT_MODIFIED, IfNoneMatch, etagged
from services.api.http.problems import problem_responses
from services.api.http.schemas import Instant, LeadIn, LeadOut, LeadPage
from services.api.service_layer.dm_requests import accept_lead, load_lead
from services.api.service_layer.leads import get_lead, new_lead_view
from services.api.service_layer.queries import LeadFilters, list_leads
from shared.contracts.lead_sources import LeadSource
from shared.contracts.lifecycle import DmStatus, Provider


def _ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def lead_links(lead_id: str) -> dict[str, Any]:
    """OpenAPI links from an answer naming a lead to what a client does next with it (the
    schema's stateful tests follow them: tests/integration/test_api_schema.py)."""
    params = {"parameters": {"lead_id": lead_id}}
    return {
        "GetLead": {"operationRef": _ref("/api/leads/{lead_id}", "get")} | params,
        "GetDmStatus": {"operationRef": _ref("/api/dm/status/{lead_id}", "get")} | params,
        "RetryDm": {"operationRef": _ref("/api/dm/retry/{lead_id}", "post")} | params,
    }


# Which problem types a 422 carries besides `validation` (fields against the schema): the
# rules no JSON Schema can state, as they depend on the caller or on stored data.
CREATOR_REQUIRED = (
    "`creator-required`: an admin or service token must name `creator_id` (a creator's own "
    "token implies it)"
)
router = APIRouter(prefix="/api", responses=problem_responses(400, *AUTH_ERRORS, 413))


@router.post(
    "/leads",
    status_code=status.HTTP_201_CREATED,
    response_model=LeadOut,
    tags=["leads"],
    summary="Accept a lead; its DM is routed and sent asynchronously",
    description="422 problem types: `validation`; " + CREATOR_REQUIRED + ".",
    responses=problem_responses(403, 404, 422)
    | {201: {"description": "The lead", "links": lead_links("$response.body#/id")}},
)
async def post_lead(
    body: LeadIn, user: CurrentUser, deps: Deps, corr: CorrelationId, response: Response
) -> LeadOut:
    # `deps` (resolved for the user already: a cache hit), not UowDep: one dependency less
    # to solve on the hottest route.
    async with deps.uow() as work:
        lead = await accept_lead(work, user, body, corr)
    response.headers["Location"] = f"/api/leads/{lead.id}"
    return LeadOut.model_validate(new_lead_view(lead), from_attributes=True)


@router.get(
    "/leads",
    response_model=LeadPage,
    tags=["leads"],
    summary="Leads, newest first, with filters and cursor pagination",
    description="422 problem types: `validation`; `invalid-cursor`: a `cursor` this API did "
    "not return.",
    responses=problem_responses(422),
)
async def get_leads(
    user: CurrentUser,
    deps: Deps,
    dm_status: Annotated[list[DmStatus] | None, Query(alias="status")] = None,
    provider: Provider | None = None,
    created_from: Annotated[Instant | None, Query(description="Inclusive")] = None,
    created_to: Annotated[Instant | None, Query(description="Exclusive")] = None,
    creator_id: Annotated[UUID | None, Query(description="Admins and services only")] = None,
    cursor: Annotated[str | None, Query(max_length=512, pattern=r"^[A-Za-z0-9_-]+={0,2}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    source: Annotated[list[LeadSource] | None, Query(description="Where leads came from")] = None,
) -> LeadPage:
    filters = LeadFilters(
        tuple(dm_status or ()), provider, created_from, created_to, creator_id, tuple(source or ())
    )
    async with deps.sessions() as session:
        return await list_leads(session, user, filters, cursor, limit)


@router.get(
    "/leads/{lead_id}",
    response_model=LeadOut,
    tags=["leads"],
    summary="A lead with its DM status and the log of transitions",
    description="Answers carry an `ETag`; send it back in `If-None-Match` to get `304` "
    "while nothing changed.",
    responses=problem_responses(404, 422) | NOT_MODIFIED,
)
async def read_lead(
    lead_id: UUID, user: CurrentUser, deps: Deps, if_none_match: IfNoneMatch = None
) -> Response:
    async with deps.sessions() as session:
        await load_lead(session, user, lead_id)
        view = await get_lead(session, lead_id)
    assert view is not None
    return etagged(LeadOut.model_validate(view, from_attributes=True), if_none_match)
