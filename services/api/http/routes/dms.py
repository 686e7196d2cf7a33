"""/api/dm: request a DM, follow it (status, live events) and retry it."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Response, status
from fastapi.responses import JSONResponse, StreamingResponse

from services.api.http.deps import (
    AUTH_ERRORS,
    CorrelationId,
    CreatorParam,
    CurrentUser,
    Deps,
    IdempotencyKeyHeader,
    UowDep,
)
from services.api.http.etags import NOT_MODIFIED, IfNoneMatch, etagged
from services.api.http.problems import problem_responses
from services.api.http.routes.leads import CREATOR_REQUIRED, lead_links
from services.api.http.schemas import DmSendIn, DmStatusOut
from services.api.http.status_stream import Cursor, stream
from services.api.service_layer.dm_requests import dm_status, owned_by, request_dm, retry_dm

router = APIRouter(prefix="/api", responses=problem_responses(400, *AUTH_ERRORS, 413))


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
    | {202: {"description": "The DM's status", "links": lead_links("$response.body#/lead_id")}},
)
async def send_dm(
    body: DmSendIn,
    user: CurrentUser,
    deps: Deps,
    uow: UowDep,
    corr: CorrelationId,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    outcome = await request_dm(
        uow, user, body, corr, idempotency_key, deps.keys, deps.retry_context()
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
    lead_id: UUID, user: CurrentUser, deps: Deps, uow: UowDep, corr: CorrelationId
) -> DmStatusOut:
    ctx = deps.retry_context()
    async with uow() as work:
        await retry_dm(work, user, lead_id, corr, ctx)
    async with deps.sessions() as session:
        return await dm_status(session, user, lead_id, ctx)


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
