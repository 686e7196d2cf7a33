"""The send intent (`dm_sends`, one row per lead and route): what makes "never send twice"
hold for both senders (docs/RELIABILITY.md).

A request claims the intent (`sending`) before Meta is called; the answer finishes it
(`sent`, `failed`, `skipped`, `link`), a missing answer leaves it `unknown`, and a wait
leaves it `deferred`. Which existing intent a request may take over is one rule
(`Takeover`): nothing that may have reached the person (`sending`, `sent`, `unknown`) is
ever taken again. The states are stored as these strings (no migration: the column held
the same literals before the enum).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, cast
from uuid import UUID

from sqlalchemy import ColumnElement, Executable, Table, bindparam, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.events import DmRequested, utcnow
from shared.db.models import DmSend


class IntentState(StrEnum):
    SENDING = "sending"  # claimed: Meta may be on it; never taken over
    SENT = "sent"  # Meta accepted it
    UNKNOWN = "unknown"  # no answer after the request left: may have reached the person
    DEFERRED = "deferred"  # waits (limits, throttling, pause) until `not_before`
    FAILED = "failed"  # refused, nothing reached the person
    SKIPPED = "skipped"  # not sent on purpose (not connected, window closed, a re-route)
    LINK = "link"  # WhatsApp: the lead got the wa.me link instead of a message


# Ended without reaching the person: a later attempt may take these over.
NOT_SENT = frozenset({IntentState.FAILED, IntentState.SKIPPED, IntentState.LINK})

INTERRUPTED = "an earlier attempt was interrupted mid-send; not resent, to be reconciled"

INTENTS = cast(Table, DmSend.__table__)


@dataclass(frozen=True)
class Takeover:
    """Which existing intent a request (of `attempt`) may claim. A deferred intent is taken
    by its own attempt (its time came); `later_takes_deferred`: by a later one too (the
    later request sends, the deferred one then finds it done)."""

    later_takes_deferred: bool

    def allows(self, state: str, attempt: int, new_attempt: int) -> bool:
        if state == IntentState.DEFERRED:
            if self.later_takes_deferred:
                return attempt <= new_attempt
            return attempt == new_attempt
        return state in NOT_SENT and attempt < new_attempt

    def where(self, state: Any, attempt: Any, new_attempt: Any) -> ColumnElement[bool]:
        """`allows`, as SQL against the columns (or `excluded`) given."""
        deferred_attempt = (
            attempt <= new_attempt if self.later_takes_deferred else attempt == new_attempt
        )
        not_sent = state.in_([s.value for s in NOT_SENT]) & (attempt < new_attempt)
        deferred = state == IntentState.DEFERRED.value
        return cast(ColumnElement[bool], (deferred & deferred_attempt) | not_sent)


class Previous(Enum):
    """What a request does about an intent it may not take over."""

    ANNOUNCE_SENT = "announce_sent"  # re-publish `sent` with the message id
    PARK_UNKNOWN = "park_unknown"  # left `sending` by a crash: `unknown`, never resent
    NOTHING = "nothing"  # its outcome was announced when it happened, or it waits


def previous_outcome(state: str) -> Previous:
    if state == IntentState.SENT:
        return Previous.ANNOUNCE_SENT
    if state == IntentState.SENDING:
        return Previous.PARK_UNKNOWN
    return Previous.NOTHING


def parked_state(provider_message_id: str | None) -> IntentState:
    """An interrupted or unanswered send: `sent` if the provider already told us its id
    (an echo, a status webhook), else `unknown`."""
    return IntentState.SENT if provider_message_id else IntentState.UNKNOWN


def claim_statement(takeover: Takeover) -> Executable:
    """The claim, built once per sender: constructing this upsert per DM cost more CPU than
    running it (docs/BENCHMARKS.md). Core, not ORM DML: no ORM bulk-persistence pass per
    call. Returns the row when claimed, nothing when another handler holds the intent."""
    stmt = insert(INTENTS).values(
        lead_id=bindparam("c_lead_id"),
        route=bindparam("c_route"),
        state=IntentState.SENDING.value,
        attempt=bindparam("c_attempt"),
        account_id=bindparam("c_account_id"),
        recipient_igsid=bindparam("c_recipient_igsid"),
        text_sha256=bindparam("c_text_sha256"),
    )
    new, old = stmt.excluded, INTENTS.c
    return stmt.on_conflict_do_update(
        index_elements=[old.lead_id, old.route],
        set_={
            "state": new.state,
            "attempt": new.attempt,
            "provider_message_id": None,
            "waiting_for": None,
            "not_before": None,
            "updated_at": bindparam("c_updated_at"),
            "account_id": new.account_id,
            "recipient_igsid": new.recipient_igsid,
            "text_sha256": new.text_sha256,
        },
        where=takeover.where(old.state, old.attempt, new.attempt),
    ).returning(old.lead_id)


async def claim(
    session: AsyncSession,
    statement: Executable,
    request: DmRequested,
    *,
    account_id: UUID | None = None,
    recipient_igsid: str | None = None,
    text_sha256: str | None = None,
) -> bool:
    """Record the intent atomically (with what an echo will be matched on, if given);
    False if another handler holds it or it may not be taken over."""
    p = request.payload
    params = {
        "c_lead_id": p.lead_id,
        "c_route": p.route,
        "c_attempt": p.attempt,
        "c_account_id": account_id,
        "c_recipient_igsid": recipient_igsid,
        "c_text_sha256": text_sha256,
        "c_updated_at": utcnow(),
    }
    return await session.scalar(statement, params) is not None


SET_STATE = (
    update(INTENTS)
    .where(INTENTS.c.lead_id == bindparam("b_lead_id"), INTENTS.c.route == bindparam("b_route"))
    .values(
        state=bindparam("b_state"),
        provider_message_id=bindparam("b_provider_message_id"),
        updated_at=bindparam("b_updated_at"),
    )
)


async def set_state(
    session: AsyncSession,
    request: DmRequested,
    state: IntentState,
    provider_message_id: str | None = None,
) -> None:
    p = request.payload
    params = {
        "b_lead_id": p.lead_id,
        "b_route": p.route,
        "b_state": state.value,
        "b_provider_message_id": provider_message_id,
        "b_updated_at": utcnow(),
    }
    await session.execute(SET_STATE, params)


async def record_waiting(
    session: AsyncSession, takeover: Takeover, request: DmRequested, why: str, due: datetime
) -> None:
    """The intent becomes `deferred` with why and until when, so the DM shows why it waits
    (the API reads it): over an intent this attempt may take, or its own `sending` one."""
    p = request.payload
    values = {
        "state": IntentState.DEFERRED.value,
        "attempt": p.attempt,
        "waiting_for": why,
        "not_before": due,
    }
    stmt = insert(DmSend).values(lead_id=p.lead_id, route=p.route, **values)
    ours = takeover.where(DmSend.state, DmSend.attempt, p.attempt) | (
        (DmSend.state == IntentState.SENDING.value) & (DmSend.attempt == p.attempt)
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[DmSend.lead_id, DmSend.route],
            set_={**values, "updated_at": utcnow()},
            where=ours,
        )
    )
