"""Issue 16, sections 3 and 5, end to end (every service its own process, real Kafka and
PostgreSQL, the sandbox playing Instagram): a comment lead gets the creator's comment
message, and an open of AutoDM's tracked link is counted and lands on the lead's ig.me
link, whose opening sends the DM."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from demo import DemoCreator, comment_lead, seed_creator, settings_from
from stack import Stack

from tests.e2e.test_backbone import sandbox_messages, settle

pytestmark = pytest.mark.e2e
COMMENT_MESSAGE = "{name}, here is the guide you asked for under my post!"


async def _set_comment_message(api: httpx.AsyncClient, creator: DemoCreator) -> None:
    params = {"creator_id": str(creator.creator_id)}
    current = (await api.get("/api/settings", params=params)).json()
    body = {k: v for k, v in current.items() if k not in ("creator_id", "paused_by_operator")}
    body["source_templates"] = {"comment": COMMENT_MESSAGE}
    saved = await api.put("/api/settings", params=params, json=body)
    assert saved.status_code == 200, saved.text


async def test_a_comment_lead_gets_the_comment_message(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient
) -> None:
    creator = await seed_creator(
        settings_from(stack.env), sandbox, "e2e.sources", comment_keywords=["guide"]
    )
    await _set_comment_message(api, creator)
    commented = await sandbox.post(
        "/_sandbox/instagram/users/comment",
        json={"account_id": creator.ig_user_id, "username": "post.fan", "text": "guide please"},
    )
    assert commented.status_code == 200, commented.text

    lead_id = await comment_lead(api, creator, "post.fan")
    assert lead_id is not None, "the comment made no lead"
    lead = await settle(api, lead_id, "sent")
    assert (lead["source"], lead["source_post"]) == ("comment", commented.json()["media_id"])
    assert lead["dm"]["route"] == "ig_private_reply"
    (message,) = await sandbox_messages(sandbox, creator)
    assert message["text"] == "post.fan, here is the guide you asked for under my post!"
    assert message["comment_id"] == commented.json()["comment_id"]


async def test_an_open_of_the_tracked_link_is_counted_and_lands_on_the_ig_me_link(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator
) -> None:
    body = {
        "creator_id": str(creator.creator_id),
        "name": "Tia",
        "instagram": {"username": "tia.taps"},
    }
    created = await api.post("/api/leads", json=body)
    waiting = await settle(api, created.json()["id"], "awaiting_contact")
    tracked = waiting["dm"]["tracked_link"]
    ref = parse_qs(urlsplit(waiting["dm"]["link"]).query)["ref"][0]
    assert urlsplit(tracked).path == f"/l/{ref}"
    before = await _clicked(api)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ports.api}") as visitor:
        opened = await visitor.get(f"/l/{ref}")  # the lead taps the link (no sign-in)
    assert opened.status_code == 302
    assert opened.headers["location"] == waiting["dm"]["link"]  # https://ig.me/m/<acct>?ref=

    # Instagram opens the thread: the sandbox plays the ig.me page the redirect led to.
    landing = urlsplit(opened.headers["location"])
    assert landing.netloc == "ig.me"
    tapped = await sandbox.get(f"/ig.me{landing.path}?{landing.query}&as=tia.taps")
    assert tapped.status_code == 200, tapped.text
    sent = await settle(api, created.json()["id"], "sent")
    (message,) = await sandbox_messages(sandbox, creator)
    assert message["recipient_id"] == tapped.json()["igsid"]
    assert sent["dm"]["link_clicks"] == 1
    assert await _clicked(api) == before + 1

    funnel = (
        await api.get("/api/funnel", params={"creator_id": str(creator.creator_id), "days": 1})
    ).json()
    routes = {g["key"]: g for g in funnel["by_route"]}
    assert (routes["ig_link"]["clicked"], routes["ig_link"]["sent"]) == (1, 1)


async def _clicked(api: httpx.AsyncClient) -> float:
    """autodm_funnel_total{stage="clicked", route="ig_link"} on the API's /metrics."""
    text = (await api.get("/metrics")).text
    pattern = r"^autodm_funnel_total\{([^}]*)\} ([0-9.e+]+)$"
    total = 0.0
    for labels, value in re.findall(pattern, text, flags=re.MULTILINE):
        if 'stage="clicked"' in labels and 'route="ig_link"' in labels:
            total += float(value)
    return total
