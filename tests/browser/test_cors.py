"""Another frontend, on an origin of its own, calls the JSON API from a real browser:
Chromium enforces CORS, so a configured origin can create a lead and read the answer's
headers, and any other origin's script gets nothing (the request never reaches a handler)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest
from demo import DemoCreator, service_token  # deploy/local
from playwright.sync_api import Page
from stack import Stack

from tests.browser.conftest import ALLOWED_FRONTEND, OTHER_FRONTEND, Urls

# What the other frontend's page runs: a JSON POST with a bearer token (so a preflight).
SCRIPT = """async ([api, token, creator]) => {
  try {
    const answer = await fetch(api + "/api/leads", {
      method: "POST",
      headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
      body: JSON.stringify({creator_id: creator, name: "Cors", phone: "+14155550142"}),
    });
    return {status: answer.status, location: answer.headers.get("Location")};
  } catch (error) {
    return {error: String(error)};
  }
}"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><h1>Another frontend</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet: http.server would log every request to stderr."""


@pytest.fixture(scope="module")
def frontends() -> Iterator[None]:
    """Both frontends, served for real on loopback (Chromium treats a page's address
    space as it is: a faked public origin may not call into loopback at all)."""
    servers = []
    for origin in (ALLOWED_FRONTEND, OTHER_FRONTEND):
        server = ThreadingHTTPServer(("127.0.0.1", urlparse(origin).port or 80), _Page)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_configured_origin_calls_the_api_and_another_is_refused(
    page: Page, urls: Urls, stack: Stack, creator: DemoCreator, frontends: None
) -> None:
    args = [urls.api, service_token(stack.ports.local_issuer), str(creator.creator_id)]

    page.goto(f"{ALLOWED_FRONTEND}/")
    allowed = page.evaluate(SCRIPT, args)
    assert allowed.get("status") == 201, allowed
    assert allowed["location"].startswith("/api/leads/")  # an exposed header

    page.goto(f"{OTHER_FRONTEND}/")
    refused = page.evaluate(SCRIPT, args)
    assert "Failed to fetch" in refused.get("error", ""), refused
