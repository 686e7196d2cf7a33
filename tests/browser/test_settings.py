"""The creator's settings are what the backend uses: the template is the DM's text, the
pause switch holds DMs back (the kill switch) until it is turned off; and disconnecting
Instagram asks for confirmation first."""

from __future__ import annotations

import time

import httpx
from demo import DemoCreator  # deploy/local
from playwright.sync_api import Page, expect

from shared.events import utcnow
from tests.browser.conftest import Urls, screenshot, sign_in, wait_for


def _messages_to(sandbox: httpx.Client, creator: DemoCreator, igsid: str) -> list[str]:
    data = sandbox.get(
        "/_sandbox/instagram/messages",
        params={"account_id": creator.ig_user_id, "recipient": igsid},
    ).json()["data"]
    return [str(m["text"]) for m in data]


def test_template_and_pause_switch_drive_the_dms(
    page: Page, urls: Urls, sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator
) -> None:
    sign_in(page, urls, "creator", creator.creator_id)
    page.get_by_role("link", name="Settings").click()
    template = page.get_by_label("Message template")
    template.fill("Hey {name}, you wrote: {message}")
    expect(page.locator("#preview")).to_have_text("Hey Jane, you wrote: I'd love the guide")
    page.get_by_label("Pause sending").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    expect(page.get_by_label("Pause sending")).to_be_checked()
    screenshot(page, "settings")
    time.sleep(1.5)  # senders re-read the pauses every AUTODM_DELIVERY_STATE_REFRESH_S (1 s)

    igsid = sandbox.post(
        "/_sandbox/instagram/users/message",
        json={"account_id": creator.ig_user_id, "username": "pat.paused", "text": "hi"},
    ).json()["igsid"]
    instagram = {"username": "pat.paused", "igsid": igsid, "last_inbound_at": utcnow().isoformat()}
    body = {"creator_id": str(creator.creator_id), "name": "Pat", "message": "guide?"}
    api.post("/api/leads", json=body | {"instagram": instagram}).raise_for_status()
    time.sleep(4)  # paused: the sender defers it (rechecked every 2 s), nothing goes out
    assert _messages_to(sandbox, creator, igsid) == []

    page.get_by_label("Pause sending").uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    sent = wait_for(lambda: _messages_to(sandbox, creator, igsid), 20, "the resumed DM")
    assert sent == ["Hey Pat, you wrote: guide?"]


def test_disconnect_asks_first_then_disconnects(
    page: Page, urls: Urls, creator: DemoCreator
) -> None:
    sign_in(page, urls, "creator", creator.creator_id)
    page.get_by_role("link", name="Instagram").click()
    page.get_by_role("link", name="Disconnect").click()
    expect(page.get_by_role("heading", name=f"Disconnect @{creator.username}?")).to_be_visible()
    screenshot(page, "instagram-disconnect")
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_text(f"@{creator.username}")).to_be_visible()
    page.get_by_role("link", name="Disconnect").click()
    page.get_by_role("button", name="Yes, disconnect").click()
    expect(page.get_by_role("status")).to_have_text(
        "Instagram is disconnected. Waiting DMs were skipped."
    )
    expect(page.get_by_role("link", name="Connect Instagram")).to_be_visible()
