"""Test-side drivers: a webhook receiver and a thin client for the control API."""

from __future__ import annotations

import json
from typing import Any

import httpx

WEBHOOK_HOST = "http://receiver.test"
IG_WEBHOOK_URL = f"{WEBHOOK_HOST}/instagram"
WA_WEBHOOK_URL = f"{WEBHOOK_HOST}/whatsapp"


class Receiver:
    """In-process webhook endpoint (an httpx MockTransport) that records every POST."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.fail_next = 0
        self.always_fail = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.always_fail or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            return httpx.Response(500)
        return httpx.Response(200, text="EVENT_RECEIVED")

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def payloads(self, url: str | None = None) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if url is None or str(r.url) == url]


class SandboxDriver:
    """Calls the `/_sandbox` control API and the provider API like a client would."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def control(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.client.request(method, f"/_sandbox{path}", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def account(self, username: str = "creator") -> dict[str, Any]:
        return await self.control("POST", "/instagram/accounts", {"username": username})

    async def dm_from(self, account_id: str, username: str, text: str = "hi") -> dict[str, Any]:
        body = {"account_id": account_id, "username": username, "text": text}
        return await self.control("POST", "/instagram/users/message", body)

    async def comment_from(
        self, account_id: str, username: str, text: str = "love it"
    ) -> dict[str, Any]:
        body = {"account_id": account_id, "username": username, "text": text}
        return await self.control("POST", "/instagram/users/comment", body)

    async def advance(self, seconds: float) -> None:
        await self.control("POST", "/clock/advance", {"seconds": seconds})

    async def settings(self, **patch: Any) -> None:
        await self.control("PATCH", "/settings", patch)

    async def drain(self) -> None:
        assert (await self.control("POST", "/webhooks/drain"))["drained"]

    async def send_ig(
        self,
        token: str,
        recipient: dict[str, str],
        text: str = "hello from AutoDM",
        path: str = "/v23.0/me/messages",
    ) -> httpx.Response:
        body = {"recipient": recipient, "message": {"text": text}}
        headers = {"Authorization": f"Bearer {token}"}
        return await self.client.post(path, json=body, headers=headers)

    async def wa_number(self, display: str = "15550001111") -> dict[str, Any]:
        return await self.control("POST", "/whatsapp/numbers", {"display_phone_number": display})

    async def wa_send(self, number: dict[str, Any], body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {number['access_token']}"}
        path = f"/v23.0/{number['phone_number_id']}/messages"
        return await self.client.post(
            path, json={"messaging_product": "whatsapp"} | body, headers=headers
        )


def graph_error(response: httpx.Response) -> tuple[int, int | None]:
    """(code, error_subcode) of a Graph error response."""
    error = response.json()["error"]
    return error["code"], error.get("error_subcode")
