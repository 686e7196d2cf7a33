"""PostgreSQL stopped for a few seconds under a steady stream of leads: the API (under
uvicorn on a real port, as deployed) answers every request, 202 or 503 with Retry-After;
none has its connection closed without an answer (issue #14: 58 of 426 did)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from uuid import UUID

import httpx
import pytest

from tests.api_app import create_app
from tests.conftest import ROOT
from tests.integration.issuer import Issuer
from tests.integration.served import free_port, served
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

RATE_PER_S = 20
BEFORE_S, OUTAGE_S, AFTER_S = 2.0, 8.0, 4.0


def postgres(command: str) -> None:
    # The test instance of deploy/local/test.sh (its AUTODM_STATE_DIR and PG_PORT).
    subprocess.run(
        ["/bin/bash", "deploy/local/postgres.sh", command],
        cwd=ROOT,
        env={**os.environ, "PG_FRESH": "0"},
        check=True,
        stdout=subprocess.DEVNULL,
    )


async def one_lead(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> str:
    body = {"name": f"Outage {n}", "phone": "+14155550100", "message": "hi"}
    try:
        answer = await client.post("/api/dm/send", json=body, headers=headers)
    except httpx.TransportError as exc:
        return f"no answer ({type(exc).__name__})"
    if answer.status_code == 503:
        assert answer.headers.get("retry-after"), answer.headers
    return str(answer.status_code)


async def test_every_request_is_answered_during_a_postgres_outage(
    settings: AllSettings, issuer: Issuer, creator: UUID
) -> None:
    headers = issuer.creator(creator)
    port = free_port()
    with served(create_app(settings), port) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            outage = asyncio.create_task(_outage())
            started = time.monotonic()
            tasks = []
            n = 0
            while time.monotonic() - started < BEFORE_S + OUTAGE_S + AFTER_S:
                tasks.append(asyncio.create_task(one_lead(client, headers, n)))
                n += 1
                await asyncio.sleep(1 / RATE_PER_S)
            outcomes = Counter(await asyncio.gather(*tasks))
            await outage
    unanswered = {k: v for k, v in outcomes.items() if k.startswith("no answer")}
    assert not unanswered, f"{outcomes}"
    assert set(outcomes) <= {"202", "503"}, f"{outcomes}"
    assert outcomes["503"] > 0, f"the outage was not met: {outcomes}"


async def _outage() -> None:
    await asyncio.sleep(BEFORE_S)
    await asyncio.to_thread(postgres, "stop")
    try:
        await asyncio.sleep(OUTAGE_S)
    finally:
        await asyncio.to_thread(postgres, "start")
