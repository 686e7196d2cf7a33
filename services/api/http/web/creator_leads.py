"""The creator's leads: status badges with reasons, the ig.me link or WhatsApp button
where that is the route, retry where allowed, filters, pagination and a live table (the
rows fragment the page refreshes when the status stream, live_events.py, announces a
change; a lead's page likewise). Reads and retries go through the JSON API's service
layer (queries.list_leads, dm_requests.load_lead / verdict_for / retry_dm)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.http.auth import Principal
from services.api.http.web.live_events import events_url
from services.api.http.web.next_steps import NextStep, instagram_connected, next_step
from services.api.http.web.pages_deps import CreatorUser, PageError, Web
from services.api.service_layer.dm_requests import load_lead, retry_dm, verdict_for, waiting_of
from services.api.service_layer.errors import DomainError, Invalid, NotFound
from services.api.service_layer.queries import LeadFilters, list_leads
from services.api.service_layer.suppression_list import lead_actions
from services.api.service_layer.tracked_links import tracked_path
from shared.contracts.lead_sources import LeadSource
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.db.models import DmLogEntry, Lead
from shared.delivery.reasons import for_status
from shared.platform.logs import bind_correlation_id

router = APIRouter(prefix="/app/leads", include_in_schema=False)
PAGE_SIZE = 20
RETRYABLE = (DmStatus.FAILED, DmStatus.SKIPPED)
NOTICES = {
    "retry-started": "A new attempt has started.",
    "retry-refused": "That DM cannot be retried now.",
}


@dataclass(frozen=True)
class LeadRow:
    lead: Lead
    reason: str
    retry_allowed: bool
    retry_detail: str
    step: NextStep = field(default_factory=lambda: NextStep("none", ""))

    @property
    def ig_link(self) -> str | None:
        return tracked_path(self.lead) if self.lead.dm_route == Route.IG_LINK else None

    @property
    def wa_link(self) -> str | None:
        return tracked_path(self.lead) if self.lead.dm_route == Route.WA_LINK else None


def _reason(lead: Lead) -> str:
    """The creator's words (shared.delivery.reasons); the provider's error message is the
    admin's."""
    return lead.dm_reason or for_status(lead.dm_status)


async def _row(web: Web, session: AsyncSession, lead: Lead, connected: bool) -> LeadRow:
    allowed, detail, reason = False, "", _reason(lead)
    if lead.dm_status in RETRYABLE:
        verdict = await verdict_for(session, lead, web.api.retry_context())
        allowed, detail = verdict.allowed, verdict.detail
    elif waiting := await waiting_of(session, lead):  # paused, paced, throttled ...
        reason = waiting.detail
    step = next_step(lead, retry_allowed=allowed, instagram_connected=connected)
    return LeadRow(lead, reason, allowed, detail, step)


async def _page(
    web: Web,
    user: Principal,
    statuses: list[DmStatus],
    provider: Provider | None,
    cursor: str | None,
    source: LeadSource | None = None,
) -> dict[str, Any]:
    filters = LeadFilters(
        statuses=tuple(statuses), provider=provider, sources=(source,) if source else ()
    )
    async with web.api.sessions() as session:
        events = await events_url(session)  # before the read: the stream covers what follows
        try:
            page = await list_leads(session, user, filters, cursor, PAGE_SIZE)
        except Invalid as problem:
            raise PageError(400, "Bad page link", problem.detail) from problem
        leads = (
            await session.scalars(select(Lead).where(Lead.id.in_([i.id for i in page.items])))
        ).all()
        by_id = {lead.id: lead for lead in leads}
        connected = await instagram_connected(session, user.creator_id)
        rows = [
            await _row(web, session, by_id[item.id], connected)
            for item in page.items
            if item.id in by_id
        ]
    query: list[tuple[str, str]] = [("status", s.value) for s in statuses]
    if provider:
        query.append(("provider", provider.value))
    if source:
        query.append(("source", source.value))
    here = query + ([("cursor", cursor)] if cursor else [])
    return {
        "rows": rows,
        "statuses": list(DmStatus),
        "selected": {s.value for s in statuses},
        "provider": provider.value if provider else "",
        "providers": [p.value for p in Provider],
        "source": source.value if source else "",
        "next_url": f"/app/leads?{urlencode([*query, ('cursor', page.next_cursor)])}"
        if page.next_cursor
        else None,
        "first_url": f"/app/leads?{urlencode(query)}" if cursor else None,
        "rows_url": f"/app/leads/rows?{urlencode(here)}",
        "events_url": events,
    }


# The filter form sends "" for "any": read leniently, ignore what is not a value.
Statuses = Annotated[list[str] | None, Query(alias="status", max_length=32)]
ProviderParam = Annotated[str | None, Query(alias="provider", max_length=32)]
SourceParam = Annotated[str | None, Query(alias="source", max_length=32)]
Cursor = Annotated[str | None, Query(max_length=512)]


@dataclass(frozen=True)
class LeadQuery:
    statuses: list[DmStatus]
    provider: Provider | None
    cursor: str | None
    source: LeadSource | None = None


def lead_query(
    status: Statuses = None,
    provider: ProviderParam = None,
    cursor: Cursor = None,
    source: SourceParam = None,
) -> LeadQuery:
    return LeadQuery(
        statuses=[DmStatus(v) for v in status or [] if v in set(DmStatus)],
        provider=Provider(provider) if provider in set(Provider) else None,
        cursor=cursor,
        source=LeadSource(source) if source in set(LeadSource) else None,
    )


Filters = Annotated[LeadQuery, Depends(lead_query)]


@router.get("")
async def leads_page(
    request: Request,
    web: Web,
    user: CreatorUser,
    q: Filters,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    context = await _page(web, user, q.statuses, q.provider, q.cursor, q.source)
    context |= {"nav": "leads", "notice": NOTICES.get(notice or "")}
    return web.pages.render(request, "leads.html", context)


@router.get("/rows")
async def leads_rows(request: Request, web: Web, user: CreatorUser, q: Filters) -> Response:
    context = await _page(web, user, q.statuses, q.provider, q.cursor, q.source)
    return web.pages.render(request, "_lead_rows.html", context)


async def _lead(web: Web, user: Principal, lead_id: UUID) -> dict[str, Any]:
    async with web.api.sessions() as session:
        events = await events_url(session)  # before the read: the stream covers what follows
        try:
            lead = await load_lead(session, user, lead_id)
        except NotFound as problem:  # another creator's lead is absent, as in the API
            raise PageError(404, "Not found", "There is no such lead.") from problem
        row = await _row(web, session, lead, await instagram_connected(session, lead.creator_id))
        log = (
            await session.scalars(
                select(DmLogEntry).where(DmLogEntry.lead_id == lead.id).order_by(DmLogEntry.id)
            )
        ).all()
        extra = await lead_actions(session, lead)  # takeover, do not message
    return {"row": row, "log": log, "events_url": events} | extra


@router.get("/{lead_id}")
async def lead_page(lead_id: UUID, request: Request, web: Web, user: CreatorUser) -> Response:
    context = await _lead(web, user, lead_id)
    return web.pages.render(request, "lead.html", context | {"nav": "leads"})


@router.get("/{lead_id}/live")
async def lead_live(lead_id: UUID, request: Request, web: Web, user: CreatorUser) -> Response:
    """The lead's status and history, refreshed when the stream announces a change."""
    context = await _lead(web, user, lead_id)
    return web.pages.render(request, "_lead_detail.html", context)


@router.post("/{lead_id}/retry")
async def retry(lead_id: UUID, request: Request, web: Web, user: CreatorUser) -> Response:
    await web.security.check_csrf(request)
    correlation_id = str(uuid4())
    bind_correlation_id(correlation_id)
    try:
        async with web.api.uow() as uow:
            await retry_dm(uow, user, lead_id, correlation_id, web.api.retry_context())
    except NotFound as problem:
        raise PageError(404, "Not found", "There is no such lead.") from problem
    except DomainError:
        return RedirectResponse("/app/leads?notice=retry-refused", status_code=303)
    return RedirectResponse("/app/leads?notice=retry-started", status_code=303)
