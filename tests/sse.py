"""Read a Server-Sent Events stream in a test: the events (their `id` and decoded `data`)
until enough came or none came for a while. Keep-alive comments don't count as events."""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from typing import Any

import httpx


async def sse_events(
    client: httpx.AsyncClient,
    path: str,
    *,
    idle_s: float,
    until: int | None = None,
    params: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """`{"id": ..., "data": ...}` per event of GET `path`; the answer must be a stream."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    loop = asyncio.get_running_loop()
    async with client.stream("GET", path, params=params) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        # One task reads the stream: a read moved to another task breaks httpx. A timeout
        # (no event for idle_s) ends the reading, not the test.
        with suppress(TimeoutError):
            async with asyncio.timeout(idle_s) as idle:
                async for line in answer.aiter_lines():
                    if line.startswith("id: "):
                        current["id"] = line[4:]
                    elif line.startswith("data: "):
                        current["data"] = json.loads(line[6:])
                    elif line == "" and "data" in current:
                        events.append(current)
                        current = {}
                        idle.reschedule(loop.time() + idle_s)
                        if until is not None and len(events) >= until:
                            break
    return events
