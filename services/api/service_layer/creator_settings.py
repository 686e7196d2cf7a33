"""Service layer for a creator's AutoDM settings: read and replace them. The settings page
and `GET`/`PUT /api/settings` both come here, so they can never disagree.

What each setting drives: the template is Creator.dm_template (the router renders every
DM from it), the route order is Creator.route_order (shared.contracts.route_choice.RouteOrder),
the pacing is Creator.dm_pace_per_h (the senders' delivery gate spaces each account's DMs by
it), the pause switch is the creator's own kill switch
(shared.delivery.kill_switch.creator_scope: every account of theirs, connected now or later),
and Comment to DM is Creator.comment_trigger
and comment_keywords (services/api/workers/comment_to_dm.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.http.schemas import CreatorSettingsIn, CreatorSettingsOut
from services.api.service_layer.leads import UnknownCreator
from shared.accounts.lifecycle import DISCONNECTED
from shared.contracts.route_choice import RouteOrder
from shared.db.models import Creator, SendingPause, SocialAccount
from shared.delivery.kill_switch import (
    GLOBAL,
    creator_scope,
    pause_in_scope,
    pause_scope,
    resume_in_scope,
)
from shared.messaging.unit_of_work import UnitOfWork

CREATOR_PAUSE_REASON = "paused by the creator"


@dataclass(frozen=True)
class Pauses:
    by_creator: bool  # the creator's own switch
    by_operator: str | None  # why an admin paused all sending or one of these accounts


async def read_settings(session: AsyncSession, creator_id: UUID) -> CreatorSettingsOut:
    creator = await _creator(session, creator_id)
    return _out(creator, await pauses_of(session, creator_id))


async def save_settings(
    uow: UnitOfWork, creator_id: UUID, data: CreatorSettingsIn, who: str
) -> CreatorSettingsOut:
    """Replace every setting (in the caller's unit of work); `who` is kept with a pause."""
    session = uow.session
    creator = await _creator(session, creator_id)
    creator.dm_template = data.dm_template
    creator.route_order = data.route_order
    creator.dm_pace_per_h = data.dm_pace_per_h
    creator.comment_trigger = data.comment_trigger
    creator.comment_keywords = list(data.comment_keywords)
    creator.source_templates = {str(k): v for k, v in data.source_templates.items()}
    scope = creator_scope(creator_id)
    if data.paused:
        await pause_in_scope(session, scope, CREATOR_PAUSE_REASON, who)
    else:
        await resume_in_scope(session, scope)
    return _out(creator, await pauses_of(session, creator_id))


async def pauses_of(session: AsyncSession, creator_id: UUID) -> Pauses:
    mine = creator_scope(creator_id)
    accounts = await session.scalars(
        select(SocialAccount.id).where(
            SocialAccount.creator_id == creator_id, SocialAccount.status != DISCONNECTED
        )
    )
    scopes = [mine, GLOBAL, *(pause_scope(account) for account in accounts)]
    rows = (await session.scalars(select(SendingPause).where(SendingPause.scope.in_(scopes)))).all()
    others = [r.reason for r in rows if r.scope != mine]
    return Pauses(any(r.scope == mine for r in rows), others[0] if others else None)


async def _creator(session: AsyncSession, creator_id: UUID) -> Creator:
    creator = await session.get(Creator, creator_id)
    if creator is None:
        raise UnknownCreator(str(creator_id))
    return creator


def _out(creator: Creator, pauses: Pauses) -> CreatorSettingsOut:
    return CreatorSettingsOut(
        creator_id=creator.id,
        dm_template=creator.dm_template,
        route_order=RouteOrder(creator.route_order),
        dm_pace_per_h=creator.dm_pace_per_h,
        paused=pauses.by_creator,
        comment_trigger=creator.comment_trigger,
        comment_keywords=creator.comment_keywords,
        source_templates=creator.source_templates or {},
        paused_by_operator=pauses.by_operator,
    )
