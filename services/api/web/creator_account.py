"""The creator's Instagram connection card (connect through Business Login, account,
token expiry, reconnect warning, disconnect with confirmation) and AutoDM settings
(message template with preview, route order, pause switch).

What the settings change is what the backend uses: the template is Creator.dm_template
(the router renders every DM from it), the route order is Creator.route_order (the
router's shared.routing.RouteOrder), and the pause switch is the kill switch
(shared.kill_switch) for each of the creator's connected accounts. Pacing is the
operator's (AUTODM_*_PER_S settings, below Meta's limits); the page shows it read-only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.auth import Principal
from services.api.instagram_connect import InstagramConnectDeps, business_login_url
from services.api.instagram_connect import get_deps as instagram_deps
from services.api.instagram_connection import disconnect
from services.api.router import render_message
from services.api.schemas import META_TEXT_MAX_BYTES
from services.api.web.pages_deps import CreatorUser, PageError, Web
from shared.account_lifecycle import DISCONNECTED
from shared.db.models import Creator, Lead, SendingPause, SocialAccount
from shared.events import utcnow
from shared.kill_switch import pause_scope, pause_sending, resume_sending
from shared.lifecycle import Provider
from shared.routing import RouteOrder
from shared.settings import get_settings

router = APIRouter(prefix="/app", include_in_schema=False)
InstagramDeps = Annotated[InstagramConnectDeps, Depends(instagram_deps)]
EXPIRY_WARNING = timedelta(days=7)
RESULTS = {
    "connected": ("notice", "Instagram is connected."),
    "cancelled": ("warning", "Connecting was cancelled on Instagram; nothing changed."),
    "failed": ("alert", "Instagram could not be connected. Please try again."),
    "disconnected": ("notice", "Instagram is disconnected. Waiting DMs were skipped."),
    "saved": ("notice", "Settings saved."),
}
ROUTE_ORDERS = {
    RouteOrder.INSTAGRAM_FIRST: "Instagram first, then WhatsApp",
    RouteOrder.WHATSAPP_FIRST: "WhatsApp first, then Instagram",
}
SAMPLE = {"name": "Jane", "message": "I'd love the guide"}
ResultParam = Annotated[str | None, Query(max_length=32)]


async def _instagram(session: AsyncSession, user: Principal) -> SocialAccount | None:
    return await session.scalar(
        select(SocialAccount).where(
            SocialAccount.creator_id == user.creator_id,
            SocialAccount.provider == Provider.INSTAGRAM,
            SocialAccount.status != DISCONNECTED,
        )
    )


async def _creator(session: AsyncSession, user: Principal) -> Creator:
    creator = await session.get(Creator, user.creator_id)
    if creator is None:
        raise PageError(404, "Not found", "Your creator profile does not exist.")
    return creator


def _result(result: str | None) -> tuple[str, str] | None:
    return RESULTS.get(result or "")


@router.get("/instagram")
async def instagram_page(
    request: Request,
    web: Web,
    user: CreatorUser,
    result: ResultParam = None,
) -> Response:
    async with web.api.sessions() as session:
        account = await _instagram(session, user)
    now = utcnow()
    expires = account.token_expires_at if account else None
    context: dict[str, Any] = {
        "nav": "instagram",
        "account": account,
        "reconnect": account is not None and account.status != "connected",
        "expiring": expires is not None and expires - now < EXPIRY_WARNING,
        "expired": expires is not None and expires <= now,
        "result": _result(result),
    }
    return web.pages.render(request, "instagram.html", context)


@router.get("/instagram/connect")
async def instagram_connect(user: CreatorUser, deps: InstagramDeps) -> Response:
    assert user.creator_id is not None
    return RedirectResponse(business_login_url(deps, user.creator_id), status_code=303)


@router.get("/instagram/disconnect")
async def disconnect_confirm(request: Request, web: Web, user: CreatorUser) -> Response:
    async with web.api.sessions() as session:
        account = await _instagram(session, user)
        if account is None:
            raise PageError(404, "Not found", "No Instagram account is connected.")
        waiting = await session.scalar(
            select(Lead.id)
            .where(Lead.dm_account_id == account.id, Lead.dm_status == "awaiting_contact")
            .limit(1)
        )
    context = {"nav": "instagram", "account": account, "has_waiting": waiting is not None}
    return web.pages.render(request, "instagram_disconnect.html", context)


@router.post("/instagram/disconnect")
async def disconnect_now(
    request: Request, web: Web, user: CreatorUser, deps: InstagramDeps
) -> Response:
    await web.security.check_csrf(request)
    assert user.creator_id is not None
    await disconnect(deps.connection, user.creator_id, str(uuid4()), utcnow())
    web.api.relay.wake.set()
    return RedirectResponse("/app/instagram?result=disconnected", status_code=303)


async def _paused(session: AsyncSession, accounts: list[SocialAccount]) -> bool:
    scopes = [pause_scope(a.id) for a in accounts]
    found = await session.scalar(select(SendingPause.scope).where(SendingPause.scope.in_(scopes)))
    return found is not None


async def _accounts(session: AsyncSession, user: Principal) -> list[SocialAccount]:
    rows = await session.scalars(
        select(SocialAccount).where(
            SocialAccount.creator_id == user.creator_id, SocialAccount.status != DISCONNECTED
        )
    )
    return list(rows.all())


def _preview(template: str) -> str:
    return render_message(template, Lead(name=SAMPLE["name"], message=SAMPLE["message"]))


def _settings_page(
    request: Request,
    web: Web,
    creator: Creator,
    paused: bool,
    has_accounts: bool,
    *,
    errors: dict[str, str] | None = None,
    result: str | None = None,
    draft: str | None = None,
    status_code: int = 200,
) -> Response:
    s = get_settings()
    template = creator.dm_template if draft is None else draft
    context = {
        "nav": "settings",
        "creator": creator,
        "paused": paused,
        "has_accounts": has_accounts,
        "route_orders": ROUTE_ORDERS,
        "template": template,
        "preview": _preview(template),
        "sample": SAMPLE,
        "errors": errors or {},
        "result": _result(result),
        "pacing": {
            "Instagram DMs per second per account": s.instagram_send_per_s,
            "Instagram private replies per hour per account": s.instagram_private_replies_per_h,
            "WhatsApp messages per second per number": s.whatsapp_send_per_s,
            "Seconds between two WhatsApp messages to one person": s.whatsapp_pair_interval_s,
        },
        "form_url": f"/c/{creator.slug}/",
    }
    return web.pages.render(request, "settings.html", context, status_code=status_code)


@router.get("/settings")
async def settings_page(
    request: Request,
    web: Web,
    user: CreatorUser,
    result: ResultParam = None,
) -> Response:
    async with web.api.sessions() as session:
        creator = await _creator(session, user)
        accounts = await _accounts(session, user)
        paused = await _paused(session, accounts)
    return _settings_page(request, web, creator, paused, bool(accounts), result=result)


def _settings_errors(template: str, order: str) -> dict[str, str]:
    errors = {}
    if not template.strip():
        errors["dm_template"] = "Write the message your leads get."
    elif len(template.encode()) > META_TEXT_MAX_BYTES:
        errors["dm_template"] = f"Keep it under {META_TEXT_MAX_BYTES} bytes (Meta's limit)."
    if order not in set(RouteOrder):
        errors["route_order"] = "Choose one of the orders."
    return errors


@router.post("/settings")
async def save_settings(request: Request, web: Web, user: CreatorUser) -> Response:
    await web.security.check_csrf(request)
    form = await request.form()
    template = str(form.get("dm_template", "")).replace("\r\n", "\n")
    order = str(form.get("route_order", ""))
    pause = form.get("paused") == "on"
    errors = _settings_errors(template, order)
    async with web.api.sessions.begin() as session:
        creator = await _creator(session, user)
        accounts = await _accounts(session, user)
        if not errors:
            creator.dm_template = template.strip()
            creator.route_order = order
            await _set_pause(session, accounts, pause, user.subject)
        paused = await _paused(session, accounts)
    if errors:  # nothing was changed; the draft is shown again with the errors
        return _settings_page(
            request,
            web,
            creator,
            paused,
            bool(accounts),
            errors=errors,
            draft=template,
            status_code=422,
        )
    return RedirectResponse("/app/settings?result=saved", status_code=303)


async def _set_pause(
    session: AsyncSession, accounts: list[SocialAccount], pause: bool, who: str
) -> None:
    """The kill switch of each connected account: senders defer its DMs, none is lost."""
    for account in accounts:
        if pause:
            await pause_sending(session, account.id, "paused by the creator", who)
        else:
            await resume_sending(session, account.id)
