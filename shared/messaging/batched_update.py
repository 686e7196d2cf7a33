"""Column changes of loaded rows as UPDATE CTEs: the rest of `UnitOfWork.write_all`.

A batch consumer (the router, the status projection) changes a few columns of the rows it
locked and adds log lines and outbox rows. The ORM's flush sends an UPDATE per set of
changed columns (an executemany each) and an INSERT per table; here every changed row is
an `UPDATE ... WHERE <primary key> RETURNING 1` CTE of the same statement as the inserts
(shared/messaging/batched_insert.py), and the statement answers how many rows each UPDATE
matched: one, or the unit fails as the ORM's flush would (StaleDataError).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import CTE, ColumnDefault, Table, bindparam, func, inspect, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ColumnProperty
from sqlalchemy.orm.exc import StaleDataError

MAX_ROWS = 64  # more rows: the ORM's executemany is the cheaper statement to build

Change = tuple[object, dict[str, Any]]  # a loaded row, its changed columns' new values


def changed_rows(session: AsyncSession) -> list[Change] | None:
    """The loaded rows whose columns changed, with the new values; None when the ORM's
    flush must do it (deletes, a relationship or key change, a versioned or mapped-over-
    several-tables row)."""
    if session.deleted:
        return None
    changes = []
    for row in session.dirty:
        state = inspect(row)
        mapper = state.mapper
        if mapper.inherits is not None or not isinstance(mapper.local_table, Table):
            return None
        if mapper.version_id_col is not None:
            return None
        values: dict[str, Any] = {}
        for attr in state.attrs:
            history = attr.history
            if not history.has_changes():
                continue
            prop = mapper.attrs[attr.key]
            if not isinstance(prop, ColumnProperty) or prop.columns[0].primary_key:
                return None
            values[prop.columns[0].key] = history.added[0] if history.added else None
        if values:
            changes.append((row, values))
    return changes


def update_ctes(changes: Sequence[Change]) -> list[CTE]:
    ctes = []
    for n, (row, values) in enumerate(changes):
        mapper = inspect(row).mapper
        table: Table = mapper.local_table
        binds: dict[str, Any] = {
            key: bindparam(f"u{n}_{key}", value, type_=table.c[key].type)
            for key, value in values.items()
        }
        for column in table.columns:  # what the ORM's UPDATE adds: `onupdate` defaults
            default = column.onupdate
            if column.key in binds or not isinstance(default, ColumnDefault):
                continue
            if default.is_clause_element:
                binds[column.key] = default.arg
            elif default.is_scalar or default.is_callable:
                value = default.arg if default.is_scalar else default.arg(None)
                binds[column.key] = bindparam(f"u{n}_{column.key}", value, type_=column.type)
        key = mapper.primary_key_from_instance(row)
        where = [
            column == bindparam(f"u{n}_pk{i}", value, type_=column.type)
            for i, (column, value) in enumerate(zip(mapper.primary_key, key, strict=True))
        ]
        ctes.append(update(table).where(*where).values(binds).returning(literal(1)).cte(f"upd_{n}"))
    return ctes


def matched_columns(ctes: Sequence[CTE]) -> list[Any]:
    """One column per UPDATE CTE: how many rows it matched."""
    return [select(func.count()).select_from(cte).scalar_subquery() for cte in ctes]


def check_matched(changes: Sequence[Change], matched: Sequence[Any]) -> None:
    for (row, _), count in zip(changes, matched, strict=True):
        if count != 1:
            raise StaleDataError(f"UPDATE of {row!r} matched {count} rows, not 1")
