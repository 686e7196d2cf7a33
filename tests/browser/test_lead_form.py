"""A visitor on a creator's public lead form: the DM reaches Instagram (the sandbox) after
"Continue on Instagram"; a bad form shows field errors and stores nothing."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from demo import DemoCreator  # deploy/local
from playwright.sync_api import Page, Route, expect
from stack import Stack  # deploy/local

from tests.browser.conftest import Urls, screenshot, slug_of, wait_for
from tests.browser.tracked import TRACKED, landing


def _open_ig_me_in_sandbox(page: Page, urls: Urls, visitor: str) -> None:
    """The sandbox plays Instagram: ig.me links open its /ig.me/m/<account> (which sends
    the messaging_referral webhook with the ref), as the visitor's Instagram user."""

    def handle(route: Route) -> None:
        # The link goes through AutoDM's /l/<ref> (counted), which redirects to ig.me.
        parts = urlsplit(landing(route))
        assert parts.netloc == "ig.me"
        target = f"{urls.sandbox}/ig.me{parts.path}?{parts.query}&as={visitor}"
        route.fulfill(status=302, headers={"Location": target})

    page.route(TRACKED, handle)


def test_visitor_continues_on_instagram_and_the_dm_reaches_the_sandbox(
    page: Page, stack: Stack, urls: Urls, creator: DemoCreator, sandbox: httpx.Client
) -> None:
    slug = slug_of(stack, creator.creator_id)
    page.goto(f"{urls.api}/c/{slug}/")
    screenshot(page, "lead-form")
    page.get_by_label("Name", exact=True).fill("Vera Visitor")
    page.get_by_label("Instagram handle").fill("@vera.visits")
    page.get_by_label("Message", exact=True).fill("I'd love the guide")
    page.get_by_role("button", name="Send").click()

    continue_link = page.get_by_role("link", name="Continue on Instagram")
    expect(continue_link).to_be_visible()
    href = continue_link.get_attribute("href") or ""
    # Through AutoDM's redirect (counted), which lands on the ig.me link with the lead's ref.
    assert href.startswith("/l/")
    screenshot(page, "thank-you")
    ref = href.removeprefix("/l/")

    _open_ig_me_in_sandbox(page, urls, "vera.visits")
    continue_link.click()

    def delivered() -> list[dict[str, object]]:
        messages = sandbox.get(
            "/_sandbox/instagram/messages", params={"account_id": creator.ig_user_id}
        ).json()["data"]
        return [m for m in messages if "Vera Visitor" in str(m["text"])]

    sent = wait_for(delivered, 15, "the DM at the sandbox")
    assert len(sent) == 1 and ref  # one DM, to the person who opened the link


def test_bad_form_shows_field_errors_and_stores_nothing(
    page: Page, stack: Stack, urls: Urls, creator: DemoCreator, api: httpx.Client
) -> None:
    slug = slug_of(stack, creator.creator_id)
    page.goto(f"{urls.api}/c/{slug}/embed")
    screenshot(page, "lead-form-embed")
    page.get_by_label("Instagram handle").fill("not a handle!")
    page.get_by_label("Phone", exact=True).fill("12")
    page.get_by_label(re.compile("may message me on WhatsApp")).check()
    page.get_by_role("button", name="Send").click()

    errors = page.get_by_role("alert")
    expect(errors).to_contain_text("Please fix 3 fields")
    expect(page.locator("#name-error")).to_have_text("Tell us your name.")
    expect(page.locator("#instagram-error")).to_contain_text("Instagram handle")
    expect(page.locator("#phone-error")).to_contain_text("digits")
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    # What the visitor typed is kept, to correct rather than retype.
    expect(page.get_by_label("Instagram handle")).to_have_value("not a handle!")
    screenshot(page, "lead-form-errors")

    leads = api.get("/api/leads", params={"creator_id": str(creator.creator_id)}).json()
    assert leads["items"] == []


def test_the_form_works_with_the_keyboard_alone(
    page: Page, stack: Stack, urls: Urls, creator: DemoCreator
) -> None:
    page.goto(f"{urls.api}/c/{slug_of(stack, creator.creator_id)}/")
    keys = page.keyboard
    keys.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    keys.press("Tab")
    expect(page.get_by_label("Name", exact=True)).to_be_focused()
    keys.type("Kim Keys")
    keys.press("Tab")
    keys.type("kim.keys")
    for _ in range(3):  # phone, WhatsApp opt-in, message; the honeypot is never reached
        keys.press("Tab")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    keys.press("Tab")
    expect(page.get_by_role("button", name="Send")).to_be_focused()
    keys.press("Enter")
    expect(page.get_by_role("link", name="Continue on Instagram")).to_be_visible()


def test_honeypot_and_forged_form_token_store_nothing(
    stack: Stack, urls: Urls, creator: DemoCreator, api: httpx.Client
) -> None:
    slug = slug_of(stack, creator.creator_id)
    with httpx.Client(base_url=urls.api) as client:
        form = client.get(f"/c/{slug}/").text
        found = re.search(r'name="form_token" value="([^"]+)"', form)
        assert found is not None
        good = {"form_token": found.group(1), "name": "Bot", "instagram": "bot.account"}
        trapped = client.post(f"/c/{slug}/", data=good | {"website": "http://spam.example"})
        assert trapped.status_code == 200 and "Thank you" in trapped.text
        forged = client.post(f"/c/{slug}/", data=good | {"form_token": "1." + "0" * 64})
        assert forged.status_code == 400 and "expired" in forged.text
    leads = api.get("/api/leads", params={"creator_id": str(creator.creator_id)}).json()
    assert leads["items"] == []


def _connect_whatsapp(sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator) -> str:
    """A sandbox WhatsApp number with an approved template, connected through the API."""
    display = "+44 20 7946 0100"
    number = sandbox.post(
        "/_sandbox/whatsapp/numbers", json={"display_phone_number": display}
    ).json()
    sandbox.post(
        "/_sandbox/whatsapp/templates",
        json={"name": "form_thanks", "language": "en_US", "body_params": 1},
    )
    params = {"creator_id": str(creator.creator_id)}
    body = {k: number[k] for k in ("phone_number_id", "access_token", "display_phone_number")}
    connected = api.post("/api/whatsapp/numbers", params=params, json=body)
    connected.raise_for_status()
    mapping = {"name": "form_thanks", "language": "en_US", "parameters": ["first_name"]}
    templates = f"/api/whatsapp/numbers/{connected.json()['account_id']}/templates"
    api.post(templates, params=params, json=mapping).raise_for_status()
    return str(number["phone_number_id"])


def _messages_to(
    sandbox: httpx.Client, phone_number_id: str, to: str | None = None
) -> list[dict[str, Any]]:
    """What the creator's number sent (to `to`, or to anyone)."""
    params = {"phone_number_id": phone_number_id} | ({"to": to} if to else {})
    return list(sandbox.get("/_sandbox/whatsapp/messages", params=params).json()["data"])


def _new_lead(api: httpx.Client, creator: DemoCreator, seen: set[str]) -> dict[str, Any] | None:
    """The creator's lead not in `seen`, once the router has chosen its route."""
    leads = api.get("/api/leads", params={"creator_id": str(creator.creator_id)}).json()
    for summary in leads["items"]:
        if summary["id"] not in seen and summary["dm_status"] != "queued":
            return dict(api.get(f"/api/leads/{summary['id']}").json())
    return None


def _submit_with_phone(page: Page, stack: Stack, urls: Urls, creator: DemoCreator) -> str:
    """A visitor sends the form with STRANGER's number and the WhatsApp box ticked; the
    pre-filled text of the thank-you page's "Continue on WhatsApp" link."""
    page.goto(f"{urls.api}/c/{slug_of(stack, creator.creator_id)}/")
    page.get_by_label("Name", exact=True).fill("Wanda")
    page.get_by_label("Phone", exact=True).fill(STRANGER)
    page.get_by_label(re.compile("may message me on WhatsApp")).check()
    page.get_by_role("button", name="Send").click()
    continue_link = page.get_by_role("link", name="Continue on WhatsApp")
    expect(continue_link).to_be_visible()
    href = continue_link.get_attribute("href") or ""
    assert re.fullmatch(r"https://wa\.me/442079460100\?text=.+", href), href
    return parse_qs(urlsplit(href).query)["text"][0]


STRANGER = "+44 20 7946 0321"  # as typed into the form
STRANGER_WA = "442079460321"  # as WhatsApp names it


def test_a_strangers_number_gets_nothing_until_it_writes_then_exactly_one_dm(
    page: Page,
    stack: Stack,
    urls: Urls,
    creator: DemoCreator,
    sandbox: httpx.Client,
    api: httpx.Client,
) -> None:
    """A number typed into the form is nobody's consent: no template, nothing, until that
    number writes to the creator with the lead's ref; then one free-text DM, and a second
    form naming the same number does not message it again (docs/WEB.md)."""
    phone_number_id = _connect_whatsapp(sandbox, api, creator)
    text = _submit_with_phone(page, stack, urls, creator)
    screenshot(page, "thank-you-whatsapp")
    assert re.search(r"\(ref [A-Za-z0-9_-]{16}\)", text), text

    lead = wait_for(lambda: _new_lead(api, creator, set()), 15, "the form lead routed")
    assert (lead["dm"]["route"], lead["dm"]["status"]) == ("wa_link", "link_ready")
    page.wait_for_timeout(1500)  # a send, had there been one, would be at the sandbox by now
    assert _messages_to(sandbox, phone_number_id) == []  # to nobody

    # The number's owner writes what the link pre-filled: proof, and the 24 h window.
    body = {"phone_number_id": phone_number_id, "from": STRANGER_WA, "text": text}
    sandbox.post("/_sandbox/whatsapp/users/message", json=body).raise_for_status()
    sent = wait_for(lambda: _messages_to(sandbox, phone_number_id, STRANGER_WA), 20, "the DM")
    assert [m["type"] for m in sent] == ["text"]  # free text in the window, no template
    assert sent[0]["to"] == STRANGER_WA

    # The same number named again by the form, and written from again: not messaged again.
    again = _submit_with_phone(page, stack, urls, creator)
    sandbox.post("/_sandbox/whatsapp/users/message", json=body | {"text": again}).raise_for_status()
    second = wait_for(lambda: _new_lead(api, creator, {lead["id"]}), 20, "the second lead")
    assert second["dm"]["status"] == "skipped" and "recently" in second["dm"]["reason"]
    page.wait_for_timeout(1500)
    assert len(_messages_to(sandbox, phone_number_id)) == 1


def _creators_site(html: str) -> ThreadingHTTPServer:
    """Another site (http://localhost:<port>, not the API's 127.0.0.1) serving `html`."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_only_the_embed_may_be_framed_by_another_site(
    page: Page, stack: Stack, urls: Urls, creator: DemoCreator
) -> None:
    slug = slug_of(stack, creator.creator_id)
    frames = "".join(
        f'<iframe name="{name}" src="{urls.api}/c/{slug}/{path}"></iframe>'
        for name, path in (("embed", "embed"), ("page", ""))
    )
    site = _creators_site(f"<body>{frames}</body>")
    try:
        page.goto(f"http://localhost:{site.server_address[1]}/")
        embed = page.frame_locator('iframe[name="embed"]')
        expect(embed.get_by_role("button", name="Send")).to_be_visible()
        # The page itself refuses framing (frame-ancestors 'none'): Chrome shows its error
        # page in that frame instead of the form.
        blocked = page.frame(name="page")
        assert blocked is not None
        wait_for(lambda: blocked.url.startswith("chrome-error://"), 10, "the refused frame")
        expect(blocked.get_by_role("button", name="Send")).to_have_count(0)
    finally:
        site.shutdown()
