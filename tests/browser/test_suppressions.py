"""The creator's "Do not message" page is what the backend uses: a person who wrote STOP is
listed with why and when, one the creator adds gets nothing (their new lead ends skipped,
opted out), removing them lets DMs go out again, and the list downloads as CSV; the lead
page marks a person "do not message" and shows a conversation the creator took over."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
from demo import DemoCreator  # deploy/local
from playwright.sync_api import Page, expect

from shared.contracts.events import utcnow
from shared.delivery.reasons import OPTED_OUT
from tests.browser.conftest import Urls, screenshot, sign_in, wait_for


def _writes(sandbox: httpx.Client, creator: DemoCreator, who: str, text: str) -> str:
    body = {"account_id": creator.ig_user_id, "username": who, "text": text}
    return str(sandbox.post("/_sandbox/instagram/users/message", json=body).json()["igsid"])


def _lead(api: httpx.Client, creator: DemoCreator, who: str, igsid: str | None = None) -> str:
    instagram: dict[str, str] = {"username": who}
    if igsid:
        instagram |= {"igsid": igsid, "last_inbound_at": utcnow().isoformat()}
    body = {"creator_id": str(creator.creator_id), "name": who, "instagram": instagram}
    created = api.post("/api/leads", json=body)
    created.raise_for_status()
    return str(created.json()["id"])


def _status(api: httpx.Client, lead_id: str, wanted: str) -> dict[str, str] | None:
    dm = api.get(f"/api/leads/{lead_id}").json()["dm"]
    return dm if dm["status"] == wanted else None


def _listed(page: Page, text: str) -> int:
    page.reload()
    return page.get_by_text(text).count()


def test_the_do_not_message_page_lists_adds_removes_and_exports(
    page: Page, urls: Urls, sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator
) -> None:
    igsid = _writes(sandbox, creator, "said.stop", "hi")
    _lead(api, creator, "said.stop", igsid)
    _writes(sandbox, creator, "said.stop", "STOP")
    sign_in(page, urls, "creator", creator.creator_id)
    page.get_by_role("link", name="Do not message").click()
    wait_for(lambda: _listed(page, "@said.stop"), 20, "the STOP row")
    row = page.get_by_role("row").filter(has_text="@said.stop")
    expect(row).to_contain_text("Wrote a stop word on Instagram: “STOP”")

    page.get_by_label("Instagram username").fill("@Marked.One")
    page.get_by_label("Why (optional)").fill("asked by email")
    page.get_by_role("button", name="Do not message").click()
    expect(page.get_by_role("status")).to_have_text("Added: AutoDM sends this person nothing more.")
    marked = page.get_by_role("row").filter(has_text="@marked.one")
    expect(marked).to_contain_text("Marked by you: “asked by email”")
    screenshot(page, "suppressions")

    held = _lead(api, creator, "marked.one", _writes(sandbox, creator, "marked.one", "hi"))
    dm = wait_for(lambda: _status(api, held, "skipped"), 20, "the held DM")
    assert (dm["reason_code"], dm["reason"]) == ("opted_out", OPTED_OUT)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download as CSV").click()
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {(r["instagram_username"], r["source"]) for r in exported} == {
        ("said.stop", "instagram_stop"),
        ("marked.one", "creator"),
    }

    marked.get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_have_text("Removed: new DMs to this person go out again.")
    expect(page.get_by_text("@marked.one")).to_have_count(0)
    again = _lead(api, creator, "marked.one", _writes(sandbox, creator, "marked.one", "hi again"))
    wait_for(lambda: _status(api, again, "sent"), 20, "the DM after removal")

    sign_in(page, urls, "admin")  # an admin sees the counts
    counts = page.get_by_role("region", name=re.compile("Suppressed contacts"))
    expect(counts.get_by_role("row").filter(has_text=str(creator.creator_id))).to_contain_text(
        "Wrote a stop word on Instagram"
    )


def test_the_lead_page_marks_do_not_message_and_shows_a_takeover(
    page: Page, urls: Urls, sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator
) -> None:
    lead_id = _lead(api, creator, "cold.lead")  # waits for its ig.me link
    wait_for(lambda: _status(api, lead_id, "awaiting_contact"), 20, "the waiting DM")
    sign_in(page, urls, "creator", creator.creator_id)
    page.goto(f"{urls.api}/app/leads/{lead_id}")
    page.get_by_role("button", name="Do not message this person").click()
    expect(page.get_by_role("note")).to_contain_text("do not message")
    wait_for(lambda: _status(api, lead_id, "skipped"), 20, "the DM ended by the mark")

    igsid = _writes(sandbox, creator, "talk.to", "hi")
    talked = _lead(api, creator, "talk.to", igsid)
    wait_for(lambda: _status(api, talked, "sent"), 20, "the DM")
    body = {"account_id": creator.ig_user_id, "username": "talk.to", "text": "Hi, it's me!"}
    sandbox.post("/_sandbox/instagram/creator/message", json=body).raise_for_status()
    wait_for(
        lambda: api.get(f"/api/leads/{talked}/takeover").json()["in_creator_hands"], 20, "takeover"
    )
    page.goto(f"{urls.api}/app/leads/{talked}")
    expect(page.get_by_role("heading", name="You are writing to this lead")).to_be_visible()
    screenshot(page, "lead-takeover")
    page.get_by_role("button", name="Hand back to AutoDM").click()
    expect(page.get_by_role("heading", name="You are writing to this lead")).to_have_count(0)
    assert api.get(f"/api/leads/{talked}/takeover").json()["in_creator_hands"] is False
