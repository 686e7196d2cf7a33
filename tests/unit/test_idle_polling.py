"""What an idle stack does between records: the outbox relay's poll backs off while it
finds nothing and snaps back when woken or busy; a batch subscriber waits for records in
its poll, not in a sleep after it (a record arriving then would wait the sleep out), and
lingers for more only when its batch has room."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition

from shared.messaging import batch_polling, outbox
from shared.messaging.outbox import OutboxRelay


class CountingRelay(OutboxRelay):
    """A relay over an empty outbox (one row once `rows` is set) that notes, at each poll,
    how long it had waited for it."""

    def __init__(self) -> None:
        super().__init__(None, None, batch_size=10, poll_interval_s=0.05)  # type: ignore[arg-type]
        self.waits: list[float] = []
        self.rows = 0
        self.polled = asyncio.Event()

    async def publish_batch(self) -> int:
        self.waits.append(self._interval_s)
        self.polled.set()
        rows, self.rows = self.rows, 0
        return rows

    async def backlog(self) -> int:
        return 0

    async def next_poll(self) -> None:
        self.polled.clear()
        await asyncio.wait_for(self.polled.wait(), 30)


async def test_an_idle_relay_polls_less_and_less_until_woken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox, "IDLE_POLL_MAX_S", 0.4)
    relay = CountingRelay()
    task = asyncio.create_task(relay.run_forever())
    try:
        while len(relay.waits) < 6:
            await relay.next_poll()
        assert relay.waits[:6] == [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]  # doubles, then capped
        relay.rows = 1
        relay.wake.set()  # a writer in this process: polled at once, whatever the interval
        await relay.next_poll()
        await relay.next_poll()
        assert relay.waits[-1] == 0.05  # it found a row: back to the base interval
    finally:
        task.cancel()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Subscriber:
    batch_timeout_ms = 200
    max_records = 10


class Consumer:
    """getmany answers in turn, each after `wait_s` of the fake clock."""

    def __init__(self, clock: Clock, answers: list[dict[Any, list[str]]], wait_s: float) -> None:
        self.clock, self.answers, self.wait_s = clock, answers, wait_s

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[str]]:
        self.clock.now += self.wait_s
        return self.answers.pop(0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(batch_polling.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(batch_polling.anyio, "sleep", fake.sleep)
    # Module state a broker of another test may have set (AUTODM_KAFKA_BATCH_LINGER_MS).
    monkeypatch.setattr(batch_polling, "linger_s", 0.0)
    return fake


async def test_an_empty_poll_that_waited_goes_straight_into_the_next(clock: Clock) -> None:
    consumer = Consumer(clock, [{}, {TopicPartition("t", 0): ["a", "b"]}], wait_s=0.2)
    subscriber = Subscriber()
    assert await batch_polling.get_batch(subscriber, consumer) == ()  # type: ignore[arg-type]
    assert await batch_polling.get_batch(subscriber, consumer) == ("a", "b")  # type: ignore[arg-type]
    assert clock.slept == []  # faststream's own get_msg sleeps 0.2 s after the empty poll


async def test_an_empty_poll_that_came_back_at_once_does_not_spin(clock: Clock) -> None:
    consumer = Consumer(clock, [{}], wait_s=0)
    assert await batch_polling.get_batch(Subscriber(), consumer) == ()  # type: ignore[arg-type]
    assert clock.slept == [0.2]


async def test_a_part_filled_batch_lingers_and_takes_what_came_meanwhile(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_polling, "linger_s", 0.01)
    tp = TopicPartition("t", 0)
    consumer = Consumer(clock, [{tp: ["a"]}, {tp: ["b", "c"]}], wait_s=0)
    assert await batch_polling.get_batch(Subscriber(), consumer) == ("a", "b", "c")  # type: ignore[arg-type]
    assert clock.slept == [0.01]


async def test_a_full_batch_does_not_linger(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_polling, "linger_s", 0.01)
    full = {TopicPartition("t", 0): [str(i) for i in range(Subscriber.max_records)]}
    consumer = Consumer(clock, [full], wait_s=0)
    assert len(await batch_polling.get_batch(Subscriber(), consumer)) == Subscriber.max_records  # type: ignore[arg-type]
    assert clock.slept == []
