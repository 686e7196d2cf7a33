"""WhatsApp Business numbers of a creator: connect (token encrypted at rest like Instagram
tokens), templates with their lead-field parameters, disconnect. What the router reads of them (a
connected number, an approved template, the lead's open 24 h window) is
services.api.service_layer.routing_facts."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.service_layer.errors import Conflict, NotFound
from shared.contracts.events import utcnow
from shared.contracts.lifecycle import Provider
from shared.db.models import SocialAccount, WhatsAppNumber, WhatsAppTemplate
from shared.messaging.unit_of_work import UnitOfWork
from shared.platform.crypto import TokenCipher

CONNECTED = "connected"
# Meta's messaging tiers (platform facts §4c); "unlimited" is not capped by AutoDM.
TIERS = (250, 2_000, 10_000, 100_000)


class PhoneNumberTaken(Conflict):
    """The number is connected to another creator."""

    def __init__(self, phone_number_id: str) -> None:
        super().__init__("this number is connected to another creator")
        self.phone_number_id = phone_number_id


class UnknownNumber(NotFound):
    """No WhatsApp number of this creator has that id (a 404 for the caller)."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"no WhatsApp number {account_id} of this creator")


@dataclass(frozen=True)
class NumberSpec:
    phone_number_id: str
    access_token: str
    display_phone_number: str | None
    waba_id: str | None
    daily_limit: int
    messages_per_second: int


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    language: str
    parameters: list[str]
    is_default: bool


async def connect_number(
    uow: UnitOfWork, creator_id: UUID, spec: NumberSpec, cipher: TokenCipher
) -> tuple[SocialAccount, WhatsAppNumber]:
    """Connect (or reconnect: the token and limits are replaced) a number."""
    session = uow.session
    account = await session.scalar(
        select(SocialAccount)
        .where(
            SocialAccount.provider == Provider.WHATSAPP,
            SocialAccount.external_id == spec.phone_number_id,
        )
        .with_for_update()
    )
    if account is not None and account.creator_id != creator_id:
        raise PhoneNumberTaken(spec.phone_number_id)
    if account is None:
        account = SocialAccount(
            id=uuid4(),
            creator_id=creator_id,
            provider=Provider.WHATSAPP,
            external_id=spec.phone_number_id,
        )
        session.add(account)
    account.username = spec.display_phone_number
    account.status = CONNECTED
    account.access_token_encrypted = cipher.encrypt(spec.access_token)
    account.token_refreshed_at = utcnow()
    await session.flush()
    number = await session.get(WhatsAppNumber, account.id) or WhatsAppNumber(account_id=account.id)
    number.display_phone_number = spec.display_phone_number
    number.waba_id = spec.waba_id
    number.daily_limit = spec.daily_limit
    number.messages_per_second = spec.messages_per_second
    session.add(number)
    return account, number


async def creator_number(
    session: AsyncSession, creator_id: UUID, account_id: UUID
) -> tuple[SocialAccount, WhatsAppNumber]:
    account = await session.get(SocialAccount, account_id)
    number = await session.get(WhatsAppNumber, account_id)
    if account is None or number is None or account.creator_id != creator_id:
        raise UnknownNumber(str(account_id))
    return account, number


async def disconnect_number(uow: UnitOfWork, creator_id: UUID, account_id: UUID) -> None:
    session = uow.session
    account, _ = await creator_number(session, creator_id, account_id)
    account.status = "disconnected"
    account.access_token_encrypted = None


async def set_daily_limit(
    uow: UnitOfWork, creator_id: UUID, account_id: UUID, daily_limit: int
) -> WhatsAppNumber:
    _, number = await creator_number(uow.session, creator_id, account_id)
    number.daily_limit = daily_limit
    return number


async def upsert_template(
    uow: UnitOfWork, creator_id: UUID, account_id: UUID, spec: TemplateSpec
) -> WhatsAppTemplate:
    """Add or replace a template (by name + language); re-adding one approves it again."""
    session = uow.session
    await creator_number(session, creator_id, account_id)
    template = await session.scalar(
        select(WhatsAppTemplate).where(
            WhatsAppTemplate.account_id == account_id,
            WhatsAppTemplate.name == spec.name,
            WhatsAppTemplate.language == spec.language,
        )
    )
    if template is None:
        template = WhatsAppTemplate(
            id=uuid4(), account_id=account_id, name=spec.name, language=spec.language
        )
        session.add(template)
    if spec.is_default:
        # One default per number: the template cold DMs use.
        await session.execute(
            update(WhatsAppTemplate)
            .where(WhatsAppTemplate.account_id == account_id)
            .values(is_default=False)
        )
    template.parameters = list(spec.parameters)
    template.is_default = spec.is_default
    template.status = "approved"
    template.status_reason = None
    template.updated_at = utcnow()
    await session.flush()
    return template


async def list_templates(
    session: AsyncSession, creator_id: UUID, account_id: UUID
) -> list[WhatsAppTemplate]:
    await creator_number(session, creator_id, account_id)
    rows = await session.scalars(
        select(WhatsAppTemplate)
        .where(WhatsAppTemplate.account_id == account_id)
        .order_by(WhatsAppTemplate.created_at)
    )
    return list(rows)
