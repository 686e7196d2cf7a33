"""webhook_ingest under uvicorn on a real port, on real Kafka and PostgreSQL: unsigned and
oversized uploads (chunked, hundreds of MB in all, at once) leave its memory flat, and a
genuine signed webhook sent meanwhile is accepted (issue #14: the endpoint used to read
every body whole before checking anything, 100 MB -> 663 MB resident for one upload)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from services.webhook_ingest.app import create_app as create_ingest
from tests.integration.served import free_port, served
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

CHUNK = b"x" * (64 * 1024)
UPLOAD_BYTES = 64 * 1024 * 1024  # each; 8 at once: 512 MB offered in all
FLAT_BYTES = 64 * 1024 * 1024  # growth allowed (one upload's size; buffering all is 8x)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@contextmanager
def peak_rss() -> Iterator[list[int]]:
    """Samples this process's resident memory (the server runs in a thread of it)."""
    peak = [rss_bytes()]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.01)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


async def big_body() -> AsyncIterator[bytes]:
    for _ in range(UPLOAD_BYTES // len(CHUNK)):
        yield CHUNK


async def upload(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> int | str:
    """The status of an oversized chunked upload, or how the connection ended without one."""
    try:
        answer = await client.post(path, content=big_body(), headers=headers)
    except httpx.TransportError as exc:
        return type(exc).__name__
    return answer.status_code


def genuine(settings: AllSettings) -> tuple[bytes, dict[str, str]]:
    item = {"sender": {"id": "5550001"}, "recipient": {"id": "17840000000000001"}}
    item["message"] = {"mid": "m_body_limits", "text": "hi"}  # type: ignore[assignment]
    note = {"object": "instagram", "entry": [{"id": "17840000000000001", "time": 1}]}
    note["entry"][0]["messaging"] = [item]  # type: ignore[index]
    body = json.dumps(note).encode()
    secret = settings.instagram_app_secret.get_secret_value().encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": signature, "content-type": "application/json"}


async def test_oversized_uploads_leave_memory_flat_and_real_webhooks_pass(
    settings: AllSettings,
) -> None:
    port = free_port()
    with served(create_ingest(settings), port) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            body, signed = genuine(settings)
            assert (
                await client.post("/webhooks/instagram", content=body, headers=signed)
            ).is_success
            wrong = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
            with peak_rss() as peak:
                before = rss_bytes()
                uploads = [
                    upload(client, path, headers)
                    for path in ("/webhooks/instagram", "/webhooks/whatsapp")
                    for headers in ({}, {}, wrong, wrong)
                ]
                real = client.post("/webhooks/instagram", content=body, headers=signed)
                *outcomes, answer = await asyncio.gather(*uploads, real)
            grown = peak[0] - before
            assert grown < FLAT_BYTES, f"resident memory grew by {grown / 2**20:.0f} MiB"
            assert answer.status_code == 200, answer.text
            assert outcomes == [401, 401, 413, 413] * 2
