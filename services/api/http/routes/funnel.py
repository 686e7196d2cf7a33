"""`GET /api/funnel`: the conversion funnel (services/api/service_layer/funnel.py) as JSON, for a
creator (their own) or an admin (every creator's, or one with `creator_id`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.api.http.auth import Principal, Role
from services.api.http.deps import AUTH_ERRORS, CurrentUser, Deps
from services.api.http.problems import ApiProblem, problem_responses
from services.api.service_layer.funnel import MAX_DAYS, Counts, Funnel, period, read_funnel
from shared.contracts.events import utcnow

router = APIRouter(prefix="/api", responses=problem_responses(400, *AUTH_ERRORS, 413))


class FunnelCounts(BaseModel):
    leads: int = Field(description="Leads created")
    sent: int = Field(description="Of those, DM sent or link opened")
    clicked: int = Field(description="Opened their link through /l/<ref>")
    read: int
    replied: int
    with_link: int = Field(description="Given an ig.me or wa.me link")
    click_through: float | None = Field(description="clicked / with_link; null without links")


class FunnelGroup(FunnelCounts):
    key: str = Field(description="The day (YYYY-MM-DD), route or source")


class FunnelOut(BaseModel):
    creator_id: UUID | None = Field(description="null: every creator (admins)")
    since: date
    until: date = Field(description="Exclusive")
    totals: FunnelCounts
    by_day: list[FunnelGroup]
    by_route: list[FunnelGroup] = Field(
        description="By how the lead was approached: a lead given a link counts under the "
        "link's route (ig_link, wa_link) even once its DM followed"
    )
    by_source: list[FunnelGroup]


def _counts(c: Counts) -> dict[str, int | float | None]:
    return {
        "leads": c.leads,
        "sent": c.sent,
        "clicked": c.clicked,
        "read": c.read,
        "replied": c.replied,
        "with_link": c.with_link,
        "click_through": c.click_through,
    }


def to_out(funnel: Funnel, creator_id: UUID | None) -> FunnelOut:
    def groups(rows: list[tuple[str, Counts]]) -> list[FunnelGroup]:
        return [FunnelGroup(key=k, **_counts(c)) for k, c in rows]

    return FunnelOut(
        creator_id=creator_id,
        since=funnel.since,
        until=funnel.until,
        totals=FunnelCounts(**_counts(funnel.totals)),
        by_day=groups([(d.isoformat(), c) for d, c in funnel.by_day]),
        by_route=groups(funnel.by_route),
        by_source=groups(funnel.by_source),
    )


def whose(user: Principal, requested: UUID | None) -> UUID | None:
    """A creator sees their own funnel; an admin or service every creator's or one."""
    if user.role == Role.CREATOR:
        if requested is not None and requested != user.creator_id:
            raise ApiProblem(403, "forbidden", "a creator may only see their own funnel")
        return user.creator_id
    return requested


@router.get(
    "/funnel",
    response_model=FunnelOut,
    tags=["funnel"],
    summary="Leads -> DM sent (or link opened) -> read -> replied, by day, route and source",
    responses=problem_responses(403, 422),
)
async def get_funnel(
    user: CurrentUser,
    deps: Deps,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="The last N days (UTC)")] = 30,
    creator_id: Annotated[
        UUID | None, Query(description="Admins and services: one creator's (else all)")
    ] = None,
) -> FunnelOut:
    owner = whose(user, creator_id)
    since, until = period(days, utcnow().date())
    async with deps.sessions() as session:
        funnel = await read_funnel(session, owner, since, until)
    return to_out(funnel, owner)
