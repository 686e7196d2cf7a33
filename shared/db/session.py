"""Async engine and session factory (SQLAlchemy 2 + asyncpg)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.platform.settings import Settings
from shared.platform.tracing import instrument_engine

# A connection back in the pool for longer than this is pinged before it is handed out.
# SQLAlchemy's pool_pre_ping pings on every checkout, and asyncpg's ping is three round
# trips (BEGIN, `;`, ROLLBACK): on the hot path that was most of the database traffic per DM
# (docs/BENCHMARKS.md). A restarted PostgreSQL is down for longer than this, so every
# connection that lived through a restart is still checked before use.
PING_IF_IDLE_S = 1.0


def make_engine(settings: Settings, ping_if_idle_s: float = PING_IF_IDLE_S) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url.get_secret_value(),
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout_s,
        # Last in, first out: the connection just returned goes out again, so a quiet
        # service keeps using one warm connection (pinged only after PING_IF_IDLE_S of
        # rest) instead of cycling through the pool and pinging each one in turn.
        pool_use_lifo=True,
    )
    _ping_idle_connections(engine, ping_if_idle_s)
    instrument_engine(engine)  # SQL spans, only when tracing is on
    return engine


def _ping_idle_connections(engine: AsyncEngine, idle_s: float) -> None:
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _checked_in(_: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_s:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            # The pool drops this connection and tries a fresh one (up to three times).
            raise exc.DisconnectionError(str(error)) from error


def make_sessionmaker(
    engine: AsyncEngine, *, autocommit: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions on the engine's pool. `autocommit=True` is for code whose every write is a
    single statement (atomic on its own): it skips the BEGIN and COMMIT round trips, and
    must never be used for work that needs several statements to commit together."""
    bind = engine.execution_options(isolation_level="AUTOCOMMIT") if autocommit else engine
    return async_sessionmaker(bind, expire_on_commit=False)


def driver_dsn(settings: Settings) -> str:
    """The database URL as asyncpg itself takes it (for a LISTEN connection of its own)."""
    return settings.database_url.get_secret_value().replace(
        "postgresql+asyncpg://", "postgresql://", 1
    )
