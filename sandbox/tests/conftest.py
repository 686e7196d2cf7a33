from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from sandbox.app import create_app
from sandbox.settings import SandboxSettings
from sandbox.state import SandboxState
from sandbox.tests.driver import IG_WEBHOOK_URL, WA_WEBHOOK_URL, Receiver, SandboxDriver


@pytest.fixture
def settings() -> SandboxSettings:
    return SandboxSettings(
        instagram_webhook_url=IG_WEBHOOK_URL,
        whatsapp_webhook_url=WA_WEBHOOK_URL,
        webhook_retry_backoff_ms=0,
        whatsapp_pair_burst=0,
        # Exact status sequences; test_wa_usernames.py turns Meta's realism back on.
        whatsapp_status_delay_ms=0,
        whatsapp_status_jitter_ms=0,
        whatsapp_missing_delivered_share=0,
        whatsapp_out_of_order_share=0,
    )


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def app(settings: SandboxSettings, receiver: Receiver) -> FastAPI:
    return create_app(settings, webhook_transport=receiver.transport())


@pytest.fixture
def state(app: FastAPI) -> SandboxState:
    sandbox: SandboxState = app.state.sandbox
    return sandbox


@pytest.fixture
async def client(app: FastAPI, state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as c:
        yield c
    state.webhooks.reset()


@pytest.fixture
def sb(client: httpx.AsyncClient) -> SandboxDriver:
    return SandboxDriver(client)
