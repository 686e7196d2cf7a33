"""The Conversations API: what a conversation holds, as AutoDM's reconciliation asks it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from sandbox.state import DEMO_ACCESS_TOKEN, DEMO_IG_USER_ID
from sandbox.tests.driver import SandboxDriver, graph_error

AUTH = {"Authorization": f"Bearer {DEMO_ACCESS_TOKEN}"}


async def _get(client: httpx.AsyncClient, path: str, **params: str) -> httpx.Response:
    return await client.get(f"/v23.0/{path}", params=params, headers=AUTH)


async def _conversation(client: httpx.AsyncClient, igsid: str) -> list[dict[str, Any]]:
    listed = await _get(client, "me/conversations", platform="instagram", user_id=igsid)
    assert listed.status_code == 200, listed.text
    data: list[dict[str, Any]] = listed.json()["data"]
    return data


async def test_a_conversation_lists_both_sides_newest_first_with_details(
    sb: SandboxDriver, client: httpx.AsyncClient
) -> None:
    lead = await sb.dm_from(DEMO_IG_USER_ID, "lead", text="hello?")
    sent = await sb.send_ig(DEMO_ACCESS_TOKEN, {"id": lead["igsid"]}, text="your guide")
    mid = sent.json()["message_id"]
    [conversation] = await _conversation(client, lead["igsid"])
    await asyncio.sleep(1)  # 2 calls/s per account
    messages = (await _get(client, conversation["id"], fields="messages")).json()
    assert [m["id"] for m in messages["messages"]["data"]] == [mid, lead["mid"]]
    detail = (await _get(client, mid, fields="id,created_time,from,to,message")).json()
    assert detail["message"] == "your guide"
    assert detail["from"]["id"] == DEMO_IG_USER_ID
    assert detail["to"]["data"][0]["id"] == lead["igsid"]
    assert detail["created_time"].endswith("+0000")


async def test_no_conversation_with_a_stranger(
    sb: SandboxDriver, client: httpx.AsyncClient
) -> None:
    assert await _conversation(client, "5550009999") == []


async def test_more_than_two_calls_a_second_per_account_are_refused(
    sb: SandboxDriver, client: httpx.AsyncClient
) -> None:
    lead = await sb.dm_from(DEMO_IG_USER_ID, "lead")
    answers = [
        await _get(client, "me/conversations", platform="instagram", user_id=lead["igsid"])
        for _ in range(3)
    ]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert graph_error(answers[2]) == (613, 2534040)


@pytest.mark.parametrize("records", [True, False])
async def test_a_timed_out_send_is_listed_only_if_it_reached_meta(
    sb: SandboxDriver, client: httpx.AsyncClient, records: bool
) -> None:
    lead = await sb.dm_from(DEMO_IG_USER_ID, "lead")
    fault = {"error": "timeout", "timeout_seconds": 0.1, "count": 1}
    await sb.control("PUT", "/faults", fault | {"timeout_records_message": records})
    await sb.send_ig(DEMO_ACCESS_TOKEN, {"id": lead["igsid"]}, text="maybe")
    [conversation] = await _conversation(client, lead["igsid"])
    listed = (await _get(client, conversation["id"], fields="messages")).json()
    assert len(listed["messages"]["data"]) == (2 if records else 1)
