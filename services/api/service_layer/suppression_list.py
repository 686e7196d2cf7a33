"""Service layer of the suppression list and of human takeover, for the JSON API
(services/api/http/routes/suppressions.py) and the creator's pages
(services/api/http/web/suppressions.py): who is suppressed (with who added them, when and why), add
and remove, the CSV export, an admin's counts, the creator's opt-out settings, a lead's takeover and
handing it back."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.service_layer.leads import UnknownCreator
from shared.contracts.events import utcnow
from shared.db.models import ConversationTakeover, Creator, Lead, SuppressedContact
from shared.delivery import suppression, takeover
from shared.delivery.suppression import Identities

MAX_LISTED = 1000
CSV_FIELDS = (
    "id",
    "instagram_username",
    "igsid",
    "whatsapp",
    "source",
    "note",
    "created_by",
    "created_at",
)


@dataclass(frozen=True)
class NewSuppression:
    """Whom the creator marks "do not message": a lead of theirs, or identities typed in."""

    lead_id: UUID | None = None
    instagram_username: str | None = None
    igsid: str | None = None
    phone: str | None = None
    note: str | None = None


class LeadNotFound(Exception):
    """The lead named by a suppression is not one of this creator's (its id is the message)."""


async def list_suppressions(
    session: AsyncSession, creator_id: UUID, limit: int = MAX_LISTED
) -> Sequence[SuppressedContact]:
    rows = await session.scalars(
        select(SuppressedContact)
        .where(SuppressedContact.creator_id == creator_id)
        .order_by(SuppressedContact.created_at.desc(), SuppressedContact.id)
        .limit(limit)
    )
    return rows.all()


def _phone_key(phone: str | None) -> str | None:
    """A typed number as matched; one that is no valid number is kept as its digits (it
    matches the same digits, never anyone else)."""
    if not phone:
        return None
    return suppression.whatsapp_key(phone) or re.sub(r"\D", "", phone) or None


async def add_suppression(
    session: AsyncSession, creator_id: UUID, new: NewSuppression, who: str, correlation_id: str
) -> SuppressedContact:
    """Suppress the person; their pending DMs end `skipped` (`opted_out`) at once."""
    await _creator(session, creator_id)  # UnknownCreator: an admin named no real creator
    ids = Identities(
        new.igsid, _phone_key(new.phone), suppression.handle_key(new.instagram_username)
    )
    if new.lead_id is not None:
        lead = await session.get(Lead, new.lead_id)
        if lead is None or lead.creator_id != creator_id:
            raise LeadNotFound(str(new.lead_id))
        ids = ids.filled_from(suppression.of_lead(lead))
    return await suppression.opt_out(
        session,
        creator_id,
        ids,
        source=suppression.SOURCE_CREATOR,
        who=who,
        note=new.note,
        seed=f"creator:{correlation_id}",
        correlation_id=correlation_id,
    )


async def remove_suppression(session: AsyncSession, creator_id: UUID, entry_id: UUID) -> bool:
    result = await session.execute(
        delete(SuppressedContact)
        .where(SuppressedContact.id == entry_id, SuppressedContact.creator_id == creator_id)
        .returning(SuppressedContact.id)
    )
    return result.first() is not None


def as_csv(rows: Sequence[SuppressedContact]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for row in rows:
        writer.writerow(
            [
                row.id,
                row.handle or "",
                row.igsid or "",
                f"+{row.whatsapp}" if row.whatsapp else "",
                row.source,
                _cell(row.note or ""),
                _cell(row.created_by),
                row.created_at.isoformat(),
            ]
        )
    return out.getvalue()


def _cell(value: str) -> str:
    """No formula injection when the export is opened in a spreadsheet."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


async def counts(session: AsyncSession) -> list[tuple[UUID, str, int]]:
    """(creator, source, how many), for an admin."""
    rows = await session.execute(
        select(SuppressedContact.creator_id, SuppressedContact.source, func.count())
        .group_by(SuppressedContact.creator_id, SuppressedContact.source)
        .order_by(SuppressedContact.creator_id, SuppressedContact.source)
    )
    return [(creator, source, count) for creator, source, count in rows.all()]


@dataclass(frozen=True)
class OptOutSettings:
    stop_words: list[str]
    takeover_hours: int


async def read_opt_out_settings(session: AsyncSession, creator_id: UUID) -> OptOutSettings:
    creator = await _creator(session, creator_id)
    return OptOutSettings(list(creator.opt_out_words), creator.takeover_hours)


async def save_opt_out_settings(
    session: AsyncSession, creator_id: UUID, settings: OptOutSettings
) -> OptOutSettings:
    creator = await _creator(session, creator_id)
    creator.opt_out_words = suppression.normalize_words(settings.stop_words)
    creator.takeover_hours = settings.takeover_hours
    return OptOutSettings(list(creator.opt_out_words), creator.takeover_hours)


async def _creator(session: AsyncSession, creator_id: UUID) -> Creator:
    creator = await session.get(Creator, creator_id)
    if creator is None:
        raise UnknownCreator(str(creator_id))
    return creator


async def lead_takeover(
    session: AsyncSession, lead: Lead, now: datetime
) -> ConversationTakeover | None:
    """The creator's open takeover of this lead's conversation, if any."""
    return await takeover.active(session, lead.creator_id, lead.igsid, now)


async def hand_back(session: AsyncSession, lead: Lead, who: str, now: datetime) -> bool:
    return await takeover.hand_back(session, lead.creator_id, lead.igsid, who, now)


async def lead_actions(session: AsyncSession, lead: Lead) -> dict[str, object]:
    """What the lead's page shows of opt-out and takeover."""
    found = await suppression.find(session, lead.creator_id, suppression.of_lead(lead))
    return {
        "takeover": await lead_takeover(session, lead, utcnow()),
        "suppressed": found is not None,
    }
