"""Connecting Instagram is bound to the browser that started it: the authorization link
opened in another browser (somebody the creator handed it to) is refused with a page that
says so and links nothing; in the creator's own browser the connect still works."""

from __future__ import annotations

import re
import uuid

import httpx
from demo import settings_from  # deploy/local
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select
from stack import Stack  # deploy/local

from shared.db.models import SocialAccount
from shared.db.session import make_engine, make_sessionmaker
from tests.browser.conftest import Urls, new_bare_creator, run, sign_in


def _linked_creators(stack: Stack, ig_user_id: str) -> list[uuid.UUID]:
    """Which creators the Instagram account is linked to (none, if all went right)."""

    async def read() -> list[uuid.UUID]:
        engine = make_engine(settings_from(stack.env))
        try:
            async with make_sessionmaker(engine)() as session:
                rows = await session.scalars(
                    select(SocialAccount.creator_id).where(SocialAccount.external_id == ig_user_id)
                )
                return list(rows)
        finally:
            await engine.dispose()

    found: list[uuid.UUID] = run(read())
    return found


def _new_account(sandbox: httpx.Client, username: str) -> str:
    made = sandbox.post("/_sandbox/instagram/accounts", json={"username": username})
    made.raise_for_status()
    return str(made.json()["ig_user_id"])


def _authorization_link(context: BrowserContext, urls: Urls) -> str:
    """What the Connect button starts, stopped before the dialog: the authorization link.
    (The context's own request client: the creator's cookies go with it and the binding
    cookie it gets back lands in this browser, as a click would leave it.)"""
    started = context.request.get(f"{urls.api}/app/instagram/connect", max_redirects=0)
    assert started.status == 303, started.text()
    link = started.headers["location"]
    assert link.startswith(f"{urls.sandbox}/oauth/authorize?")
    callback = context.cookies(f"{urls.api}/api/instagram/callback")
    assert [c["httpOnly"] for c in callback if c["name"] == "autodm_ig_connect"] == [True]
    return link


def test_a_connect_link_opened_in_another_browser_is_refused_and_links_nothing(
    browser: Browser,
    page: Page,
    context: BrowserContext,
    stack: Stack,
    urls: Urls,
    sandbox: httpx.Client,
) -> None:
    creator_id = new_bare_creator(stack, "Bea Bound")
    theirs = _new_account(sandbox, f"someone.{uuid.uuid4().hex[:8]}")
    mine_name = f"bea.{uuid.uuid4().hex[:8]}"
    mine = _new_account(sandbox, mine_name)

    sign_in(page, urls, "creator", creator_id)
    page.get_by_role("link", name="Instagram").click()
    link = _authorization_link(context, urls)

    # Somebody else approves the link in their own browser, as their own Instagram account.
    sandbox.put("/_sandbox/oauth", json={"account_id": theirs}).raise_for_status()
    elsewhere = browser.new_context()
    try:
        other = elsewhere.new_page()
        answer = other.goto(link)
        assert answer is not None and answer.status == 403
        assert other.url.startswith(f"{urls.api}/api/instagram/callback?")
        expect(other.get_by_role("heading", name="Connection refused")).to_be_visible()
        expect(other.get_by_text("started in another browser")).to_be_visible()
        expect(other.get_by_text("nothing was connected")).to_be_visible()
    finally:
        elsewhere.close()
    assert _linked_creators(stack, theirs) == []
    page.goto(f"{urls.api}/app/instagram")
    expect(page.get_by_role("link", name="Connect Instagram")).to_be_visible()

    # In the creator's own browser the connect goes through as before.
    sandbox.put("/_sandbox/oauth", json={"account_id": mine}).raise_for_status()
    page.get_by_role("link", name="Connect Instagram").click()
    page.wait_for_url(re.compile(r".*/app/instagram\?result=connected(#.*)?$"))
    expect(page.get_by_role("status")).to_have_text("Instagram is connected.")
    expect(page.get_by_text(f"@{mine_name}")).to_be_visible()
    assert _linked_creators(stack, mine) == [creator_id]
    assert _linked_creators(stack, theirs) == []
