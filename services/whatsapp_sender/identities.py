"""WhatsApp contacts by business-scoped user id first, phone number second (issue 19).

A contact row keeps its key (`wa_id`) for life: its phone if one was shown when it was
first met (every contact known before BSUIDs), else its BSUID. It is matched by BSUID
first, phone second (rows from before by their phone key). Everything hanging off it (the
window, pair pacing, tier, sent messages, deferred sends) names that key, so a webhook
naming the user by BSUID alone, by phone alone or by both finds the same row, and an
identity change only rewrites the row's `user_id` / `phone`: nothing is lost. Two rows
that turn out to be one person (met by phone, later by a BSUID with the phone hidden) are
merged into the older.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Lead, WhatsAppContact, WhatsAppDeferredSend, WhatsAppMessage
from shared.platform.logs import get_logger
from shared.providers.whatsapp_identity import IdentityChange, WaUser

log = get_logger(__name__)


def is_user_id(value: str) -> bool:
    """A BSUID (`US.1349…`, `US.ENT.…`) and never a phone number (digits only)."""
    return "." in value


async def find(session: AsyncSession, account_id: UUID, user: WaUser) -> list[WhatsAppContact]:
    """The rows naming this user, BSUID match first, locked (legacy rows have only a key)."""
    found: list[WhatsAppContact] = []
    for column, value in (
        (WhatsAppContact.user_id, user.user_id),
        (WhatsAppContact.phone, user.phone),
    ):
        if not value:
            continue
        row = await session.scalar(
            select(WhatsAppContact)
            .where(
                WhatsAppContact.account_id == account_id,
                or_(column == value, WhatsAppContact.wa_id == value),
            )
            .order_by((column == value).desc())
            .limit(1)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if row is not None and all(row is not f for f in found):
            found.append(row)
    return found


async def locked_for(session: AsyncSession, account_id: UUID, user: WaUser) -> WhatsAppContact:
    """The user's contact row, created if new, completed with what this webhook or send
    says about them, locked for this transaction."""
    if not user.known:
        raise ValueError("a WhatsApp user needs a BSUID or a phone number")
    rows = await find(session, account_id, user)
    if not rows:
        # A handle, never matched on: the phone if shown (as before BSUIDs), else the BSUID.
        key = user.phone or user.user_id
        values = {"account_id": account_id, "wa_id": key}
        await session.execute(insert(WhatsAppContact).values(**values).on_conflict_do_nothing())
        rows = await find(session, account_id, user)
    contact = rows[0]
    for other in rows[1:]:
        contact = await _merge(session, contact, other)
    _complete(contact, user)
    await session.flush()
    return contact


async def key_of(session: AsyncSession, account_id: UUID, user: WaUser) -> str | None:
    """The key of the user's contact, if AutoDM has one (no lock, no row created)."""
    rows = await find(session, account_id, user)
    return rows[0].wa_id if rows else None


async def learn(session: AsyncSession, account_id: UUID, key: str, user: WaUser) -> None:
    """A send's answer named the user (`contacts[{wa_id, user_id}]`): remember the pair."""
    contact = await session.get(WhatsAppContact, (account_id, key), with_for_update=True)
    if contact is None or not user.known:
        return
    for other in await find(session, account_id, user):
        if other is not contact:
            contact = await _merge(session, contact, other)
    _complete(contact, user)


async def apply_change(
    session: AsyncSession, account_id: UUID, creator_id: UUID, change: IdentityChange
) -> WhatsAppContact | None:
    """Re-key the contact the change names: its new BSUID / phone replace the old ones,
    its key, window, pacing, opt-ins and history stay; the creator's leads bound to the
    old BSUID follow it."""
    rows = await find(session, account_id, change.old)
    if not rows:
        log.info("identity change of an unknown whatsapp user: nothing to re-key")
        return None
    contact = rows[0]
    for other in rows[1:]:
        contact = await _merge(session, contact, other)
    new = WaUser(change.new_user_id, change.new_phone, None, change.new_parent_user_id)
    for other in await find(session, account_id, WaUser(new.user_id, new.phone)):
        if other is not contact:  # the user wrote under the new id before the change came
            contact = await _merge(session, contact, other)
    old_user_id = contact.user_id or change.old.user_id
    if new.user_id:
        contact.user_id = new.user_id
    if new.phone:
        contact.phone = new.phone
    contact.parent_user_id = new.parent_user_id or contact.parent_user_id
    if old_user_id and new.user_id and old_user_id != new.user_id:
        await session.execute(
            update(Lead)
            .where(Lead.creator_id == creator_id, Lead.whatsapp_user_id == old_user_id)
            .values(whatsapp_user_id=new.user_id)
        )
    await session.flush()
    log.info("whatsapp contact re-keyed", kind=change.kind)
    return contact


def _complete(contact: WhatsAppContact, user: WaUser) -> None:
    # A new BSUID for a known phone is Meta's current one (it changes with the number).
    contact.user_id = user.user_id or contact.user_id
    if user.phone and not is_user_id(user.phone):  # an answer echoing a BSUID as `wa_id`
        contact.phone = user.phone
    if contact.phone is None and not is_user_id(contact.wa_id):
        contact.phone = contact.wa_id  # a legacy row keyed by its phone
    contact.username = user.username or contact.username
    contact.parent_user_id = user.parent_user_id or contact.parent_user_id


async def _merge(
    session: AsyncSession, keep: WhatsAppContact, other: WhatsAppContact
) -> WhatsAppContact:
    """One person, two rows: the older key stays (its messages are the most), the other's
    facts and history move onto it and the other row goes."""
    if is_user_id(keep.wa_id) and not is_user_id(other.wa_id):
        keep, other = other, keep
    keep.last_inbound_at = _latest(keep.last_inbound_at, other.last_inbound_at)
    keep.next_send_at = _latest(keep.next_send_at, other.next_send_at)
    keep.tier_counted_at = _latest(keep.tier_counted_at, other.tier_counted_at)
    keep.profile_name = keep.profile_name or other.profile_name
    user = WaUser(other.user_id, other.phone, other.username, other.parent_user_id)
    account, key = keep.account_id, other.wa_id
    await session.execute(
        update(WhatsAppMessage)
        .where(WhatsAppMessage.account_id == account, WhatsAppMessage.wa_id == key)
        .values(wa_id=keep.wa_id)
    )
    await session.execute(
        update(WhatsAppDeferredSend)
        .where(WhatsAppDeferredSend.account_id == account, WhatsAppDeferredSend.wa_id == key)
        .values(wa_id=keep.wa_id)
    )
    await session.delete(other)
    await session.flush()  # the unique BSUID / phone are free before `keep` takes them
    _complete(keep, user)
    return keep


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(filter(None, (a, b)), default=None)
