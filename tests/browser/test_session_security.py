"""The web session under attack, in Chromium: cookie tossing cannot make a creator's
browser post the attacker's CSRF token, a planted sign-in state cannot sign a visitor into
the attacker's account, a copied session cookie dies at sign-out and is no API token; the
OpenAPI UI works from the API's own files and, like the local issuer's sign-in page,
refuses to be framed."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect
from stack import Stack  # deploy/local

from services.api.http.web.sign_in import pkce_challenge
from tests.browser.conftest import Urls, new_bare_creator, sign_in, wait_for

TEMPLATE_FIELD = "dm_template"


@pytest.fixture
def attacker_context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


def _session_cookie(context: BrowserContext) -> dict[str, str]:
    (cookie,) = [c for c in context.cookies() if "session" in c["name"]]
    return {"name": cookie["name"], "value": cookie["value"]}


def _settings_form(token: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        TEMPLATE_FIELD: "Pwned {name}",
        "route_order": "instagram_first",
        "comment_trigger": "off",
        "paused": "on",
    }


def _attacker_page(action: str, token: str) -> str:
    fields = "".join(
        f'<input type="hidden" name="{name}" value="{value}">'
        for name, value in _settings_form(token).items()
    )
    return (
        f'<!doctype html><title>Win a prize</title><form method="post" action="{action}">'
        f"{fields}<button>Claim</button></form>"
    )


def _serve(page: Page, url: str, html: str) -> None:
    """`url` answers `html`, as a server there would (Playwright fulfils the request)."""

    def fulfil(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body=html)

    page.route(url, fulfil)


def test_cookie_tossing_cannot_post_the_attackers_csrf_token(
    page: Page,
    context: BrowserContext,
    attacker_context: BrowserContext,
    stack: Stack,
    urls: Urls,
) -> None:
    attacker, victim = new_bare_creator(stack, "Mallory"), new_bare_creator(stack, "Vic Tim")
    # The attacker signs in to their own account and takes their CSRF token and cookies.
    mallory = attacker_context.new_page()
    sign_in(mallory, urls, "creator", attacker)
    mallory.goto(f"{urls.api}/app/settings")
    token = mallory.locator('form[action="/app/settings"] input[name="csrf_token"]').input_value()
    planted = [
        {"name": c["name"], "value": c["value"], "url": urls.api}
        for c in attacker_context.cookies()
        if "session" not in c["name"]  # every cookie but the session: the CSRF seed on main
    ]

    sign_in(page, urls, "creator", victim)
    if planted:  # what a page on another port of this host, or a sibling domain, can do
        context.add_cookies(planted)

    # From this site's origin (a page of the app, or a script the attacker got onto it):
    # the attacker's token is not this session's.
    same_origin = page.request.post(
        f"{urls.api}/app/settings", form=_settings_form(token), max_redirects=0
    )
    assert same_origin.status == 403

    # From the attacker's page on another port of the same host (same-site: the Lax
    # session cookie goes along).
    evil = f"http://127.0.0.1:{stack.ports.sandbox}/prize"
    _serve(page, evil, _attacker_page(f"{urls.api}/app/settings", token))
    page.goto(evil)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Claim").click()
    assert posted.value.status == 403
    expect(page.get_by_role("heading", name="Form expired")).to_be_visible()

    page.goto(f"{urls.api}/app/settings")
    expect(page.get_by_label("Message template")).not_to_have_value(re.compile("Pwned"))
    expect(page.get_by_label("Pause sending")).not_to_be_checked()
    # The victim's own form still saves: the refusals were for the attacker's token.
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")


def _attackers_code(
    stack: Stack, urls: Urls, creator_id: uuid.UUID, state: str, verifier: str
) -> str:
    """The attacker signs in at the identity provider as themselves, for a sign-in they
    started with their own state and verifier, and keeps the code instead of using it."""
    answer = httpx.post(
        f"http://127.0.0.1:{stack.ports.local_issuer}/authorize",
        data={
            "redirect_uri": f"{urls.api}/auth/callback",
            "state": state,
            "role": "creator",
            "creator_id": str(creator_id),
            "sub": "mallory",
            "code_challenge": pkce_challenge(verifier),
        },
    )
    assert answer.status_code == 303
    return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]


def test_a_planted_sign_in_state_does_not_sign_the_visitor_in(
    page: Page, context: BrowserContext, stack: Stack, urls: Urls
) -> None:
    attacker = new_bare_creator(stack, "Mallory Login")
    state, verifier = "attacker-state", "v" * 64
    code = _attackers_code(stack, urls, attacker, state, verifier)
    # The attacker's page plants the sign-in cookie (state|verifier|next), then sends the
    # visitor to the callback with the attacker's code.
    planted = {"name": "autodm_login", "value": f"{state}|{verifier}|/app/settings"}
    context.add_cookies([{**planted, "url": urls.api}])
    answer = page.goto(f"{urls.api}/auth/callback?code={code}&state={state}")
    assert answer is not None and answer.status == 400
    expect(page.get_by_role("heading", name="Sign-in failed")).to_be_visible()
    assert not [c for c in context.cookies() if "session" in c["name"]]
    page.goto(f"{urls.api}/app/settings")  # not signed in as anybody: sent to sign in
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert "/authorize" in page.url


def test_a_copied_session_cookie_stops_working_at_sign_out(
    page: Page, context: BrowserContext, attacker_context: BrowserContext, stack: Stack, urls: Urls
) -> None:
    creator_id = new_bare_creator(stack, "Sid Session")
    sign_in(page, urls, "creator", creator_id)
    copied = {**_session_cookie(context), "url": urls.api}
    attacker_context.add_cookies([copied])
    thief = attacker_context.new_page()
    thief.goto(f"{urls.api}/app/leads")
    expect(thief.get_by_role("heading", name="Leads", exact=True)).to_be_visible()  # a live session

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    thief.goto(f"{urls.api}/app/leads")
    expect(thief.get_by_role("button", name="Sign in")).to_be_visible()
    assert "/authorize" in thief.url


def test_the_session_cookie_is_not_an_api_bearer_token(
    page: Page, context: BrowserContext, stack: Stack, urls: Urls
) -> None:
    creator_id = new_bare_creator(stack, "Bea Rer")
    sign_in(page, urls, "creator", creator_id)
    session = _session_cookie(context)["value"]
    answer = httpx.get(f"{urls.api}/api/leads", headers={"Authorization": f"Bearer {session}"})
    assert answer.status_code == 401
    page.goto(f"{urls.api}/app/leads")  # while it still is a valid web session
    expect(page.get_by_role("heading", name="Leads", exact=True)).to_be_visible()


def test_docs_work_from_local_assets_and_nothing_here_can_be_framed(
    page: Page, stack: Stack, urls: Urls
) -> None:
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith(urls.api) else elsewhere.append(r.url),
    )
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto(f"{urls.api}/docs")
    expect(page.get_by_role("heading", name=re.compile("AutoDM API"))).to_be_visible()
    expect(page.get_by_text("/api/leads").first).to_be_visible()
    assert elsewhere == [] and violations == []

    issuer_page = (
        f"http://127.0.0.1:{stack.ports.local_issuer}/authorize?"
        f"redirect_uri={urls.api}/auth/callback&state=s"
    )
    frames = {"docs": f"{urls.api}/docs", "issuer": issuer_page}
    html = "".join(f'<iframe name="{n}" src="{src}"></iframe>' for n, src in frames.items())
    site = "http://localhost:9/framer"
    _serve(page, site, f"<!doctype html><body>{html}</body>")
    page.goto(site)
    for name in frames:
        frame = page.frame(name=name)
        assert frame is not None
        wait_for(lambda f=frame: f.url.startswith("chrome-error://"), 10, f"the refused {name}")
