"""A service stops even when a background loop swallows a cancellation (Python 3.11's
asyncio.wait_for can drop one that arrives as its wait completes; a suite hung on it)."""

from __future__ import annotations

import asyncio

from shared.platform.service_http import _cancel_all


async def test_a_loop_that_swallows_one_cancellation_is_still_stopped() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 1:
                    raise  # the second cancellation is honoured

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(_cancel_all([task]), timeout=10)
    assert task.done() and swallowed == 2
