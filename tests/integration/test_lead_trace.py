"""A lead remembers the trace of the request that made it, and so does its outbox row (the
relay continues it): `autodm status` prints the trace id; with tracing off, nothing."""

from __future__ import annotations

import asyncio
import json
from uuid import UUID

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from cli.main import app
from services.api.http.schemas import LeadIn
from services.api.service_layer.leads import create_lead
from shared.db.models import Lead, OutboxRecord
from shared.platform import tracing
from tests.fake_uow import SessionWork

pytestmark = pytest.mark.integration

runner = CliRunner()


async def _lead(
    sessions: async_sessionmaker[AsyncSession], creator: UUID, correlation: str
) -> tuple[Lead, OutboxRecord]:
    async with sessions.begin() as session:
        lead = await create_lead(
            SessionWork(session),
            LeadIn(creator_id=creator, name="Tia", phone="+442079460958"),
            correlation,
        )
    async with sessions() as session:
        row = await session.scalar(
            select(OutboxRecord).where(OutboxRecord.correlation_id == correlation)
        )
        stored = await session.get(Lead, lead.id)
    assert row is not None and stored is not None
    return stored, row


async def test_the_lead_and_its_outbox_row_keep_the_requests_trace(
    sessions: async_sessionmaker[AsyncSession], creator: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    monkeypatch.setitem(tracing._state, "enabled", True)
    with trace.get_tracer("test").start_as_current_span("POST /api/leads") as request:
        lead, row = await _lead(sessions, creator, "corr-traced")
    trace_id = f"{request.get_span_context().trace_id:032x}"
    assert tracing.trace_id_of(lead.traceparent) == trace_id
    assert tracing.trace_id_of(row.traceparent) == trace_id

    shown = await asyncio.to_thread(runner.invoke, app, ["status", str(lead.id)])
    assert shown.exit_code == 0, shown.output
    assert f"trace id    {trace_id}" in shown.output
    as_json = await asyncio.to_thread(runner.invoke, app, ["status", str(lead.id), "--json"])
    assert json.loads(as_json.output)["trace_id"] == trace_id


async def test_with_tracing_off_nothing_is_stored(
    sessions: async_sessionmaker[AsyncSession], creator: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(tracing._state, "enabled", False)
    lead, row = await _lead(sessions, creator, "corr-untraced")
    assert lead.traceparent is None and row.traceparent is None
    shown = await asyncio.to_thread(runner.invoke, app, ["status", str(lead.id)])
    assert "trace id    -" in shown.output
