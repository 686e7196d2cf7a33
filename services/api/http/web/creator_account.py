"""The creator's Instagram connection card (connect through Business Login, account,
token expiry, reconnect warning, disconnect with confirmation) and AutoDM settings
(message template with preview, route order, pacing, pause switch, comment to DM).

The settings are read and saved by services/api/service_layer/creator_settings.py, like the API's
/api/settings; this page adds friendly field errors and shows the form again as typed.
The operator's limits (AUTODM_*_PER_S settings, below Meta's) stay the ceiling; the page
shows them read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.http.auth import Principal
from services.api.http.routes.instagram import InstagramConnectDeps, start_business_login
from services.api.http.routes.instagram import get_deps as instagram_deps
from services.api.http.schemas import MAX_PACE_PER_H, META_TEXT_MAX_BYTES, CreatorSettingsIn
from services.api.http.web.pages_deps import CreatorUser, PageError, Web
from services.api.service_layer.comment_trigger import (
    MAX_KEYWORD_CHARS,
    MAX_KEYWORDS,
    CommentTrigger,
    parse_keywords,
)
from services.api.service_layer.creator_settings import Pauses, pauses_of
from services.api.service_layer.creator_settings import save_settings as save_creator_settings
from services.api.service_layer.instagram_connection import disconnect
from services.api.service_layer.lead_routing import render_message
from services.api.service_layer.message_text import PLACEHOLDERS, placeholder_problem
from shared.accounts.lifecycle import CONNECTED, DISCONNECTED
from shared.contracts.events import utcnow
from shared.contracts.lead_sources import SOURCE_LABELS, LeadSource
from shared.contracts.lifecycle import Provider
from shared.contracts.route_choice import RouteOrder
from shared.db.models import Creator, Lead, SocialAccount
from shared.delivery.reasons import DATA_DELETED, DEAUTHORIZED
from shared.platform.settings import get_settings

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
COMMENT_TRIGGERS = {
    CommentTrigger.OFF: "Off: comments are not leads",
    CommentTrigger.KEYWORDS: "Comments with one of my keywords",
    CommentTrigger.ANY: "Every comment",
}
ROUTE_ORDERS = {
    RouteOrder.INSTAGRAM_FIRST: "Instagram first, then WhatsApp",
    RouteOrder.WHATSAPP_FIRST: "WhatsApp first, then Instagram",
}
# One DM per second per account at most; the operator's limits may be tighter still.
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


@dataclass(frozen=True)
class Removal:
    """Instagram (Meta's deauthorize or data-deletion callback) took AutoDM's access away."""

    username: str | None
    at: datetime
    data_deleted: bool


async def _removal(session: AsyncSession, user: Principal) -> Removal | None:
    """The creator's last Instagram account, if Meta removed AutoDM from it (not the creator
    disconnecting here): the page then says so instead of a bare "Connect"."""
    last = await session.scalar(
        select(SocialAccount)
        .where(
            SocialAccount.creator_id == user.creator_id,
            SocialAccount.provider == Provider.INSTAGRAM,
            SocialAccount.status == DISCONNECTED,
            SocialAccount.disconnected_at.is_not(None),
        )
        .order_by(SocialAccount.disconnected_at.desc())
        .limit(1)
    )
    if last is None or last.disconnected_at is None:
        return None
    if last.disconnect_reason not in (DEAUTHORIZED, DATA_DELETED):
        return None
    return Removal(last.username, last.disconnected_at, last.disconnect_reason == DATA_DELETED)


@router.get("/instagram")
async def instagram_page(
    request: Request,
    web: Web,
    user: CreatorUser,
    result: ResultParam = None,
) -> Response:
    async with web.api.sessions() as session:
        account = await _instagram(session, user)
        removal = await _removal(session, user) if account is None else None
    now = utcnow()
    expires = account.token_expires_at if account else None
    expired = expires is not None and expires <= now
    context: dict[str, Any] = {
        "nav": "instagram",
        "account": account,
        # A token past its expiry is as dead as a refused one, whatever the status says.
        "reconnect": account is not None and (account.status != CONNECTED or expired),
        "expiring": expires is not None and expires - now < EXPIRY_WARNING,
        "expired": expired,
        "removal": removal,
        "result": _result(result),
    }
    return web.pages.render(request, "instagram.html", context)


@router.get("/instagram/connect")
async def instagram_connect(user: CreatorUser, deps: InstagramDeps) -> Response:
    assert user.creator_id is not None
    return start_business_login(deps, user.creator_id, 303)


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
    return RedirectResponse("/app/instagram?result=disconnected", status_code=303)


def _preview(template: str) -> str:
    return render_message(template, Lead(name=SAMPLE["name"], message=SAMPLE["message"]))


@dataclass(frozen=True)
class SettingsForm:
    """What the settings form posted, as typed (shown again as typed when it has errors)."""

    template: str
    route_order: str
    pace: str  # DMs per hour per account; blank = no pacing of the creator's own
    paused: bool
    comment_trigger: str = CommentTrigger.OFF
    comment_keywords: str = ""  # as typed: comma- or line-separated
    # A message per lead source, as typed; blank: the source gets the main template.
    source_templates: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, creator: Creator, pauses: Pauses) -> SettingsForm:
        pace = "" if creator.dm_pace_per_h is None else str(creator.dm_pace_per_h)
        keywords = ", ".join(creator.comment_keywords)
        return cls(
            creator.dm_template,
            creator.route_order,
            pace,
            pauses.by_creator,
            creator.comment_trigger,
            keywords,
            tuple((s, (creator.source_templates or {}).get(s, "")) for s in LeadSource),
        )

    def source_template(self, source: str) -> str:
        return dict(self.source_templates).get(source, "")

    def errors(self) -> dict[str, str]:
        errors = {}
        if not self.template.strip():
            errors["dm_template"] = "Write the message your leads get."
        elif (problem := template_problem(self.template)) is not None:
            errors["dm_template"] = problem
        for source, text in self.source_templates:
            # The same checks as the main template; a blank one means "the main template".
            if text.strip() and (problem := template_problem(text)) is not None:
                errors[f"template_{source}"] = problem
        if self.route_order not in set(RouteOrder):
            errors["route_order"] = "Choose one of the orders."
        if self.pace and not (self.pace.isdigit() and 1 <= int(self.pace) <= MAX_PACE_PER_H):
            errors["dm_pace_per_h"] = (
                f"Enter a whole number from 1 to {MAX_PACE_PER_H}, or leave it empty."
            )
        return errors | self._comment_errors()

    def _comment_errors(self) -> dict[str, str]:
        if self.comment_trigger not in set(CommentTrigger):
            return {"comment_trigger": "Choose which comments become leads."}
        keywords = self.keywords()
        if self.comment_trigger == CommentTrigger.KEYWORDS and not keywords:
            return {"comment_keywords": "Enter at least one keyword, or choose another option."}
        if len(keywords) > MAX_KEYWORDS:
            return {"comment_keywords": f"At most {MAX_KEYWORDS} keywords."}
        if any(len(word) > MAX_KEYWORD_CHARS for word in keywords):
            return {"comment_keywords": f"Keep each keyword under {MAX_KEYWORD_CHARS} characters."}
        return {}

    def keywords(self) -> list[str]:
        return parse_keywords(self.comment_keywords)

    def settings(self) -> CreatorSettingsIn:
        """What the form says, once `errors()` found none."""
        return CreatorSettingsIn(
            dm_template=self.template,
            route_order=RouteOrder(self.route_order),
            dm_pace_per_h=int(self.pace) if self.pace else None,
            paused=self.paused,
            comment_trigger=CommentTrigger(self.comment_trigger),
            comment_keywords=self.keywords(),
            source_templates={
                LeadSource(s): text.strip() for s, text in self.source_templates if text.strip()
            },
        )


def template_problem(text: str) -> str | None:
    """What is wrong with a message template as typed, in the creator's words, if anything."""
    if len(text.encode()) > META_TEXT_MAX_BYTES:
        return f"Keep it under {META_TEXT_MAX_BYTES} bytes (Meta's limit)."
    if (problem := placeholder_problem(text)) is not None:
        return problem[0].upper() + problem[1:] + "."
    return None


def _settings_page(
    request: Request,
    web: Web,
    creator: Creator,
    form: SettingsForm,
    pauses: Pauses,
    *,
    errors: dict[str, str] | None = None,
    result: str | None = None,
    status_code: int = 200,
) -> Response:
    s = get_settings()
    context = {
        "nav": "settings",
        "creator": creator,
        "form": form,
        "operator_pause": pauses.by_operator,
        "route_orders": ROUTE_ORDERS,
        "comment_triggers": COMMENT_TRIGGERS,
        "max_keywords": MAX_KEYWORDS,
        "preview": _preview(form.template),
        "sample": SAMPLE,
        "placeholders": PLACEHOLDERS,
        "errors": errors or {},
        "result": _result(result),
        "max_pace": MAX_PACE_PER_H,
        "pacing": {
            "Instagram DMs per second per account": s.instagram_send_per_s,
            "Instagram private replies per hour per account": s.instagram_private_replies_per_h,
            "WhatsApp messages per second per number": s.whatsapp_send_per_s,
            "Seconds between two WhatsApp messages to one person": s.whatsapp_pair_interval_s,
        },
        "form_url": f"/c/{creator.slug}/",
        "source_labels": SOURCE_LABELS,
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
        pauses = await pauses_of(session, creator.id)
    form = SettingsForm.of(creator, pauses)
    return _settings_page(request, web, creator, form, pauses, result=result)


async def _posted(request: Request) -> SettingsForm:
    data = await request.form()
    return SettingsForm(
        template=str(data.get("dm_template", "")).replace("\r\n", "\n"),
        route_order=str(data.get("route_order", "")),
        pace=str(data.get("dm_pace_per_h", "")).strip(),
        paused=data.get("paused") == "on",
        comment_trigger=str(data.get("comment_trigger", "")),
        comment_keywords=str(data.get("comment_keywords", ""))[:4000],
        source_templates=tuple(
            (s.value, str(data.get(f"template_{s.value}", "")).replace("\r\n", "\n")[:4000])
            for s in LeadSource
        ),
    )


@router.post("/settings")
async def save_settings(request: Request, web: Web, user: CreatorUser) -> Response:
    await web.security.check_csrf(request)
    form = await _posted(request)
    errors = form.errors()
    async with web.api.uow() as uow:
        creator = await _creator(uow.session, user)
        if not errors:
            await save_creator_settings(uow, creator.id, form.settings(), user.subject)
        pauses = await pauses_of(uow.session, creator.id)
    if errors:  # nothing was changed; the form is shown again as typed, with the errors
        return _settings_page(request, web, creator, form, pauses, errors=errors, status_code=422)
    return RedirectResponse("/app/settings?result=saved", status_code=303)
