"""One lead, one trace: on the real stack (Kafka, PostgreSQL, the Meta sandbox, every service
a process of its own), a lead's DM is one trace from `POST /api/leads` through the outbox
relay, the router, the sender's Meta call, the status projection and Meta's echo webhook,
each span's parent in the trace across every Kafka hop; `autodm status` prints its id; a
dead letter replayed later links back to the trace it failed in.

The stack writes its spans as JSON lines (AUTODM_TRACE_DIR, tests/e2e/conftest.py): the
exporter the test reads back is the one `make run` uses."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from demo import DemoCreator, user_messages
from stack import Stack

from shared.contracts.events import utcnow
from shared.platform.trace_files import read_spans
from tests.conftest import ROOT
from tests.e2e.conftest import TRACE_DIR
from tests.e2e.test_backbone import settle

pytestmark = pytest.mark.e2e

Spans = list[dict[str, Any]]


async def spans_until(check: Callable[[Spans], bool], timeout_s: float = 60) -> Spans:
    """The exported spans once `check` holds (the exporters flush every 200 ms)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    spans: Spans = []
    while asyncio.get_running_loop().time() < deadline:
        spans = read_spans(TRACE_DIR)
        if check(spans):
            return spans
        await asyncio.sleep(0.25)
    return spans


def named(spans: Spans, name: str, service: str) -> list[dict[str, Any]]:
    """The spans of that name from that service ("*": any; every relay takes any row)."""
    return [
        s
        for s in spans
        if s["name"] == name and service in ("*", str(s["service"]).removeprefix("autodm-"))
    ]


def status_trace_id(stack: Stack, lead_id: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "status", lead_id],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("trace id"))
    return line.split()[-1]


# What one Instagram DM's trace must hold: (span, service) for the API, the relay, the
# router, the sender and its Meta call, the projection and the echo webhook.
EXPECTED = [
    ("POST /api/leads", "api"),
    ("leads.created outbox relay", "*"),
    ("leads.created record", "api_workers"),  # the router (a batch: the record's own span)
    ("dm.requested.instagram outbox relay", "*"),
    ("instagram send", "instagram_sender"),
    ("meta send", "instagram_sender"),
    ("dm.status record", "api_workers"),  # the status projection
    ("instagram echo", "webhook_ingest"),
]


def complete(trace_id: str) -> Callable[[Spans], bool]:
    def check(spans: Spans) -> bool:
        mine = [s for s in spans if s["trace_id"] == trace_id]
        ids = {s["span_id"] for s in mine}
        orphans = [s for s in mine if s["parent_id"] and s["parent_id"] not in ids]
        return all(named(mine, *expected) for expected in EXPECTED) and not orphans

    return check


async def test_one_leads_dm_is_one_trace_across_every_hop(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator
) -> None:
    igsid = await user_messages(sandbox, creator, f"traced.{uuid4().hex[:6]}")
    body = {
        "creator_id": str(creator.creator_id),
        "name": "Tracy",
        "instagram": {"igsid": igsid, "last_inbound_at": utcnow().isoformat()},
    }
    created = await api.post("/api/leads", json=body)
    assert created.status_code == 201, created.text
    lead_id = created.json()["id"]
    await settle(api, lead_id, "sent")

    trace_id = status_trace_id(stack, lead_id)
    assert len(trace_id) == 32
    spans = await spans_until(complete(trace_id))
    mine = [s for s in spans if s["trace_id"] == trace_id]
    by_id = {s["span_id"]: s for s in mine}

    missing = [expected for expected in EXPECTED if not named(mine, *expected)]
    assert not missing, f"not in trace {trace_id}: {missing}"
    # One root, the API's request; every other span's parent is in the trace.
    roots = [s for s in mine if s["parent_id"] is None]
    assert [(r["name"], r["service"]) for r in roots] == [("POST /api/leads", "autodm-api")]
    assert all(s["parent_id"] in by_id for s in mine if s["parent_id"])

    def ancestors(span: dict[str, Any]) -> list[str]:
        chain = []
        while span["parent_id"]:
            span = by_id[span["parent_id"]]
            chain.append(span["name"])
        return chain

    # Each Kafka hop: the record carries the producer's `create` span (faststream's model:
    # its `publish` span is the sibling timing the send), the consumer's span descends
    # from it.
    for topic in ("leads.created", "dm.requested.instagram", "dm.status"):
        for create in named(mine, f"{topic} create", "*"):
            children = [s["name"] for s in mine if s["parent_id"] == create["span_id"]]
            assert f"{topic} publish" in children
    router = named(mine, "leads.created record", "api_workers")[0]
    assert ancestors(router)[:2] == ["leads.created create", "leads.created outbox relay"]
    send = named(mine, "instagram send", "instagram_sender")[0]
    assert ancestors(send)[:3] == [
        "dm.requested.instagram create",
        "dm.requested.instagram outbox relay",
        "leads.created record",
    ]
    projection = named(mine, "dm.status record", "api_workers")[0]
    assert ancestors(projection)[:2] == ["dm.status create", "instagram send"]
    meta = named(mine, "meta send", "instagram_sender")[0]
    assert meta["attributes"]["autodm.meta.outcome"] == "accepted"
    assert "instagram send" in ancestors(meta)
    # The echo came in as Meta's own request (a trace of its own, linked) and continued
    # the lead's trace.
    echo = named(mine, "instagram echo", "webhook_ingest")[0]
    assert echo["links"], "the echo's span links the webhook's own trace"
    webhook_trace = echo["links"][0]["trace_id"]
    assert webhook_trace != trace_id
    webhook = [s for s in spans if s["trace_id"] == webhook_trace and s["parent_id"] is None]
    assert [s["name"] for s in webhook] == ["POST /webhooks/instagram"]

    # The SQL of the request and of the sender, in the trace.
    sql = [s for s in mine if s["kind"] == "CLIENT" and "db.statement" in s["attributes"]]
    assert {s["service"] for s in sql} >= {"autodm-api", "autodm-instagram_sender"}
    # Nothing secret or personal in any attribute of the trace.
    attributes = json.dumps([s["attributes"] for s in mine])
    for private in (igsid, "Tracy", "access_token"):
        assert private not in attributes


async def test_a_replayed_dead_letter_links_to_the_trace_it_failed_in(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    failed_in = secrets.token_hex(16)
    traceparent = f"00-{failed_in}-{secrets.token_hex(8)}-01"
    key = f"trace-poison-{uuid4().hex[:8]}"
    kafka = AIOKafkaProducer(bootstrap_servers=stack.env["AUTODM_KAFKA_BOOTSTRAP"])
    await kafka.start()
    try:
        await kafka.send_and_wait(
            "leads.created",
            b'{"not": "a lead.created event"}',
            key=key.encode(),
            headers=[("traceparent", traceparent.encode()), ("correlation_id", key.encode())],
        )
    finally:
        await kafka.stop()

    issuer = f"http://127.0.0.1:{stack.ports.local_issuer}"
    async with httpx.AsyncClient() as client:
        minted = await client.post(f"{issuer}/token", json={"sub": "user_admin", "role": "admin"})
    admin = {"Authorization": f"Bearer {minted.json()['access_token']}"}
    entry = await _dead_letter(api, admin, key)
    replayed = await api.post(
        f"/api/admin/dlq/{entry['dlq_partition']}/{entry['dlq_offset']}/replay", headers=admin
    )
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["replayed"] == 1

    def relays(spans: Spans) -> list[dict[str, Any]]:
        return [
            s
            for s in spans
            if s["name"] == "leads.created outbox relay"
            and any(link["trace_id"] == failed_in for link in s["links"])
        ]

    def with_its_request(spans: Spans) -> bool:
        # The relay's span may be exported before the request's ends: wait for both.
        traces = {s["trace_id"] for s in relays(spans)}
        return any(s["trace_id"] in traces and s["parent_id"] is None for s in spans)

    spans = await spans_until(with_its_request)
    assert relays(spans), f"no relay span links trace {failed_in}"
    relay = relays(spans)[0]
    # The replay itself is in the admin request's trace.
    request = [s for s in spans if s["trace_id"] == relay["trace_id"] and s["parent_id"] is None]
    assert [s["name"] for s in request] == ["POST /api/admin/dlq/{partition}/{offset}/replay"]
    # Parking happened in the record's own trace.
    assert any(s["trace_id"] == failed_in and s["name"] == "leads.created park" for s in spans)


async def _dead_letter(
    api: httpx.AsyncClient, admin: dict[str, str], key: str, timeout_s: float = 60
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        listed = await api.get(
            "/api/admin/dlq", params={"reason": "invalid_contract", "limit": 1000}, headers=admin
        )
        assert listed.status_code == 200, listed.text
        found = [e for e in listed.json() if e["key"] == key]
        if found:
            return dict(found[0])
        await asyncio.sleep(0.25)
    raise AssertionError(f"no dead letter with key {key}")
