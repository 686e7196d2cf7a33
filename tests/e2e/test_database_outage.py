"""PostgreSQL stopped for several seconds while open-window leads flow: webhook_ingest
keeps answering 200 to Meta's signed webhooks (accepted with Kafka alone), the sandbox
never disables the app's subscription, and every lead ends `sent` with its message id,
including the one whose DM was in flight when the database went away (its echo arrives
during the outage; it is settled by the echo or by the Conversations API)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from typing import Any

import httpx
import pytest
from demo import DemoCreator, user_messages  # deploy/local
from stack import Stack, process_specs  # deploy/local

from shared.contracts.events import utcnow
from shared.delivery.ambiguous_sends import CONVERSATION_SENT_REASON, RECONCILED_REASON
from tests.conftest import ROOT
from tests.e2e.test_backbone import sandbox_messages

pytestmark = pytest.mark.e2e

LEADS = 16
OUTAGE_S = 8.0
# Meta's hour of failures before it unsubscribes the app becomes 3.6 s: shorter than the
# outage, so a webhook endpoint refusing Meta during it would get the app unsubscribed.
TIME_SCALE = 0.001


def _postgres(command: str) -> None:
    subprocess.run(
        ["/bin/bash", "deploy/local/postgres.sh", command],
        cwd=ROOT,
        env=os.environ,
        check=True,
        capture_output=True,
    )


async def _create(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    """POST a lead as a careful client does: the same Idempotency-Key until an answer."""
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            answer = await api.post("/api/leads", json=body, headers=headers)
        except httpx.TransportError:
            await asyncio.sleep(0.5)
            continue
        if answer.status_code in (200, 201):
            return str(answer.json()["id"])
        assert answer.status_code == 503, answer.text
        await asyncio.sleep(min(float(answer.headers.get("retry-after", "1")), 1.0))
    raise AssertionError("the lead was never accepted")


async def _lead(api: httpx.AsyncClient, lead_id: str) -> dict[str, Any] | None:
    try:
        answer = await api.get(f"/api/leads/{lead_id}")
    except httpx.TransportError:
        return None
    return answer.json() if answer.status_code == 200 else None


async def _until(api: httpx.AsyncClient, lead_id: str, wanted: str, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    lead = None
    while time.monotonic() < deadline:
        lead = await _lead(api, lead_id) or lead
        if lead is not None and lead["dm"]["status"] == wanted:
            return lead
        await asyncio.sleep(0.2)
    raise AssertionError(f"lead {lead_id} did not become {wanted}: {lead}")


async def _recorded(sandbox: httpx.AsyncClient, creator: DemoCreator) -> None:
    """Until the sandbox has recorded the in-flight DM (it echoes it at that moment)."""
    for _ in range(150):
        if await sandbox_messages(sandbox, creator):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the in-flight DM never reached the sandbox")


class Feed:
    """Open-window leads: the person writes (a webhook), then the lead is POSTed."""

    def __init__(self, api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator):
        self.api, self.sandbox, self.creator = api, sandbox, creator
        self.leads: dict[str, str] = {}  # lead id -> IGSID

    async def one(self, n: int) -> str:
        username = f"pg.{uuid.uuid4().hex[:8]}"
        igsid = await user_messages(self.sandbox, self.creator, username)
        body = {
            "creator_id": str(self.creator.creator_id),
            "name": f"Lead {n}",
            "instagram": {
                "username": username,
                "igsid": igsid,
                "last_inbound_at": utcnow().isoformat(),
            },
        }
        lead_id = await _create(self.api, body)
        self.leads[lead_id] = igsid
        return lead_id

    async def many(self, count: int, every_s: float) -> None:
        tasks = []
        for n in range(count):
            tasks.append(asyncio.create_task(self.one(n)))
            await asyncio.sleep(every_s)
        await asyncio.gather(*tasks)


async def test_a_postgresql_outage_loses_no_webhook_and_every_dm_settles_sent(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator, stack: Stack
) -> None:
    scaled = await sandbox.patch("/_sandbox/settings", json={"webhook_time_scale": TIME_SCALE})
    scaled.raise_for_status()
    feed = Feed(api, sandbox, creator)
    try:
        # In flight: the sandbox takes 6 s to record this DM (and echo it), then never
        # answers; the database goes away meanwhile.
        fault = {
            "scope": "instagram",
            "latency_ms": 6000,
            "error": "timeout",
            "timeout_seconds": 15,
            "timeout_records_message": True,
            "count": 1,
        }
        (await sandbox.put("/_sandbox/faults", json=fault)).raise_for_status()
        in_flight = await feed.one(0)
        await _until(api, in_flight, "sending", timeout_s=30)
        down_at = time.time()
        await asyncio.to_thread(_postgres, "stop")
        outage = asyncio.create_task(feed.many(LEADS, every_s=OUTAGE_S / LEADS))
        await _recorded(sandbox, creator)
        (await sandbox.delete("/_sandbox/faults")).raise_for_status()
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.time() - down_at)))
        up_at = time.time()
        await asyncio.to_thread(_postgres, "start")
        await outage

        # Every webhook Meta sent while the database was down was taken at once.
        log = (await sandbox.get("/_sandbox/webhooks", params={"platform": "instagram"})).json()
        during = [d for d in log["data"] if down_at <= d["created_at"] <= up_at]
        assert any(d["event"] == "message_echo" for d in during), "no echo during the outage"
        assert len(during) > LEADS // 2
        assert {(d["status"], d["attempts"], d["http_status"]) for d in during} == {
            ("delivered", 1, 200)
        }

        for lead_id in feed.leads:
            await _until(api, lead_id, "sent", timeout_s=240)
    finally:
        await sandbox.delete("/_sandbox/faults")
        await sandbox.patch("/_sandbox/settings", json={"webhook_time_scale": 1.0})
        # Leave the stack as the next tests expect it: every service ready again.
        await asyncio.to_thread(_postgres, "start")
        for spec in process_specs(stack.ports):
            await asyncio.to_thread(stack.wait_ready, spec, 120)

    messages = await sandbox_messages(sandbox, creator)
    assert len(messages) == len(feed.leads)  # each DM once
    by_recipient = {m["recipient_id"]: m["message_id"] for m in messages}
    for lead_id, igsid in feed.leads.items():
        lead = await _lead(api, lead_id)
        assert lead is not None
        assert lead["dm"]["provider_message_id"] == by_recipient[igsid]
    settled = await _lead(api, in_flight)
    assert settled is not None
    assert settled["dm"]["reason"] in (RECONCILED_REASON, CONVERSATION_SENT_REASON)

    subscriptions = (await sandbox.get("/_sandbox/webhooks/subscriptions")).json()["data"]
    assert not [s for s in subscriptions if s["disabled"]]
