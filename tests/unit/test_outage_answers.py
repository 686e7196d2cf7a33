"""A request that meets a database or broker outage is told to retry (503, Retry-After),
as a problem document for API clients and as a page for browsers; a bug stays a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc

from tests.api_app import create_app
from tests.settings import AllSettings


def _failing(error: Exception) -> TestClient:
    app = create_app(AllSettings())

    async def boom() -> None:
        raise error

    app.add_api_route("/api/boom", boom, methods=["POST"])
    app.add_api_route("/boom", boom, methods=["POST"])
    # No lifespan: nothing connects; the routes fail the way a dropped connection does.
    return TestClient(app, raise_server_exceptions=False)


OUTAGES = [
    ConnectionRefusedError("connect call failed"),
    sa_exc.InterfaceError("INSERT ...", {}, ConnectionResetError("connection is closed")),
]


@pytest.mark.parametrize("error", OUTAGES, ids=["refused", "dropped"])
def test_an_outage_is_a_503_to_retry_for_api_clients(error: Exception) -> None:
    answer = _failing(error).post("/api/boom")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "2"
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/unavailable")


@pytest.mark.parametrize("error", OUTAGES, ids=["refused", "dropped"])
def test_an_outage_is_a_try_again_page_for_browsers(error: Exception) -> None:
    answer = _failing(error).post("/boom", headers={"accept": "text/html"})
    assert answer.status_code == 503
    assert "text/html" in answer.headers["content-type"]
    assert "Please try again" in answer.text


def test_a_bug_is_still_a_500_that_tells_nothing_inner() -> None:
    answer = _failing(KeyError("secret_column")).post("/api/boom")
    assert answer.status_code == 500
    assert "secret_column" not in answer.text
    assert answer.json()["type"].endswith("/internal")
