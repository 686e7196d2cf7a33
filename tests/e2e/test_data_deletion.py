"""Meta's data-deletion callback end to end: a person known to a creator through every path
AutoDM has (a DM that opened the window, a comment that became a lead, a form lead with
their phone sent over Instagram and WhatsApp, webhooks, a dead letter) asks for deletion,
and afterwards neither any table of the database nor any topic holds their IGSID, username
or phone."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from demo import (
    DemoCreator,
    comment_lead,
    connect_whatsapp,
    seed_creator,
    settings_from,
    user_comments,
    user_messages,
    wait_settled,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from stack import Stack

from shared.contracts.events import utcnow
from shared.contracts.topics import DM_REQUESTED_INSTAGRAM, TOPICS
from shared.db.session import make_engine
from tests.settings import AllSettings

pytestmark = pytest.mark.e2e

SEARCHED_TYPES = ("text", "character varying", "json", "jsonb", "bytea")


async def test_data_deletion_leaves_nothing_of_the_person_in_the_database_or_topics(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    settings = settings_from(stack.env)
    creator = await seed_creator(
        settings, sandbox, f"e2e.del{secrets.token_hex(4)}", comment_keywords=["guide"]
    )
    await connect_whatsapp(api, sandbox, creator)
    username = f"gone.{secrets.token_hex(5)}"
    # Ofcom's drama range, away from test_whatsapp's numbers.
    digits = f"4420794609{secrets.randbelow(100):02d}"
    igsid, lead_ids = await _seed_person(api, sandbox, creator, username, f"+{digits}")
    engine = make_engine(settings)
    try:
        await _park_a_dead_letter(settings, creator, igsid, username, digits)
        await _wait_found(engine, igsid, "dead_letters")
        before = await _tables_holding(engine, [igsid, username, digits])
        assert {"leads", "dm_sends", "instagram_contacts", "outbox"} <= before
        assert {"instagram_comments", "whatsapp_contacts", "dead_letters"} <= before

        body = await _request_deletion(stack, settings, igsid)
        status = await _wait_completed(stack, body["url"])
        assert status["removed"]["leads_anonymised"] == len(lead_ids)
        assert status["removed"]["topic_records_truncated"] > 0

        # The creator still counts the leads (status and route kept), without the person.
        for lead_id in lead_ids:
            lead = (await api.get(f"/api/leads/{lead_id}")).json()
            assert lead["name"] == "(deleted)"
            assert lead["dm"]["status"] in {"sent", "delivered", "read", "skipped"}
        assert await _tables_holding(engine, [igsid, username, digits]) == set()
    finally:
        await engine.dispose()
    assert await _topics_holding(settings, [igsid, username, digits]) == set()


async def _seed_person(
    api: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    creator: DemoCreator,
    username: str,
    phone: str,
) -> tuple[str, list[str]]:
    igsid = await user_messages(sandbox, creator, username)
    await user_comments(sandbox, creator, username)
    from_comment = await comment_lead(api, creator, username)
    assert from_comment is not None
    base = {"creator_id": str(creator.creator_id), "name": "Gina", "message": "the guide pls"}
    instagram = {"username": username, "igsid": igsid, "last_inbound_at": utcnow().isoformat()}
    # The form gave their phone too: a later phone-only lead is theirs as well.
    over_instagram = await api.post(
        "/api/leads", json={**base, "phone": phone, "instagram": instagram}
    )
    over_whatsapp = await api.post(
        "/api/leads", json={**base, "phone": phone, "whatsapp_opt_in": True}
    )
    ids = [from_comment, over_instagram.json()["id"], over_whatsapp.json()["id"]]
    leads = await wait_settled(api, {i: i for i in ids}, timeout_s=60)
    statuses = {i: (lead["dm"]["status"], lead["dm"]["reason"]) for i, lead in leads.items()}
    assert all(s in {"sent", "delivered", "read"} for s, _ in statuses.values()), statuses
    return igsid, ids


async def _park_a_dead_letter(
    settings: AllSettings, creator: DemoCreator, igsid: str, username: str, digits: str
) -> None:
    """A malformed DM request quoting the person: the sender parks it in the DLQ."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        value = json.dumps({"recipient": {"igsid": igsid, "username": username, "wa": digits}})
        await producer.send_and_wait(
            DM_REQUESTED_INSTAGRAM, value.encode(), key=str(creator.account_id).encode()
        )
    finally:
        await producer.stop()


async def _request_deletion(stack: Stack, settings: AllSettings, igsid: str) -> dict[str, Any]:
    secret = settings.instagram_app_secret.get_secret_value()
    data = {"user_id": igsid, "algorithm": "HMAC-SHA256", "issued_at": int(utcnow().timestamp())}
    encoded = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    sig = hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest()
    signed = base64.urlsafe_b64encode(sig).rstrip(b"=").decode() + "." + encoded
    base_url = f"http://127.0.0.1:{stack.ports.webhook_ingest}"
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.post(
            "/webhooks/instagram/data-deletion", data={"signed_request": signed}
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _wait_completed(stack: Stack, url: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    status: dict[str, Any] = {}
    seen = []
    async with httpx.AsyncClient() as client:
        while asyncio.get_running_loop().time() < deadline:
            status = (await client.get(url)).json()
            seen.append(status["status"])
            if status["status"] == "completed":
                # Never `completed` before the topics were truncated.
                assert seen[0] == "pending", seen
                return status
            await asyncio.sleep(0.5)
    raise AssertionError(f"deletion stayed {status}")


async def _tables_holding(engine: AsyncEngine, needles: list[str]) -> set[str]:
    """Every table with a text, JSON or bytes column containing any of the needles."""
    found = set()
    async with engine.connect() as conn:
        columns = await conn.execute(
            text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = 'public' AND data_type = ANY(:types)"
            ),
            {"types": list(SEARCHED_TYPES)},
        )
        for table, column, data_type in columns.all():
            value = (
                f"encode(\"{column}\", 'escape')" if data_type == "bytea" else f'"{column}"::text'
            )
            for needle in needles:
                # Names from information_schema itself, quoted: nothing user-supplied.
                query = f'SELECT 1 FROM "{table}" WHERE strpos({value}, :n) > 0 LIMIT 1'  # noqa: S608
                hit = await conn.scalar(
                    text(query),
                    {"n": needle},
                )
                if hit:
                    found.add(table)
    return found


async def _wait_found(engine: AsyncEngine, needle: str, table: str, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if table in await _tables_holding(engine, [needle]):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{needle} never reached {table}")


async def _topics_holding(settings: AllSettings, needles: list[str]) -> set[str]:
    """Every topic with a record (key, value or header) containing any of the needles."""
    wanted = [n.encode() for n in needles]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    found = set()
    try:
        partitions = [TopicPartition(s.name, p) for s in TOPICS for p in range(s.partitions)]
        consumer.assign(partitions)
        start = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        for tp in partitions:
            if end[tp] <= start[tp]:
                continue
            consumer.seek(tp, start[tp])
            position = start[tp]
            while position < end[tp]:
                batch = await consumer.getmany(tp, timeout_ms=2000)
                for record in batch.get(tp, []):
                    position = record.offset + 1
                    raw = b"|".join(
                        [record.key or b"", record.value or b""]
                        + [v or b"" for _, v in record.headers]
                    )
                    if any(n in raw for n in wanted):
                        found.add(tp.topic)
                if not batch:
                    break
    finally:
        await consumer.stop()
    return found
