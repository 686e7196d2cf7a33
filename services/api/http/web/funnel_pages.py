"""The funnel's pages: `/app/funnel` (a creator's own leads) and `/admin/funnel` (every
creator's, or one's with `?creator=`): leads -> DM sent or link opened -> read -> replied,
by day, route and source, as server-rendered SVG charts with the figures in a table."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.api.http.web.funnel_charts import day_chart, group_chart
from services.api.http.web.pages_deps import AdminUser, CreatorUser, Web
from services.api.service_layer.funnel import Counts, period, read_funnel
from shared.contracts.events import utcnow
from shared.contracts.lead_sources import ROUTE_LABELS, SOURCE_LABELS

router = APIRouter(include_in_schema=False)
PERIODS = (7, 30, 90)
Days = Annotated[int, Query(ge=1, le=90)]


async def _context(web: Web, creator_id: UUID | None, days: int) -> dict[str, Any]:
    since, until = period(days, utcnow().date())
    async with web.api.sessions() as session:
        funnel = await read_funnel(session, creator_id, since, until)
    return {
        "funnel": funnel,
        "days": days,
        "periods": PERIODS,
        "day_chart": day_chart(funnel.by_day),
        "route_chart": group_chart(funnel.by_route, ROUTE_LABELS, "route"),
        "source_chart": group_chart(funnel.by_source, SOURCE_LABELS, "source"),
        "share": _share,
    }


def _share(part: int, counts: Counts) -> str:
    return f"{100 * part / counts.leads:.0f}%" if counts.leads else "-"


@router.get("/app/funnel")
async def creator_funnel(
    request: Request, web: Web, user: CreatorUser, days: Days = 30
) -> Response:
    context = await _context(web, user.creator_id, days)
    return web.pages.render(request, "funnel.html", context | {"nav": "funnel", "scope": None})


@router.get("/admin/funnel")
async def admin_funnel(
    request: Request, web: Web, _: AdminUser, days: Days = 30, creator: UUID | None = None
) -> Response:
    context = await _context(web, creator, days)
    scope = f"creator {creator}" if creator else "every creator"
    return web.pages.render(request, "funnel.html", context | {"nav": "funnel", "scope": scope})
