"""The public form's limits as an attacker would try them (issue 23, point 4), against the
whole stack: nothing on the host names its own client address, bots cannot close a
creator's form, a served form brings one submission, and under pressure the form asks for
the challenge, which the API verifies at the provider's siteverify (a local stand-in)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from demo import DemoCreator, settings_from  # deploy/local
from playwright.sync_api import Page, Route, expect
from sqlalchemy import select
from stack import Stack  # deploy/local

from services.api.http.web.form_limits import ip_key
from shared.db.models import FormRateCount
from shared.db.session import make_engine, make_sessionmaker
from tests.browser.conftest import Urls, run, slug_of
from tests.browser.siteverify import HUMAN, SECRET, SiteVerify

TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


@contextmanager
def _client_from(urls: Urls, address: str) -> Iterator[httpx.Client]:
    """A client on its own loopback address (127.0.0.0/8 is all local): its own per-IP
    budget, so these floods never spend the one the browser tests share."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=urls.api, transport=transport, timeout=10) as client:
        yield client


def _post(client: httpx.Client, slug: str, **fields: str) -> httpx.Response:
    """Fetch the form (a fresh token), post it."""
    found = TOKEN.search(client.get(f"/c/{slug}/").text)
    assert found is not None
    return client.post(f"/c/{slug}/", data={"form_token": found.group(1), **fields})


def _leads(api: httpx.Client, creator: DemoCreator) -> list[dict[str, Any]]:
    found = api.get("/api/leads", params={"creator_id": str(creator.creator_id)}).json()
    return list(found["items"])


def _counted_keys(stack: Stack) -> set[str]:
    async def read() -> set[str]:
        engine = make_engine(settings_from(stack.env))
        try:
            async with make_sessionmaker(engine)() as session:
                return set(await session.scalars(select(FormRateCount.key)))
        finally:
            await engine.dispose()

    keys: set[str] = run(read())
    return keys


def test_x_forwarded_for_from_the_host_does_not_name_the_client(
    stack: Stack, urls: Urls, creator: DemoCreator
) -> None:
    """No proxy is trusted by default: a header from anything on the host is ignored, and
    the submission counts against the address it really came from."""
    slug = slug_of(stack, creator.creator_id)
    spoofed = "203.0.113.77"
    with _client_from(urls, "127.0.0.1") as client:
        found = TOKEN.search(client.get(f"/c/{slug}/").text)
        assert found is not None
        client.post(
            f"/c/{slug}/",
            data={"form_token": found.group(1), "name": "Spoof", "instagram": "spoof.er"},
            headers={"X-Forwarded-For": spoofed},
        )
    keys = _counted_keys(stack)
    assert ip_key(spoofed) not in keys
    assert ip_key("127.0.0.1") in keys


def test_bot_posts_do_not_close_the_creators_form(
    page: Page, stack: Stack, urls: Urls, creator: DemoCreator, api: httpx.Client
) -> None:
    """25 honeypot posts from 5 addresses (the creator-wide limit is 20 here) keep nothing
    and count nothing against the creator: a real visitor still gets through."""
    slug = slug_of(stack, creator.creator_id)
    for host in range(11, 16):
        with _client_from(urls, f"127.0.0.{host}") as bot:
            for i in range(5):
                trapped = _post(
                    bot, slug, name=f"Bot {i}", instagram="bot.account", website="http://x.example"
                )
                assert trapped.status_code == 200 and "Thank you" in trapped.text
    page.goto(f"{urls.api}/c/{slug}/")
    page.get_by_label("Name", exact=True).fill("Real Person")
    page.get_by_label("Instagram handle").fill("real.person")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    assert [lead["name"] for lead in _leads(api, creator)] == ["Real Person"]


def test_a_served_form_brings_one_submission(
    stack: Stack, urls: Urls, creator: DemoCreator, api: httpx.Client
) -> None:
    slug = slug_of(stack, creator.creator_id)
    with _client_from(urls, "127.0.0.16") as client:
        found = TOKEN.search(client.get(f"/c/{slug}/").text)
        assert found is not None
        form = {"form_token": found.group(1), "name": "Once", "instagram": "once.only"}
        first = client.post(f"/c/{slug}/", data=form)
        replayed = client.post(f"/c/{slug}/", data=form)
    assert first.status_code == 303
    assert replayed.status_code == 400 and "expired" in replayed.text
    assert len(_leads(api, creator)) == 1


STAND_IN_WIDGET = f"""
for (const box of document.querySelectorAll('.cf-turnstile')) {{
  const input = document.createElement('input');
  input.type = 'hidden'; input.name = 'cf-turnstile-response'; input.value = '{HUMAN}';
  box.textContent = 'Stand-in challenge passed';
  box.appendChild(input);
}}
"""


def _stand_in_turnstile(route: Route) -> None:
    """Cloudflare's widget script, played by a stand-in that 'solves' at once."""
    route.fulfill(status=200, content_type="application/javascript", body=STAND_IN_WIDGET)


def test_under_pressure_the_form_asks_for_the_challenge_and_the_api_verifies_it(
    page: Page,
    stack: Stack,
    urls: Urls,
    creator: DemoCreator,
    api: httpx.Client,
    siteverify: SiteVerify,
) -> None:
    slug = slug_of(stack, creator.creator_id)
    page.route(re.compile(r"^https://challenges\.cloudflare\.com/.*"), _stand_in_turnstile)
    page.goto(f"{urls.api}/c/{slug}/")
    expect(page.locator(".cf-turnstile")).to_have_count(0)  # no pressure: no challenge

    with _client_from(urls, "127.0.0.17") as client:
        # Posts without the widget's token are accepted until half the creator-wide limit
        # (20 a minute) is used; then refused. Counted per minute: a post that lands in a
        # new minute starts the count again, so post until refused (never more than 40).
        for i in range(40):
            answer = _post(client, slug, name=f"Fan {i}", instagram=f"fan.{i}")
            if answer.status_code != 303:
                break
        accepted = i
    assert answer.status_code == 400 and "confirm you are a person" in answer.text
    assert 10 <= accepted < 40  # never before the pressure: the first ten all went in
    calls_before = len(siteverify.calls)

    page.goto(f"{urls.api}/c/{slug}/")
    expect(page.get_by_text("Stand-in challenge passed")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Patient Person")
    page.get_by_label("Instagram handle").fill("patient.person")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()

    names = {lead["name"] for lead in _leads(api, creator)}
    assert "Patient Person" in names and f"Fan {accepted}" not in names
    assert len(names) == accepted + 1
    verified = siteverify.calls[calls_before:]
    assert [(c["response"], c["secret"]) for c in verified] == [(HUMAN, SECRET)]
    assert verified[0]["remoteip"] == "127.0.0.1"
