"""The unit of work: one transaction, the events it publishes, and the relay's wake after
the commit (cosmicpython's pattern, async).

A call site opens `async with uow() as work:`, changes rows through `work.session`, records
events with `work.publish(...)` (a row in the outbox, in the same transaction), and never
begins a transaction or wakes a relay by hand. On a clean exit the transaction commits and,
if it published anything, the outbox relay is woken: in this process by its event, in
another process by PostgreSQL's `NOTIFY`, which PostgreSQL delivers only once the commit
is done. An exception rolls everything back and publishes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction, async_sessionmaker

from shared.contracts.events import Envelope
from shared.messaging.outbox import OUTBOX_CHANNEL, add_to_outbox, has_outbox_rows


class UnitOfWork(Protocol):
    """What a service-layer function gets: a session inside one transaction, and publish."""

    session: AsyncSession

    def publish(self, topic: str, key: str, event: Envelope) -> None: ...


class SqlUnitOfWork:
    """One transaction on PostgreSQL whose events go out through the outbox."""

    session: AsyncSession

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        wake: Callable[[], None],
        notify: bool,
    ) -> None:
        self._sessions = sessions
        self._wake = wake
        self._notify = notify
        self._transaction: AsyncSessionTransaction | None = None

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self._transaction = await self.session.begin()
        return self

    def publish(self, topic: str, key: str, event: Envelope) -> None:
        add_to_outbox(self.session, topic, key, event)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._transaction is not None
        published = exc_type is None and has_outbox_rows(self.session)
        try:
            if published and self._notify:
                await self.session.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
            await self._transaction.__aexit__(exc_type, exc, tb)
        finally:
            await self.session.close()
        if published:
            self._wake()


class UnitOfWorkFactory:
    """Makes units of work; the composition root says how the relay is woken.

    `notify=True` where the relay runs in another process (the API's HTTP process);
    `wake` is the in-process relay's event where there is one."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        wake: Callable[[], None] = lambda: None,
        *,
        notify: bool = False,
    ) -> None:
        self.sessions = sessions
        self._wake = wake
        self._notify = notify

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.sessions, self._wake, self._notify)
