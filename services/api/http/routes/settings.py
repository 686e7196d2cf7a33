"""/api/settings: a creator's AutoDM settings (what the settings page shows and saves)."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.http.deps import AUTH_ERRORS, CreatorParam, CurrentUser, Deps, UowDep
from services.api.http.problems import problem_responses
from services.api.http.schemas import CreatorSettingsIn, CreatorSettingsOut
from services.api.service_layer.creator_settings import read_settings, save_settings
from services.api.service_layer.dm_requests import owned_by

router = APIRouter(prefix="/api", responses=problem_responses(400, *AUTH_ERRORS, 413))


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
    body: CreatorSettingsIn, user: CurrentUser, uow: UowDep, creator_id: CreatorParam = None
) -> CreatorSettingsOut:
    owner = owned_by(user, creator_id)
    async with uow() as work:
        return await save_settings(work, owner, body, user.subject)
