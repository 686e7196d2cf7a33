"""/api/admin/dm/overview: the operators' view of every DM (the dead letters and the kill
switch are routes/dead_letters.py)."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.http.deps import AUTH_ERRORS, AdminUser, Deps
from services.api.http.problems import problem_responses
from services.api.http.schemas import OverviewOut
from services.api.service_layer.queries import overview

router = APIRouter(prefix="/api", responses=problem_responses(400, *AUTH_ERRORS, 413))


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
