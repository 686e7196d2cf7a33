"""What the router reads besides the lead, for a whole batch of leads at once.

Routing a lead needs its creator, the creator's connected Instagram and WhatsApp accounts,
whether a WhatsApp template is approved, the lead's contact rows (the 24 h windows), its
comment and whether a private reply already went out. Read per lead that was ~4 round
trips; read per batch it is one query per kind of row, and only for kinds some lead of the
batch needs (docs/BENCHMARKS.md). Private replies are looked up by comment, not by lead:
Instagram allows one per comment, whichever lead's it was. A single lead (a retry, an
opened contact, the API's retry verdict) goes through the same code with a batch of one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.service_layer.whatsapp_accounts import CONNECTED
from shared.contracts.consent import FORM_ORIGIN
from shared.contracts.lifecycle import Provider, Route
from shared.db.models import (
    Creator,
    DmSend,
    InstagramComment,
    InstagramContact,
    Lead,
    SocialAccount,
    WhatsAppContact,
    WhatsAppMessage,
    WhatsAppTemplate,
)
from shared.providers.whatsapp_links import InvalidPhoneNumber, normalize_e164_digits


@dataclass(frozen=True)
class RoutingFacts:
    creators: dict[UUID, Creator]
    # (creator, provider) -> the creator's connected account of that provider
    accounts: dict[tuple[UUID, str], SocialAccount]
    templated: frozenset[UUID]  # WhatsApp accounts with an approved template
    wa_contacts: dict[tuple[UUID, str], WhatsAppContact]  # (account, wa_id)
    ig_contacts: dict[tuple[UUID, str], InstagramContact]  # (account, igsid)
    comments: dict[str, InstagramComment]
    # Comments whose one private reply is used: an intent that may have reached the person
    # (failed and skipped ones did not), or a lead of this batch routed to it already.
    used_replies: set[str]
    # Public-form lead -> when its phone or handle last got a DM from the creator (another
    # lead's); only form leads are looked up (docs/WEB.md, "Form limits").
    last_dm_to: dict[UUID, datetime] = field(default_factory=dict)

    def instagram_account(self, creator_id: UUID) -> SocialAccount | None:
        return self.accounts.get((creator_id, Provider.INSTAGRAM))

    def whatsapp_account(self, creator_id: UUID) -> SocialAccount | None:
        return self.accounts.get((creator_id, Provider.WHATSAPP))

    def reply_used(self, comment_id: str) -> bool:
        return comment_id in self.used_replies

    def use_reply(self, comment_id: str) -> None:
        self.used_replies.add(comment_id)

    def whatsapp_window_open(self, lead: Lead, now: datetime, window: timedelta) -> bool:
        """The lead wrote to the creator's connected WhatsApp number within `window`."""
        account = self.whatsapp_account(lead.creator_id)
        if account is None:
            return False
        # By BSUID first, phone second: either may be all a webhook showed (issue 19).
        keys = (lead.whatsapp_user_id, _wa_id(lead.phone))
        contacts = [self.wa_contacts.get((account.id, k)) for k in keys if k]
        last = max((c.last_inbound_at for c in contacts if c and c.last_inbound_at), default=None)
        return last is not None and now - last < window

    def recently_messaged(self, lead: Lead, now: datetime, cooldown: timedelta) -> bool:
        """A public-form lead naming someone the creator messaged within `cooldown`."""
        last = self.last_dm_to.get(lead.id)
        return bool(cooldown) and last is not None and now - last < cooldown


async def load_facts(session: AsyncSession, leads: Collection[Lead]) -> RoutingFacts:
    creator_ids = {lead.creator_id for lead in leads}
    if not creator_ids:
        return RoutingFacts({}, {}, frozenset(), {}, {}, {}, set())
    creators = await session.scalars(select(Creator).where(Creator.id.in_(creator_ids)))
    accounts = await _connected_accounts(session, creator_ids)
    ig = {c: a for (c, provider), a in accounts.items() if provider == Provider.INSTAGRAM}
    wa = {c: a for (c, provider), a in accounts.items() if provider == Provider.WHATSAPP}
    return RoutingFacts(
        creators={c.id: c for c in creators},
        accounts=accounts,
        templated=await _templated(session, {a.id for a in wa.values()}),
        wa_contacts=await _wa_contacts(session, leads, wa),
        ig_contacts=await _ig_contacts(session, leads, ig),
        comments=await _comments(session, leads, ig),
        used_replies=await _used_replies(session, leads),
        last_dm_to=await _last_dm_to(session, leads, wa),
    )


async def _connected_accounts(
    session: AsyncSession, creator_ids: set[UUID]
) -> dict[tuple[UUID, str], SocialAccount]:
    rows = await session.scalars(
        select(SocialAccount)
        .where(
            SocialAccount.creator_id.in_(creator_ids),
            SocialAccount.provider.in_((Provider.INSTAGRAM, Provider.WHATSAPP)),
            SocialAccount.status == CONNECTED,
        )
        # Should a creator have two connected accounts of a provider, the same one every time.
        .order_by(SocialAccount.created_at, SocialAccount.id)
    )
    accounts: dict[tuple[UUID, str], SocialAccount] = {}
    for account in rows:
        accounts.setdefault((account.creator_id, account.provider), account)
    return accounts


async def _templated(session: AsyncSession, account_ids: set[UUID]) -> frozenset[UUID]:
    if not account_ids:
        return frozenset()
    rows = await session.scalars(
        select(WhatsAppTemplate.account_id)
        .where(WhatsAppTemplate.account_id.in_(account_ids), WhatsAppTemplate.status == "approved")
        .distinct()
    )
    return frozenset(rows)


async def _wa_contacts(
    session: AsyncSession, leads: Collection[Lead], wa: dict[UUID, SocialAccount]
) -> dict[tuple[UUID, str], WhatsAppContact]:
    """Contacts by every name a lead knows them by (phone, BSUID), each row under its key,
    its phone and its BSUID (services/whatsapp_sender/identities.py)."""
    keys = set()
    for lead in leads:
        account = wa.get(lead.creator_id)
        for name in (_wa_id(lead.phone), lead.whatsapp_user_id):
            if account is not None and name is not None:
                keys.add((account.id, name))
    rows: list[WhatsAppContact] = []
    for column in ("wa_id", "phone", "user_id"):
        rows += await _by_keys(session, WhatsAppContact, (WhatsAppContact.account_id, column), keys)
    found: dict[tuple[UUID, str], WhatsAppContact] = {}
    for c in rows:
        for name in (c.wa_id, c.phone, c.user_id):
            if name:
                found[(c.account_id, name)] = c
    return found


async def _ig_contacts(
    session: AsyncSession, leads: Collection[Lead], ig: dict[UUID, SocialAccount]
) -> dict[tuple[UUID, str], InstagramContact]:
    keys = set()
    for lead in leads:
        account = ig.get(lead.creator_id)
        if account is not None and lead.igsid:
            keys.add((account.id, lead.igsid))
    rows = await _by_keys(session, InstagramContact, (InstagramContact.account_id, "igsid"), keys)
    return {(c.account_id, c.igsid): c for c in rows}


async def _by_keys(
    session: AsyncSession, model: Any, columns: tuple[Any, str], keys: set[tuple[UUID, str]]
) -> list[Any]:
    """Rows of a two-column primary key, for the keys given (none: no round trip)."""
    if not keys:
        return []
    account_column, name = columns
    rows = await session.scalars(
        select(model).where(tuple_(account_column, getattr(model, name)).in_(sorted(keys)))
    )
    return list(rows)


async def _comments(
    session: AsyncSession, leads: Collection[Lead], ig: dict[UUID, SocialAccount]
) -> dict[str, InstagramComment]:
    ids = {lead.comment_id for lead in leads if lead.comment_id and lead.creator_id in ig}
    if not ids:
        return {}
    rows = await session.scalars(
        select(InstagramComment).where(InstagramComment.comment_id.in_(ids))
    )
    return {c.comment_id: c for c in rows}


async def _used_replies(session: AsyncSession, leads: Collection[Lead]) -> set[str]:
    ids = {lead.comment_id for lead in leads if lead.comment_id}
    if not ids:
        return set()
    rows = await session.scalars(
        select(Lead.comment_id)
        .join(DmSend, DmSend.lead_id == Lead.id)
        .where(
            Lead.comment_id.in_(ids),
            DmSend.route == Route.IG_PRIVATE_REPLY,
            DmSend.state.not_in(_NOT_SENT),
        )
        .distinct()
    )
    return {c for c in rows if c}


_NOT_SENT = ("failed", "skipped")  # intent states that certainly did not reach the person


async def _last_dm_to(
    session: AsyncSession, leads: Collection[Lead], wa: dict[UUID, SocialAccount]
) -> dict[UUID, datetime]:
    """For each public-form lead, the latest DM another lead of the creator got on the same
    WhatsApp number or Instagram user. A few indexed reads per form lead: form leads are
    people typing, never a bulk import."""
    found: dict[UUID, datetime] = {}
    for lead in leads:
        if lead.origin != FORM_ORIGIN:
            continue
        times = [await _last_wa_dm(session, lead, wa.get(lead.creator_id))]
        times.append(await _last_ig_dm(session, lead))
        latest = max(filter(None, times), default=None)
        if latest is not None:
            found[lead.id] = latest
    return found


async def _last_wa_dm(
    session: AsyncSession, lead: Lead, account: SocialAccount | None
) -> datetime | None:
    wa_id = _wa_id(lead.phone)
    if account is None or wa_id is None:
        return None
    return await session.scalar(
        select(func.max(WhatsAppMessage.created_at)).where(
            WhatsAppMessage.account_id == account.id,
            WhatsAppMessage.wa_id == wa_id,
            WhatsAppMessage.lead_id != lead.id,
        )
    )


async def _last_ig_dm(session: AsyncSession, lead: Lead) -> datetime | None:
    same_person = []
    if lead.igsid:
        same_person.append(Lead.igsid == lead.igsid)
    if lead.instagram_username:
        same_person.append(func.lower(Lead.instagram_username) == lead.instagram_username.lower())
    if not same_person:
        return None
    return await session.scalar(
        select(func.max(Lead.sent_at)).where(
            Lead.creator_id == lead.creator_id,
            Lead.id != lead.id,
            Lead.dm_provider == Provider.INSTAGRAM,
            Lead.sent_at.is_not(None),
            or_(*same_person),
        )
    )


def _wa_id(phone: str | None) -> str | None:
    try:
        return normalize_e164_digits(phone or "")
    except InvalidPhoneNumber:
        return None
