"""Signed webhook delivery (platform-facts §3b/§3d/§4e).

Each event is one POST whose body is signed with ``X-Hub-Signature-256: sha256=<hex>``
(HMAC-SHA256 of the exact raw body with the app secret). Delivery runs in background
tasks, and every attempt ends up in an inspectable log; a logged delivery can be re-sent
byte for byte to exercise the receiver's dedupe.

Retries follow Meta's documented behaviour per product (§3d, §4e):
- Instagram messaging fields (messages, messaging_seen, ...): "we will immediately try a
  few more times" (``webhook_retries``), then the notification is given up.
- Other Instagram fields (comments, ...): immediately, then "a few more times with
  decreasing frequency over the next 36 hours"; WhatsApp likewise over 7 days.
- "If delivery of a notification continues to fail for 1 hour ... your app will be
  unsubscribed from the webhooks for the ... Instagram Professional account" (after 15
  minutes an alert): an Instagram account failing that long is recorded disabled, its
  subscribed fields cleared, and its later notifications skipped until it subscribes
  again (POST /{ig_id}/subscribed_apps). ``webhook_time_scale`` compresses these periods
  (and the later retries) for tests; GET /_sandbox/webhooks/subscriptions shows them.
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

# Instagram fields delivered like Messenger's: immediate retries only, then given up.
MESSAGING_FIELDS = frozenset(
    {
        "messages",
        "message_edit",
        "message_reactions",
        "messaging_handover",
        "messaging_optins",
        "messaging_postbacks",
        "messaging_referral",
        "messaging_seen",
        "standby",
    }
)
HOUR = 3600.0
RETRY_HORIZON_S = {"instagram": 36 * HOUR, "whatsapp": 7 * 24 * HOUR}
ALERT_AFTER_S = 15 * 60.0
DISABLE_AFTER_S = HOUR
# The "decreasing frequency" retries: Meta gives no schedule; each waits 4x longer.
FIRST_LATER_RETRY_S = 60.0


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
    field: str = ""
    account: str = ""

    @property
    def messaging(self) -> bool:
        return self.platform == "instagram" and self.field in MESSAGING_FIELDS

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
            "field": self.field,
            "account": self.account,
            "signature": sign(self.body, secret),
            "payload": json.loads(self.body),
        }


@dataclass
class Subscription:
    """One account's webhook subscription as Meta tracks its failures."""

    platform: WebhookPlatform
    account: str
    failing_since: float | None = None
    alerted_at: float | None = None
    disabled_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "account": self.account,
            "failing_since": self.failing_since,
            "alerted_at": self.alerted_at,
            "disabled": self.disabled_at is not None,
            "disabled_at": self.disabled_at,
        }


def _account_of(payload: dict[str, Any]) -> str:
    entries = payload.get("entry") or [{}]
    return str(entries[0].get("id") or "")


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
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        # Told the account whose subscription Meta disabled (the state clears its fields).
        self.on_disabled: Callable[[str], None] | None = None
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
        field: str | None = None,
    ) -> Delivery:
        delivery = self._log(platform, event, encode_payload(payload), skip_reason, field)
        if delivery.status == "pending":
            self._spawn(self._deliver(delivery))
        return delivery

    def send_sequence(
        self,
        platform: WebhookPlatform,
        events: list[tuple[str, dict[str, Any]]],
        delay_seconds: float | list[float],
    ) -> list[Delivery]:
        """Deliver events one after another (each waits `delay_seconds` first, or its own
        delay of a list), so the receiver observes them in exactly this order."""
        deliveries = [
            self._log(platform, event, encode_payload(p), None, None) for event, p in events
        ]
        pending = [d for d in deliveries if d.status == "pending"]
        if pending:
            self._spawn(self._deliver_in_order(pending, delay_seconds))
        return deliveries

    def redeliver(self, delivery_id: str) -> Delivery | None:
        original = self.deliveries.get(delivery_id)
        if original is None:
            return None
        copy = self._log(original.platform, original.event, original.body, None, original.field)
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
        self.subscriptions.clear()

    def subscription(self, platform: WebhookPlatform, account: str) -> Subscription:
        key = (platform, account)
        if key not in self.subscriptions:
            self.subscriptions[key] = Subscription(platform, account)
        return self.subscriptions[key]

    def resubscribed(self, platform: WebhookPlatform, account: str) -> None:
        """The app subscribed again (after fixing its endpoint): deliveries resume."""
        self.subscriptions.pop((platform, account), None)

    # --- internals -----------------------------------------------------------------

    def _url_for(self, platform: WebhookPlatform) -> str | None:
        settings = self._settings()
        if platform == "instagram":
            return settings.instagram_webhook_url
        return settings.whatsapp_webhook_url

    def _log(
        self,
        platform: WebhookPlatform,
        event: str,
        body: bytes,
        skip_reason: str | None,
        field: str | None,
    ) -> Delivery:
        url = self._url_for(platform)
        delivery = Delivery(
            id="wh_" + secrets.token_hex(8),
            platform=platform,
            event=event,
            url=url,
            body=body,
            created_at=self._now(),
            field=field or event,
            account=_account_of(json.loads(body)),
        )
        if skip_reason is None and url is None:
            skip_reason = f"no {platform}_webhook_url configured"
        if skip_reason is None and self._disabled(delivery):
            skip_reason = f"the app's subscription for account {delivery.account} is disabled"
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

    async def _deliver_in_order(
        self, deliveries: list[Delivery], delays: float | list[float]
    ) -> None:
        for i, delivery in enumerate(deliveries):
            delay = delays[i] if isinstance(delays, list) else delays
            if delay:
                await asyncio.sleep(delay)
            await self._deliver(delivery)

    async def _deliver(self, delivery: Delivery) -> None:
        settings = self._settings()
        for wait in self._retry_waits(delivery, settings):
            if wait:
                await asyncio.sleep(wait)
            if self._disabled(delivery):
                delivery.last_error = "subscription disabled"
                break
            if await self._attempt(delivery, settings.webhook_timeout_seconds):
                delivery.status = "delivered"
                delivery.delivered_at = self._now()
                self._succeeded(delivery)
                return
            self._failed(delivery, settings)
        delivery.status = "failed"
        logger.warning(
            "webhook %s (%s %s) failed after %d attempts: %s",
            delivery.id,
            delivery.platform,
            delivery.event,
            delivery.attempts,
            delivery.last_error,
        )

    def _retry_waits(self, delivery: Delivery, settings: SandboxSettings) -> list[float]:
        """The wait before each attempt: the first, the immediate retries, then (not for
        Instagram messaging) fewer and fewer retries until the product's horizon."""
        backoff = settings.webhook_retry_backoff_ms / 1000
        waits = [0.0] + [backoff * 2**i for i in range(settings.webhook_retries)]
        if delivery.messaging:
            return waits
        scale = settings.webhook_time_scale
        horizon, wait = RETRY_HORIZON_S[delivery.platform] * scale, FIRST_LATER_RETRY_S * scale
        elapsed = wait
        while elapsed <= horizon:
            waits.append(wait)
            wait *= 4
            elapsed += wait
        return waits

    # --- the subscription's health ----------------------------------------------------

    def _disabled(self, delivery: Delivery) -> bool:
        sub = self.subscriptions.get((delivery.platform, delivery.account))
        return sub is not None and sub.disabled_at is not None

    def _succeeded(self, delivery: Delivery) -> None:
        sub = self.subscriptions.get((delivery.platform, delivery.account))
        if sub is not None and sub.disabled_at is None:
            sub.failing_since = sub.alerted_at = None

    def _failed(self, delivery: Delivery, settings: SandboxSettings) -> None:
        if delivery.platform != "instagram" or not delivery.account:
            return  # only Instagram (Messenger) documents unsubscribing a failing app
        sub = self.subscription(delivery.platform, delivery.account)
        now = self._now()
        if sub.failing_since is None:
            sub.failing_since = now
        failing_for = now - sub.failing_since
        if sub.alerted_at is None and failing_for >= ALERT_AFTER_S * settings.webhook_time_scale:
            sub.alerted_at = now
            logger.warning("webhooks to account %s failing for 15 minutes", delivery.account)
        if sub.disabled_at is None and failing_for >= DISABLE_AFTER_S * settings.webhook_time_scale:
            sub.disabled_at = now
            logger.warning("webhooks disabled: app unsubscribed from %s", delivery.account)
            if self.on_disabled is not None:
                self.on_disabled(delivery.account)

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
