"""The signed-in pages follow DM status on the session's Server-Sent Events stream
(GET /app/events), not by polling: a creator's leads table and a lead's page show a DM's
new status without a reload, and every refresh of their live region was one the stream
asked for (app.js says which in the X-AutoDM-Live header). When the stream cannot be
opened, the table polls instead; the admin overview follows every creator's changes."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
from demo import DemoCreator  # deploy/local
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import Urls, screenshot, sign_in

LIVE = 30_000  # ms: the DM crosses Kafka and the sandbox


def _new_lead(api: httpx.Client, creator: DemoCreator, who: str) -> str:
    body = {"creator_id": str(creator.creator_id), "name": f"Sam {who}"}
    response = api.post("/api/leads", json=body | {"instagram": {"username": who}})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _open_link(
    sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator, lead: str, username: str
) -> None:
    """The lead opens the ig.me link: Instagram tells AutoDM, the DM is sent."""
    link = api.get(f"/api/leads/{lead}").json()["dm"]["link"]
    ref = parse_qs(urlsplit(link).query)["ref"][0]
    sandbox.post(
        "/_sandbox/instagram/users/open_link",
        json={"account_id": creator.ig_user_id, "username": username, "ref": ref},
    ).raise_for_status()


def _refreshes(page: Page, path: re.Pattern[str]) -> list[str]:
    """The cause (X-AutoDM-Live) of every request the page makes to its live fragment."""
    causes: list[str] = []

    def seen(request: Request) -> None:
        if path.search(urlsplit(request.url).path):
            causes.append(request.headers.get("x-autodm-live", "none"))

    page.on("request", seen)
    return causes


def _streaming(page: Page) -> None:
    page.evaluate("window.__noReload = true")  # a reload would lose it
    expect(page.locator("html")).to_have_attribute("data-live", "stream")


def _brought_by(page: Page, region: str) -> str:
    """What fetched the region's current content (app.js notes it on a change)."""
    return str(page.evaluate(f"document.querySelector('{region}').dataset.refreshedBy"))


def test_leads_table_follows_the_stream_without_polling(
    page: Page, urls: Urls, sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator
) -> None:
    causes = _refreshes(page, re.compile(r"^/app/leads/rows$"))
    sign_in(page, urls, "creator", creator.creator_id)
    _streaming(page)

    who = f"stream.{uuid.uuid4().hex[:6]}"
    lead = _new_lead(api, creator, who)
    badge = page.locator(f'tr[data-lead="{lead}"] .badge')
    expect(badge).to_have_text("awaiting contact", timeout=LIVE)  # a new row, live
    _open_link(sandbox, api, creator, lead, who)
    expect(badge).to_have_text("sent", timeout=LIVE)

    assert _brought_by(page, "#lead-rows") == "stream"  # the status event did it
    assert page.evaluate("window.__noReload") is True
    assert "stream" in causes and "poll" not in causes, causes  # never fell back to polling


def test_lead_page_follows_the_stream(
    page: Page, urls: Urls, sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator
) -> None:
    who = f"detail.{uuid.uuid4().hex[:6]}"
    lead = _new_lead(api, creator, who)
    sign_in(page, urls, "creator", creator.creator_id)
    causes = _refreshes(page, re.compile(rf"^/app/leads/{lead}/live$"))
    page.goto(f"{urls.api}/app/leads/{lead}")
    status = page.locator("#lead-live .badge")
    expect(status).to_have_text("awaiting contact", timeout=LIVE)
    _streaming(page)

    _open_link(sandbox, api, creator, lead, who)
    expect(status).to_have_text("sent", timeout=LIVE)
    expect(page.locator("#lead-live ol li").last).to_contain_text(re.compile("sent", re.I))
    assert _brought_by(page, "#lead-live") == "stream"
    assert page.evaluate("window.__noReload") is True
    assert "stream" in causes and "poll" not in causes, causes
    screenshot(page, "lead-detail-live")


def test_the_table_polls_when_the_stream_cannot_open(
    page: Page, urls: Urls, api: httpx.Client, creator: DemoCreator
) -> None:
    page.route(re.compile(r".*/app/events\?.*"), lambda route: route.fulfill(status=503))
    causes = _refreshes(page, re.compile(r"^/app/leads/rows$"))
    sign_in(page, urls, "creator", creator.creator_id)
    page.evaluate("window.__noReload = true")
    expect(page.locator("html")).to_have_attribute("data-live", "poll")

    lead = _new_lead(api, creator, f"poll.{uuid.uuid4().hex[:6]}")
    expect(page.locator(f'tr[data-lead="{lead}"] .badge')).to_be_visible(timeout=LIVE)
    assert page.evaluate("window.__noReload") is True
    assert "poll" in causes and "stream" not in causes, causes


def test_admin_overview_follows_every_creators_changes(
    page: Page, urls: Urls, api: httpx.Client, creator: DemoCreator
) -> None:
    causes = _refreshes(page, re.compile(r"^/admin/overview/live$"))
    sign_in(page, urls, "admin")
    _streaming(page)

    with page.expect_request(
        lambda request: (
            urlsplit(request.url).path == "/admin/overview/live"
            and request.headers.get("x-autodm-live") == "stream"
        ),
        timeout=LIVE,
    ):
        _new_lead(api, creator, f"admin.{uuid.uuid4().hex[:6]}")  # a creator's new DM
    assert page.evaluate("window.__noReload") is True
    assert "poll" not in causes, causes
