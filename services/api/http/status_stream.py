"""A creator's live DM status changes as Server-Sent Events, read from the DM log (which the
status projection writes from the dm.status events).

Resuming with `Last-Event-ID` must lose nothing and repeat nothing, although transactions
commit out of id order: a row with a lower id can become visible after a higher one. So
rows are ordered by (the id of the transaction that wrote them, row id), and a row is sent
only once every transaction older than it has ended (its transaction id is below the
oldest one still running, PostgreSQL's snapshot xmin): nothing can appear behind the
cursor any more. The event id is that cursor, `<txid>-<row id>`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import DmLogEntry, Lead

_HORIZON = text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
_TOP_ROW_ID = 2**62  # above any row id: a cursor at (txid, top) skips all of txid's rows


@dataclass(frozen=True)
class StreamConfig:
    poll_s: float = 0.5  # how often the DM log is read for new changes
    heartbeat_s: float = 15.0  # a comment line after this long without an event
    max_s: float = 300.0  # then the stream ends and the client resumes


@dataclass(frozen=True, order=True)
class Cursor:
    txid: int
    row_id: int

    def __str__(self) -> str:
        return f"{self.txid}-{self.row_id}"

    @classmethod
    def parse(cls, value: str | None) -> Cursor | None:
        """The cursor of a `Last-Event-ID`, or None when there is none (or it is not ours)."""
        try:
            txid, row_id = (value or "").split("-", 1)
            return cls(int(txid), int(row_id))
        except ValueError:
            return None


@dataclass(frozen=True)
class StatusChange:
    cursor: Cursor
    data: dict[str, Any]

    def sse(self) -> str:
        return f"id: {self.cursor}\nevent: dm.status\ndata: {json.dumps(self.data)}\n\n"


async def start_cursor(session: AsyncSession) -> Cursor:
    """Where a stream without `Last-Event-ID` starts: with what is still to come."""
    horizon = int(await session.scalar(select(_HORIZON)) or 0)
    return Cursor(horizon - 1, _TOP_ROW_ID)


async def changes_after(
    session: AsyncSession, creator_id: UUID | None, cursor: Cursor, limit: int = 500
) -> list[StatusChange]:
    """The creator's status changes after `cursor` that can no longer be overtaken (every
    creator's when `creator_id` is None: the admin pages' overview)."""
    key = tuple_(DmLogEntry.txid, DmLogEntry.id)
    scope = [] if creator_id is None else [Lead.creator_id == creator_id]
    rows = await session.execute(
        select(DmLogEntry, Lead.id)
        .join(Lead, Lead.id == DmLogEntry.lead_id)
        .where(
            *scope,
            DmLogEntry.txid.is_not(None),
            key > tuple_(cursor.txid, cursor.row_id),
            DmLogEntry.txid < select(_HORIZON).scalar_subquery(),
        )
        .order_by(DmLogEntry.txid, DmLogEntry.id)
        .limit(limit)
    )
    return [_change(entry) for entry, _ in rows]


def _change(entry: DmLogEntry) -> StatusChange:
    detail = entry.detail or {}
    data = {
        "lead_id": str(entry.lead_id),
        "status": entry.status,
        "attempt": entry.attempt,
        "occurred_at": entry.occurred_at.isoformat(),
        **{k: detail[k] for k in ("route", "reason", "link") if detail.get(k)},
    }
    assert entry.txid is not None
    return StatusChange(Cursor(entry.txid, entry.id), data)


async def stream(
    sessions: async_sessionmaker[AsyncSession],
    creator_id: UUID | None,
    cursor: Cursor | None,
    config: StreamConfig,
) -> AsyncIterator[str]:
    """SSE text: the changes after `cursor`, then each new one, until `config.max_s` passes
    (EventSource then reconnects with Last-Event-ID by itself, and a deploy can drain the
    server). A client that leaves ends it sooner: Starlette cancels the generator."""
    async with sessions() as session:
        cursor = cursor or await start_cursor(session)
    yield f"retry: {int(config.poll_s * 2000)}\n\n"
    poll_s, heartbeat_s = config.poll_s, config.heartbeat_s
    ends = asyncio.get_running_loop().time() + config.max_s
    quiet = 0.0
    while asyncio.get_running_loop().time() < ends:
        async with sessions() as session:
            changes = await changes_after(session, creator_id, cursor)
        for change in changes:
            yield change.sse()
            cursor = change.cursor
        quiet = 0.0 if changes else quiet + poll_s
        if quiet >= heartbeat_s:
            quiet = 0.0
            yield ": keep-alive\n\n"  # proxies close connections that say nothing
        if not changes:
            await asyncio.sleep(poll_s)
