"""The pool pings a connection that sat idle before handing it out, and replaces a dead one
(PostgreSQL restarted, a backend killed), without pinging busy connections; a full pool
is an outage after db_pool_timeout_s."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.db.session import make_engine
from shared.platform.outages import is_outage
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


async def _kill_the_pooled_backend(settings: AllSettings, ping_if_idle_s: float) -> int:
    """Check out the only pooled connection, kill its backend from outside, check out again."""
    engine = make_engine(settings.model_copy(update={"db_pool_size": 1}), ping_if_idle_s)
    killer = make_engine(settings)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with killer.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    finally:
        await engine.dispose()
        await killer.dispose()


async def test_an_idle_connection_whose_backend_died_is_replaced(settings: AllSettings) -> None:
    assert await _kill_the_pooled_backend(settings, ping_if_idle_s=0.0) > 0


async def test_a_recently_used_connection_is_not_pinged(settings: AllSettings) -> None:
    # The other side of the trade: within the idle threshold no ping is spent, so a backend
    # killed in that instant surfaces as an error to the caller (who retries the record).
    with pytest.raises(DBAPIError):
        await _kill_the_pooled_backend(settings, ping_if_idle_s=3600.0)


async def test_a_full_pool_is_an_outage_after_db_pool_timeout_s(settings: AllSettings) -> None:
    # Every pooled connection busy (1 + SQLAlchemy's 10 overflow): the next caller gets an
    # outage (the API: 503 with Retry-After) after db_pool_timeout_s, not after 30 s.
    engine = make_engine(settings.model_copy(update={"db_pool_size": 1, "db_pool_timeout_s": 0.2}))
    held = [await engine.connect() for _ in range(11)]
    try:
        async with asyncio.timeout(10):  # SQLAlchemy's default of 30 s would trip this
            with pytest.raises(sa_exc.TimeoutError) as raised:
                await engine.connect()
        assert is_outage(raised.value)
    finally:
        for conn in held:
            await conn.close()
        await engine.dispose()
