"""Read-only sessions for the senders' pollers and refreshers: each statement on its own,
with no BEGIN and COMMIT (or ROLLBACK) round trips around them. Under READ COMMITTED each
statement sees its own snapshot inside a transaction too, so the reads lose nothing
(issue #20: an idle sender's CPU went mostly to these round trips)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@contextlib.asynccontextmanager
async def reading(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session whose statements run in autocommit; for reads only."""
    async with sessions() as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session
