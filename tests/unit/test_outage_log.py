"""A background loop meeting a PostgreSQL or Kafka outage says so once when it starts and
once when it ends, with a gauge meanwhile, instead of a traceback on every pass (issue
#14: the outbox relays logged one a second per process); a bug is still logged in full."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from shared.messaging.outbox import OutboxRelay
from shared.platform.outage_log import OutageLog


def gauge(loop: str) -> float | None:
    return REGISTRY.get_sample_value("autodm_background_outage", {"loop": loop})


def outages(loop: str) -> float:
    return REGISTRY.get_sample_value("autodm_background_outages_total", {"loop": loop}) or 0.0


class FlakyRelay(OutboxRelay):
    """A relay whose database refuses connections for its first `down` passes."""

    def __init__(self, down: int) -> None:
        super().__init__(None, None, batch_size=10, poll_interval_s=0.01)  # type: ignore[arg-type]
        self.down = down
        self.passes = 0
        self.up = asyncio.Event()

    async def publish_batch(self) -> int:
        self.passes += 1
        if self.passes <= self.down:
            raise ConnectionRefusedError(111, "Connect call failed")
        self.up.set()
        return 0

    async def backlog(self) -> int:
        if not self.up.is_set():
            raise ConnectionRefusedError(111, "Connect call failed")
        return 0


async def test_the_relay_reports_an_outage_once_when_it_starts_and_once_when_it_ends() -> None:
    before = outages("outbox_relay")
    relay = FlakyRelay(down=3)
    with capture_logs() as logs:
        task = asyncio.create_task(relay.run_forever())
        await asyncio.wait_for(relay.up.wait(), 30)
        await asyncio.sleep(0.1)
        task.cancel()
    assert relay.passes > 3
    events = [(e["log_level"], e["event"]) for e in logs]
    assert events.count(("warning", "dependency outage started")) == 1, events
    assert events.count(("warning", "dependency outage ended")) == 1, events
    assert not [e for e in logs if e["log_level"] == "error" or "exc_info" in e], events
    assert outages("outbox_relay") == before + 1
    assert gauge("outbox_relay") == 0


def test_the_gauge_says_while_the_outage_lasts() -> None:
    log = OutageLog("test_loop")
    assert gauge("test_loop") == 0
    with capture_logs():
        log.failed(OSError("refused"), "pass failed")
        log.failed(OSError("refused"), "pass failed")
    assert (gauge("test_loop"), outages("test_loop"), log.in_outage) == (1, 1, True)
    log.succeeded()
    assert (gauge("test_loop"), log.in_outage) == (0, False)


def test_a_bug_is_still_logged_in_full_each_time() -> None:
    log = OutageLog("buggy_loop")
    with capture_logs() as logs:
        for _ in range(2):
            try:
                raise KeyError("column")
            except KeyError as exc:
                log.failed(exc, "pass failed")
    errors: list[dict[str, Any]] = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 2 and all(e.get("exc_info") for e in errors)
    assert gauge("buggy_loop") == 0
