"""What the database holds about one platform user, and its deletion (data-deletion callback).

A person is named by the id Meta's signed request carries: their IGSID. Their leads (by
that IGSID, and form leads by the usernames and phones those leads and Instagram's facts
gave for them) are anonymised in place: the creator's counts (how many leads, which
status, route and day) stay, every field naming or quoting the person goes. Everything
else holding their ids, handle, phone or texts is deleted: Instagram contacts and
comments, WhatsApp contacts/backlog/deferred sends, outbox rows, dead letters and stored
API answers. The DM log keeps each lead's timeline without its details; send intents keep
their state (so a DM in flight is never sent twice) but lose the recipient and the text's
hash. docs/RELIABILITY.md (Privacy) lists every store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, CursorResult, Text, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.lifecycle import DmStatus, Route
from shared.db.models import (
    DeadLetter,
    DmLogEntry,
    DmSend,
    IdempotencyKey,
    InstagramComment,
    InstagramContact,
    Lead,
    OutboxRecord,
    WhatsAppContact,
    WhatsAppDeferredSend,
    WhatsAppMessage,
    WhatsAppStatusBacklog,
)

ERASED_NAME = "(deleted)"
ERASED_REASON = "deleted at the person's request"
# DMs that have not left yet end here; `sending`/`unknown` ones are the senders'.
NOT_STARTED = (DmStatus.QUEUED, DmStatus.AWAITING_CONTACT, DmStatus.LINK_READY)
# Send intents: no request's attempt gets near this (an int4 column's maximum).
BLOCKED_ATTEMPT = 2**31 - 1
IN_FLIGHT = ("sending", "unknown", "sent")
# Shorter strings are not searched for inside free text (they would match anything).
MIN_TEXT_NEEDLE = 5


@dataclass
class Subject:
    """Every identifier of one person that AutoDM may have stored."""

    igsid: str
    usernames: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    # WhatsApp business-scoped user ids (BSUIDs) of their leads: a username user may have
    # shown no phone at all.
    wa_user_ids: set[str] = field(default_factory=set)
    lead_ids: list[UUID] = field(default_factory=list)

    @property
    def wa_ids(self) -> set[str]:
        # A WhatsApp contact's key: the number's digits (stored phones are E.164), or its
        # BSUID when no phone was ever shown.
        digits = {d for d in ("".join(c for c in p if c.isdigit()) for p in self.phones) if d}
        return digits | self.wa_user_ids

    def needles(self) -> set[str]:
        return {self.igsid, *self.usernames, *self.phones, *self.wa_ids}


async def erase_subject(session: AsyncSession, igsid: str) -> dict[str, Any]:
    """Delete or anonymise everything about this person; counts of what was removed."""
    subject = await _find_subject(session, igsid)
    summary: dict[str, Any] = {}
    summary.update(await _erase_whatsapp(session, subject))
    summary.update(await _erase_instagram(session, subject))
    summary.update(await _erase_leads(session, subject))
    summary.update(await _erase_records(session, subject))
    return {name: count for name, count in summary.items() if count}


async def _find_subject(session: AsyncSession, igsid: str) -> Subject:
    subject = Subject(igsid=igsid)
    facts = await session.execute(
        select(Lead.instagram_username, Lead.phone).where(Lead.igsid == igsid)
    )
    for username, phone in facts:
        _add(subject.usernames, username)
        _add(subject.phones, phone)
    for column, key in (
        (InstagramContact.username, InstagramContact.igsid),
        (InstagramComment.username, InstagramComment.igsid),
    ):
        for username in await session.scalars(select(column).where(key == igsid)):
            _add(subject.usernames, username)
    leads = await session.execute(
        select(Lead.id, Lead.instagram_username, Lead.phone, Lead.whatsapp_user_id)
        .where(_leads_of(subject))
        .order_by(Lead.id)
        .with_for_update()
    )
    for lead_id, username, phone, wa_user_id in leads:
        subject.lead_ids.append(lead_id)
        _add(subject.usernames, username)
        _add(subject.phones, phone)
        if wa_user_id:
            subject.wa_user_ids.add(wa_user_id)
    return subject


def _add(found: set[str], value: str | None) -> None:
    if value:
        found.add(value.lower() if not value.startswith("+") else value)


def _leads_of(subject: Subject) -> ColumnElement[bool]:
    clauses = [Lead.igsid == subject.igsid]
    if subject.usernames:
        clauses.append(func.lower(Lead.instagram_username).in_(subject.usernames))
    if subject.phones:
        clauses.append(Lead.phone.in_(subject.phones))
    return or_(*clauses)


async def _erase_leads(session: AsyncSession, subject: Subject) -> dict[str, int]:
    ids = subject.lead_ids
    if not ids:
        return {}
    await session.execute(
        update(Lead)
        .where(Lead.id.in_(ids), Lead.dm_status.in_(NOT_STARTED))
        .values(dm_status=DmStatus.SKIPPED)
    )
    leads = await session.execute(
        update(Lead)
        .where(Lead.id.in_(ids))
        .values(
            name=ERASED_NAME,
            message="",
            phone=None,
            instagram_username=None,
            igsid=None,
            comment_id=None,
            last_inbound_at=None,
            commented_at=None,
            dm_link=None,
            dm_reason=ERASED_REASON,
            dm_error_message=None,
            erased_at=func.now(),
        )
    )
    intents = await session.execute(
        update(DmSend)
        .where(or_(DmSend.lead_id.in_(ids), DmSend.recipient_igsid == subject.igsid))
        .values(recipient_igsid=None, text_sha256=None)
    )
    await _block_sends(session, ids)
    return {
        "leads_anonymised": _count(leads),
        # The timeline stays (status, attempt, when); its details (links, texts) go.
        "dm_log_entries_scrubbed": _count(
            await session.execute(
                update(DmLogEntry).where(DmLogEntry.lead_id.in_(ids)).values(detail={})
            )
        ),
        "send_intents_anonymised": _count(intents),
    }


async def _block_sends(session: AsyncSession, ids: Sequence[UUID]) -> None:
    """A request still in a topic (a retry coming due, a route not yet tried) must not
    send to the person, nor write them back: every route's intent becomes final `skipped`
    at an attempt no request reaches, which no sender may take over."""
    rows = [
        {"lead_id": i, "route": r.value, "state": "skipped", "attempt": BLOCKED_ATTEMPT}
        for i in ids
        for r in Route
        if r != Route.NONE
    ]
    stmt = insert(DmSend).values(rows)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[DmSend.lead_id, DmSend.route],
            set_={"state": "skipped", "attempt": BLOCKED_ATTEMPT, "waiting_for": None},
            # A DM at the provider right now is the sender's to finish.
            where=DmSend.state.not_in(IN_FLIGHT),
        )
    )


async def _erase_instagram(session: AsyncSession, subject: Subject) -> dict[str, int]:
    contacts = [InstagramContact.igsid == subject.igsid]
    if subject.usernames:
        contacts.append(func.lower(InstagramContact.username).in_(subject.usernames))
    return {
        "instagram_contacts": await _delete(session, InstagramContact, or_(*contacts)),
        "instagram_comments": await _delete(
            session, InstagramComment, InstagramComment.igsid == subject.igsid
        ),
    }


async def _erase_whatsapp(session: AsyncSession, subject: Subject) -> dict[str, int]:
    wa_ids, ids = subject.wa_ids, subject.lead_ids
    counts: dict[str, int] = {}
    if wa_ids:
        counts["whatsapp_contacts"] = await _delete(
            session,
            WhatsAppContact,
            or_(
                WhatsAppContact.wa_id.in_(wa_ids),
                WhatsAppContact.user_id.in_(wa_ids),
                WhatsAppContact.phone.in_(wa_ids),
            ),
        )
    sent = or_(WhatsAppMessage.lead_id.in_(ids), WhatsAppMessage.wa_id.in_(wa_ids))
    wamids = list(await session.scalars(select(WhatsAppMessage.wamid).where(sent)))
    backlog = [
        WhatsAppStatusBacklog.wamid.in_(wamids),
        *_json_contains([WhatsAppStatusBacklog.item], wa_ids),
    ]
    counts["whatsapp_status_backlog"] = await _delete(session, WhatsAppStatusBacklog, or_(*backlog))
    # Kept without the number: later status webhooks still find the (anonymised) lead.
    counts["whatsapp_messages_anonymised"] = _count(
        await session.execute(update(WhatsAppMessage).where(sent).values(wa_id=""))
    )
    counts["whatsapp_deferred_sends"] = await _delete(
        session,
        WhatsAppDeferredSend,
        or_(
            WhatsAppDeferredSend.lead_id.in_(ids),
            *_json_contains([WhatsAppDeferredSend.request], subject.needles()),
        ),
    )
    return counts


async def _erase_records(session: AsyncSession, subject: Subject) -> dict[str, int]:
    """Rows keeping whole events or answers: found by the lead or by an identifier
    appearing as a JSON string value in them."""
    needles = subject.needles()
    outbox = _bytes_contain(OutboxRecord.payload, needles)
    letters = [
        *_bytes_contain(DeadLetter.payload, needles),
        *_json_contains([DeadLetter.headers], needles),
        *_text_contains([DeadLetter.detail], needles),
    ]
    if subject.lead_ids:
        letters.append(DeadLetter.lead_id.in_(subject.lead_ids))
    return {
        "outbox_records": await _delete(session, OutboxRecord, or_(*outbox)),
        "dead_letters": await _delete(session, DeadLetter, or_(*letters)),
        "idempotency_keys": await _delete(
            session, IdempotencyKey, or_(*_json_contains([IdempotencyKey.response_body], needles))
        ),
    }


def _quoted(needles: Iterable[str]) -> list[str]:
    return [f'"{n}"' for n in sorted(needles)]


def _json_contains(columns: Sequence[Any], needles: Iterable[str]) -> list[ColumnElement[bool]]:
    # jsonb's text form quotes every string value: "<id>" matches the value, not a part.
    return [func.strpos(c.cast(Text), n) > 0 for c in columns for n in _quoted(needles)]


def _bytes_contain(column: Any, needles: Iterable[str]) -> list[ColumnElement[bool]]:
    # `escape` keeps printable ASCII as is: an ASCII identifier is found in the JSON bytes.
    return [func.strpos(func.encode(column, "escape"), n) > 0 for n in _quoted(needles)]


def _text_contains(columns: Sequence[Any], needles: Iterable[str]) -> list[ColumnElement[bool]]:
    long = [n for n in needles if len(n) >= MIN_TEXT_NEEDLE]
    return [func.strpos(c, n) > 0 for c in columns for n in sorted(long)]


async def _delete(session: AsyncSession, model: Any, where: ColumnElement[bool]) -> int:
    return _count(await session.execute(delete(model).where(where)))


def _count(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0
