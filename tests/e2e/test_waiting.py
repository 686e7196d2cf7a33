"""A deferred DM says why it waits (the send intent's reason, shown by the API), and goes
out once when the reason is gone. The big chaos run's private replies waited for their
pacing with nothing to show why; this is the same path with the kill switch as the cause."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from demo import DemoCreator, settings_from, user_messages
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from stack import Stack

from shared.contracts.events import utcnow
from shared.db.session import make_engine, make_sessionmaker
from shared.delivery.kill_switch import pause_sending, resume_sending
from tests.e2e.test_backbone import sandbox_messages, settle

pytestmark = pytest.mark.e2e


@pytest.fixture
async def sessions(stack: Stack) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(settings_from(stack.env))
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _waiting(api: httpx.AsyncClient, lead_id: str, timeout_s: float = 20) -> dict[str, Any]:
    status: dict[str, Any] = {}
    for _ in range(int(timeout_s / 0.2)):
        status = (await api.get(f"/api/dm/status/{lead_id}")).json()
        if status.get("waiting"):
            return status
        await asyncio.sleep(0.2)
    raise AssertionError(f"the DM never said why it waits: {status}")


async def test_a_paused_dm_says_why_it_waits_then_goes_out_once_after_resume(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        await pause_sending(session, creator.account_id, "test", "e2e")
    await asyncio.sleep(1.5)  # senders re-read pauses every AUTODM_DELIVERY_STATE_REFRESH_S
    igsid = await user_messages(sandbox, creator, "wait.one")
    instagram = {"username": "wait.one", "igsid": igsid, "last_inbound_at": utcnow().isoformat()}
    body = {"creator_id": str(creator.creator_id), "name": "Wai", "instagram": instagram}
    lead_id = (await api.post("/api/leads", json=body)).json()["id"]

    status = await _waiting(api, lead_id)
    assert status["status"] == "queued"
    assert status["waiting"]["reason"] == "paused"
    assert "paused" in status["waiting"]["detail"]
    assert status["waiting"]["not_before"] is not None
    assert await sandbox_messages(sandbox, creator) == []

    async with sessions.begin() as session:
        await resume_sending(session, creator.account_id)
    await settle(api, lead_id, "sent", timeout_s=30)
    status = (await api.get(f"/api/dm/status/{lead_id}")).json()
    assert status["waiting"] is None
    assert len(await sandbox_messages(sandbox, creator)) == 1
