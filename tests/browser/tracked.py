"""AutoDM's tracked links (/l/<ref>) in the browser tests: Playwright calls a route handler
only for a request's first URL, never for where a redirect leads, so a test that must land
on ig.me / wa.me (which this machine cannot reach) opens /l/<ref> for real (the click is
counted) and is told where AutoDM sends it."""

from __future__ import annotations

import re

from playwright.sync_api import Route

TRACKED = re.compile(r"^http://127\.0\.0\.1:\d+/l/[A-Za-z0-9_-]+$")


def landing(route: Route) -> str:
    """Where AutoDM redirects this /l/<ref> request (the open is counted on the way)."""
    answer = route.fetch(max_redirects=0)
    assert answer.status == 302, answer.status
    return answer.headers["location"]
