"""An in-memory unit of work for service-layer unit tests (no database, no broker).

`FakeUnitsOfWork()` is the factory a service function is given; what committed units did
is on it: `rows` (by model and id), `published` (topic, key, event), `claimed`
((consumer, event id)) and `commits`. A unit that raises commits nothing, as the real one
(shared/messaging/unit_of_work.py)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.events import Envelope
from shared.messaging.batched_insert import flush_parents_first, new_rows
from shared.messaging.idempotency import claim_events
from shared.messaging.outbox import add_to_outbox

T = TypeVar("T")


@dataclass
class FakeUnitsOfWork:
    rows: dict[tuple[type[Any], Any], Any] = field(default_factory=dict)
    published: list[tuple[str, str, Envelope]] = field(default_factory=list)
    claimed: set[tuple[str, UUID]] = field(default_factory=set)
    commits: int = 0

    def __call__(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def put(self, *rows: Any) -> None:
        """Rows that exist before the test (as committed by someone else)."""
        for row in rows:
            self.rows[(type(row), row.id)] = row

    def of(self, model: type[T]) -> list[T]:
        return [row for (kind, _), row in self.rows.items() if kind is model]

    def events(self, topic: str) -> list[Envelope]:
        return [event for t, _, event in self.published if t == topic]


class FakeUnitOfWork:
    def __init__(self, store: FakeUnitsOfWork) -> None:
        self._store = store
        self._added: list[Any] = []
        self._published: list[tuple[str, str, Envelope]] = []
        self._claimed: set[tuple[str, UUID]] = set()

    @property
    def session(self) -> AsyncSession:
        raise AssertionError("this code reaches past the unit of work to SQL: not fakeable")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            return  # rolled back: nothing of this unit is seen
        for row in self._added:
            key = getattr(row, "id", None)  # None for a log line (a serial id): its identity
            self._store.rows[(type(row), id(row) if key is None else key)] = row
        self._store.published.extend(self._published)
        self._store.claimed |= self._claimed
        self._store.commits += 1

    def publish(self, topic: str, key: str, event: Envelope) -> None:
        self._published.append((topic, key, event))

    def add(self, row: object) -> None:
        self._added.append(row)

    async def flush(self) -> None:
        return None

    async def insert_new(self) -> None:
        return None

    async def get(self, model: type[T], ident: Any, *, for_update: bool = False) -> T | None:
        row: T | None = self._store.rows.get((model, ident))
        return row

    async def get_many(
        self, model: type[T], ids: Collection[Any], *, for_update: bool = False
    ) -> list[T]:
        found = [self._store.rows[(model, i)] for i in ids if (model, i) in self._store.rows]
        return sorted(found, key=lambda row: row.id)

    async def claim(self, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
        fresh = {
            i
            for i in event_ids
            if (consumer, i) not in self._store.claimed and (consumer, i) not in self._claimed
        }
        self._claimed |= {(consumer, i) for i in fresh}
        return fresh


class SessionWork:
    """A unit of work over a session whose transaction the test opened (`sessions.begin()`):
    it neither commits nor wakes anything; for integration tests that call service-layer
    functions inside a transaction of their own."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def publish(self, topic: str, key: str, event: Envelope) -> None:
        add_to_outbox(self.session, topic, key, event)

    def add(self, row: object) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()

    async def insert_new(self) -> None:
        # The ORM's flush, parents first: the rows stay in the session (tests read them back).
        await flush_parents_first(self.session, new_rows(self.session) or [])

    async def get(self, model: type[T], ident: Any, *, for_update: bool = False) -> T | None:
        return await self.session.get(model, ident, with_for_update=for_update)

    async def get_many(
        self, model: type[T], ids: Collection[Any], *, for_update: bool = False
    ) -> list[T]:
        key = getattr(model, "id")  # noqa: B009
        query = select(model).where(key.in_(ids)).order_by(key)
        if for_update:
            query = query.with_for_update()
        return list((await self.session.scalars(query)).all())

    async def claim(self, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
        return await claim_events(self.session, consumer, event_ids)
