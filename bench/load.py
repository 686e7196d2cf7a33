"""Offered load: POST /api/leads at a fixed rate (or flat out) over keep-alive connections.

A minimal HTTP/1.1 client on asyncio streams, because the load generator shares the two
cores with the stack it measures: httpx costs ~1-5 ms CPU per request here, this ~0.1 ms.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Connection:
    def __init__(self, host: str, port: int, token: str) -> None:
        self._host, self._port, self._token = host, port, token
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\n"
            f"Authorization: Bearer {self._token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self._writer.write(head.encode() + payload)
        status_line = await self._reader.readline()
        length = 0
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self._reader.readexactly(length)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


@dataclass
class LoadResult:
    accepted: list[str] = field(default_factory=list)  # lead ids
    accept_latency_s: list[float] = field(default_factory=list)
    # Wall time the 201 arrived, per lead id: the peer's "accept" (its driver's) for the
    # accept -> provider latency, on the same clock as the sandbox's receipt.
    accepted_at: dict[str, float] = field(default_factory=dict)
    errors: int = 0
    elapsed_s: float = 0.0


async def offer(
    port: int,
    token: str,
    make_body: Callable[[int], dict[str, Any]],
    count: int,
    rate: float | None,
    connections: int = 16,
) -> LoadResult:
    """Send `count` leads at `rate`/s (None: as fast as `connections` allow)."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(Connection("127.0.0.1", port, token))
    result = LoadResult()

    async def one(i: int) -> None:
        conn = await pool.get()
        sent = time.perf_counter()
        try:
            status, body = await conn.post("/api/leads", make_body(i))
        finally:
            pool.put_nowait(conn)
        result.accept_latency_s.append(time.perf_counter() - sent)
        if status == 201:
            lead_id = json.loads(body)["id"]
            result.accepted.append(lead_id)
            result.accepted_at[lead_id] = time.time()
        else:
            result.errors += 1

    started = time.perf_counter()
    tasks = []
    for i in range(count):
        if rate is not None:
            await asyncio.sleep(max(started + i / rate - time.perf_counter(), 0))
        elif pool.empty():
            await asyncio.sleep(0)  # let a request finish before queueing more
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    result.elapsed_s = time.perf_counter() - started
    while not pool.empty():
        await pool.get_nowait().close()
    return result
