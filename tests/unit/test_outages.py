"""A dependency outage (PostgreSQL unreachable) is ridden out, never parked as a dead letter.

Regression for the big fault-injection run: while PostgreSQL restarted, deferred private
replies came due in the (since retired) retry consumer and status events reached the batch
projection;
each failed with "Connection refused", was parked in the DLQ, and its lead stayed
`queued` (or behind its real status) until an operator replayed it.

The refused connections here are real: an engine pointed at a port nothing listens on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.events import DmRequested, DmStatusChanged, DmStatusPayload
from shared.contracts.lifecycle import DmStatus
from shared.contracts.topics import DLQ, DM_STATUS
from shared.db.session import make_engine, make_sessionmaker
from shared.delivery.deferrals import DeferralPoller
from shared.messaging.batches import BatchWork
from shared.messaging.dead_letters import DeadLetterPolicy, DeliveryFailed, classify
from shared.messaging.unit_of_work import UnitOfWork, UnitOfWorkFactory
from shared.platform.metrics import BACKGROUND_OUTAGE
from shared.platform.outages import is_outage, ride_out
from tests.records import consumer_record
from tests.settings import AllSettings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def down_db() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = f"postgresql+asyncpg://autodm:x@127.0.0.1:{_closed_port()}/autodm"
    engine = make_engine(AllSettings(database_url=SecretStr(url)))
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _query(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        await session.execute(text("select 1"))


def _record(value: bytes) -> ConsumerRecord[Any, Any]:
    return consumer_record(value, offset=7)


async def test_a_refused_database_connection_is_an_outage_and_a_bad_record_is_not(
    down_db: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(Exception) as refused:
        await _query(down_db)
    assert is_outage(refused.value)
    assert classify(refused.value)[0] == "outage"
    assert not is_outage(ValueError("bad record"))
    # A send that gave up is the sender's verdict, even when Meta was unreachable.
    failed = DeliveryFailed("retries_exhausted", "transient", None, 3, "unreachable")
    failed.__context__ = ConnectionRefusedError()
    assert not is_outage(failed)


async def test_ride_out_retries_an_outage_until_it_ends_and_not_other_errors() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("database restarting")
        return "done"

    assert await ride_out(flaky, limit_s=10, what="test") == "done"
    assert len(calls) == 3

    async def broken() -> None:
        calls.append(1)
        raise ValueError("bad record")

    calls.clear()
    with pytest.raises(ValueError):
        await ride_out(broken, limit_s=10, what="test")
    assert len(calls) == 1


async def test_a_batch_failing_on_an_outage_raises_instead_of_parking(
    down_db: async_sessionmaker[AsyncSession],
) -> None:
    parked: list[ConsumerRecord[Any, Any]] = []

    async def park(record: ConsumerRecord[Any, Any], exc: BaseException) -> None:
        parked.append(record)

    async def apply(uow: UnitOfWork, events: Sequence[DmStatusChanged]) -> None:
        await uow.session.execute(text("select 1"))

    work = BatchWork(DmStatusChanged, UnitOfWorkFactory(down_db), apply, park)
    event = DmStatusChanged(
        correlation_id="c",
        creator_id=uuid4(),
        payload=DmStatusPayload(lead_id=uuid4(), status=DmStatus.SENT),
    )
    with pytest.raises(Exception) as raised:
        await work.run([event], [_record(event.model_dump_json().encode())])
    assert is_outage(raised.value)
    assert parked == []


async def test_deferred_dms_wait_through_an_outage_and_the_poller_goes_on(
    down_db: async_sessionmaker[AsyncSession],
) -> None:
    requested: list[DmRequested] = []

    async def request_again(request: DmRequested, headers: dict[str, str]) -> None:
        requested.append(request)

    poller = DeferralPoller(
        down_db, request_again, poll_s=0.05, routes=["ig_dm"], provider="outage-test"
    )
    with pytest.raises(Exception) as refused:
        await poller.dispatch_due(datetime.now(UTC))
    assert is_outage(refused.value)  # the rows stay where they are: nothing is lost

    loop = asyncio.create_task(poller.run_forever())
    await asyncio.sleep(0.3)
    assert not loop.done()  # an outage is waited out, not a crash of the sender
    assert BACKGROUND_OUTAGE.labels(loop="outage-test_deferral")._value.get() == 1
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    assert requested == []


async def test_a_handler_is_retried_through_an_outage_and_parked_only_past_the_limit() -> None:
    async def run(limit_s: float, failures: int) -> tuple[int, list[dict[str, str]]]:
        policy = DeadLetterPolicy("test", outage_limit_s=limit_s)
        broker = KafkaBroker(middlewares=[policy])
        policy.publish = broker.publish
        calls, parked = 0, []

        @broker.subscriber(DM_STATUS, group_id="outage-test")
        async def handler(body: dict[str, Any]) -> None:
            nonlocal calls
            calls += 1
            if calls <= failures:
                raise ConnectionRefusedError("database restarting")

        @broker.subscriber(DLQ, group_id="outage-test-dlq")
        async def dlq(body: dict[str, Any], msg: KafkaMessage) -> None:
            parked.append(msg.headers)

        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish({"n": 1}, DM_STATUS)
        return calls, parked

    calls, parked = await run(limit_s=30, failures=2)
    assert (calls, parked) == (3, [])
    calls, parked = await run(limit_s=0, failures=1)
    assert calls == 1
    assert [h["x-error-reason"] for h in parked] == ["outage"]
