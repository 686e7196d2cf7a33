"""A creator signs in, connects Instagram through the sandbox's Business Login, watches a
lead go awaiting contact -> sent -> read without reloading, opens a phone lead's WhatsApp
button (a valid wa.me URL) and retries a failed DM."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
from demo import DemoCreator  # deploy/local
from playwright.sync_api import BrowserContext, Page, Route, expect
from stack import Stack  # deploy/local

from shared.contracts.events import utcnow
from tests.browser.conftest import Urls, new_bare_creator, screenshot, sign_in, wait_for
from tests.browser.tracked import TRACKED, landing

LIVE = 20_000  # ms: the table polls every 2 s; the DM crosses Kafka and the sandbox


def _badge(page: Page, lead_id: str) -> object:
    return page.locator(f'tr[data-lead="{lead_id}"] .badge')


def _new_lead(api: httpx.Client, creator_id: uuid.UUID, **body: object) -> str:
    response = api.post("/api/leads", json={"creator_id": str(creator_id), **body})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_creator_connects_instagram_and_follows_a_lead_live(
    page: Page,
    context: BrowserContext,
    stack: Stack,
    urls: Urls,
    sandbox: httpx.Client,
    api: httpx.Client,
) -> None:
    creator_id = new_bare_creator(stack, "Casey Creator")
    username = f"casey.{uuid.uuid4().hex[:8]}"
    account = sandbox.post("/_sandbox/instagram/accounts", json={"username": username}).json()
    sandbox.put("/_sandbox/oauth", json={"account_id": account["ig_user_id"]}).raise_for_status()

    sign_in(page, urls, "creator", creator_id, shoot=True)
    page.get_by_role("link", name="Instagram").click()
    screenshot(page, "instagram-not-connected")
    page.get_by_role("link", name="Connect Instagram").click()
    page.wait_for_url(re.compile(r".*/app/instagram\?result=connected(#.*)?$"))
    expect(page.get_by_text(f"@{username}")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Instagram is connected.")
    screenshot(page, "instagram-connection")

    lead_id = _new_lead(api, creator_id, name="Lena Live", instagram={"username": "lena.live"})
    page.get_by_role("link", name="Leads").click()
    page.evaluate("window.__noReload = true")
    badge = _badge(page, lead_id)
    expect(badge).to_have_text("awaiting contact", timeout=LIVE)
    link = api.get(f"/api/leads/{lead_id}").json()["dm"]["link"]
    ref = parse_qs(urlsplit(link).query)["ref"][0]
    opened = sandbox.post(
        "/_sandbox/instagram/users/open_link",
        json={"account_id": account["ig_user_id"], "username": "lena.live", "ref": ref},
    ).json()
    expect(badge).to_have_text("sent", timeout=LIVE)

    def message_id() -> str | None:
        sent = sandbox.get(
            "/_sandbox/instagram/messages",
            params={"account_id": account["ig_user_id"], "recipient": opened["igsid"]},
        ).json()["data"]
        return str(sent[0]["message_id"]) if sent else None

    mid = wait_for(message_id, 10, "the DM at the sandbox")
    sandbox.post(
        "/_sandbox/instagram/users/read",
        json={"account_id": account["ig_user_id"], "igsid": opened["igsid"], "mid": mid},
    ).raise_for_status()
    expect(badge).to_have_text("read", timeout=LIVE)
    assert page.evaluate("window.__noReload") is True  # updated in place, never reloaded

    phone_lead = _new_lead(api, creator_id, name="Phil Phone", phone="+44 20 7946 0958")
    button = page.locator(f'tr[data-lead="{phone_lead}"]').get_by_role(
        "link", name="Message on WhatsApp"
    )
    expect(button).to_be_visible(timeout=LIVE)
    opened_urls: list[str] = []

    def whatsapp(route: Route) -> None:
        opened_urls.append(landing(route))  # through AutoDM's /l/<ref>, counted
        route.fulfill(status=200, content_type="text/html", body="<title>WhatsApp</title>")

    context.route(TRACKED, whatsapp)
    with context.expect_page() as popup:
        button.click()
    popup.value.wait_for_load_state()
    assert re.fullmatch(r"https://wa\.me/442079460958\?text=[^ ]+", opened_urls[0])
    screenshot(page, "leads")


def failed_dm(sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator, who: str) -> str:
    """A lead whose DM failed at Instagram (5xx; the browser stack allows one attempt)."""
    fault = {"error": "5xx", "scope": "instagram", "http_status": 500}
    sandbox.put("/_sandbox/faults", json=fault).raise_for_status()
    try:
        igsid = sandbox.post(
            "/_sandbox/instagram/users/message",
            json={"account_id": creator.ig_user_id, "username": who, "text": "hi"},
        ).json()["igsid"]
        instagram = {"username": who, "igsid": igsid, "last_inbound_at": utcnow().isoformat()}
        lead_id = _new_lead(api, creator.creator_id, name=f"Fay {who}", instagram=instagram)
        wait_for(
            lambda: api.get(f"/api/leads/{lead_id}").json()["dm"]["status"] == "failed",
            30,
            "the DM to fail",
        )
    finally:
        sandbox.delete("/_sandbox/faults")
    return lead_id


def test_creator_retries_a_failed_dm(
    page: Page, urls: Urls, sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator
) -> None:
    lead_id = failed_dm(sandbox, api, creator, "fay.fail")
    sign_in(page, urls, "creator", creator.creator_id)
    badge = _badge(page, lead_id)
    expect(badge).to_have_text("failed")
    page.locator(f'tr[data-lead="{lead_id}"] summary').click()  # the reason, expanded
    expect(page.locator(f'tr[data-lead="{lead_id}"] details p')).not_to_be_empty()
    screenshot(page, "leads-failed")
    page.locator(f'tr[data-lead="{lead_id}"]').get_by_role(
        "button", name=re.compile("Retry")
    ).click()
    expect(page.get_by_role("status")).to_have_text("A new attempt has started.")
    expect(_badge(page, lead_id)).to_have_text("sent", timeout=30_000)
    page.get_by_role("link", name="Fay fay.fail").click()
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    screenshot(page, "lead-detail")


def test_reconnect_warning_after_instagram_refuses_the_token_then_reconnect(
    page: Page, urls: Urls, sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator
) -> None:
    sandbox.post(f"/_sandbox/instagram/accounts/{creator.ig_user_id}/revoke", json={})
    igsid = sandbox.post(
        "/_sandbox/instagram/users/message",
        json={"account_id": creator.ig_user_id, "username": "rex.revoked", "text": "hi"},
    ).json()["igsid"]
    instagram = {"username": "rex.revoked", "igsid": igsid, "last_inbound_at": utcnow().isoformat()}
    lead_id = _new_lead(api, creator.creator_id, name="Rex", instagram=instagram)
    wait_for(
        lambda: api.get(f"/api/leads/{lead_id}").json()["dm"]["status"] == "failed",
        20,
        "the DM to fail on the revoked token",
    )
    sign_in(page, urls, "creator", creator.creator_id)
    # exact: the failed lead's row offers "Reconnect Instagram" too (its next step)
    page.get_by_role("link", name="Instagram", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Reconnect to send DMs again")
    screenshot(page, "instagram-reconnect")

    sandbox.put("/_sandbox/oauth", json={"account_id": creator.ig_user_id}).raise_for_status()
    page.get_by_role("link", name="Reconnect Instagram").click()
    expect(page.get_by_role("status")).to_have_text("Instagram is connected.")
    expect(page.get_by_role("alert")).to_have_count(0)
