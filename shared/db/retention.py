"""Deleting rows that can no longer matter, in small batches.

Each service sweeps the tables it owns on a timer. Every replica may sweep (a duplicate
sweep deletes nothing), and no sweep holds many row locks at once: a batch is at most
`BATCH` rows in its own transaction. A failed sweep is logged and tried again at the next
interval; a table that grows for one interval longer is no harm.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from shared.contracts.events import utcnow
from shared.db.models import Base
from shared.platform.logs import get_logger
from shared.platform.outage_log import OutageLog

log = get_logger(__name__)
BATCH = 1000

# One table's sweep: the rows deleted, given the time of the sweep.
Sweep = Callable[[async_sessionmaker[AsyncSession], datetime], Awaitable[int]]


async def delete_batched(
    sessions: async_sessionmaker[AsyncSession],
    model: type[Base],
    expired: ColumnElement[bool],
) -> int:
    """Delete every row of `model` matching `expired`, `BATCH` rows per transaction."""
    primary_key = model.__mapper__.primary_key
    removed = 0
    while True:
        batch = select(*primary_key).where(expired).limit(BATCH)
        async with sessions.begin() as session:
            result = await session.execute(delete(model).where(tuple_(*primary_key).in_(batch)))
        count = int(getattr(result, "rowcount", 0) or 0)
        removed += count
        if count < BATCH:
            return removed


def older_than(
    model: type[Base], column: InstrumentedAttribute[Any], age: Callable[[datetime], datetime]
) -> Sweep:
    """The sweep deleting rows of `model` whose `column` is before `age(now)`."""

    async def sweep(sessions: async_sessionmaker[AsyncSession], now: datetime) -> int:
        return await delete_batched(sessions, model, column < age(now))

    return sweep


async def sweep_all(
    sessions: async_sessionmaker[AsyncSession], sweeps: Mapping[str, Sweep], now: datetime
) -> dict[str, int]:
    """Run every sweep; how many rows each deleted."""
    return {name: await run(sessions, now) for name, run in sweeps.items()}


@dataclass
class Sweeper:
    sessions: async_sessionmaker[AsyncSession]
    sweeps: Mapping[str, Sweep]
    interval_s: float
    _outages: OutageLog = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._outages = OutageLog("housekeeping")

    async def run_forever(self) -> None:
        while True:
            try:
                removed = await sweep_all(self.sessions, self.sweeps, utcnow())
                if any(removed.values()):
                    log.info("housekeeping", **removed)
            except Exception as exc:
                self._outages.failed(exc, "housekeeping failed; trying again at the next interval")
            else:
                self._outages.succeeded()
            await asyncio.sleep(self.interval_s)
