"""PostgreSQL or Kafka briefly unreachable (a restart, a failover, a dropped connection):
the record is fine and will be handled once the dependency is back, so it is ridden out
and retried, never parked in the DLQ as if the record were at fault.

Why: the big fault-injection run (docs/RELIABILITY.md) restarts PostgreSQL while
deferred private replies come due; each raised a connection error, the handler's error
was parked as a dead letter, and the lead stayed `queued` until an operator replayed it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg  # type: ignore[import-untyped]  # no stubs; only its exception classes are used
from aiokafka import errors as kafka_errors
from sqlalchemy import exc as sa_exc

from shared.platform.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")

# OSError covers refused/reset connections and timeouts (TimeoutError is an OSError).
_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,  # connection lost or never made
    asyncpg.exceptions.OperatorInterventionError,  # server shutting down / starting up
    asyncpg.exceptions.InterfaceError,  # "connection is closed" on a dropped connection
    # Multi-host URL: every host answered, none accepts writes (a standby not yet promoted).
    asyncpg.exceptions.TargetServerAttributeNotMatched,
    sa_exc.TimeoutError,  # no pooled connection came free: the database is not answering
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.RequestTimedOutError,
    kafka_errors.NotLeaderForPartitionError,
    kafka_errors.LeaderNotAvailableError,
    # Fewer in-sync replicas than min.insync.replicas (brokers down): refused, not written.
    kafka_errors.NotEnoughReplicasError,
)

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 5.0


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says a dependency is unreachable, not that the work is wrong.

    SQLAlchemy wraps the driver's error (`DBAPIError.orig`, whose cause is asyncpg's);
    only that wrapping is looked through. Other chains are not followed on purpose: a
    provider error caused by an OSError (Meta unreachable) is the sender's to classify."""
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        exc = (orig.__cause__ or orig) if orig is not None else exc
    return isinstance(exc, _OUTAGE_TYPES)


async def ride_out(call: Callable[[], Awaitable[T]], *, limit_s: float, what: str) -> T:
    """`call()`, retried with backoff while it fails with an outage, for up to `limit_s`;
    any other error, or an outage outlasting the limit, propagates."""
    deadline = time.monotonic() + limit_s
    delay = FIRST_DELAY_S
    while True:
        try:
            return await call()
        except Exception as exc:
            if not is_outage(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("dependency unavailable; retrying", what=what, error=repr(exc)[:200])
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY_S)


def outage_types() -> tuple[type[Exception], ...]:
    """Every class `is_outage` may say yes to (SQLAlchemy's wrapper included), for code that
    dispatches on exception classes, such as Starlette's exception handlers."""
    types: tuple[type[BaseException], ...] = (sa_exc.DBAPIError, *_OUTAGE_TYPES)
    return tuple(t for t in types if issubclass(t, Exception))
