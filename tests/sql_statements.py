"""The SQL an engine sends while a block runs, for tests that pin a path's statements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements the engine sends while inside (BEGIN and COMMIT are not among them)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def selects_from(table: str, sent: list[str]) -> list[str]:
    """The SELECTs among `sent` that read `table`."""
    return [sql for sql in sent if sql.lstrip().startswith("SELECT") and f"FROM {table}" in sql]
