"""The delivery gate of a sender: may this account send now, and what happened when it did.

One place decides, in this order: the kill switch (paused globally or for the account),
the rate-limit buckets (a short wait in-process, a longer one deferred), the provider's
and the account's circuit breakers (a throttle signal is an open breaker until the
signalled time). Outcomes feed the breakers, and every breaker transition is written to
`delivery_circuits` before the caller moves on, so a restarted or another replica never
sends to a throttled account before its time. Each sender re-reads pauses and breakers
every `delivery_state_refresh_s`.

Sends of one account are serialized by a per-account lock (the request consumer and the
retry consumer of one process may hold records of the same account): the next send of an
account starts only after the previous answer, throttle signal included, was recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.circuit import (
    Circuit,
    CircuitPolicy,
    account_scope,
    export_gauge,
    provider_scope,
    save_circuit,
)
from shared.db.models import DeliveryCircuit, SendingPause
from shared.events import utcnow
from shared.kill_switch import GLOBAL
from shared.logs import get_logger
from shared.providers.meta_errors import THROTTLE_CODES, ErrorClass, MetaError
from shared.ratelimit import RateLimiter, SendKind, rates_from
from shared.settings import Settings

log = get_logger(__name__)

# Codes that limit the whole app rather than one account (platform facts §1g): they open
# the provider's breaker, so no account of this app sends until the signalled time.
APP_WIDE_THROTTLE_CODES = frozenset({4})

Limits = Sequence[tuple[SendKind, tuple[str, ...]]]


@dataclass(frozen=True)
class Verdict:
    go: bool
    not_before: datetime | None = None
    why: str = ""  # paused | rate_limited | throttled | circuit_open
    wait_s: float = 0.0


class DeliveryGate:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], provider: str, settings: Settings
    ) -> None:
        self._sessions = sessions
        self.provider = provider
        self._limiter = RateLimiter(rates_from(settings))
        self._account_policy = CircuitPolicy(
            settings.circuit_account_failures, settings.circuit_open_s, settings.circuit_max_open_s
        )
        self._provider_policy = CircuitPolicy(
            settings.circuit_provider_failures,
            settings.circuit_open_s,
            settings.circuit_max_open_s,
        )
        self._paused_recheck = timedelta(seconds=settings.paused_recheck_s)
        self._default_block_s = settings.throttle_default_block_s
        self._refresh_s = settings.delivery_state_refresh_s
        self._circuits: dict[str, Circuit] = {}
        self._saved_at: dict[str, datetime] = {}
        self._paused: set[str] = set()
        self._locks: dict[UUID, asyncio.Lock] = {}

    # --- shared state -------------------------------------------------------------------

    async def refresh(self) -> None:
        async with self._sessions() as session:
            self._paused = set(await session.scalars(select(SendingPause.scope)))
            rows = (
                await session.scalars(
                    select(DeliveryCircuit).where(DeliveryCircuit.provider == self.provider)
                )
            ).all()
        for row in rows:
            if row.updated_at > self._saved_at.get(row.scope, datetime.min.replace(tzinfo=UTC)):
                self._circuit(row.scope, row.account_id).load(row)
                self._saved_at[row.scope] = row.updated_at
                export_gauge(row.scope, row.provider, self._circuits[row.scope].state)

    async def run_refresher(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception:
                log.exception("delivery state refresh failed; keeping the last one")

    def _circuit(self, scope: str, account_id: UUID | None) -> Circuit:
        circuit = self._circuits.get(scope)
        if circuit is None:
            policy = self._account_policy if account_id else self._provider_policy
            circuit = Circuit(scope, self.provider, account_id, policy)
            self._circuits[scope] = circuit
        return circuit

    def _breakers(self, account_id: UUID) -> tuple[Circuit, Circuit]:
        return (
            self._circuit(provider_scope(self.provider), None),
            self._circuit(account_scope(self.provider, account_id), account_id),
        )

    async def _save(self, circuit: Circuit) -> None:
        now = utcnow()
        async with self._sessions.begin() as session:
            await save_circuit(session, circuit, now)
        self._saved_at[circuit.scope] = now

    # --- before a send ------------------------------------------------------------------

    def lock(self, account_id: UUID) -> asyncio.Lock:
        return self._locks.setdefault(account_id, asyncio.Lock())

    def check(self, account_id: UUID, limits: Limits) -> Verdict:
        now = utcnow()
        if GLOBAL in self._paused or str(account_id) in self._paused:
            return Verdict(False, now + self._paused_recheck, "paused")
        wait = self._limiter.wait_s(list(limits), time.monotonic())
        if wait > 0:
            return Verdict(False, now + timedelta(seconds=wait), "rate_limited", wait)
        breakers = self._breakers(account_id)
        for circuit in breakers:
            if not _may_probe(circuit, now):
                why = "throttled" if circuit.error_code in THROTTLE_CODES else "circuit_open"
                return Verdict(False, circuit.retry_at(now), why)
        for circuit in breakers:
            circuit.admits(now)
        self._limiter.take(list(limits), time.monotonic())
        return Verdict(True)

    def abandon(self, account_id: UUID) -> None:
        """The admitted send did not happen (a duplicate): free a half-open probe slot."""
        for circuit in self._breakers(account_id):
            circuit.probing = False

    @contextlib.contextmanager
    def outcome_pending(self, account_id: UUID) -> Iterator[None]:
        """Around an admitted send until its outcome is recorded. If anything else escapes
        (the database or the broker gone mid-send, as during their restarts), the probe slot
        of a half-open breaker is freed: otherwise it stays taken for the life of the
        process and the account's DMs wait `circuit_open` forever (found by `make chaos`)."""
        try:
            yield
        except BaseException:
            self.abandon(account_id)
            raise

    # --- after a send -------------------------------------------------------------------

    async def succeeded(self, account_id: UUID) -> None:
        """Meta answered (accepted, or refused for a reason of the recipient's)."""
        for circuit in self._breakers(account_id):
            if circuit.on_success():
                log.info("circuit closed", scope=circuit.scope)
                await self._save(circuit)

    async def failed(self, account_id: UUID, error: MetaError) -> None:
        """No answer or a server error: counts towards opening the breakers."""
        now = utcnow()
        for circuit in self._breakers(account_id):
            if circuit.on_failure(now, str(error), error.code):
                log.warning("circuit opened", scope=circuit.scope, until=str(circuit.blocked_until))
                await self._save(circuit)

    async def throttled(self, account_id: UUID, error: MetaError) -> datetime:
        """Meta signalled throttling: no send to the scope before the time it named."""
        until = utcnow() + timedelta(seconds=error.retry_after_s or self._default_block_s)
        provider, account = self._breakers(account_id)
        circuit = provider if error.code in APP_WIDE_THROTTLE_CODES else account
        circuit.on_throttle(until, str(error), error.code)
        await self._save(circuit)
        log.warning("throttled", scope=circuit.scope, until=str(circuit.blocked_until))
        return circuit.blocked_until or until


def _may_probe(circuit: Circuit, now: datetime) -> bool:
    """`admits` without taking the probe slot (both breakers are checked first)."""
    if circuit.state.value == "open":
        return circuit.blocked_until is None or now >= circuit.blocked_until
    if circuit.state.value == "half_open":
        return not circuit.probing
    return True


def counts_as_failure(error: MetaError) -> bool:
    return error.error_class in (ErrorClass.TRANSIENT, ErrorClass.AMBIGUOUS)
