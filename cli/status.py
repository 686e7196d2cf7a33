"""`autodm status <lead_id>`: where one lead's DM stands, as the API would answer it.

Reads the database directly (the API's own service layer), so it works when the API is
down and needs no token: it is for operators with access to the deployment.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer
from sqlalchemy import select

from shared.platform.settings import get_settings
from shared.platform.tracing import trace_id_of

if TYPE_CHECKING:  # the API's modules load only when the command runs (CLI start-up)
    from services.api.service_layer.leads import LeadView


def status(
    lead_id: Annotated[UUID, typer.Argument(help="the lead's id (POST /api/leads answer)")],
    as_json: Annotated[
        bool, typer.Option("--json", help="print the API's JSON instead of a table")
    ] = False,
) -> None:
    """Show where a lead's DM stands, and how it got there.

    Status, route and provider, the reason (or the link to show), Meta's message id or
    error, and every transition with its time. Exits 1 if the lead does not exist.
    """
    lead, traceparent = asyncio.run(_load(lead_id))
    if lead is None:
        typer.echo(f"lead {lead_id} not found", err=True)
        raise typer.Exit(1)
    if as_json:
        out = json.loads(_json(lead)) | {"trace_id": trace_id_of(traceparent)}
        typer.echo(json.dumps(out, indent=2))
    else:
        typer.echo(render(lead, trace_id_of(traceparent)))


def _json(lead: LeadView) -> str:
    """The API's JSON of the lead (GET /api/leads/{id}: the same fields, serialised alike)."""
    from pydantic import TypeAdapter

    from services.api.service_layer.leads import LeadView

    return TypeAdapter(LeadView).dump_json(lead, indent=2).decode()


async def _load(lead_id: UUID) -> tuple[LeadView | None, str | None]:
    from services.api.service_layer.leads import get_lead
    from shared.db.models import Lead
    from shared.db.session import make_engine, make_sessionmaker

    engine = make_engine(get_settings())
    try:
        async with make_sessionmaker(engine)() as session:
            lead = await get_lead(session, lead_id)
            traceparent = await session.scalar(select(Lead.traceparent).where(Lead.id == lead_id))
            return lead, traceparent
    finally:
        await engine.dispose()


def render(lead: LeadView, trace_id: str | None = None) -> str:
    dm = lead.dm
    error = dm.error
    rows = [
        ("lead", f"{lead.id} ({lead.name})"),
        ("creator", str(lead.creator_id)),
        ("status", f"{dm.status} (attempt {dm.attempt})"),
        ("route", f"{dm.route or '-'} via {dm.provider or '-'}"),
        ("reason", dm.reason or "-"),
        ("link", dm.link or "-"),
        ("message id", dm.provider_message_id or "-"),
        ("error", f"{error.code}/{error.subcode}: {error.message}" if error else "-"),
        # The lead's distributed trace (docs/RUNBOOK.md, "Traces"): `autodm trace <id>`
        # locally, or search it in Tempo/Jaeger. "-" when tracing was off.
        ("trace id", trace_id or "-"),
    ]
    lines = [f"{name:<11} {value}" for name, value in rows]
    lines.append("log:")
    lines += [
        f"  {e.occurred_at.isoformat(timespec='seconds')}  {e.status:<16} attempt {e.attempt}"
        for e in dm.log
    ]
    return "\n".join(lines)
