"""Signed webhook delivery (platform-facts §3b/§3d/§4e).

Each event is one POST whose body is signed with ``X-Hub-Signature-256: sha256=<hex>``
(HMAC-SHA256 of the exact raw body with the app secret). Delivery runs in background
tasks, is retried a few times, and every attempt ends up in an inspectable log; a logged
delivery can be re-sent byte for byte to exercise the receiver's dedupe.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from sandbox.settings import SandboxSettings

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
DeliveryStatus = Literal["pending", "delivered", "failed", "skipped"]
WebhookPlatform = Literal["instagram", "whatsapp"]


def sign(body: bytes, secret: str) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def encode_payload(payload: dict[str, Any]) -> bytes:
    # Meta signs an escaped-unicode rendering ("äöå" -> "\u00e4\u00f6\u00e5");
    # ensure_ascii produces exactly that, so receivers see the same bytes Meta would send.
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass
class Delivery:
    id: str
    platform: WebhookPlatform
    event: str
    url: str | None
    body: bytes
    created_at: float
    status: DeliveryStatus = "pending"
    attempts: int = 0
    http_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None
    redelivery_of: str | None = None

    def as_json(self, secret: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "platform": self.platform,
            "event": self.event,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "http_status": self.http_status,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "delivered_at": self.delivered_at,
            "redelivery_of": self.redelivery_of,
            "signature": sign(self.body, secret),
            "payload": json.loads(self.body),
        }


class WebhookDispatcher:
    def __init__(
        self,
        settings: Callable[[], SandboxSettings],
        now: Callable[[], float],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._now = now
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self.deliveries: dict[str, Delivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- public API ----------------------------------------------------------------

    def secret_for(self, platform: WebhookPlatform) -> str:
        settings = self._settings()
        return settings.app_secret if platform == "instagram" else settings.whatsapp_signing_secret

    def send(
        self,
        platform: WebhookPlatform,
        event: str,
        payload: dict[str, Any],
        skip_reason: str | None = None,
    ) -> Delivery:
        delivery = self._log(platform, event, encode_payload(payload), skip_reason)
        if delivery.status == "pending":
            self._spawn(self._deliver(delivery))
        return delivery

    def send_sequence(
        self,
        platform: WebhookPlatform,
        events: list[tuple[str, dict[str, Any]]],
        delay_seconds: float,
    ) -> list[Delivery]:
        """Deliver events one after another (each waits `delay_seconds` first), so the
        receiver observes them in exactly this order."""
        deliveries = [self._log(platform, event, encode_payload(p), None) for event, p in events]
        pending = [d for d in deliveries if d.status == "pending"]
        if pending:
            self._spawn(self._deliver_in_order(pending, delay_seconds))
        return deliveries

    def redeliver(self, delivery_id: str) -> Delivery | None:
        original = self.deliveries.get(delivery_id)
        if original is None:
            return None
        copy = self._log(original.platform, original.event, original.body, None)
        copy.redelivery_of = original.id
        if copy.status == "pending":
            self._spawn(self._deliver(copy))
        return copy

    async def drain(self, wait_seconds: float = 30.0) -> bool:
        """Wait for in-flight deliveries; returns False if some are still running."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=remaining)
        return True

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self.deliveries.clear()

    # --- internals -----------------------------------------------------------------

    def _url_for(self, platform: WebhookPlatform) -> str | None:
        settings = self._settings()
        if platform == "instagram":
            return settings.instagram_webhook_url
        return settings.whatsapp_webhook_url

    def _log(
        self, platform: WebhookPlatform, event: str, body: bytes, skip_reason: str | None
    ) -> Delivery:
        url = self._url_for(platform)
        delivery = Delivery(
            id="wh_" + secrets.token_hex(8),
            platform=platform,
            event=event,
            url=url,
            body=body,
            created_at=self._now(),
        )
        if skip_reason is None and url is None:
            skip_reason = f"no {platform}_webhook_url configured"
        if skip_reason is not None:
            delivery.status = "skipped"
            delivery.last_error = skip_reason
        self.deliveries[delivery.id] = delivery
        return delivery

    def _client(self) -> httpx.AsyncClient:
        # One keep-alive client per event loop (tests run the sandbox on several loops). A
        # client per delivery built a TLS context every time: 84 % of the sandbox's CPU
        # under load, which starved the stack it plays Meta for (docs/BENCHMARKS.md).
        loop = asyncio.get_running_loop()
        if self._http is None or self._http_loop is not loop:
            self._http = httpx.AsyncClient(transport=self._transport)
            self._http_loop = loop
        return self._http

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_in_order(self, deliveries: list[Delivery], delay: float) -> None:
        for delivery in deliveries:
            if delay:
                await asyncio.sleep(delay)
            await self._deliver(delivery)

    async def _deliver(self, delivery: Delivery) -> None:
        settings = self._settings()
        backoff = settings.webhook_retry_backoff_ms / 1000
        for attempt in range(settings.webhook_retries + 1):
            if attempt:
                await asyncio.sleep(backoff * 2 ** (attempt - 1))
            if await self._attempt(delivery, settings.webhook_timeout_seconds):
                delivery.status = "delivered"
                delivery.delivered_at = self._now()
                return
        delivery.status = "failed"
        logger.warning(
            "webhook %s (%s %s) failed after %d attempts: %s",
            delivery.id,
            delivery.platform,
            delivery.event,
            delivery.attempts,
            delivery.last_error,
        )

    async def _attempt(self, delivery: Delivery, timeout_seconds: float) -> bool:
        assert delivery.url is not None
        delivery.attempts += 1
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(delivery.body, self.secret_for(delivery.platform)),
            "User-Agent": "facebookexternalua",
        }
        try:
            response = await self._client().post(
                delivery.url, content=delivery.body, headers=headers, timeout=timeout_seconds
            )
        except httpx.HTTPError as exc:
            delivery.last_error = f"{type(exc).__name__}: {exc}"
            return False
        delivery.http_status = response.status_code
        if response.is_success:
            return True
        delivery.last_error = f"HTTP {response.status_code}"
        return False
