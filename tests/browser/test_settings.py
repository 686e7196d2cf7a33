"""The creator's settings are what the backend uses: the template is the DM's text, the
pause switch holds DMs back (the kill switch) until it is turned off, the pacing spaces
the DMs of an account; and disconnecting Instagram asks for confirmation first."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from demo import DemoCreator  # deploy/local
from playwright.sync_api import Page, expect

from shared.contracts.events import utcnow
from tests.browser.conftest import Urls, screenshot, sign_in, wait_for


def _messages_to(sandbox: httpx.Client, creator: DemoCreator, igsid: str) -> list[str]:
    data = sandbox.get(
        "/_sandbox/instagram/messages",
        params={"account_id": creator.ig_user_id, "recipient": igsid},
    ).json()["data"]
    return [str(m["text"]) for m in data]


def _open_window_lead(
    sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator, username: str, name: str
) -> str:
    """A lead who just messaged the account (the window is open); their IGSID."""
    igsid = str(
        sandbox.post(
            "/_sandbox/instagram/users/message",
            json={"account_id": creator.ig_user_id, "username": username, "text": "hi"},
        ).json()["igsid"]
    )
    instagram = {"username": username, "igsid": igsid, "last_inbound_at": utcnow().isoformat()}
    body = {"creator_id": str(creator.creator_id), "name": name, "message": "guide?"}
    api.post("/api/leads", json=body | {"instagram": instagram}).raise_for_status()
    return igsid


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

    igsid = _open_window_lead(sandbox, api, creator, "pat.paused", "Pat")
    time.sleep(4)  # paused: the sender defers it (rechecked every 2 s), nothing goes out
    assert _messages_to(sandbox, creator, igsid) == []

    page.get_by_label("Pause sending").uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    sent = wait_for(lambda: _messages_to(sandbox, creator, igsid), 20, "the resumed DM")
    assert sent == ["Hey Pat, you wrote: guide?"]


def test_an_unknown_placeholder_is_named_live_and_refused_on_save(
    page: Page, urls: Urls, creator: DemoCreator
) -> None:
    sign_in(page, urls, "creator", creator.creator_id)
    page.get_by_role("link", name="Settings").click()
    template = page.get_by_label("Message template")
    template.fill("Hi {first_name}, you wrote: {message}")
    check = page.locator("#template-check")
    expect(check).to_be_visible()
    expect(check).to_contain_text("{first_name}")
    expect(page.locator("#preview")).to_have_text("Hi {first_name}, you wrote: I'd love the guide")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#template-error")).to_contain_text("{first_name}")
    expect(page.locator("#template-error")).to_contain_text("{name}")
    template.fill("Hi {name}")
    expect(check).to_be_hidden()


def test_pacing_spaces_the_dms_and_the_waiting_one_says_why(
    page: Page, urls: Urls, sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator
) -> None:
    sign_in(page, urls, "creator", creator.creator_id)
    page.get_by_role("link", name="Settings").click()
    pacing = page.get_by_label("Pacing: at most this many DMs per hour from each account")
    pacing.evaluate("input => input.removeAttribute('max')")  # what an old browser would send
    pacing.fill("100000")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Enter a whole number from 1 to 3600")).to_be_visible()
    page.goto(f"{urls.api}/app/settings")
    expect(pacing).to_have_value("")  # the refused form changed nothing
    pacing.fill("360")  # one DM every 10 s
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    expect(pacing).to_have_value("360")
    time.sleep(1.5)  # senders re-read the pacing with the pauses (every 1 s)

    first = _open_window_lead(sandbox, api, creator, "pia.first", "Pia")
    wait_for(lambda: _messages_to(sandbox, creator, first), 20, "the first DM")
    first_at = time.monotonic()
    second = _open_window_lead(sandbox, api, creator, "quinn.second", "Quinn")
    page.get_by_role("link", name="Leads").click()
    row = page.locator("tr", has_text="Quinn")
    expect(row.locator(".badge")).to_have_attribute(
        "title", re.compile("creator's pacing"), timeout=15_000
    )
    row.locator("summary").click()  # the reason, expanded
    expect(row.get_by_text("held to the creator's pacing")).to_be_visible()
    screenshot(page, "leads-paced")
    wait_for(lambda: _messages_to(sandbox, creator, second), 30, "the paced DM")
    assert time.monotonic() - first_at > 7  # spaced by the pacing, not by chance
    expect(row.locator(".badge")).to_have_text(re.compile("^(sent|delivered|read)$"))


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


def _private_replies(
    sandbox: httpx.Client, creator: DemoCreator, igsid: str
) -> list[dict[str, Any]]:
    data = sandbox.get(
        "/_sandbox/instagram/messages",
        params={"account_id": creator.ig_user_id, "recipient": igsid},
    ).json()["data"]
    return [m for m in data if m["private_reply"]]


def _comment(
    sandbox: httpx.Client, creator: DemoCreator, username: str, text: str
) -> dict[str, Any]:
    body = {"account_id": creator.ig_user_id, "username": username, "text": text}
    answer = sandbox.post("/_sandbox/instagram/users/comment", json=body)
    answer.raise_for_status()
    reply: dict[str, Any] = answer.json()
    return reply


def test_comment_to_dm_turns_a_keyword_comment_into_a_lead_with_a_private_reply(
    page: Page, urls: Urls, sandbox: httpx.Client, creator: DemoCreator
) -> None:
    sign_in(page, urls, "creator", creator.creator_id)
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Comments with one of my keywords").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Enter at least one keyword")).to_be_visible()  # nothing saved
    page.get_by_role("textbox", name="Keywords").fill("guide, send it")
    page.get_by_label("Message template").fill("Here you go, {name}! ({message})")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    expect(page.get_by_role("textbox", name="Keywords")).to_have_value("guide, send it")
    screenshot(page, "settings-comment-to-dm")

    ignored = _comment(sandbox, creator, "rue.reader", "love the guidelines")
    wanted = _comment(sandbox, creator, "sam.saver", "GUIDE please")
    replies = wait_for(
        lambda: _private_replies(sandbox, creator, wanted["igsid"]), 20, "the private reply"
    )
    assert [(m["comment_id"], m["text"]) for m in replies] == [
        (wanted["comment_id"], "Here you go, sam.saver! (GUIDE please)")
    ]
    page.get_by_role("link", name="Leads").click()
    row = page.locator("tr", has_text="sam.saver")
    expect(row.locator(".badge")).to_have_text(re.compile("^(sent|read)$"), timeout=15_000)
    # The comment without a keyword made no lead and got nothing.
    expect(page.locator("tr", has_text="rue.reader")).to_have_count(0)
    assert _private_replies(sandbox, creator, ignored["igsid"]) == []
