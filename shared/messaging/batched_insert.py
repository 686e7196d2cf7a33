"""New rows in one statement: the unit of work's cheap flush (`UnitOfWork.insert_new`).

Accepting a lead writes three new rows (the lead, its first log line, its outbox record)
and changes nothing else. The ORM's flush sends them as three statements, with its
bookkeeping around each, and the outbox relay's NOTIFY is a fourth. Here they go as one:

    WITH new_0 AS (INSERT INTO leads ...), new_1 AS (INSERT INTO dm_log ...), ...
    SELECT pg_notify('autodm_outbox', '')

A statement is atomic, every data-modifying CTE of it runs to completion, and foreign keys
are checked at its end, so a row may reference another row of the same statement. The
notification is sent by PostgreSQL only when the transaction commits, as NOTIFY's is.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any

from sqlalchemy import (
    ColumnDefault,
    Select,
    Table,
    bindparam,
    func,
    insert,
    inspect,
    literal,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.ddl import sort_tables


def new_rows(session: AsyncSession) -> list[object] | None:
    """The session's new rows, parents first (by the tables' foreign keys: the ORM orders
    rows only by relationships, which these models don't declare); None if some row is
    not of a plain table (inheritance), for the ORM's own flush."""
    rows = list(session.new)
    tables: list[Table] = []
    for row in rows:
        mapper = inspect(row).mapper
        if mapper.inherits is not None or not isinstance(mapper.local_table, Table):
            return None
        if mapper.local_table not in tables:
            tables.append(mapper.local_table)
    order = {table: n for n, table in enumerate(sort_tables(tables))}
    return sorted(rows, key=lambda row: order[inspect(row).mapper.local_table])


async def flush_parents_first(session: AsyncSession, rows: Sequence[object]) -> None:
    """The ORM's flush, one table of `rows` at a time in their order (the later tables'
    rows stepping out of the session meanwhile), with whatever else is pending."""
    groups = [list(group) for _, group in groupby(rows, key=_table)]
    for n in range(max(len(groups), 1)):
        later = [row for group in groups[n + 1 :] for row in group]
        for row in later:
            session.expunge(row)
        await session.flush()
        session.add_all(later)


def _table(row: object) -> Table:
    table: Table = inspect(row).mapper.local_table
    return table


def one_per_table(rows: Sequence[object]) -> bool:
    return len({_table(row) for row in rows}) == len(rows)


def _values(row: object) -> tuple[Table, dict[str, Any]]:
    """The row's table and its values, as the ORM's flush sends them: a column left None
    takes its server default (unless its type stores None as a value), a Python-side
    default is computed here (so every bind of the statement has a name of its own)."""
    state = inspect(row)
    mapper = state.mapper
    values = {}
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        value = state.dict.get(prop.key)
        default = column.default
        if value is None and isinstance(default, ColumnDefault):
            if default.is_scalar:
                value = default.arg
            elif default.is_callable:
                value = default.arg(None)  # our defaults take no context (models.py)
            values[column.key] = value
        elif value is not None or (prop.key in state.dict and column.type.should_evaluate_none):
            values[column.key] = value
    return mapper.local_table, values


Shape = tuple[tuple[Table, tuple[str, ...]], ...]
# Statements by shape (each row's table and columns, and the channel): built once, so a
# request pays only for its values (an accept's shape barely varies). Bounded: unusual
# shapes past the bound are built each time.
_STATEMENTS: dict[tuple[Shape, str | None], Select[Any]] = {}
MAX_SHAPES = 256


def _statement(shape: Shape, notify_channel: str | None) -> Select[Any]:
    statement = _STATEMENTS.get((shape, notify_channel))
    if statement is not None:
        return statement
    ctes = [
        insert(table)
        .values({key: bindparam(f"r{n}_{key}", type_=table.c[key].type) for key in keys})
        .cte(f"new_{n}")
        for n, (table, keys) in enumerate(shape)
    ]
    main = select(func.pg_notify(notify_channel, "")) if notify_channel else select(literal(1))
    statement = main.add_cte(*ctes)
    if len(_STATEMENTS) < MAX_SHAPES:
        _STATEMENTS[(shape, notify_channel)] = statement
    return statement


async def insert_rows(
    session: AsyncSession, rows: Sequence[object], notify_channel: str | None
) -> None:
    """Insert `rows` (new_rows: one per table, nothing else pending) in one statement on
    the session's transaction, with `pg_notify(notify_channel)` if given; the rows leave
    the session."""
    shape = []
    params: dict[str, Any] = {}
    for n, row in enumerate(rows):
        table, values = _values(row)
        shape.append((table, tuple(values)))
        params.update((f"r{n}_{key}", value) for key, value in values.items())
    connection = await session.connection()
    await connection.execute(_statement(tuple(shape), notify_channel), params)
    for row in rows:
        session.expunge(row)
