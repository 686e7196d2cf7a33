"""HTTP entrypoints: authenticate, validate, call the service layer, shape the answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.auth import Principal, Role, TokenVerifier, unauthorized
from services.api.http.dlq_depth import DlqSize
from services.api.http.etags import NOT_MODIFIED, IfNoneMatch, etagged
from services.api.http.problems import ApiProblem, problem_responses
from services.api.http.rate_limits import charge_request
from services.api.http.schemas import (
    CreatorSettingsIn,
    CreatorSettingsOut,
    DmSendIn,
    DmStatusOut,
    Instant,
    LeadIn,
    LeadOut,
    LeadPage,
    OverviewOut,
)
from services.api.http.status_stream import Cursor, StreamConfig, stream
from services.api.service_layer.creator_settings import read_settings, save_settings
from services.api.service_layer.dm_requests import (
    RetryContext,
    accept_lead,
    dm_status,
    load_lead,
    owned_by,
    request_dm,
    retry_dm,
)
from services.api.service_layer.idempotency_keys import KeyPolicy
from services.api.service_layer.leads import get_lead, new_lead_view
from services.api.service_layer.queries import LeadFilters, list_leads, overview
from shared.contracts.events import utcnow
from shared.contracts.lifecycle import DmStatus, Provider
from shared.contracts.routing import RoutingRules
from shared.messaging.unit_of_work import UnitsOfWork
from shared.platform.logs import bind_correlation_id


@dataclass(frozen=True)
class ApiDeps:
    sessions: async_sessionmaker[AsyncSession]  # reads
    uow: UnitsOfWork  # writes: one transaction each, the relay woken by NOTIFY
    verifier: TokenVerifier
    rules: RoutingRules
    keys: KeyPolicy
    dlq: DlqSize
    stream: StreamConfig = field(default_factory=StreamConfig)

    def retry_context(self) -> RetryContext:
        return RetryContext(rules=self.rules, now=utcnow())


# Dependencies are `async def` although they never await: FastAPI runs a plain `def`
# dependency in its thread pool, a hand-off per request each (seen in the bench's profile),
# and a contextvar bound there (the correlation id) never reached the request's own task.
async def get_deps(request: Request) -> ApiDeps:
    deps: ApiDeps = request.app.state.deps
    return deps


async def correlation_id(
    response: Response,
    x_correlation_id: Annotated[str | None, Header(max_length=128)] = None,
) -> str:
    value = x_correlation_id or str(uuid4())
    bind_correlation_id(value)
    response.headers["X-Correlation-ID"] = value
    return value


Deps = Annotated[ApiDeps, Depends(get_deps)]
CorrelationId = Annotated[str, Depends(correlation_id)]

bearer = HTTPBearer(
    auto_error=False,
    description="A JWT from the identity provider (or local_issuer in development)",
)


async def current_user(
    request: Request,
    deps: Deps,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise unauthorized("a bearer token is required")
    user = await deps.verifier.verify(credentials.credentials)
    await charge_request(request, user)  # per-caller limits; 429 past them
    return user


CurrentUser = Annotated[Principal, Depends(current_user)]


async def admin_user(user: CurrentUser) -> Principal:
    if user.role != Role.ADMIN:
        raise ApiProblem(403, "forbidden", "this endpoint is for admins")
    return user


AdminUser = Annotated[Principal, Depends(admin_user)]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique printable string (a UUID is ideal); a retry sends the same one",
    ),
]

AUTH_ERRORS = (401, 429, 503)


def _ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _lead_links(lead_id: str) -> dict[str, Any]:
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
    | {201: {"description": "The lead", "links": _lead_links("$response.body#/id")}},
)
async def post_lead(
    body: LeadIn, user: CurrentUser, deps: Deps, corr: CorrelationId, response: Response
) -> LeadOut:
    async with deps.uow() as uow:
        lead = await accept_lead(uow, user, body, corr)
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
) -> LeadPage:
    filters = LeadFilters(tuple(dm_status or ()), provider, created_from, created_to, creator_id)
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


@router.post(
    "/dm/send",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DmStatusOut,
    tags=["dm"],
    summary="Request a DM for a lead (the lead is created with the request)",
    description=(
        "Routed by the routing rules unless `provider` is named. Send an `Idempotency-Key` "
        "header: the same key with the same body answers the first response again (with "
        "`Idempotent-Replayed: true`); with another body it is 422; while the first request "
        "is still running it is 409 with `Retry-After`. 422 problem types: `validation`; "
        + CREATOR_REQUIRED
        + "; `idempotency-key-reused`: the key came with another body."
    ),
    responses=problem_responses(403, 404, 409, 422)
    | {202: {"description": "The DM's status", "links": _lead_links("$response.body#/lead_id")}},
)
async def send_dm(
    body: DmSendIn,
    user: CurrentUser,
    deps: Deps,
    corr: CorrelationId,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    outcome = await request_dm(
        deps.uow, user, body, corr, idempotency_key, deps.keys, deps.retry_context()
    )
    lead_id = outcome.response.body.get("lead_id")
    headers = {"X-Correlation-ID": corr, "Location": f"/api/dm/status/{lead_id}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(outcome.response.body, outcome.response.status_code, headers=headers)


@router.get(
    "/dm/status/{lead_id}",
    response_model=DmStatusOut,
    tags=["dm"],
    summary="Where a lead's DM stands: status, route, attempts, error, link, and its log",
    description="Answers carry an `ETag`; send it back in `If-None-Match` to get `304` "
    "while nothing changed.",
    responses=problem_responses(404, 422) | NOT_MODIFIED,
)
async def get_dm_status(
    lead_id: UUID, user: CurrentUser, deps: Deps, if_none_match: IfNoneMatch = None
) -> Response:
    async with deps.sessions() as session:
        out = await dm_status(session, user, lead_id, deps.retry_context())
    return etagged(out, if_none_match)


@router.post(
    "/dm/retry/{lead_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DmStatusOut,
    tags=["dm"],
    summary="Retry a failed or skipped DM whose cause can have changed",
    description="Anything else is 409 `retry-not-allowed`, with the reason in `detail`.",
    responses=problem_responses(404, 409, 422),
)
async def post_dm_retry(
    lead_id: UUID, user: CurrentUser, deps: Deps, corr: CorrelationId
) -> DmStatusOut:
    ctx = deps.retry_context()
    async with deps.uow() as uow:
        await retry_dm(uow, user, lead_id, corr, ctx)
    async with deps.sessions() as session:
        return await dm_status(session, user, lead_id, ctx)


@router.get(
    "/admin/dm/overview",
    response_model=OverviewOut,
    tags=["admin"],
    summary="DMs by status and provider, top failure reasons, DLQ size, accounts to reconnect",
    responses=problem_responses(403),
)
async def get_overview(_: AdminUser, deps: Deps) -> OverviewOut:
    dlq_size = await deps.dlq.count()
    async with deps.sessions() as session:
        return await overview(session, dlq_size)


CreatorParam = Annotated[
    UUID | None,
    Query(
        description="Admins and services only, and required for them (else a 422 "
        "`creator-required`): which creator's"
    ),
]
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=64,
        description="The `id` of the last event received: the stream resumes right after it",
    ),
]
SSE_EXAMPLE = (
    'id: 7351-88\nevent: dm.status\ndata: {"lead_id": "…", "status": "sent", "attempt": 1, '
    '"occurred_at": "2026-12-03T10:00:00+00:00", "route": "ig_dm"}\n\n'
)


@router.get(
    "/dm/events",
    tags=["dm"],
    summary="Live DM status changes of a creator, as Server-Sent Events",
    description=(
        "`text/event-stream`: one `dm.status` event per status change of any of the creator's "
        "DMs, with `id` for resuming. Reconnect with `Last-Event-ID` (EventSource does it by "
        "itself) to get every change after that one, none twice. Without it the stream starts "
        "with what happens next. Comment lines keep the connection alive; the server ends a "
        "stream after a few minutes and the client resumes."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"example": SSE_EXAMPLE}}},
        **problem_responses(403, 422),
    },
)
async def dm_events(
    user: CurrentUser,
    deps: Deps,
    creator_id: CreatorParam = None,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    owner = owned_by(user, creator_id)
    body = stream(deps.sessions, owner, Cursor.parse(last_event_id), deps.stream)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


@router.get(
    "/settings",
    response_model=CreatorSettingsOut,
    tags=["settings"],
    summary="A creator's AutoDM settings: template, route order, pacing, pause, Comment to DM",
    responses=problem_responses(403, 404, 422),
)
async def get_creator_settings(
    user: CurrentUser, deps: Deps, creator_id: CreatorParam = None
) -> CreatorSettingsOut:
    owner = owned_by(user, creator_id)
    async with deps.sessions() as session:
        return await read_settings(session, owner)


@router.put(
    "/settings",
    response_model=CreatorSettingsOut,
    tags=["settings"],
    summary="Replace a creator's AutoDM settings (what the settings page saves)",
    description="Senders pick up pacing and the pause switch within "
    "`AUTODM_DELIVERY_STATE_REFRESH_S`; the router uses the template for the next lead.",
    responses=problem_responses(403, 404, 422),
)
async def put_creator_settings(
    body: CreatorSettingsIn, user: CurrentUser, deps: Deps, creator_id: CreatorParam = None
) -> CreatorSettingsOut:
    owner = owned_by(user, creator_id)
    async with deps.uow() as uow:
        return await save_settings(uow, owner, body, user.subject)
