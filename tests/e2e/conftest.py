"""The whole stack as `make run` starts it (deploy/local/stack.py), on the test instance of
Kafka and PostgreSQL and on ports of its own."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from demo import DemoCreator, seed_creator, service_token, settings_from  # deploy/local
from stack import Stack, StackPorts, running_stack  # deploy/local

from tests.conftest import ROOT, suite_ports
from tests.settings import get_all_settings

pytestmark = pytest.mark.e2e

LOG_DIR = ROOT / ".local" / "test" / "logs"
# Every process of the stack traces every lead into JSON-lines files here
# (shared/platform/tracing.py): tests/e2e/test_tracing.py reads one lead's trace back.
TRACE_DIR = ROOT / ".local" / "test" / "traces"
# The lead ingress's producers (tests/e2e/test_lead_ingress.py): one that may publish for
# any creator, and a partner limited to a creator that no test uses.
INGRESS_PRODUCER, INGRESS_PARTNER = "e2e-crm", "e2e-partner"
INGRESS_PRODUCERS = {INGRESS_PRODUCER: ["*"], INGRESS_PARTNER: [str(uuid.UUID(int=0xE2E))]}
STACK_ENV = {
    "AUTODM_LEAD_INGRESS_PRODUCERS": json.dumps(INGRESS_PRODUCERS),
    "AUTODM_INSTAGRAM_RECONCILE_AFTER_S": "5",
    "AUTODM_INSTAGRAM_RECONCILE_INTERVAL_S": "1",
    "AUTODM_TRACE_DIR": str(TRACE_DIR),
    "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    # Spans reach the files within a fifth of a second (the SDK's default is 5 s).
    "OTEL_BSP_SCHEDULE_DELAY": "200",
}


def _test_ports() -> StackPorts:
    """Ports of the e2e stack; E2E_PORT_OFFSET moves them all (two checkouts side by side)."""
    ports: StackPorts = suite_ports(18180, 8100, 18190, "E2E_PORT_OFFSET")
    return ports


# Package scope: the stack stops when this folder's tests end. Its consumers share
# groups with every other suite on the test broker and must not outlive them.
@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    database = get_all_settings().database_url.get_secret_value().rsplit("/", 1)[1]
    # The processes log at DEBUG: test_observability follows one correlation id through
    # them (this process keeps its own level: the stack's env is copied at start).
    level = os.environ.get("AUTODM_LOG_LEVEL")
    os.environ["AUTODM_LOG_LEVEL"] = "DEBUG"
    # An `unknown` DM is looked up in its conversation after seconds, not minutes
    # (test_database_outage: its echo may come first; this is the fallback).
    os.environ.update(STACK_ENV)
    shutil.rmtree(TRACE_DIR, ignore_errors=True)  # this run's spans only
    try:
        stacked = running_stack(_test_ports(), database, LOG_DIR)
        stack = stacked.__enter__()
    finally:
        os.environ["AUTODM_LOG_LEVEL"] = level or "WARNING"
        for name in STACK_ENV:
            os.environ.pop(name, None)
    try:
        yield stack
    finally:
        stacked.__exit__(None, None, None)


@pytest.fixture
async def sandbox(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ports.sandbox}") as client:
        yield client


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {service_token(stack.ports.local_issuer)}"}
    base_url = f"http://127.0.0.1:{stack.ports.api}"
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
        yield client


@pytest.fixture
async def creator(stack: Stack, sandbox: httpx.AsyncClient) -> DemoCreator:
    return await seed_creator(settings_from(stack.env), sandbox, f"e2e.{uuid.uuid4().hex[:10]}")
