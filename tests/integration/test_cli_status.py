"""`autodm status <lead_id>` on the real database: the DM as the API shows it."""

from __future__ import annotations

import asyncio
import json
from uuid import UUID, uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from cli.main import app
from services.api.http.schemas import LeadIn
from services.api.service_layer.leads import create_lead
from tests.fake_uow import SessionWork

pytestmark = pytest.mark.integration

runner = CliRunner()


async def test_status_shows_the_dm_and_its_log(
    sessions: async_sessionmaker[AsyncSession], creator: UUID
) -> None:
    async with sessions.begin() as session:
        lead = await create_lead(
            SessionWork(session),
            LeadIn(creator_id=creator, name="Sam", phone="+442079460958"),
            "corr-cli",
        )
    # The CLI runs its own event loop: call it from a worker thread of this test's loop.
    result = await asyncio.to_thread(runner.invoke, app, ["status", str(lead.id)])
    assert result.exit_code == 0, result.output
    assert f"{lead.id} (Sam)" in result.output
    assert "queued" in result.output

    as_json = await asyncio.to_thread(runner.invoke, app, ["status", str(lead.id), "--json"])
    body = json.loads(as_json.output)
    assert body["dm"]["status"] == "queued"
    assert [entry["status"] for entry in body["dm"]["log"]] == ["queued"]


async def test_status_of_an_unknown_lead_exits_1() -> None:
    result = await asyncio.to_thread(runner.invoke, app, ["status", str(uuid4())])
    assert result.exit_code == 1
    assert "not found" in result.output
