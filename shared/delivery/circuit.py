"""Circuit breakers per sending account and per provider: closed -> open -> half-open.

- A throttle signal opens the account's breaker (or the provider's, for app-wide codes)
  until the time Meta signalled: nothing is sent there before it.
- A burst of consecutive failures opens it for `open_s`, doubling after each failed
  probe up to `max_open_s`.
- Once the time has passed the breaker is half-open: one send goes as a probe; success
  closes it, failure opens it again.

The state machine here is pure; shared.delivery.gate persists every transition in
`delivery_circuits`, so every replica and the admin API see the same breakers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import DeliveryCircuit
from shared.platform.metrics import CIRCUIT_STATE


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


GAUGE_VALUE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


@dataclass(frozen=True)
class CircuitPolicy:
    failure_threshold: int
    open_s: float
    max_open_s: float


def provider_scope(provider: str) -> str:
    return provider


def account_scope(provider: str, account_id: UUID) -> str:
    return f"{provider}:{account_id}"


@dataclass
class Circuit:
    scope: str
    provider: str
    account_id: UUID | None
    policy: CircuitPolicy
    state: CircuitState = CircuitState.CLOSED
    blocked_until: datetime | None = None
    failures: int = 0
    opened_count: int = 0
    reason: str | None = None
    error_code: int | None = None
    probing: bool = False

    def admits(self, now: datetime) -> bool:
        """Whether a send may go now; a half-open breaker admits one probe at a time."""
        if self.state == CircuitState.OPEN:
            if self.blocked_until is not None and now < self.blocked_until:
                return False
            self.state = CircuitState.HALF_OPEN
        if self.state == CircuitState.HALF_OPEN:
            if self.probing:
                return False
            self.probing = True
        return True

    def on_success(self) -> bool:
        """Close; True if that changed the state."""
        changed = self.state != CircuitState.CLOSED
        self.state, self.failures, self.probing = CircuitState.CLOSED, 0, False
        self.opened_count, self.reason, self.error_code = 0, None, None
        self.blocked_until = None
        return changed

    def on_failure(self, now: datetime, reason: str, code: int | None) -> bool:
        """Count a failure; True if it opened the breaker."""
        self.failures += 1
        was_probe, self.probing = self.state == CircuitState.HALF_OPEN, False
        if not was_probe and self.failures < self.policy.failure_threshold:
            return False
        delay = min(self.policy.open_s * 2.0**self.opened_count, self.policy.max_open_s)
        self._open(now + timedelta(seconds=delay), reason, code)
        return True

    def on_throttle(self, until: datetime, reason: str, code: int | None) -> None:
        """Meta signalled a time: no send before it (a later signal never shortens it)."""
        self.probing = False
        if self.blocked_until is not None and self.state == CircuitState.OPEN:
            until = max(until, self.blocked_until)
        self._open(until, reason, code)

    def _open(self, until: datetime, reason: str, code: int | None) -> None:
        self.state, self.blocked_until = CircuitState.OPEN, until
        self.reason, self.error_code = reason[:500], code
        self.opened_count += 1

    def retry_at(self, now: datetime) -> datetime:
        """When a send refused now should be looked at again."""
        if self.state == CircuitState.OPEN and self.blocked_until is not None:
            return max(self.blocked_until, now)
        return now + timedelta(seconds=min(1.0, self.policy.open_s))

    def load(self, row: DeliveryCircuit) -> None:
        """Take the shared state of another replica (keeps an in-flight local probe)."""
        self.state = CircuitState(row.state)
        self.blocked_until, self.reason = row.blocked_until, row.reason
        self.error_code, self.opened_count = row.error_code, row.opened_count
        if self.state == CircuitState.CLOSED:
            self.failures, self.probing = 0, False


async def save_circuit(session: AsyncSession, circuit: Circuit, now: datetime) -> None:
    values: dict[str, Any] = {
        "provider": circuit.provider,
        "account_id": circuit.account_id,
        "state": circuit.state,
        "blocked_until": circuit.blocked_until,
        "reason": circuit.reason,
        "error_code": circuit.error_code,
        "opened_count": circuit.opened_count,
        "updated_at": now,
    }
    stmt = insert(DeliveryCircuit).values(scope=circuit.scope, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=["scope"], set_=values))
    export_gauge(circuit.scope, circuit.provider, circuit.state)


def export_gauge(scope: str, provider: str, state: CircuitState) -> None:
    kind = "account" if ":" in scope else "provider"
    CIRCUIT_STATE.labels(provider=provider, kind=kind, scope=scope).set(GAUGE_VALUE[state])


@dataclass(frozen=True)
class CircuitView:
    """A breaker as the admin API shows it (effective state: an open breaker whose time
    has passed is half-open, waiting for its probe)."""

    scope: str
    provider: str
    account_id: UUID | None
    state: CircuitState
    blocked_until: datetime | None
    reason: str | None
    error_code: int | None
    updated_at: datetime


async def circuit_states(
    session: AsyncSession, now: datetime, *, include_closed: bool = False
) -> list[CircuitView]:
    """Every breaker (for the admin overview and `autodm sending status`)."""
    rows = (await session.scalars(select(DeliveryCircuit).order_by(DeliveryCircuit.scope))).all()
    views = []
    for row in rows:
        state = CircuitState(row.state)
        if state == CircuitState.OPEN and row.blocked_until and row.blocked_until <= now:
            state = CircuitState.HALF_OPEN
        if state == CircuitState.CLOSED and not include_closed:
            continue
        views.append(
            CircuitView(
                row.scope,
                row.provider,
                row.account_id,
                state,
                row.blocked_until,
                row.reason,
                row.error_code,
                row.updated_at,
            )
        )
    return views
