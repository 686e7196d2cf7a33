"""The unit of work: one transaction, the events it publishes, and the relay's wake after
the commit (cosmicpython's pattern, async).

A call site opens `async with uow() as work:`, changes rows through the unit (`add`,
`get`, `get_many`, `flush`; `work.session` for queries the unit does not name), claims
events it consumes (`claim`: the idempotency claim, in the same transaction), records the
events it publishes with `work.publish(...)` (a row in the outbox, in the same
transaction), and never begins a transaction or wakes a relay by hand. On a clean exit the
transaction commits and, if it published anything, the outbox relay is woken: in this
process by its event, in another process by PostgreSQL's `NOTIFY`, which PostgreSQL
delivers only once the commit is done. An exception rolls everything back and publishes
nothing.

`insert_new()` is the cheap flush of a unit that only adds rows (accepting a lead: the lead,
its first log line, its outbox row): one Core statement, every row a data-modifying CTE,
with the relay's `pg_notify` in the same statement, instead of the ORM's flush (a statement
per row, its bookkeeping) and a NOTIFY of its own (shared/messaging/batched_insert.py).

Service-layer code takes a `UnitOfWork` (the protocol) and a factory as `UnitsOfWork`, so
its tests run on an in-memory fake (tests/fake_uow.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar
from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction, async_sessionmaker

from shared.contracts.events import Envelope
from shared.messaging.batched_insert import (
    flush_parents_first,
    insert_rows,
    new_rows,
    one_per_table,
)
from shared.messaging.idempotency import claim_events
from shared.messaging.outbox import OUTBOX_CHANNEL, add_to_outbox, has_outbox_rows

T = TypeVar("T")


class UnitOfWork(Protocol):
    """What a service-layer function gets: one transaction, its rows and its events."""

    @property
    def session(self) -> AsyncSession: ...

    def publish(self, topic: str, key: str, event: Envelope) -> None: ...

    def add(self, row: object) -> None: ...

    async def flush(self) -> None: ...

    async def insert_new(self) -> None: ...

    async def get(self, model: type[T], ident: Any, *, for_update: bool = False) -> T | None: ...

    async def get_many(
        self, model: type[T], ids: Collection[Any], *, for_update: bool = False
    ) -> list[T]: ...

    async def claim(self, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]: ...


class UnitsOfWork(Protocol):
    """A factory of units of work (UnitOfWorkFactory, or a test's fake)."""

    def __call__(self) -> AbstractAsyncContextManager[UnitOfWork]: ...


class SqlUnitOfWork:
    """One transaction on PostgreSQL whose events go out through the outbox."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        wake: Callable[[], None],
        notify: bool,
    ) -> None:
        self._sessions = sessions
        self._wake = wake
        self._notify = notify
        self._session: AsyncSession | None = None
        self._transaction: AsyncSessionTransaction | None = None
        self._notified = False  # the relay's pg_notify went with an insert_new already

    @property
    def session(self) -> AsyncSession:
        assert self._session is not None, "use the unit of work inside `async with`"
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._sessions()
        self._transaction = await self._session.begin()
        return self

    def publish(self, topic: str, key: str, event: Envelope) -> None:
        add_to_outbox(self.session, topic, key, event)

    def add(self, row: object) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()

    async def insert_new(self) -> None:
        """Write the rows added since the last flush, parents first: when they are all
        new rows and nothing else is pending, in one statement, and out of the session
        (for rows this unit changes no further, whose server-side values, serial ids and
        defaults, nobody reads back); else by the ORM's flush. Errors (a foreign key)
        surface here either way, as from `flush`."""
        session = self.session
        rows = new_rows(session)
        # One row per table: the CTEs of a statement run in no defined order, and serial
        # ids of one table's rows must follow the order they were added in.
        if not rows or session.dirty or session.deleted or not one_per_table(rows):
            await flush_parents_first(session, rows or [])
            return
        notify = self._notify and has_outbox_rows(session)
        await insert_rows(session, rows, OUTBOX_CHANNEL if notify else None)
        self._notified = self._notified or notify

    async def get(self, model: type[T], ident: Any, *, for_update: bool = False) -> T | None:
        return await self.session.get(model, ident, with_for_update=for_update)

    async def get_many(
        self, model: type[T], ids: Collection[Any], *, for_update: bool = False
    ) -> list[T]:
        """Rows by primary key `id`, in id order (so locks are always taken in one order)."""
        if not ids:
            return []
        key = getattr(model, "id")  # noqa: B009  # every model named here has an `id` column
        query = select(model).where(key.in_(ids)).order_by(key)
        if for_update:
            query = query.with_for_update()
        return list((await self.session.scalars(query)).all())

    async def claim(self, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
        return await claim_events(self.session, consumer, event_ids)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._transaction is not None and self._session is not None
        published = exc_type is None and has_outbox_rows(self._session)
        try:
            if published and self._notify and not self._notified:
                await self._session.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
            await self._transaction.__aexit__(exc_type, exc, tb)
        finally:
            await self._session.close()
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
