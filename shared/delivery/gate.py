"""The delivery gate of a sender: may this account send now, and what happened when it did.

One place decides, in this order: the kill switch (paused globally, for the account or for
its creator), the rate-limit buckets and the creator's own pacing (a short wait in-process,
a longer one deferred), the provider's
and the account's circuit breakers (a throttle signal is an open breaker until the
signalled time). Outcomes feed the breakers, and every breaker transition is written to
`delivery_circuits` before the caller moves on, so a restarted or another replica never
sends to a throttled account before its time. Each sender re-reads pauses and breakers
every `delivery_state_refresh_s`, and the creators' pacing with them.

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

from shared.contracts.events import utcnow
from shared.db.models import Creator, DeliveryCircuit, SendingPause
from shared.delivery.circuit import (
    Circuit,
    CircuitPolicy,
    account_scope,
    export_gauge,
    provider_scope,
    save_circuit,
)
from shared.delivery.kill_switch import GLOBAL, creator_scope
from shared.delivery.pacing import Rate, RateLimiter, SendKind, rates_from
from shared.delivery.reads import reading
from shared.delivery.settings import SenderSettings
from shared.messaging.unit_of_work import UnitOfWorkFactory
from shared.platform.logs import get_logger
from shared.platform.outage_log import OutageLog
from shared.providers.meta_errors import THROTTLE_CODES, ErrorClass, MetaError

log = get_logger(__name__)

# Codes that limit the whole app rather than one account (platform facts §1g): they open
# the provider's breaker, so no account of this app sends until the signalled time.
APP_WIDE_THROTTLE_CODES = frozenset({4})

Limits = Sequence[tuple[SendKind, tuple[str, ...]]]
# Verdicts that only wait for a bucket's token: a short one may be waited out in-process.
BUCKET_WAITS = frozenset({"rate_limited", "paced"})


@dataclass(frozen=True)
class Verdict:
    go: bool
    not_before: datetime | None = None
    why: str = ""  # paused | rate_limited | paced | throttled | circuit_open
    wait_s: float = 0.0


class DeliveryGate:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], provider: str, settings: SenderSettings
    ) -> None:
        self._uow = UnitOfWorkFactory(sessions)
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
        self._outages = OutageLog(f"delivery_state_{provider}")
        self._circuits: dict[str, Circuit] = {}
        self._saved_at: dict[str, datetime] = {}
        self._paused: set[str] = set()
        self._paces: dict[UUID, int] = {}  # creator -> DMs per hour per account
        self._locks: dict[UUID, asyncio.Lock] = {}

    # --- shared state -------------------------------------------------------------------

    async def refresh(self) -> None:
        async with reading(self._sessions) as session:  # every second: no BEGIN, no COMMIT
            self._paused = set(await session.scalars(select(SendingPause.scope)))
            paces = await session.execute(
                select(Creator.id, Creator.dm_pace_per_h).where(Creator.dm_pace_per_h.is_not(None))
            )
            self._paces = {c: per_h for c, per_h in paces if per_h is not None}
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
            except Exception as exc:
                self._outages.failed(exc, "delivery state refresh failed; keeping the last one")
            else:
                self._outages.succeeded()

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
        async with self._uow() as work:
            await save_circuit(work.session, circuit, now)
        self._saved_at[circuit.scope] = now

    # --- before a send ------------------------------------------------------------------

    def lock(self, account_id: UUID) -> asyncio.Lock:
        return self._locks.setdefault(account_id, asyncio.Lock())

    def check(self, account_id: UUID, limits: Limits, *, creator_id: UUID) -> Verdict:
        now = utcnow()
        if self._is_paused(account_id, creator_id):
            return Verdict(False, now + self._paused_recheck, "paused")
        pace = self._pace(account_id, creator_id)
        buckets = [*limits, *pace]
        clock = time.monotonic()
        wait = self._limiter.wait_s(buckets, clock)
        if wait > 0:
            # Named after what holds it back: the creator's choice or the platform's limit.
            why = "paced" if pace and self._limiter.wait_s(pace, clock) >= wait else "rate_limited"
            return Verdict(False, now + timedelta(seconds=wait), why, wait)
        breakers = self._breakers(account_id)
        for circuit in breakers:
            if not _may_probe(circuit, now):
                why = "throttled" if circuit.error_code in THROTTLE_CODES else "circuit_open"
                return Verdict(False, circuit.retry_at(now), why)
        for circuit in breakers:
            circuit.admits(now)
        self._limiter.take(buckets, clock)
        return Verdict(True)

    def _is_paused(self, account_id: UUID, creator_id: UUID) -> bool:
        scopes = (GLOBAL, str(account_id), creator_scope(creator_id))
        return any(scope in self._paused for scope in scopes)

    def _pace(self, account_id: UUID, creator_id: UUID) -> list[tuple[SendKind, tuple[str, ...]]]:
        """The creator's pacing as one more bucket of the account: evenly spaced, no burst."""
        per_h = self._paces.get(creator_id)
        if per_h is None:
            return []
        key = (str(account_id),)
        self._limiter.set_rate(
            SendKind.CREATOR_PACE, key, Rate(per_h / 3600, 1.0), time.monotonic()
        )
        return [(SendKind.CREATOR_PACE, key)]

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
