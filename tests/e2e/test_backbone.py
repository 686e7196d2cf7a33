"""One DM end to end through real Kafka and PostgreSQL, every service as its own process,
and the sandbox playing Instagram."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from demo import DemoCreator, user_comments, user_messages

from shared.contracts.events import utcnow

pytestmark = pytest.mark.e2e


async def settle(
    api: httpx.AsyncClient, lead_id: str, wanted: str, timeout_s: float = 20
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    lead: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        lead = (await api.get(f"/api/leads/{lead_id}")).json()
        if lead["dm"]["status"] == wanted:
            return lead
        await asyncio.sleep(0.1)
    raise AssertionError(f"lead stayed {lead['dm']['status']!r}, wanted {wanted!r}: {lead}")


async def sandbox_messages(
    sandbox: httpx.AsyncClient, creator: DemoCreator
) -> list[dict[str, Any]]:
    response = await sandbox.get(
        "/_sandbox/instagram/messages", params={"account_id": creator.ig_user_id}
    )
    return list(response.json()["data"])


async def test_lead_in_an_open_window_gets_exactly_one_dm(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator
) -> None:
    igsid = await user_messages(sandbox, creator, "warm.one")
    body = {
        "creator_id": str(creator.creator_id),
        "name": "Wendy",
        "instagram": {
            "username": "warm.one",
            "igsid": igsid,
            "last_inbound_at": utcnow().isoformat(),
        },
    }
    created = await api.post("/api/leads", json=body)
    assert created.status_code == 201, created.text
    lead = await settle(api, created.json()["id"], "sent")

    messages = await sandbox_messages(sandbox, creator)
    assert len(messages) == 1
    (message,) = messages
    assert message["recipient_id"] == igsid
    assert message["text"] == "Hi Wendy! Thanks for your interest, here is the guide."
    assert lead["dm"]["provider_message_id"] == message["message_id"]
    assert lead["dm"]["route"] == "ig_dm"
    assert [entry["status"] for entry in lead["dm"]["log"]] == ["queued", "sending", "sent"]
    assert lead["dm"]["sent_at"] is not None


async def test_comment_within_7_days_gets_one_private_reply(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator
) -> None:
    comment = await user_comments(sandbox, creator, "commenter.one")
    body = {
        "creator_id": str(creator.creator_id),
        "name": "Cole",
        "instagram": {"comment_id": comment["comment_id"], "commented_at": utcnow().isoformat()},
    }
    created = await api.post("/api/leads", json=body)
    lead = await settle(api, created.json()["id"], "sent")
    (message,) = await sandbox_messages(sandbox, creator)
    assert message["comment_id"] == comment["comment_id"]
    assert lead["dm"]["route"] == "ig_private_reply"


async def test_cold_instagram_lead_is_never_sent_and_waits_with_an_ig_me_link(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator
) -> None:
    body = {
        "creator_id": str(creator.creator_id),
        "name": "Cora",
        "instagram": {"username": "cold.one"},
    }
    created = await api.post("/api/leads", json=body)
    lead = await settle(api, created.json()["id"], "awaiting_contact")
    link = urlparse(lead["dm"]["link"])
    assert (link.scheme, link.netloc, link.path) == ("https", "ig.me", f"/m/{creator.username}")
    assert parse_qs(link.query)["ref"][0]
    await asyncio.sleep(0.5)  # give a wrong send time to happen
    assert await sandbox_messages(sandbox, creator) == []


async def test_phone_only_lead_gets_a_valid_wa_me_link(
    api: httpx.AsyncClient, creator: DemoCreator
) -> None:
    body = {"creator_id": str(creator.creator_id), "name": "Phil", "phone": "+44 20 7946 0958"}
    created = await api.post("/api/leads", json=body)
    lead = await settle(api, created.json()["id"], "link_ready")
    link = urlparse(lead["dm"]["link"])
    assert (link.netloc, link.path) == ("wa.me", "/442079460958")
    assert parse_qs(link.query)["text"] == ["Hi Phil! Thanks for your interest, here is the guide."]
    assert lead["dm"]["route"] == "wa_link"


async def test_unparseable_phone_fails_with_a_clear_reason(
    api: httpx.AsyncClient, creator: DemoCreator
) -> None:
    body = {"creator_id": str(creator.creator_id), "name": "Una", "phone": "+999 123"}
    created = await api.post("/api/leads", json=body)
    lead = await settle(api, created.json()["id"], "failed")
    assert "phone number" in lead["dm"]["reason"]


async def test_ig_me_link_opens_the_window_and_the_dm_goes_out_then_read_then_replied(
    api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator
) -> None:
    body = {
        "creator_id": str(creator.creator_id),
        "name": "Ida",
        "instagram": {"username": "ida.link"},
    }
    created = await api.post("/api/leads", json=body)
    lead_id = created.json()["id"]
    waiting = await settle(api, lead_id, "awaiting_contact")
    ref = parse_qs(urlparse(waiting["dm"]["link"]).query)["ref"][0]

    # The lead taps "Continue on Instagram": Instagram opens the thread and sends a signed
    # messaging_referral webhook with the ref; the DM goes out at once.
    opened = await sandbox.post(
        "/_sandbox/instagram/users/open_link",
        json={"account_id": creator.ig_user_id, "username": "ida.link", "ref": ref},
    )
    assert opened.status_code == 200, opened.text
    sent = await settle(api, lead_id, "sent")
    (message,) = await sandbox_messages(sandbox, creator)
    assert message["recipient_id"] == opened.json()["igsid"]
    assert sent["dm"]["provider_message_id"] == message["message_id"]
    assert sent["dm"]["reason"] is None  # no longer "waiting for the lead"

    await sandbox.post(
        "/_sandbox/instagram/users/read",
        json={
            "account_id": creator.ig_user_id,
            "igsid": message["recipient_id"],
            "mid": message["message_id"],
        },
    )
    await settle(api, lead_id, "read")
    await sandbox.post(
        "/_sandbox/instagram/users/message",
        json={"account_id": creator.ig_user_id, "username": "ida.link", "text": "thanks!"},
    )
    final = await settle(api, lead_id, "replied")
    assert [e["status"] for e in final["dm"]["log"]] == [
        "queued",
        "awaiting_contact",
        "sending",
        "sent",
        "read",
        "replied",
    ]
