"""The ``/_sandbox`` control API: reset, clock, faults, settings, stats and webhooks.

Platform-specific control lives in control_instagram.py and control_whatsapp.py.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ValidationError

from sandbox import control_instagram, control_whatsapp
from sandbox.faults import FaultSpec
from sandbox.settings import SandboxSettings
from sandbox.state import StateDep

router = APIRouter(prefix="/_sandbox")
router.include_router(control_instagram.router)
router.include_router(control_whatsapp.router)


@router.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@router.post("/reset")
async def reset(state: StateDep) -> dict[str, bool]:
    """Fresh world (demo account only), clock, faults, webhook log and startup settings."""
    state.reset()
    return {"ok": True}


# --- clock ---------------------------------------------------------------------------


class ClockBody(BaseModel):
    offset_seconds: float


class AdvanceBody(BaseModel):
    seconds: float


@router.get("/clock")
async def get_clock(state: StateDep) -> dict[str, float]:
    return {"offset_seconds": state.clock.offset_seconds, "now": state.clock.now()}


@router.put("/clock")
async def set_clock(body: ClockBody, state: StateDep) -> dict[str, float]:
    state.clock.offset_seconds = body.offset_seconds
    return await get_clock(state)


@router.post("/clock/advance")
async def advance_clock(body: AdvanceBody, state: StateDep) -> dict[str, float]:
    state.clock.offset_seconds += body.seconds
    return await get_clock(state)


# --- faults --------------------------------------------------------------------------


def _faults_json(state: StateDep) -> dict[str, Any]:
    spec = state.faults.spec
    return {
        "fault": spec.model_dump() if spec else None,
        "remaining": state.faults.remaining,
        "injected": state.faults.injected,
    }


@router.get("/faults")
async def get_faults(state: StateDep) -> dict[str, Any]:
    return _faults_json(state)


@router.put("/faults")
async def set_faults(body: FaultSpec, state: StateDep) -> dict[str, Any]:
    state.faults.configure(body)
    return _faults_json(state)


@router.delete("/faults")
async def clear_faults(state: StateDep) -> dict[str, Any]:
    state.faults.configure(None)
    return _faults_json(state)


# --- settings and stats ------------------------------------------------------------------


@router.get("/settings")
async def get_settings(state: StateDep) -> dict[str, Any]:
    return state.settings.model_dump()


@router.patch("/settings")
async def patch_settings(patch: dict[str, Any], state: StateDep) -> dict[str, Any]:
    """Change settings of the running sandbox (until the next reset)."""
    try:
        state.settings = SandboxSettings.model_validate(state.settings.model_dump() | patch)
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False)) from exc
    return state.settings.model_dump()


@router.get("/stats")
async def stats(state: StateDep) -> dict[str, Any]:
    world = state.world
    webhooks: dict[str, int] = {}
    for delivery in state.webhooks.deliveries.values():
        webhooks[delivery.status] = webhooks.get(delivery.status, 0) + 1
    return {
        platform: {
            "accepted": world.stats.accepted[platform],
            "rejected": dict(world.stats.rejected[platform]),
        }
        for platform in ("instagram", "whatsapp")
    } | {"webhooks": webhooks}


@router.get("/throttles")
async def throttles(state: StateDep, owner: str | None = None) -> dict[str, Any]:
    """Throttling answers given: `owner` (IG account id or WA number id), `code`, `time`
    and `until` (sandbox clock, seconds): no call should be accepted for it in between."""
    data = [t for t in state.world.stats.throttles if owner is None or t["owner"] == owner]
    return {"data": data}


# --- webhooks ------------------------------------------------------------------------


@router.get("/webhooks")
async def webhook_log(
    state: StateDep,
    platform: str | None = None,
    status: str | None = None,
    event: str | None = None,
) -> dict[str, Any]:
    deliveries = [
        d.as_json(state.webhooks.secret_for(d.platform))
        for d in state.webhooks.deliveries.values()
        if platform in (None, d.platform)
        and status in (None, d.status)
        and event in (None, d.event)
    ]
    return {"data": deliveries}


@router.get("/webhooks/subscriptions")
async def webhook_subscriptions(state: StateDep) -> dict[str, Any]:
    """Accounts whose webhooks failed: since when, alerted, disabled (Meta unsubscribed)."""
    return {"data": [s.as_json() for s in state.webhooks.subscriptions.values()]}


@router.post("/webhooks/{delivery_id}/redeliver")
async def redeliver(delivery_id: str, state: StateDep) -> dict[str, Any]:
    """Send the exact same body again (same bytes, same signature) to test dedupe."""
    copy = state.webhooks.redeliver(delivery_id)
    if copy is None:
        raise HTTPException(404, "unknown webhook delivery")
    return copy.as_json(state.webhooks.secret_for(copy.platform))


@router.post("/webhooks/drain")
async def drain(state: StateDep, wait_seconds: float = 30.0) -> dict[str, bool]:
    """Wait until in-flight deliveries (including delayed status sequences) finish."""
    return {"drained": await state.webhooks.drain(wait_seconds)}
