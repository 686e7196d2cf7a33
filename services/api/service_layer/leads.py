"""Service layer for leads: accept one (lead + lead.created in one transaction), read one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.http.schemas import LeadIn
from services.api.service_layer.dm_state import log_created
from services.api.service_layer.errors import NotFound
from services.api.service_layer.tracked_links import tracked_link
from shared.contracts.consent import API_CONSENT, FORM_ORIGIN
from shared.contracts.events import (
    InstagramContact,
    LeadCreatedPayloadV2,
    LeadCreatedV2,
    utcnow,
)
from shared.contracts.lead_sources import LeadSource, source_of
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.contracts.topics import LEADS_CREATED
from shared.db.models import DmLogEntry, Lead
from shared.delivery.reasons import reason_code
from shared.messaging.unit_of_work import UnitOfWork

FOREIGN_KEY_VIOLATION = "23503"  # PostgreSQL's SQLSTATE


class UnknownCreator(NotFound):
    """The lead names a creator that does not exist (a 404 for the caller). The unit of
    work's transaction is then aborted: raised through it, it rolls back."""

    def __init__(self, creator_id: object) -> None:
        super().__init__(f"creator {creator_id} not found")
        self.creator_id = creator_id


async def create_lead(
    uow: UnitOfWork,
    data: LeadIn,
    correlation_id: str,
    *,
    requested_provider: Provider | None = None,
    origin: str | None = None,
    source: LeadSource | None = None,
    source_post: str | None = None,
) -> Lead:
    """Store the lead and its lead.created event atomically; the relay publishes it.
    `origin` "form" marks the public form: its phone is nobody's consent
    (shared.contracts.consent). `source` is AutoDM's own word (Comment to DM), else the
    form's or the caller's."""
    creator_id = data.creator_id
    if creator_id is None:
        raise UnknownCreator(str(creator_id))
    ig = data.instagram
    now = utcnow()
    source = source or source_of(origin, data.source)
    lead = Lead(
        id=uuid4(),
        creator_id=creator_id,
        name=data.name,
        message=data.message,
        phone=data.phone,
        whatsapp_opt_in=data.whatsapp_opt_in,
        whatsapp_user_id=data.whatsapp_user_id,
        origin=origin,
        whatsapp_consent_source=_consent_source(data, origin),
        dm_requested_provider=requested_provider,
        instagram_username=ig.username if ig else None,
        igsid=ig.igsid if ig else None,
        last_inbound_at=ig.last_inbound_at if ig else None,
        comment_id=ig.comment_id if ig else None,
        commented_at=ig.commented_at if ig else None,
        source=source,
        source_post=source_post,
        ref=secrets.token_urlsafe(12),
        dm_status=DmStatus.QUEUED,
        dm_attempt=1,
        dm_attempts=0,
        created_at=now,
        updated_at=now,
    )
    uow.add(lead)
    event = LeadCreatedV2(
        occurred_at=now,
        correlation_id=correlation_id,
        creator_id=creator_id,
        payload=LeadCreatedPayloadV2(
            lead_id=lead.id,
            name=data.name,
            message=data.message,
            phone=data.phone,
            whatsapp_opt_in=data.whatsapp_opt_in,
            instagram=InstagramContact(**ig.model_dump()) if ig else InstagramContact(),
            source=source,
            source_post=source_post,
        ),
    )
    log_created(uow, lead, event.id, now)
    uow.publish(LEADS_CREATED, str(creator_id), event)
    try:
        # The three new rows and the relay's wake in one statement (the lead is never
        # changed again in this unit); the rows' foreign keys are checked at its end.
        await uow.insert_new()
    except IntegrityError as exc:
        # The creator's existence is the foreign key's to check, not a read before the
        # insert: one round trip less per lead (docs/BENCHMARKS.md).
        if getattr(exc.orig, "sqlstate", None) == FOREIGN_KEY_VIOLATION:
            raise UnknownCreator(str(creator_id)) from exc
        raise
    return lead


def _consent_source(data: LeadIn, origin: str | None) -> str | None:
    if not data.whatsapp_opt_in:
        return None
    if origin == FORM_ORIGIN:
        return FORM_ORIGIN  # claimed by whoever typed the number: proven only by its owner
    return data.whatsapp_consent_source or API_CONSENT


@dataclass(frozen=True)
class DmErrorView:
    code: int | None
    subcode: int | None
    message: str | None


@dataclass(frozen=True)
class DmLogView:
    status: DmStatus
    attempt: int
    occurred_at: datetime
    detail: dict[str, Any]


@dataclass(frozen=True)
class DmView:
    status: DmStatus
    route: Route | None
    provider: Provider | None
    attempt: int
    link: str | None
    tracked_link: str | None
    link_clicks: int
    reason: str | None
    reason_code: str | None
    error: DmErrorView | None
    provider_message_id: str | None
    sent_at: datetime | None
    read_at: datetime | None
    log: list[DmLogView]


@dataclass(frozen=True)
class LeadView:
    """A lead and its DM as the service layer tells it: the API shapes it as LeadOut (the
    same fields), the CLI as a table or the same JSON."""

    id: UUID
    creator_id: UUID
    name: str
    phone: str | None
    instagram_username: str | None
    whatsapp_opt_in: bool
    whatsapp_user_id: str | None
    created_at: datetime
    source: LeadSource
    source_post: str | None
    dm: DmView


async def get_lead(session: AsyncSession, lead_id: UUID) -> LeadView | None:
    lead = await session.get(Lead, lead_id)
    if lead is None:
        return None
    log = (
        await session.scalars(
            select(DmLogEntry).where(DmLogEntry.lead_id == lead_id).order_by(DmLogEntry.id)
        )
    ).all()
    return to_lead_view(lead, list(log))


def new_lead_view(lead: Lead) -> LeadView:
    """The answer for a lead just created, from what this request wrote (no read back):
    a new lead's log is exactly its one `queued` line, written at `created_at`."""
    queued = DmLogEntry(status=DmStatus.QUEUED, attempt=1, occurred_at=lead.created_at, detail={})
    return to_lead_view(lead, [queued])


def to_lead_view(lead: Lead, log: list[DmLogEntry]) -> LeadView:
    error = None
    if lead.dm_error_code is not None or lead.dm_error_message:
        error = DmErrorView(
            code=lead.dm_error_code, subcode=lead.dm_error_subcode, message=lead.dm_error_message
        )
    return LeadView(
        id=lead.id,
        creator_id=lead.creator_id,
        name=lead.name,
        phone=lead.phone,
        instagram_username=lead.instagram_username,
        whatsapp_opt_in=lead.whatsapp_opt_in,
        whatsapp_user_id=lead.whatsapp_user_id,
        created_at=lead.created_at,
        source=LeadSource(lead.source or LeadSource.API),
        source_post=lead.source_post,
        dm=DmView(
            status=DmStatus(lead.dm_status),
            route=Route(lead.dm_route) if lead.dm_route else None,
            provider=Provider(lead.dm_provider) if lead.dm_provider else None,
            attempt=lead.dm_attempt,
            link=lead.dm_link,
            tracked_link=tracked_link(lead),
            link_clicks=lead.link_clicks or 0,
            reason=lead.dm_reason,
            reason_code=reason_code(lead.dm_reason),
            error=error,
            provider_message_id=lead.provider_message_id,
            sent_at=lead.sent_at,
            read_at=lead.read_at,
            log=[
                DmLogView(
                    status=DmStatus(e.status),
                    attempt=e.attempt,
                    occurred_at=e.occurred_at,
                    detail=e.detail,
                )
                for e in log
            ],
        ),
    )
