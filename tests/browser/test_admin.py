"""An admin replays a dead letter and sees the count drop; a creator can reach neither
the admin pages nor another creator's leads."""

from __future__ import annotations

import re

import httpx
from demo import DemoCreator  # deploy/local
from playwright.sync_api import Locator, Page, expect
from stack import Stack  # deploy/local

from tests.browser.conftest import Urls, new_bare_creator, screenshot, sign_in, wait_for
from tests.browser.test_creator import failed_dm


def reload_until(page: Page, rows: Locator, count: int) -> None:
    """The DLQ record is indexed from the dlq topic just after the DM's `failed` status, and
    the DLQ page does not poll: reload until the index has it."""

    def indexed() -> bool:
        page.reload()
        return rows.count() == count

    wait_for(indexed, 15, "the dead letter to be indexed")


def test_admin_replays_a_dead_letter_and_the_count_drops(
    page: Page, urls: Urls, sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator
) -> None:
    lead_id = failed_dm(sandbox, api, creator, "dee.lq")
    sign_in(page, urls, "admin")
    expect(page.get_by_role("heading", name="DM overview")).to_be_visible()
    # The stuck-DM watchdog's block (docs/RELIABILITY.md): its count is a number.
    expect(page.get_by_role("heading", name="Stuck DMs")).to_be_visible()
    expect(page.locator("#stuck-count")).to_have_text(re.compile(r"^\d+$"))
    screenshot(page, "admin-overview")
    page.get_by_role("link", name="Dead letters").first.click()
    expect(page.get_by_role("heading", name="Dead letters", exact=True)).to_be_visible()
    # Oldest first, 50 a page: earlier suites may have parked more; filter to this account.
    page.goto(f"{urls.api}/admin/dlq?account={creator.account_id}")
    row = page.locator(f'tr[data-lead="{lead_id}"]')
    reload_until(page, row, 1)
    before = int(page.locator("#dlq-count").inner_text())
    screenshot(page, "admin-dlq")

    row.get_by_role("link", name=re.compile("Inspect")).click()
    expect(page.get_by_text("retries_exhausted").first).to_be_visible()
    screenshot(page, "admin-dlq-entry")
    page.get_by_role("button", name="Replay").click()

    expect(page.get_by_role("status")).to_have_text("The entry was replayed.")
    expect(page.locator("#dlq-count")).to_have_text(str(before - 1))
    expect(page.locator(f'tr[data-lead="{lead_id}"]')).to_have_count(0)
    wait_for(
        lambda: api.get(f"/api/leads/{lead_id}").json()["dm"]["status"] == "sent",
        30,
        "the replayed DM to be sent",
    )


def test_admin_replays_a_filtered_set_with_progress(
    page: Page, urls: Urls, sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator
) -> None:
    failed_dm(sandbox, api, creator, "fil.tered")
    sign_in(page, urls, "admin")
    page.goto(f"{urls.api}/admin/dlq?account={creator.account_id}")
    reload_until(page, page.locator("tbody tr[data-lead]"), 1)
    page.get_by_role("button", name="Replay the 1 filtered").click()
    expect(page.locator("#progress-text")).to_have_text("1 of 1 replayed: done.")
    screenshot(page, "admin-dlq-replay")


def test_a_creator_cannot_reach_admin_pages_or_another_creators_leads(
    page: Page, stack: Stack, urls: Urls, api: httpx.Client, creator: DemoCreator
) -> None:
    other = api.post(
        "/api/leads",
        json={"creator_id": str(creator.creator_id), "name": "Secret", "phone": "+442079460958"},
    ).json()["id"]
    intruder = new_bare_creator(stack, "Ivy Intruder")
    sign_in(page, urls, "creator", intruder)
    for path in ("/admin", "/admin/dlq", "/admin/overview/live"):
        answer = page.goto(f"{urls.api}{path}")
        assert answer is not None and answer.status == 403
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    for path in (f"/app/leads/{other}", "/app/leads/not-a-lead", "/app/nothing-here"):
        answer = page.goto(f"{urls.api}{path}")
        assert answer is not None and answer.status == 404
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    page.goto(f"{urls.api}/app/leads")
    expect(page.get_by_text("Secret")).to_have_count(0)
    # A form posted without the CSRF token is refused.
    refused = page.request.post(f"{urls.api}/app/leads/{other}/retry", form={})
    assert refused.status == 403
    screenshot(page, "forbidden")


def test_sign_out_ends_the_session(page: Page, urls: Urls, creator: DemoCreator) -> None:
    sign_in(page, urls, "creator", creator.creator_id)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    page.goto(f"{urls.api}/app/leads")  # the pages send a signed-out visitor to sign in
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert "/authorize" in page.url


def test_admin_replays_all_after_confirming(
    page: Page, urls: Urls, sandbox: httpx.Client, api: httpx.Client, creator: DemoCreator
) -> None:
    lead_id = failed_dm(sandbox, api, creator, "all.of.them")
    sign_in(page, urls, "admin")
    page.goto(f"{urls.api}/admin/dlq?account={creator.account_id}")
    reload_until(page, page.locator("tbody tr[data-lead]"), 1)
    page.get_by_role("link", name=re.compile(r"^Replay all \d+$")).click()
    question = page.get_by_role("heading", name=re.compile(r"^Replay all \d+ dead letters\?$"))
    expect(question).to_be_visible()
    screenshot(page, "admin-dlq-replay-all")
    page.get_by_role("link", name="Cancel").click()  # nothing happens without the yes
    expect(page.locator(f'tr[data-lead="{lead_id}"]')).to_have_count(1)

    page.get_by_role("link", name=re.compile(r"^Replay all \d+$")).click()
    total = int(re.findall(r"\d+", question.inner_text())[0])
    page.get_by_role("button", name=f"Yes, replay all {total}").click()
    # Entries parked meanwhile (earlier suites' poison, replayed and parked again) may
    # change the count between the question and the start; every one counted goes.
    done = re.compile(r"^(\d+) of \1 replayed: done\.$")
    expect(page.locator("#progress-text")).to_have_text(done, timeout=60_000)
    wait_for(
        lambda: api.get(f"/api/leads/{lead_id}").json()["dm"]["status"] == "sent",
        30,
        "the replayed DM to be sent",
    )
