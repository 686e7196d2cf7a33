"""Browser tests: Debian's chromium driven by Playwright against the whole stack
(deploy/local/stack.py, as `make run` starts it) on ports of its own.

BROWSER_PORT_OFFSET moves the ports (two checkouts side by side). SCREENSHOTS_DIR, when
set, is where the page screenshots (phone and desktop width) are written.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from demo import DemoCreator, seed_creator, service_token, settings_from  # deploy/local
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from stack import Stack, StackPorts, running_stack  # deploy/local

from shared.db.models import Creator
from shared.db.session import make_engine, make_sessionmaker
from tests.browser.siteverify import SECRET, SITE_KEY, SiteVerify, start_siteverify
from tests.conftest import ROOT, suite_ports
from tests.settings import get_all_settings

pytestmark = pytest.mark.browser

LOG_DIR = ROOT / ".local" / "test" / "browser-logs"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
T = TypeVar("T")
# Stack settings for these tests: one delivery attempt, so a provider fault gives a failed
# DM and a dead letter at once; form limits loose enough for the suite's submissions, and
# a per-creator limit low enough for test_form_abuse to reach (each test has its own
# creator); the Turnstile challenge, verified by a local stand-in (siteverify.py).
# Two other frontends on origins of their own (tests/browser/test_cors.py): the first is
# allowed to call the API cross-origin, the second is not.
_FRONTEND_PORT = 18395 + int(os.environ.get("BROWSER_PORT_OFFSET", "0"))
ALLOWED_FRONTEND = f"http://127.0.0.1:{_FRONTEND_PORT}"
OTHER_FRONTEND = f"http://127.0.0.1:{_FRONTEND_PORT + 1}"
STACK_ENV = {
    "AUTODM_CORS_ALLOWED_ORIGINS": f'["{ALLOWED_FRONTEND}"]',
    "AUTODM_DELIVERY_MAX_ATTEMPTS": "1",
    "AUTODM_LEAD_FORM_PER_IP_PER_MINUTE": "60",
    "AUTODM_LEAD_FORM_PER_CREATOR_PER_MINUTE": "20",
    "AUTODM_LEAD_FORM_CHALLENGE": "turnstile",
    "AUTODM_LEAD_FORM_CHALLENGE_SITE_KEY": SITE_KEY,
    "AUTODM_LEAD_FORM_CHALLENGE_SECRET": SECRET,
    "AUTODM_LOG_LEVEL": "INFO",
}


def _ports() -> StackPorts:
    ports: StackPorts = suite_ports(18380, 8300, 18390, "BROWSER_PORT_OFFSET")
    return ports


@pytest.fixture(scope="package")
def siteverify() -> Iterator[SiteVerify]:
    stand_in = start_siteverify()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture(scope="package")
def stack(siteverify: SiteVerify) -> Iterator[Stack]:
    database = get_all_settings().database_url.get_secret_value().rsplit("/", 1)[1]
    env = STACK_ENV | {"AUTODM_LEAD_FORM_CHALLENGE_VERIFY_URL": siteverify.url}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        stacked = running_stack(_ports(), database, LOG_DIR)
        started = stacked.__enter__()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield started
    finally:
        stacked.__exit__(None, None, None)


@pytest.fixture(scope="package")
def browser(stack: Stack) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        yield _launch(playwright)


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    )


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


class Urls:
    def __init__(self, stack: Stack) -> None:
        self.api = f"http://127.0.0.1:{stack.ports.api}"
        self.sandbox = f"http://127.0.0.1:{stack.ports.sandbox}"


@pytest.fixture(scope="package")
def urls(stack: Stack) -> Urls:
    return Urls(stack)


@pytest.fixture
def sandbox(urls: Urls) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=urls.sandbox, timeout=10) as client:
        yield client


@pytest.fixture
def api(stack: Stack, urls: Urls) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {service_token(stack.ports.local_issuer)}"}
    with httpx.Client(base_url=urls.api, headers=headers, timeout=10) as client:
        yield client


def run(coro: Any) -> Any:
    """Run a coroutine to the end on a thread of its own: Playwright's sync API keeps an
    event loop running in the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _seed(stack: Stack, username: str) -> DemoCreator:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ports.sandbox}") as client:
        return await seed_creator(settings_from(stack.env), client, username)


@pytest.fixture
def creator(stack: Stack) -> DemoCreator:
    """A creator whose sandbox Instagram account is connected."""
    return run(_seed(stack, f"br.{uuid.uuid4().hex[:8]}"))


def slug_of(stack: Stack, creator_id: uuid.UUID) -> str:
    async def read() -> str:
        engine = make_engine(settings_from(stack.env))
        try:
            async with make_sessionmaker(engine)() as session:
                found = await session.get(Creator, creator_id)
                assert found is not None
                return found.slug
        finally:
            await engine.dispose()

    return str(run(read()))


def new_bare_creator(stack: Stack, name: str) -> uuid.UUID:
    """A creator with nothing connected yet."""

    async def create() -> uuid.UUID:
        creator_id = uuid.uuid4()
        engine = make_engine(settings_from(stack.env))
        try:
            async with make_sessionmaker(engine).begin() as session:
                session.add(
                    Creator(
                        id=creator_id,
                        name=name,
                        slug=f"bare-{creator_id.hex[:12]}",
                        dm_template="Hi {name}! Here is the guide.",
                    )
                )
        finally:
            await engine.dispose()
        return creator_id

    return uuid.UUID(str(run(create())))


def sign_in(
    page: Page, urls: Urls, role: str, creator_id: uuid.UUID | None = None, shoot: bool = False
) -> None:
    """Through the API's /login and the local issuer's sign-in page, like a person."""
    page.goto(f"{urls.api}/")
    if page.url.rstrip("/") != urls.api:  # still signed in from an earlier page: sign out
        page.get_by_role("button", name="Sign out").click()
    if shoot:
        screenshot(page, "start")
    page.get_by_role("link", name="Sign in").click()
    if shoot:
        screenshot(page, "sign-in-local-issuer")
    page.get_by_label("Role").select_option(role)
    if creator_id is not None:
        page.get_by_label("Creator id (creators only)").fill(str(creator_id))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/(app/leads|admin)$"))


def wait_for(probe: Callable[[], T | None], timeout_s: float = 15.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or probe}")


def screenshot(page: Page, name: str) -> None:
    """The page at phone (390 px) and desktop (1280 px) width, when SCREENSHOTS_DIR is set."""
    folder = os.environ.get("SCREENSHOTS_DIR")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or {"width": 1280, "height": 900}
    for label, width in (("phone", 390), ("desktop", 1280)):
        page.set_viewport_size({"width": width, "height": 844 if width == 390 else 900})
        page.wait_for_timeout(150)  # reflow
        page.screenshot(path=str(Path(folder) / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(size)
