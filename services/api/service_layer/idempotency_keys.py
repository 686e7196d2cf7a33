"""`Idempotency-Key` for POST requests: a retried request gets the first one's response and
never acts twice.

The key is claimed in its own short transaction (so a concurrent duplicate sees it and gets
409), and completed in the action's transaction: either both the action and the stored
response commit, or neither does and the key is released for the client's next try.
A claim whose request died mid-way (a crashed replica) is taken over after
`in_flight_s`; a key is forgotten after `ttl`.

A key belongs to (tenant, caller): the creator the request acts for and the token's
subject. One person acting for several creators (an agency) or a service naming creators
may reuse a key across creators; each creator's request is then its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, delete, update
from sqlalchemy.dialects.postgresql import insert

from services.api.service_layer.errors import Conflict, Invalid
from shared.db.models import IdempotencyKey
from shared.messaging.unit_of_work import UnitOfWork, UnitsOfWork

IN_FLIGHT = "in_flight"
DONE = "done"


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True)
class KeyOwner:
    """Whose key it is: the creator the request acts for, and the caller (token `sub`)."""

    creator_id: UUID
    caller: str


@dataclass(frozen=True)
class KeyPolicy:
    in_flight: timedelta
    ttl: timedelta


def request_hash(method: str, path: str, body: dict[str, Any]) -> str:
    """Same request = same method, path and body as JSON values (key order and spacing of
    the bytes on the wire don't matter)."""
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(
    uow: UnitsOfWork,
    owner: KeyOwner,
    key: str,
    fingerprint: str,
    policy: KeyPolicy,
    now: datetime,
) -> StoredResponse | None:
    """None if this request now owns the key; the stored response if it was answered."""
    row = IdempotencyKey.__table__.c
    fresh = {"request_hash": fingerprint, "state": IN_FLIGHT, "locked_at": now}
    stmt = insert(IdempotencyKey).values(
        creator_id=owner.creator_id, owner=owner.caller, key=key, created_at=now, **fresh
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[row.creator_id, row.owner, row.key],
        set_={**fresh, "status_code": None, "response_body": None, "created_at": now},
        where=((row.state == IN_FLIGHT) & (row.locked_at < now - policy.in_flight))
        | (row.created_at < now - policy.ttl),
    )
    async with uow() as work:
        if await work.session.scalar(stmt.returning(row.key)) is not None:
            return None
        existing = await work.get(IdempotencyKey, (owner.creator_id, owner.caller, key))
    return _answer_for(existing, fingerprint, policy)


def _answer_for(
    existing: IdempotencyKey | None, fingerprint: str, policy: KeyPolicy
) -> StoredResponse:
    # None: the holder released the key between our insert and read; it is free next time.
    if existing is not None and existing.request_hash != fingerprint:
        raise Invalid(
            "this Idempotency-Key was used with a different request; use a new key",
            kind="idempotency-key-reused",
        )
    if existing is None or existing.state == IN_FLIGHT or existing.status_code is None:
        raise Conflict(
            "a request with this Idempotency-Key is still being processed",
            kind="idempotency-in-flight",
            retry_after_s=max(1, int(policy.in_flight.total_seconds() // 10)),
        )
    return StoredResponse(existing.status_code, existing.response_body or {})


class ClaimLost(Conflict):
    """This request's claim was taken over (it ran past `in_flight_s`): it must not act.
    Answered 409 like any request meeting a key in flight; the retry that took it over
    answers (or has answered) the client."""

    def __init__(self, key: str) -> None:
        super().__init__(
            "a retry with this Idempotency-Key took the request over",
            kind="idempotency-in-flight",
            retry_after_s=1,
        )
        self.key = key


async def complete(
    work: UnitOfWork,
    owner: KeyOwner,
    key: str,
    response: StoredResponse,
    claimed_at: datetime,
) -> None:
    """Store the answer, in the transaction of the action it answers, only while the claim
    made at `claimed_at` still holds. A slow request (a failover drill: 40 s under a broker
    kill) was taken over by the client's retry and both committed: two leads, two DMs.
    Raising rolls the action back; the row lock taken here makes a takeover wait for us."""
    done = await work.session.execute(
        update(IdempotencyKey)
        .where(*_is_key(owner, key), *_claimed(claimed_at))
        .values(state=DONE, status_code=response.status_code, response_body=response.body)
    )
    if getattr(done, "rowcount", 1) != 1:
        raise ClaimLost(key)


async def release(uow: UnitsOfWork, owner: KeyOwner, key: str, claimed_at: datetime) -> None:
    """The request failed without acting: the client may try again with the same key (a
    claim taken over meanwhile is the other request's, and stays)."""
    async with uow() as work:
        await work.session.execute(
            delete(IdempotencyKey).where(*_is_key(owner, key), *_claimed(claimed_at))
        )


def _claimed(claimed_at: datetime) -> tuple[ColumnElement[bool], ...]:
    return (IdempotencyKey.state == IN_FLIGHT, IdempotencyKey.locked_at == claimed_at)


def _is_key(owner: KeyOwner, key: str) -> tuple[ColumnElement[bool], ...]:
    return (
        IdempotencyKey.creator_id == owner.creator_id,
        IdempotencyKey.owner == owner.caller,
        IdempotencyKey.key == key,
    )
