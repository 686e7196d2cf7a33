"""The admin overview: DMs by status and provider (now and per hour over the last day),
top failure reasons, circuit breakers, accounts needing reconnection, tokens expiring
soon, tokens that could not be refreshed (_admin_tokens.html), the dead letters waiting,
and the DMs the stuck-DM watchdog finds. The totals come from the JSON API's `overview`.

Live: every creator's DM status events (live_events.py) refresh it, at most every few
seconds (an admin sees all the traffic); a slow poll catches what no DM status event
announces (circuits, tokens, dead letters, DMs becoming stuck by standing still)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.http.web.live_events import events_url
from services.api.http.web.pages_deps import AdminUser, Web
from services.api.http.web.suppressions import suppression_counts
from services.api.service_layer.queries import overview
from services.api.service_layer.stuck_dms import find_stuck
from services.api.settings import get_settings
from shared.accounts.token_health import unrefreshed_tokens
from shared.contracts.events import utcnow
from shared.db.models import Lead, SocialAccount
from shared.delivery.circuit import circuit_states
from shared.messaging.dlq_operations import DlqFilter, count_entries

router = APIRouter(prefix="/admin", include_in_schema=False)
HOURS = 24
TOKEN_WARNING = timedelta(days=14)


async def _per_hour(session: AsyncSession, since: datetime) -> list[dict[str, Any]]:
    """Leads per hour of arrival, with how many of them are in each status now."""
    hour = func.date_trunc("hour", Lead.created_at)
    provider = func.coalesce(Lead.dm_provider, "none")
    rows = await session.execute(
        select(hour, Lead.dm_status, provider, func.count())
        .where(Lead.created_at >= since)
        .group_by(hour, Lead.dm_status, provider)
        .order_by(hour.desc())
    )
    hours: dict[datetime, dict[str, Any]] = {}
    for at, status, prov, n in rows.all():
        slot = hours.setdefault(at, {"hour": at, "total": 0, "status": {}, "provider": {}})
        slot["total"] += n
        slot["status"][status] = slot["status"].get(status, 0) + n
        slot["provider"][prov] = slot["provider"].get(prov, 0) + n
    return list(hours.values())


async def _expiring(session: AsyncSession, now: datetime) -> list[SocialAccount]:
    rows = await session.scalars(
        select(SocialAccount)
        .where(
            SocialAccount.status == "connected",
            SocialAccount.token_expires_at.is_not(None),
            SocialAccount.token_expires_at < now + TOKEN_WARNING,
        )
        .order_by(SocialAccount.token_expires_at)
        .limit(50)
    )
    return list(rows.all())


def _unrefreshed_window() -> timedelta:
    return timedelta(days=get_settings().token_unrefreshed_warning_days)


async def overview_context(web: Web) -> dict[str, Any]:
    now = utcnow()
    async with web.api.sessions() as session:
        events = await events_url(session)  # before the reads: the stream covers what follows
        dlq_waiting = await count_entries(session, DlqFilter())
        totals = await overview(session, dlq_waiting)
        hours = await _per_hour(session, now - timedelta(hours=HOURS))
        circuits = await circuit_states(session, now)
        expiring = await _expiring(session, now)
        unrefreshed = await unrefreshed_tokens(session, now, _unrefreshed_window())
    peak = max((h["total"] for h in hours), default=0)
    return {
        "totals": totals,
        "hours": hours,
        "peak": peak or 1,
        "circuits": circuits,
        "expiring": expiring,
        "unrefreshed": unrefreshed,
        "dlq_waiting": dlq_waiting,
        "now": now,
        "events_url": events,
    }


async def stuck_context(request: Request, web: Web) -> dict[str, Any]:
    """The stuck-DM watchdog's findings, now (its own block: _admin_stuck_dms.html)."""
    after: timedelta = request.app.state.stuck_after
    async with web.api.sessions() as session:
        stuck = await find_stuck(session, utcnow(), after)
    return {"stuck": stuck, "stuck_after_min": round(after.total_seconds() / 60)}


@router.get("")
async def overview_page(request: Request, web: Web, _: AdminUser) -> Response:
    context = await overview_context(web) | await stuck_context(request, web)
    context |= await suppression_counts(web)  # opt-out: how many per creator
    return web.pages.render(request, "admin_overview.html", context | {"nav": "overview"})


@router.get("/overview/live")
async def overview_live(request: Request, web: Web, _: AdminUser) -> Response:
    context = await overview_context(web) | await stuck_context(request, web)
    return web.pages.render(request, "_admin_overview_body.html", context)
