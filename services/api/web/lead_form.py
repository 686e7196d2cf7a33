"""The public lead form of each creator: a page (/c/{slug}/) and an embeddable form
(/c/{slug}/embed), no sign-in. Abuse protection: a signed form token, a honeypot field,
per-IP and per-creator limits, the API's body cap. A valid lead goes through
services.api.leads.create_lead, the one path into the outbox the JSON API uses too.
The thank-you screen shows the lead's route once the router has chosen it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from uuid import uuid4

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.leads import create_lead
from services.api.web.lead_form_fields import FormValues, to_lead
from services.api.web.pages_deps import PageError, Web
from shared.db.models import Creator, Lead, SocialAccount, WhatsAppNumber
from shared.events import utcnow
from shared.lifecycle import DmStatus, Provider, Route
from shared.logs import bind_correlation_id
from shared.providers.whatsapp_links import InvalidPhoneNumber, normalize_e164_digits

router = APIRouter(prefix="/c", include_in_schema=False)
HONEYPOT = "website"  # hidden from people (CSS + aria-hidden); bots fill every field


async def _creator(session: AsyncSession, slug: str) -> Creator:
    creator = await session.scalar(select(Creator).where(Creator.slug == slug[:64]))
    if creator is None:
        raise PageError(404, "Not found", "There is no form at this address.")
    return creator


def _base(slug: str, embed: bool) -> str:
    return f"/c/{quote(slug)}/embed" if embed else f"/c/{quote(slug)}/"


def _form_page(
    request: Request,
    web: Web,
    creator: Creator,
    embed: bool,
    *,
    values: FormValues | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "creator": creator,
        "embed": embed,
        "action": _base(creator.slug, embed),
        "form_token": web.security.form_token(creator.slug),
        "values": values or FormValues(),
        "errors": errors or {},
        "notice": notice,
        "honeypot": HONEYPOT,
    }
    return web.pages.render(
        request, "lead_form.html", context, status_code=status_code, embeddable=embed
    )


@router.get("/{slug}/")
async def form_page(slug: str, request: Request, web: Web) -> Response:
    async with web.api.sessions() as session:
        creator = await _creator(session, slug)
    return _form_page(request, web, creator, embed=False)


@router.get("/{slug}/embed")
async def form_embed(slug: str, request: Request, web: Web) -> Response:
    async with web.api.sessions() as session:
        creator = await _creator(session, slug)
    return _form_page(request, web, creator, embed=True)


@router.post("/{slug}/")
async def submit_page(slug: str, request: Request, web: Web) -> Response:
    return await _submit(slug, request, web, embed=False)


@router.post("/{slug}/embed")
async def submit_embed(slug: str, request: Request, web: Web) -> Response:
    return await _submit(slug, request, web, embed=True)


async def _submit(slug: str, request: Request, web: Web, embed: bool) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    async with web.api.sessions() as session:
        creator = await _creator(session, slug)
    values = FormValues.from_form(form)
    client_ip = request.client.host if request.client else "unknown"
    refusal = await web.form_limits.refusal(client_ip, str(creator.id), utcnow())
    if refusal:
        return _form_page(
            request, web, creator, embed, values=values, notice=refusal, status_code=429
        )
    if not web.security.form_token_valid(creator.slug, form.get("form_token", "")):
        notice = "This form has expired. Please check your details and send it again."
        return _form_page(
            request, web, creator, embed, values=values, notice=notice, status_code=400
        )
    if form.get(HONEYPOT):  # a bot: look successful, keep nothing
        return web.pages.render(request, "thanks.html", _thanks(creator, embed, None, None))
    lead_in, errors = to_lead(values, creator.id)
    if lead_in is None:
        return _form_page(
            request, web, creator, embed, values=values, errors=errors, status_code=422
        )
    correlation_id = str(uuid4())
    bind_correlation_id(correlation_id)
    async with web.api.sessions.begin() as session:
        lead = await create_lead(session, lead_in, correlation_id)
    web.api.relay.wake.set()
    return RedirectResponse(f"{_base(creator.slug, embed).rstrip('/')}/thanks/{lead.ref}", 303)


async def _lead_by_ref(session: AsyncSession, creator: Creator, ref: str) -> Lead:
    lead = await session.scalar(
        select(Lead).where(Lead.ref == ref[:64], Lead.creator_id == creator.id)
    )
    if lead is None:
        raise PageError(404, "Not found", "This page does not exist.")
    return lead


async def _whatsapp_link(session: AsyncSession, creator: Creator, lead: Lead) -> str | None:
    """wa.me to the creator's connected WhatsApp number, pre-filled with the lead's ref."""
    number = await session.scalar(
        select(WhatsAppNumber.display_phone_number)
        .join(SocialAccount, SocialAccount.id == WhatsAppNumber.account_id)
        .where(
            SocialAccount.creator_id == creator.id,
            SocialAccount.provider == Provider.WHATSAPP,
            SocialAccount.status == "connected",
        )
        .limit(1)
    )
    if not number:
        return None
    try:
        digits = normalize_e164_digits(number)
    except InvalidPhoneNumber:
        digits = "".join(ch for ch in number if ch.isdigit())
    text = quote(f"Hi {creator.name}! ({lead.ref})", safe="")
    return f"https://wa.me/{digits}?text={text}" if len(digits) >= 6 else None


def _thanks(
    creator: Creator, embed: bool, lead: Lead | None, wa_link: str | None
) -> dict[str, Any]:
    status = DmStatus(lead.dm_status) if lead else None
    route = Route(lead.dm_route) if lead and lead.dm_route else None
    return {
        "creator": creator,
        "embed": embed,
        "lead": lead,
        "settled": status is not None and status != DmStatus.QUEUED,
        "ig_link": lead.dm_link if lead and route == Route.IG_LINK else None,
        "instagram_sent": route in (Route.IG_DM, Route.IG_PRIVATE_REPLY),
        "whatsapp_coming": route in (Route.WA_TEMPLATE, Route.WA_TEXT),
        "wa_link": wa_link,
        "steps_url": (
            f"{_base(creator.slug, embed).rstrip('/')}/thanks/{lead.ref}/steps" if lead else None
        ),
    }


async def _thanks_context(slug: str, ref: str, web: Web, embed: bool) -> dict[str, Any]:
    async with web.api.sessions() as session:
        creator = await _creator(session, slug)
        lead = await _lead_by_ref(session, creator, ref)
        wa_link = await _whatsapp_link(session, creator, lead)
    return _thanks(creator, embed, lead, wa_link)


@router.get("/{slug}/thanks/{ref}")
async def thanks(slug: str, ref: str, request: Request, web: Web) -> Response:
    return web.pages.render(request, "thanks.html", await _thanks_context(slug, ref, web, False))


@router.get("/{slug}/embed/thanks/{ref}")
async def thanks_embed(slug: str, ref: str, request: Request, web: Web) -> Response:
    context = await _thanks_context(slug, ref, web, True)
    return web.pages.render(request, "thanks.html", context, embeddable=True)


@router.get("/{slug}/thanks/{ref}/steps")
async def thanks_steps(slug: str, ref: str, request: Request, web: Web) -> Response:
    context = await _thanks_context(slug, ref, web, False)
    return web.pages.render(request, "_next_steps.html", context)


@router.get("/{slug}/embed/thanks/{ref}/steps")
async def thanks_steps_embed(slug: str, ref: str, request: Request, web: Web) -> Response:
    context = await _thanks_context(slug, ref, web, True)
    return web.pages.render(request, "_next_steps.html", context, embeddable=True)
