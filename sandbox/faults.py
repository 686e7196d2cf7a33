"""Fault injection for the provider-facing API (not the control API)."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import Response
from pydantic import BaseModel, Field

from sandbox.errors import (
    GraphError,
    PlainHttpError,
    expired_token,
    unexpected_error,
)
from sandbox.ratelimit import business_use_case_header
from sandbox.settings import SandboxSettings

Scope = Literal["instagram", "whatsapp", "all"]
FaultKind = Literal["5xx", "timeout", "throttle", "token"]
ThrottleCode = Literal[4, 17, 613, 80002, 80007, 130429]


class FaultSpec(BaseModel):
    """Body of ``PUT /_sandbox/faults``."""

    latency_ms: int = Field(default=0, ge=0)
    error: FaultKind | None = None
    error_rate: float = Field(default=1.0, ge=0, le=1)
    # Number of faulty responses to inject; the error part switches off afterwards.
    count: int | None = Field(default=None, ge=1)
    scope: Scope = "all"
    # 5xx: pin the status; by default a mix of 500 (Graph code 2) and bare 502/503.
    http_status: Literal[500, 502, 503] | None = None
    # throttle: error code (default 80002 for Instagram, 130429 for WhatsApp).
    throttle_code: ThrottleCode | None = None
    retry_after_seconds: int = Field(default=60, ge=0)
    # timeout: how long to hang and whether the message counts as accepted (it "reached
    # the provider") before the hang. Defaults come from settings.
    timeout_seconds: float | None = Field(default=None, ge=0)
    timeout_records_message: bool | None = None
    seed: int | None = None


_THROTTLE_TEXT: dict[int, tuple[str, int | None]] = {
    4: ("(#4) Application request limit reached", None),
    17: ("(#17) User request limit reached", None),
    613: ("Calls to this api have exceeded the rate limit.", 2534040),
    80002: (
        "(#80002) There have been too many calls to this Instagram account. "
        "Wait a bit and try again.",
        None,
    ),
    80007: ("(#80007) Rate limit issues", None),
    130429: ("(#130429) Rate limit hit", None),
}


class FaultInjector:
    def __init__(self) -> None:
        self.spec: FaultSpec | None = None
        self.remaining: int | None = None
        self.injected = 0
        self.rng = random.Random()

    def configure(self, spec: FaultSpec | None) -> None:
        self.spec = spec
        self.remaining = spec.count if spec else None
        self.injected = 0
        self.rng = random.Random(spec.seed if spec else None)

    def _applies(self, platform: str) -> bool:
        return self.spec is not None and self.spec.scope in ("all", platform)

    def latency_seconds(self, platform: str) -> float:
        return self.spec.latency_ms / 1000 if self.spec and self._applies(platform) else 0.0

    def draw(self, platform: str) -> FaultSpec | None:
        """Decide whether this request fails; consumes one unit of `count` if it does."""
        spec = self.spec
        if spec is None or spec.error is None or not self._applies(platform):
            return None
        if self.remaining == 0 or self.rng.random() >= spec.error_rate:
            return None
        if self.remaining is not None:
            self.remaining -= 1
        self.injected += 1
        return spec


def _server_error(spec: FaultSpec, platform: str, rng: random.Random) -> Exception:
    status = spec.http_status or rng.choice([500, 500, 502, 503])
    if status == 502:
        return PlainHttpError(502, "Bad Gateway")
    if status == 503:
        return PlainHttpError(503, "Service Unavailable")
    error = unexpected_error()
    if platform == "whatsapp":
        error.error_data = {"messaging_product": "whatsapp", "details": error.message}
    return error


def _throttle_error(
    spec: FaultSpec, platform: str, settings: SandboxSettings, owner_id: str | None
) -> GraphError:
    code = spec.throttle_code or (130429 if platform == "whatsapp" else 80002)
    message, subcode = _THROTTLE_TEXT[code]
    headers = {"Retry-After": str(spec.retry_after_seconds)}
    regain = math.ceil(spec.retry_after_seconds / 60)
    headers |= business_use_case_header(owner_id or "0", platform, 100, regain)
    error = GraphError(
        http_status=settings.rate_limit_http_status,
        code=code,
        subcode=subcode,
        message=message,
        headers=headers,
    )
    if platform == "whatsapp":
        error.error_data = {"messaging_product": "whatsapp", "details": message}
    return error


def fault_error(
    spec: FaultSpec,
    platform: str,
    settings: SandboxSettings,
    rng: random.Random,
    owner_id: str | None,
) -> Exception:
    if spec.error == "5xx":
        return _server_error(spec, platform, rng)
    if spec.error == "throttle":
        return _throttle_error(spec, platform, settings, owner_id)
    if spec.error == "token":
        return expired_token(settings.token_error_http_status)
    raise ValueError(f"not an error fault: {spec.error}")


async def run_with_faults(
    injector: FaultInjector,
    settings: SandboxSettings,
    platform: Literal["instagram", "whatsapp"],
    handler: Callable[[], Awaitable[Response]],
    owner_id: str | None = None,
) -> Response:
    """Apply latency and the configured fault around one provider API call."""
    delay = settings.latency_ms / 1000 + injector.latency_seconds(platform)
    if delay:
        await asyncio.sleep(delay)
    spec = injector.draw(platform)
    if spec is None:
        return await handler()
    if spec.error != "timeout":
        raise fault_error(spec, platform, settings, injector.rng, owner_id)
    return await _hang(spec, settings, handler)


async def _hang(
    spec: FaultSpec, settings: SandboxSettings, handler: Callable[[], Awaitable[Response]]
) -> Response:
    """Sleep past the client's timeout. When the message "reached the provider" it is
    processed (and recorded) first, which is exactly the ambiguous-send case: the client
    sees a timeout although the message was accepted."""
    seconds = (
        spec.timeout_seconds if spec.timeout_seconds is not None else settings.timeout_fault_seconds
    )
    records = (
        spec.timeout_records_message
        if spec.timeout_records_message is not None
        else settings.timeout_fault_records_message
    )
    if records:
        try:
            return await handler()
        finally:
            await asyncio.sleep(seconds)
    await asyncio.sleep(seconds)
    raise unexpected_error()
