"""Admin endpoints of delivery: the DLQ (list, inspect, replay), the kill switch and the
circuit breakers. Admins only (the gateway's `AdminUser` dependency, services/api/routes)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from services.api.http.deps import AUTH_ERRORS, AdminUser, Deps
from services.api.http.problems import problem_responses
from shared.contracts.events import utcnow
from shared.db.models import DeadLetter
from shared.delivery.circuit import circuit_states
from shared.delivery.kill_switch import list_pauses, pause_sending, resume_sending
from shared.messaging.dlq_operations import (
    DlqFilter,
    NotReplayable,
    get_entry,
    list_entries,
    replay_entry,
)
from shared.messaging.dlq_operations import replay_matching as replay_all

AdminOnly = AdminUser
# Kafka coordinates fit int32 (partition) and int64 (offset); larger values are a 422, not
# a database overflow.
MAX_OFFSET = 2**63 - 1
Partition = Annotated[int, Path(ge=0, le=2**31 - 1)]
Offset = Annotated[int, Path(ge=0, le=MAX_OFFSET)]

router = APIRouter(
    prefix="/api/admin",
    tags=["admin: delivery"],
    responses=problem_responses(400, *AUTH_ERRORS, 403, 404, 409, 413, 422),
)


class DeadLetterOut(BaseModel):
    dlq_partition: int
    dlq_offset: int
    original_topic: str
    original_partition: int | None
    original_offset: int | None
    key: str | None
    reason: str
    error_class: str | None
    error_code: int | None
    detail: str | None
    attempts: int
    account_id: UUID | None
    lead_id: UUID | None
    failed_at: datetime
    replayed_at: datetime | None
    replayed_by: str | None


class DeadLetterDetail(DeadLetterOut):
    headers: dict[str, Any]
    payload: Any = Field(description="The record's value: JSON if it parses, else text")


def _out(entry: DeadLetter) -> DeadLetterOut:
    return DeadLetterOut.model_validate(entry, from_attributes=True)


YEARS_10 = 10 * 365 * 86400.0  # bounds the ages: a datetime can't go back further anyway


class DlqQuery(BaseModel):
    # Reasons are machine codes (x-error-reason: invalid_contract, retries_exhausted, ...);
    # the pattern also keeps NUL and other bytes PostgreSQL refuses out of the query.
    reason: str | None = Field(default=None, pattern=r"^[a-z0-9_.-]{1,64}$")
    account_id: UUID | None = None
    older_than_s: float | None = Field(
        default=None, ge=0, le=YEARS_10, description="failed at least this long ago"
    )
    newer_than_s: float | None = Field(
        default=None, ge=0, le=YEARS_10, description="failed within this"
    )

    def to_filter(self, include_replayed: bool = False) -> DlqFilter:
        now = utcnow()
        return DlqFilter(
            reason=self.reason,
            account_id=self.account_id,
            older_than=now - timedelta(seconds=self.older_than_s) if self.older_than_s else None,
            newer_than=now - timedelta(seconds=self.newer_than_s) if self.newer_than_s else None,
            include_replayed=include_replayed,
        )


@router.get("/dlq", response_model=list[DeadLetterOut], summary="Dead letters, oldest first")
async def dlq_list(
    deps: Deps,
    _: AdminOnly,
    query: Annotated[DlqQuery, Depends()],
    include_replayed: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[DeadLetterOut]:
    async with deps.sessions() as session:
        entries = await list_entries(session, query.to_filter(include_replayed), limit, offset)
    return [_out(e) for e in entries]


@router.get("/dlq/{partition}/{offset}", response_model=DeadLetterDetail)
async def dlq_inspect(
    partition: Partition, offset: Offset, deps: Deps, _: AdminOnly
) -> DeadLetterDetail:
    async with deps.sessions() as session:
        entry = await get_entry(session, partition, offset)
    if entry is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter at {partition}/{offset}")
    try:
        payload: Any = json.loads(entry.payload)
    except ValueError:
        payload = entry.payload.decode(errors="replace")
    return DeadLetterDetail(**_out(entry).model_dump(), headers=entry.headers, payload=payload)


class DlqReplayIn(DlqQuery):
    """The filter as a JSON body: numbers must be JSON numbers, as the schema says (pydantic
    alone would take `false` or `"5"` for a number of seconds), and nothing else is taken."""

    model_config = ConfigDict(extra="forbid")

    older_than_s: StrictFloat | None = Field(
        default=None, ge=0, le=YEARS_10, description="failed at least this long ago"
    )
    newer_than_s: StrictFloat | None = Field(
        default=None, ge=0, le=YEARS_10, description="failed within this"
    )


class ReplayOut(BaseModel):
    replayed: int
    matched: int


@router.post("/dlq/{partition}/{offset}/replay", response_model=ReplayOut)
async def dlq_replay_one(
    partition: Partition, offset: Offset, deps: Deps, admin: AdminOnly
) -> ReplayOut:
    """Replay one entry; replaying it again does nothing (`replayed: 0`)."""
    try:
        async with deps.uow() as uow:
            done = await replay_entry(uow.session, partition, offset, admin.subject)
    except NotReplayable as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return ReplayOut(replayed=int(done), matched=1)


@router.post("/dlq/replay", response_model=ReplayOut, summary="Replay every matching entry")
async def dlq_replay_matching(body: DlqReplayIn, deps: Deps, admin: AdminOnly) -> ReplayOut:
    replayed, matched = await replay_all(deps.uow, body.to_filter(), admin.subject)
    return ReplayOut(replayed=replayed, matched=matched)


class PauseIn(BaseModel):
    account_id: UUID | None = Field(default=None, description="None pauses every account")
    # No NUL: PostgreSQL's text refuses it (a 500 otherwise).
    reason: str = Field(default="paused by an admin", max_length=500, pattern=r"^[^\x00]*$")


class ResumeIn(BaseModel):
    account_id: UUID | None = None


class DeliveryOut(BaseModel):
    pauses: list[dict[str, Any]]
    circuits: list[dict[str, Any]]


@router.post("/sending/pause", summary="Kill switch: pause sending (globally or one account)")
async def pause(body: PauseIn, deps: Deps, admin: AdminOnly) -> dict[str, bool]:
    async with deps.uow() as uow:
        created = await pause_sending(uow.session, body.account_id, body.reason, admin.subject)
    return {"paused": True, "changed": created}


@router.post("/sending/resume", summary="Resume sending; deferred DMs go out")
async def resume(body: ResumeIn, deps: Deps, _: AdminOnly) -> dict[str, bool]:
    async with deps.uow() as uow:
        removed = await resume_sending(uow.session, body.account_id)
    return {"paused": False, "changed": removed}


@router.get("/delivery", response_model=DeliveryOut, summary="Pauses and open circuit breakers")
async def delivery_state(deps: Deps, _: AdminOnly) -> DeliveryOut:
    async with deps.sessions() as session:
        pauses = await list_pauses(session)
        circuits = await circuit_states(session, utcnow())
    return DeliveryOut(
        pauses=[asdict(p) for p in pauses],
        circuits=[asdict(c) for c in circuits],
    )
