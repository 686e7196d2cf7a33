"""The creator's next step on a lead's page (issue 16, section 4) and the funnel's charts
(section 5), in Chromium: a lead waiting for its ig.me link shows AutoDM's tracked link
with a copy button and a QR code; a DM refused for the account's access offers to
reconnect; a failed one offers Retry; routes read as words; the funnel page draws the
creator's leads, DMs sent or links opened, reads and replies, and an admin's every
creator's."""

from __future__ import annotations

import re
import uuid

import httpx
from demo import DemoCreator  # deploy/local
from playwright.sync_api import BrowserContext, Page, expect

from shared.contracts.events import utcnow
from tests.browser.conftest import Urls, screenshot, sign_in, wait_for
from tests.browser.test_creator import failed_dm


def _lead(api: httpx.Client, creator: DemoCreator, **body: object) -> str:
    response = api.post("/api/leads", json={"creator_id": str(creator.creator_id), **body})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _settled(api: httpx.Client, lead_id: str, status: str) -> dict[str, object]:
    def probe() -> dict[str, object] | None:
        lead: dict[str, object] = api.get(f"/api/leads/{lead_id}").json()
        return lead if lead["dm"]["status"] == status else None  # type: ignore[index]

    return wait_for(probe, 30, f"the DM to be {status}")


def test_a_waiting_lead_offers_its_tracked_link_to_copy_and_as_a_qr_code(
    page: Page, context: BrowserContext, urls: Urls, api: httpx.Client, creator: DemoCreator
) -> None:
    lead_id = _lead(api, creator, name="Wren Waiting", instagram={"username": "wren.waits"})
    lead = _settled(api, lead_id, "awaiting_contact")
    tracked = str(lead["dm"]["tracked_link"])  # type: ignore[index]
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=urls.api)

    sign_in(page, urls, "creator", creator.creator_id)
    row = page.locator(f'tr[data-lead="{lead_id}"]')
    route = row.locator('td[data-label="Route"]')
    expect(route).to_contain_text("Instagram link")  # the route and source in words
    expect(route).to_contain_text("API")
    expect(row.get_by_role("button", name=re.compile("Copy link"))).to_be_visible()
    page.get_by_label("Source").select_option(label="Comment to DM")
    page.get_by_role("button", name="Filter").click()
    expect(row).to_have_count(0)  # not a comment lead
    page.get_by_label("Source").select_option(label="API")
    page.get_by_role("button", name="Filter").click()
    expect(row).to_be_visible()

    page.goto(f"{urls.api}/app/leads/{lead_id}")
    step = page.locator('[data-next-step="share_link"]')
    expect(step.get_by_role("heading", name="What you can do")).to_be_visible()
    expect(step.get_by_label("Link for Wren Waiting")).to_have_value(tracked)
    expect(step.get_by_role("img", name="QR code of the link")).to_be_visible()
    expect(page.get_by_text("Instagram link", exact=True)).to_be_visible()  # not "ig_link"
    screenshot(page, "lead-next-step-link")

    step.get_by_role("button", name="Copy link").click()
    expect(step.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == tracked

    # The QR code and the copied link lead through AutoDM: the open is counted, then ig.me.
    opened = page.request.get(tracked, max_redirects=0)
    assert opened.status == 302
    assert opened.headers["location"].startswith(f"https://ig.me/m/{creator.username}?ref=")
    page.reload()
    expect(page.locator("dd", has_text="1 time")).to_be_visible()


def test_a_dm_refused_for_the_accounts_access_offers_reconnecting(
    page: Page, urls: Urls, sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator
) -> None:
    sandbox.post(f"/_sandbox/instagram/accounts/{creator.ig_user_id}/revoke", json={})
    igsid = sandbox.post(
        "/_sandbox/instagram/users/message",
        json={"account_id": creator.ig_user_id, "username": "ria.revoked", "text": "hi"},
    ).json()["igsid"]
    instagram = {"username": "ria.revoked", "igsid": igsid, "last_inbound_at": utcnow().isoformat()}
    lead_id = _lead(api, creator, name="Ria", instagram=instagram)
    _settled(api, lead_id, "failed")

    sign_in(page, urls, "creator", creator.creator_id)
    expect(
        page.locator(f'tr[data-lead="{lead_id}"]').get_by_role("link", name="Reconnect Instagram")
    ).to_be_visible()
    page.goto(f"{urls.api}/app/leads/{lead_id}")
    step = page.locator('[data-next-step="reconnect"]')
    expect(step).to_contain_text("Reconnect Instagram, then retry this DM.")
    screenshot(page, "lead-next-step-reconnect")
    step.get_by_role("link", name="Reconnect Instagram").click()
    page.wait_for_url(re.compile(r".*/app/instagram$"))
    expect(page.get_by_role("alert")).to_contain_text("Reconnect")


def test_a_failed_dm_offers_retry_on_its_page_and_the_funnel_draws_the_leads(
    page: Page, urls: Urls, sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator
) -> None:
    failed = failed_dm(sandbox, api, creator, f"fin.{uuid.uuid4().hex[:6]}")
    waiting = _lead(api, creator, name="Walt", instagram={"username": "walt.waits"})
    _settled(api, waiting, "awaiting_contact")

    sign_in(page, urls, "creator", creator.creator_id)
    page.goto(f"{urls.api}/app/leads/{failed}")
    step = page.locator('[data-next-step="retry"]')
    expect(step).to_contain_text("Try again")
    screenshot(page, "lead-next-step-retry")
    step.get_by_role("button", name=re.compile("Retry")).click()
    expect(page.get_by_role("status")).to_have_text("A new attempt has started.")
    _settled(api, failed, "sent")

    page.get_by_role("link", name="Funnel").click()
    expect(page.get_by_role("heading", name="Do the DMs work?")).to_be_visible()
    expect(page.locator('[data-total="leads"]')).to_have_text("2")
    expect(page.locator('[data-total="sent"]')).to_contain_text("1 (50%)")
    today = utcnow().date().isoformat()
    day = page.locator("#chart-day")
    expect(day.get_by_role("img")).to_be_visible()
    expect(day.locator(f'rect[data-day="{today}"][data-series="leads"]')).to_have_attribute(
        "data-value", "2"
    )
    expect(day.locator(f'rect[data-day="{today}"][data-series="sent"]')).to_have_attribute(
        "data-value", "1"
    )
    routes = page.locator("#chart-route")
    expect(routes.get_by_text("Instagram DM", exact=True)).to_be_visible()
    expect(routes.get_by_text("Instagram link", exact=True)).to_be_visible()
    expect(page.locator("#chart-source").get_by_text("API", exact=True)).to_be_visible()
    screenshot(page, "funnel")

    sign_in(page, urls, "admin")
    page.get_by_role("link", name="Funnel").click()
    expect(page.get_by_text("every creator")).to_be_visible()
    leads = int(page.locator('[data-total="leads"]').inner_text())
    assert leads >= 2
    expect(page.locator("#chart-day").get_by_role("img")).to_be_visible()
    screenshot(page, "admin-funnel")
