"""Read side of the API: the lead list (filters, cursor pages) and the admin overview."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.http.schemas import (
    AccountOut,
    BreakerOut,
    DlqOut,
    LeadPage,
    LeadSummary,
    OverviewOut,
    ReasonCount,
)
from services.api.service_layer.errors import Invalid
from services.api.service_layer.principals import Principal
from shared.contracts.events import utcnow
from shared.contracts.lead_sources import LeadSource
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.db.models import Lead, SocialAccount
from shared.delivery.circuit import circuit_states


@dataclass(frozen=True)
class LeadFilters:
    statuses: tuple[DmStatus, ...] = ()
    provider: Provider | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    creator_id: UUID | None = None
    sources: tuple[LeadSource, ...] = ()


def encode_cursor(lead: Lead) -> str:
    raw = json.dumps([lead.created_at.isoformat(), str(lead.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, lead_id = json.loads(raw)
        return datetime.fromisoformat(created_at), UUID(lead_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise Invalid("the cursor is not one this API returned", kind="invalid-cursor") from exc


def _filtered(principal: Principal, f: LeadFilters) -> Select[Lead]:
    stmt = select(Lead)
    if not principal.sees_all_creators:
        stmt = stmt.where(Lead.creator_id == principal.creator_id)
    elif f.creator_id is not None:
        stmt = stmt.where(Lead.creator_id == f.creator_id)
    if f.statuses:
        stmt = stmt.where(Lead.dm_status.in_([s.value for s in f.statuses]))
    if f.provider is not None:
        stmt = stmt.where(Lead.dm_provider == f.provider)
    if f.sources:
        stmt = stmt.where(Lead.source.in_([s.value for s in f.sources]))
    if f.created_from is not None:
        stmt = stmt.where(Lead.created_at >= f.created_from)
    if f.created_to is not None:
        stmt = stmt.where(Lead.created_at < f.created_to)
    return stmt


async def list_leads(
    session: AsyncSession,
    principal: Principal,
    filters: LeadFilters,
    cursor: str | None,
    limit: int,
) -> LeadPage:
    """Newest first; the cursor is the (created_at, id) of the last lead of the page."""
    stmt = _filtered(principal, filters)
    if cursor is not None:
        stmt = stmt.where(tuple_(Lead.created_at, Lead.id) < tuple_(*decode_cursor(cursor)))
    stmt = stmt.order_by(Lead.created_at.desc(), Lead.id.desc()).limit(limit + 1)
    rows = list((await session.scalars(stmt)).all())
    page, more = rows[:limit], len(rows) > limit
    return LeadPage(
        items=[_summary(lead) for lead in page],
        next_cursor=encode_cursor(page[-1]) if more else None,
    )


def _summary(lead: Lead) -> LeadSummary:
    return LeadSummary(
        id=lead.id,
        creator_id=lead.creator_id,
        name=lead.name,
        created_at=lead.created_at,
        source=LeadSource(lead.source or LeadSource.API),
        dm_status=DmStatus(lead.dm_status),
        dm_provider=Provider(lead.dm_provider) if lead.dm_provider else None,
        dm_route=Route(lead.dm_route) if lead.dm_route else None,
        dm_attempt=lead.dm_attempt,
    )


async def overview(session: AsyncSession, dlq_size: int | None) -> OverviewOut:
    by_status = await session.execute(select(Lead.dm_status, func.count()).group_by(Lead.dm_status))
    provider = func.coalesce(Lead.dm_provider, "none")
    by_provider = await session.execute(select(provider, func.count()).group_by(provider))
    return OverviewOut(
        counts_by_status={status: n for status, n in by_status.all()},
        counts_by_provider={name: n for name, n in by_provider.all()},
        top_failure_reasons=await _top_failures(session),
        dlq=DlqOut(size=dlq_size),
        breakers=[
            BreakerOut(name=c.scope, state=c.state) for c in await circuit_states(session, utcnow())
        ],
        accounts_needing_reconnection=await _reconnect_needed(session),
    )


async def _top_failures(session: AsyncSession, top: int = 10) -> list[ReasonCount]:
    # The admin's view: the provider's message first (creators read dm_reason, plain words).
    reason = func.coalesce(Lead.dm_error_message, Lead.dm_reason, "no reason recorded")
    rows = await session.execute(
        select(reason, func.count().label("n"))
        .where(Lead.dm_status == DmStatus.FAILED)
        .group_by(reason)
        .order_by(func.count().desc())
        .limit(top)
    )
    return [ReasonCount(reason=r, count=n) for r, n in rows.all()]


async def _reconnect_needed(session: AsyncSession) -> list[AccountOut]:
    accounts = await session.scalars(
        select(SocialAccount)
        .where(
            (SocialAccount.status == "reconnect_required")
            # Expired but not yet marked (the refresher marks it on its next round).
            | ((SocialAccount.status == "connected") & (SocialAccount.token_expires_at <= utcnow()))
        )
        .order_by(SocialAccount.updated_at.desc())
    )
    return [
        AccountOut(
            account_id=a.id,
            creator_id=a.creator_id,
            provider=a.provider,
            username=a.username,
            status="reconnect_required",  # an expired token needs it as much as a refused one
            updated_at=a.updated_at,
        )
        for a in accounts
    ]
