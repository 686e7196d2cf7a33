"""The public lead form's limits on real PostgreSQL: shared by every API process, per IP and
per creator, sliding over the last minute, client IPs hashed (housekeeping purges old windows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.web.form_limits import (
    TOO_MANY_FOR_CREATOR,
    TOO_MANY_FROM_IP,
    FormLimits,
    ip_key,
)
from shared.db.models import FormRateCount

pytestmark = pytest.mark.integration

# A minute boundary far from the wall clock, so other tests' rows do not interfere.
T0 = datetime(2031, 1, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=uuid4().int % 100_000)


def _processes(
    sessions: async_sessionmaker[AsyncSession], per_ip: int, per_creator: int
) -> tuple[FormLimits, FormLimits]:
    """Two API processes: each its own FormLimits, one database."""
    return (
        FormLimits(sessions, per_ip=per_ip, per_creator=per_creator),
        FormLimits(sessions, per_ip=per_ip, per_creator=per_creator),
    )


async def test_the_per_ip_limit_holds_across_api_processes(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a, b = _processes(sessions, per_ip=3, per_creator=1000)
    ip, creator = f"10.0.0.{uuid4().int % 250}", str(uuid4())
    answers = [
        await p.refusal(ip, creator, T0 + timedelta(seconds=i)) for i, p in enumerate((a, b, a, b))
    ]
    assert answers == [None, None, None, TOO_MANY_FROM_IP]
    assert await b.refusal("192.0.2.7", creator, T0 + timedelta(seconds=5)) is None  # other IP


async def test_the_limit_slides_instead_of_resetting_on_the_minute(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    (a, _) = _processes(sessions, per_ip=4, per_creator=1000)
    ip, creator = f"10.1.0.{uuid4().int % 250}", str(uuid4())
    for second in (50, 52, 54, 56):  # 4 late in the first minute
        assert await a.refusal(ip, creator, T0 + timedelta(seconds=second)) is None
    # 10 s into the next minute, 5/6 of the previous minute still counts: 3.3 + 0 < 4 ...
    assert await a.refusal(ip, creator, T0 + timedelta(seconds=70)) is None
    # ... but now 3.3 + 1 >= 4: a fixed window would have allowed 4 more.
    assert await a.refusal(ip, creator, T0 + timedelta(seconds=71)) == TOO_MANY_FROM_IP
    assert await a.refusal(ip, creator, T0 + timedelta(seconds=180)) is None  # long gone


async def test_a_flooding_network_does_not_close_the_creators_form(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a, b = _processes(sessions, per_ip=2, per_creator=3)
    creator = str(uuid4())
    flood = [await a.refusal("198.51.100.1", creator, T0) for _ in range(10)]
    assert flood.count(None) == 2  # the refused 8 did not count against the creator
    assert await b.refusal("198.51.100.2", creator, T0) is None
    assert await b.refusal("198.51.100.3", creator, T0) == TOO_MANY_FOR_CREATOR


async def test_client_ips_are_stored_hashed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a, _ = _processes(sessions, per_ip=10, per_creator=10)
    ip, creator = "203.0.113.9", str(uuid4())
    await a.refusal(ip, creator, T0)
    async with sessions() as session:
        keys = set(await session.scalars(select(FormRateCount.key)))
    assert ip_key(ip) in keys and not any(ip in key for key in keys)
