"""Opt-out: a person who said stop gets nothing more from that creator, on any route.

A contact is suppressed per creator when they write a stop word (STOP and its usual
equivalents, in a few languages, plus the creator's own words) on Instagram or WhatsApp,
when WhatsApp refuses a send with 131050 (they stopped the business's marketing messages),
or when the creator marks them "do not message". A start word (START) or the creator
lifts it. The row keeps every identity known for the person (IGSID, WhatsApp number,
Instagram handle), so a later lead of the same person, from a form that only has the
handle or the phone, is matched too. Who is held back is decided in shared/delivery/dm_guard.py.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from sqlalchemy import ColumnElement, and_, delete, exists, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.events import DmStatusChanged, DmStatusPayload, utcnow
from shared.contracts.lifecycle import DmStatus, Route
from shared.contracts.topics import DM_STATUS
from shared.db.models import (
    Creator,
    DmSend,
    InstagramContact,
    Lead,
    SuppressedContact,
    WhatsAppMessage,
)
from shared.delivery.reasons import OPTED_OUT
from shared.messaging.outbox import add_to_outbox
from shared.providers.whatsapp_links import InvalidPhoneNumber, normalize_e164_digits

# Whole messages that mean "stop" (after case, accents and punctuation are folded away):
# the carriers' and Meta's usual list, and the same in the languages creators write in.
DEFAULT_STOP_WORDS = (
    "stop",
    "stop all",
    "stopall",
    "unsubscribe",
    "cancel",
    "end",
    "quit",
    "opt out",
    "optout",
    "arret",  # fr
    "arrete",
    "desabonner",
    "stopp",  # de, no, sv
    "abmelden",
    "parar",  # es, pt
    "pare",
    "basta",  # es, it
    "baja",
    "cancelar",
    "alto",
    "annulla",  # it
    "afmelden",  # nl
    "hentikan",  # id
    "berhenti",
)
DEFAULT_START_WORDS = ("start", "unstop", "resume", "subscribe")

# Where a suppression came from (the list's `source`).
SOURCE_INSTAGRAM = "instagram_stop"
SOURCE_WHATSAPP = "whatsapp_stop"
SOURCE_WHATSAPP_131050 = "whatsapp_131050"
SOURCE_CREATOR = "creator"
SOURCES = (SOURCE_INSTAGRAM, SOURCE_WHATSAPP, SOURCE_WHATSAPP_131050, SOURCE_CREATOR)

# DMs that have not gone out and will not without the system acting: a suppression or a
# takeover ends them at once (a DM `sending` is the sender's, which checks before its call).
PENDING = (DmStatus.QUEUED, DmStatus.AWAITING_CONTACT, DmStatus.LINK_READY)
MAX_PENDING = 1000
REACHING = ("sending", "unknown", "sent")
HANDLE = re.compile(r"^[a-z0-9._]{1,30}$")


def normalize_message(text: str) -> str:
    """'  Stop! ' -> 'stop', 'ARRÊT' -> 'arret': compared as whole messages."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[^\w]+", " ", folded).split())


def _words(words: Iterable[str]) -> frozenset[str]:
    return frozenset(filter(None, (normalize_message(w) for w in words)))


def is_stop(text: str, extra: Sequence[str] = ()) -> bool:
    """The whole message is a stop word (a message merely containing "stop" is not)."""
    return normalize_message(text) in _words((*DEFAULT_STOP_WORDS, *extra))


def is_start(text: str) -> bool:
    return normalize_message(text) in _words(DEFAULT_START_WORDS)


def normalize_words(words: Iterable[str]) -> list[str]:
    """A creator's extra stop words as they are matched, without duplicates, in order."""
    return list(dict.fromkeys(filter(None, (normalize_message(w) for w in words))))


def whatsapp_key(value: str | None) -> str | None:
    """The one key a WhatsApp identity is matched by: a phone as typed ('+44 20 ...') or a
    wa_id ('4420...') -> E.164 digits; None if it is no valid number."""
    raw = (value or "").strip()
    if not raw:
        return None
    if raw.isdigit():
        raw = f"+{raw}"
    try:
        return normalize_e164_digits(raw)
    except InvalidPhoneNumber:
        return None


def handle_key(value: str | None) -> str | None:
    """An Instagram username as matched: no '@', lower case; None if it is not one."""
    handle = (value or "").strip().lstrip("@").lower()
    return handle if HANDLE.match(handle) else None


@dataclass(frozen=True)
class Identities:
    """What a person is known by to one creator; any one of them matching is them."""

    igsid: str | None = None
    whatsapp: str | None = None
    handle: str | None = None

    def __bool__(self) -> bool:
        return bool(self.igsid or self.whatsapp or self.handle)

    def filled_from(self, other: Identities) -> Identities:
        return Identities(
            self.igsid or other.igsid,
            self.whatsapp or other.whatsapp,
            self.handle or other.handle,
        )

    def matches(self, row: SuppressedContact | Identities) -> bool:
        pairs = ((self.igsid, row.igsid), (self.whatsapp, row.whatsapp), (self.handle, row.handle))
        return any(mine is not None and mine == theirs for mine, theirs in pairs)


def of_lead(lead: Lead) -> Identities:
    return Identities(lead.igsid, whatsapp_key(lead.phone), handle_key(lead.instagram_username))


def matching(creator_ids: Iterable[UUID], ids: Iterable[Identities]) -> ColumnElement[bool]:
    """Suppression rows of these creators naming any of these identities (SQL)."""
    ids = list(ids)
    columns = (
        (SuppressedContact.igsid, {i.igsid for i in ids if i.igsid}),
        (SuppressedContact.whatsapp, {i.whatsapp for i in ids if i.whatsapp}),
        (SuppressedContact.handle, {i.handle for i in ids if i.handle}),
    )
    named = [column.in_(values) for column, values in columns if values]
    if not named:
        return false()
    return and_(SuppressedContact.creator_id.in_(set(creator_ids)), or_(*named))


async def find(
    session: AsyncSession, creator_id: UUID, ids: Identities
) -> SuppressedContact | None:
    if not ids:
        return None
    return await session.scalar(
        select(SuppressedContact)
        .where(matching([creator_id], [ids]))
        .order_by(SuppressedContact.created_at)
        .limit(1)
    )


async def widen(session: AsyncSession, creator_id: UUID, ids: Identities) -> Identities:
    """The person's other identities this creator knows: the handle and phone of their leads
    with this IGSID (or the comment's username), the leads a WhatsApp number was sent to."""
    lead_ids: list[UUID] = []
    if ids.whatsapp:
        rows = await session.scalars(
            select(WhatsAppMessage.lead_id)
            .where(WhatsAppMessage.creator_id == creator_id, WhatsAppMessage.wa_id == ids.whatsapp)
            .limit(20)
        )
        lead_ids = list(rows)
    clauses: list[ColumnElement[bool]] = [Lead.id.in_(lead_ids)] if lead_ids else []
    if ids.igsid:
        clauses.append(Lead.igsid == ids.igsid)
    if clauses:
        leads = await session.scalars(
            select(Lead)
            .where(Lead.creator_id == creator_id, or_(*clauses))
            .order_by(Lead.created_at.desc())
            .limit(20)
        )
        for lead in leads:
            ids = ids.filled_from(of_lead(lead))
    if ids.igsid and not ids.handle:
        username = await session.scalar(
            select(InstagramContact.username)
            .where(InstagramContact.igsid == ids.igsid, InstagramContact.username.is_not(None))
            .limit(1)
        )
        ids = replace(ids, handle=handle_key(username))
    return ids


async def suppress(
    session: AsyncSession,
    creator_id: UUID,
    ids: Identities,
    *,
    source: str,
    who: str,
    note: str | None = None,
) -> SuppressedContact:
    """Suppress the person (idempotent: an existing row naming them gains what was missing)."""
    ids = await widen(session, creator_id, ids)
    row = await find(session, creator_id, ids)
    if row is not None:
        row.igsid = row.igsid or ids.igsid
        row.whatsapp = row.whatsapp or ids.whatsapp
        row.handle = row.handle or ids.handle
        return row
    row = SuppressedContact(
        id=uuid4(),
        creator_id=creator_id,
        igsid=ids.igsid,
        whatsapp=ids.whatsapp,
        handle=ids.handle,
        source=source,
        note=(note or "")[:500] or None,
        created_by=who[:255],
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


async def lift(session: AsyncSession, creator_id: UUID, ids: Identities) -> int:
    """START: every row naming the person goes; how many there were."""
    if not ids:
        return 0
    result = await session.execute(
        delete(SuppressedContact)
        .where(matching([creator_id], [ids]))
        .returning(SuppressedContact.id)
    )
    return len(result.all())


async def end_pending(
    session: AsyncSession,
    creator_id: UUID,
    ids: Identities,
    reason: str,
    *,
    seed: str,
    correlation_id: str,
) -> int:
    """The person's DMs that have not gone out end `skipped` with `reason`, through the
    outbox in the caller's transaction; event ids derive from `seed`, so a redelivered
    webhook produces the same events (the projection skips them)."""
    if not ids:
        return 0
    clauses: list[ColumnElement[bool]] = []
    if ids.igsid:
        clauses.append(Lead.igsid == ids.igsid)
    if ids.handle:
        clauses.append(func.lower(func.ltrim(Lead.instagram_username, "@")) == ids.handle)
    if ids.whatsapp:
        clauses.append(Lead.phone.is_not(None))  # compared normalised, below
    leads = await session.scalars(
        select(Lead)
        .where(
            Lead.creator_id == creator_id,
            Lead.dm_status.in_(PENDING),
            Lead.erased_at.is_(None),
            ~_may_have_left(),
            or_(*clauses),
        )
        .order_by(Lead.created_at)
        .limit(MAX_PENDING)
    )
    ended = 0
    for lead in leads:
        if ids.matches(of_lead(lead)):
            add_to_outbox(
                session, DM_STATUS, str(lead.id), _skipped(lead, reason, seed, correlation_id)
            )
            ended += 1
    return ended


def _may_have_left() -> ColumnElement[bool]:
    """A send of the lead's DM that may have reached the person (its status event may not
    be projected yet): not a pending DM, whatever the lead row still says."""
    return exists().where(DmSend.lead_id == Lead.id, DmSend.state.in_(REACHING))


def _skipped(lead: Lead, reason: str, seed: str, correlation_id: str) -> DmStatusChanged:
    route = Route(lead.dm_route) if lead.dm_route else None
    return DmStatusChanged(
        id=uuid5(NAMESPACE_URL, f"held:{seed}:{lead.id}:{lead.dm_attempt}"),
        correlation_id=correlation_id,
        creator_id=lead.creator_id,
        payload=DmStatusPayload(
            lead_id=lead.id,
            status=DmStatus.SKIPPED,
            attempt=lead.dm_attempt,
            route=route,
            provider=route.provider if route else None,
            reason=reason,
        ),
    )


async def opt_out(
    session: AsyncSession,
    creator_id: UUID,
    ids: Identities,
    *,
    source: str,
    who: str,
    note: str | None,
    seed: str,
    correlation_id: str,
) -> SuppressedContact:
    """Suppress the person and end their pending DMs `skipped` (`opted_out`), in the
    caller's transaction."""
    row = await suppress(session, creator_id, ids, source=source, who=who, note=note)
    named = Identities(row.igsid, row.whatsapp, row.handle).filled_from(ids)
    await end_pending(
        session, creator_id, named, OPTED_OUT, seed=seed, correlation_id=correlation_id
    )
    return row


async def stop_words_of(session: AsyncSession, creator_id: UUID) -> list[str]:
    """The creator's own stop words (beside DEFAULT_STOP_WORDS)."""
    words = await session.scalar(select(Creator.opt_out_words).where(Creator.id == creator_id))
    return list(words or [])
