"""The drills' world: deploy/local/cluster.sh's 3-broker Kafka and PostgreSQL primary +
standby, every AutoDM service as a process (tests/chaos's Stack) pointed at all three
brokers and at both PostgreSQL nodes (multi-host URL, target_session_attrs=read-write),
and creators with Instagram and WhatsApp connected. Only `make drills` runs them
(DRILLS=1): they take minutes each and are not part of `make test`."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from demo import DemoCreator, seed_creator, service_token, settings_from  # deploy/local
from sqlalchemy import text
from stack import Stack, StackPorts, prepare, process_specs, stack_env  # deploy/local

from shared.db.session import make_engine
from tests.conftest import ROOT

STATE = ROOT / ".local" / "drills"
CLUSTER = ["/bin/bash", str(ROOT / "deploy" / "local" / "cluster.sh")]
BASE = int(os.environ.get("DRILLS_PORT_BASE", "21100"))

DRILL_ENV = {
    "AUTODM_LOG_LEVEL": "WARNING",
    # The drills' own client sends 50 leads/s; the per-caller limit is not under test.
    "AUTODM_API_RATE_LIMIT_SERVICE": "0",
    # Instagram's ceiling (750/h per account): fewer private replies wait `rate_limited`.
    "AUTODM_INSTAGRAM_PRIVATE_REPLIES_PER_H": "750",
    "AUTODM_INSTAGRAM_PRIVATE_REPLY_BURST": "150",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("DRILLS") == "1":
        return
    skip = pytest.mark.skip(reason="failover drills run with `make drills` only")
    for item in items:
        if "tests/drills/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


def cluster(*args: str) -> str:
    done = subprocess.run([*CLUSTER, *args], check=True, capture_output=True, text=True)
    return done.stdout


def drill_ports() -> StackPorts:
    return StackPorts(
        kafka=BASE + 1,
        postgres=BASE + 10,
        sandbox=BASE + 20,
        api=BASE + 21,
        webhook_ingest=BASE + 22,
        instagram_sender=BASE + 23,
        whatsapp_sender=BASE + 24,
        token_refresher=BASE + 25,
        api_workers=BASE + 27,
        local_issuer=BASE + 26,
    )


@pytest.fixture(scope="session")
def cluster_env() -> Iterator[dict[str, str]]:
    """A fresh cluster for the session, stopped at its end whatever happened."""
    cluster("stop")
    shutil.rmtree(STATE, ignore_errors=True)
    try:
        cluster("start")
        lines = cluster("env").splitlines()
        yield dict(line.split("=", 1) for line in lines if "=" in line)
    finally:
        if os.environ.get("DRILLS_KEEP") != "1":  # 1: left running to look into a failure
            cluster("stop")


@pytest.fixture(scope="session")
def drill_stack(cluster_env: dict[str, str]) -> Iterator[Stack]:
    ports = drill_ports()
    env = stack_env(ports, "autodm_drills") | cluster_env | DRILL_ENV
    prepare(env)
    stack = Stack(env=env, ports=ports, log_dir=STATE / "logs")
    try:
        _start(stack)
        yield stack
    finally:
        stack.stop()


@dataclass
class World:
    stack: Stack
    api: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    creators: list[DemoCreator]
    wa_numbers: dict[str, str]  # creator id -> phone_number_id
    leads_so_far: int = 0  # traffic numbers leads across drills (unique recipients)


@pytest.fixture(scope="session")
async def world(drill_stack: Stack) -> AsyncIterator[World]:
    ports = drill_stack.ports
    token = service_token(ports.local_issuer)
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports.sandbox}", timeout=30) as sandbox,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports.api}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as api,
    ):
        settings = settings_from(drill_stack.env)
        count = int(os.environ.get("DRILLS_CREATORS", "20"))
        creators = [await seed_creator(settings, sandbox, f"drill.c{i}") for i in range(count)]
        numbers = {str(c.creator_id): await _connect_whatsapp(api, sandbox, c) for c in creators}
        # A fresh number's tier (250 a day) would hold most templates back for a day.
        engine = make_engine(settings)
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE whatsapp_numbers SET daily_limit = 1000000"))
        await engine.dispose()
        yield World(drill_stack, api, sandbox, creators, numbers)


async def _connect_whatsapp(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator
) -> str:
    """As demo.connect_whatsapp, returning the sandbox's phone_number_id."""
    display = f"+1555{creator.creator_id.int % 10**7:07d}"
    number = (
        await sandbox.post("/_sandbox/whatsapp/numbers", json={"display_phone_number": display})
    ).json()
    template = {"name": "guide_offer", "language": "en_US", "body_params": 1}
    await sandbox.post("/_sandbox/whatsapp/templates", json=template)
    params = {"creator_id": str(creator.creator_id)}
    body = {k: number[k] for k in ("phone_number_id", "access_token", "display_phone_number")}
    connected = await api.post("/api/whatsapp/numbers", params=params, json=body)
    connected.raise_for_status()
    mapping = {"name": "guide_offer", "language": "en_US", "parameters": ["first_name"]}
    templates = f"/api/whatsapp/numbers/{connected.json()['account_id']}/templates"
    (await api.post(templates, params=params, json=mapping)).raise_for_status()
    return str(number["phone_number_id"])


def _start(stack: Stack) -> None:
    """Our ports lie in Linux's ephemeral range: a bind can fail while someone's outgoing
    connection holds the port for a moment; start again then."""
    for attempt in range(4):
        try:
            stack.start(process_specs(stack.ports), timeout_s=180)
            return
        except RuntimeError:
            stack.stop()
            if attempt == 3:
                raise
            time.sleep(5)
