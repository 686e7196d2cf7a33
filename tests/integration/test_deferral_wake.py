"""The deferral poller sleeps until its earliest row is due (shared.delivery.deferrals),
woken by a deferral committed in its own process: a row written while it sleeps a long
idle interval is re-requested when due, not at the end of that interval."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.events import DmRequested, utcnow
from shared.contracts.lifecycle import Route
from shared.delivery import deferrals
from shared.delivery.deferrals import DeferralPoller
from tests.integration.test_instagram_batch import World, _account, _request
from tests.settings import AllSettings

pytestmark = pytest.mark.integration


async def test_a_deferral_committed_in_the_process_wakes_a_sleeping_poller(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    world = World(sessions, settings)
    account, _ = await _account(world, creator)
    request = await _request(world, creator, account, "811")
    came = asyncio.Event()

    async def request_again(due: DmRequested, _: dict[str, str]) -> None:
        if due.payload.lead_id == request.payload.lead_id:  # other tests' rows stay
            came.set()

    # An idle interval no test would wait for: only the wake can bring the row in time.
    poller = DeferralPoller(
        sessions,
        request_again,
        poll_s=0.05,
        routes=[Route.IG_DM],
        provider="instagram",
        idle_poll_s=3600,
    )
    running = asyncio.create_task(poller.run_forever())
    try:
        await asyncio.sleep(0.2)  # the poller is asleep by now (nothing of this test waits)
        assert not came.is_set()
        async with sessions.begin() as session:
            await deferrals.defer(session, request, utcnow() + timedelta(seconds=0.2), "paced")
        await asyncio.wait_for(came.wait(), timeout=60)
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


async def test_a_rolled_back_deferral_wakes_nobody(
    sessions: async_sessionmaker[AsyncSession], settings: AllSettings, creator: UUID
) -> None:
    world = World(sessions, settings)
    account, _ = await _account(world, creator)
    request = await _request(world, creator, account, "812")
    poller = DeferralPoller(
        sessions, lambda *_: asyncio.sleep(0), 0.05, [Route.IG_DM], "instagram", idle_poll_s=9
    )
    with pytest.raises(RuntimeError):
        async with sessions.begin() as session:
            await deferrals.defer(session, request, utcnow(), "paced")
            raise RuntimeError("the transaction fails")
    assert not poller._woken.is_set()
    async with sessions.begin() as session:
        await deferrals.defer(session, request, utcnow(), "paced")
    assert poller._woken.is_set()
    async with sessions.begin() as session:
        await deferrals.take(session, request)
