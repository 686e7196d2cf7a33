"""Kill switch: pause sending globally, for one account or for one creator (every account
of theirs, including accounts connected later), and resume, losing nothing.

A paused DM is not dropped and not failed: the sender defers it to the retry topic and
looks at it again every `paused_recheck_s`; after `resume` it goes out at the next look.
Senders re-read the pauses every `delivery_state_refresh_s`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import SendingPause

GLOBAL = "global"


def pause_scope(account_id: UUID | None) -> str:
    return str(account_id) if account_id else GLOBAL


def creator_scope(creator_id: UUID) -> str:
    """A creator's own switch: senders match it by the DM's tenant, not by account, so an
    account connected while paused is paused too."""
    return f"creator:{creator_id}"


@dataclass(frozen=True)
class PauseView:
    scope: str
    reason: str
    paused_by: str
    paused_at: datetime


async def pause_sending(
    session: AsyncSession, account_id: UUID | None, reason: str, paused_by: str
) -> bool:
    """Pause one account, or all (None); idempotent: False if it was paused already."""
    return await pause_in_scope(session, pause_scope(account_id), reason, paused_by)


async def resume_sending(session: AsyncSession, account_id: UUID | None) -> bool:
    """Resume one account, or all (None); idempotent: False if it was not paused."""
    return await resume_in_scope(session, pause_scope(account_id))


async def pause_in_scope(session: AsyncSession, scope: str, reason: str, paused_by: str) -> bool:
    stmt = insert(SendingPause).values(scope=scope, reason=reason[:500], paused_by=paused_by[:128])
    created = await session.scalar(stmt.on_conflict_do_nothing().returning(SendingPause.scope))
    return created is not None


async def resume_in_scope(session: AsyncSession, scope: str) -> bool:
    removed = await session.scalar(
        delete(SendingPause).where(SendingPause.scope == scope).returning(SendingPause.scope)
    )
    return removed is not None


async def list_pauses(session: AsyncSession) -> list[PauseView]:
    rows = (await session.scalars(select(SendingPause).order_by(SendingPause.paused_at))).all()
    return [PauseView(r.scope, r.reason, r.paused_by, r.paused_at) for r in rows]
