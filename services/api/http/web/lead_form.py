"""The public lead form of each creator: a page (/c/{slug}/) and an embeddable form
(/c/{slug}/embed), no sign-in. Abuse protection: a signed single-use form token, a
honeypot field, per-IP and per-creator limits (only accepted leads count against the
creator), a challenge while those are under pressure (if configured), the body cap.
A phone typed here is nobody's consent: the lead's `origin` is "form" (shared.contracts.consent).
A valid lead goes through services.api.service_layer.leads.create_lead, the one path into the outbox
the JSON API uses too.
The thank-you screen shows the lead's route once the router has chosen it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from uuid import uuid4

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.http.web.form_challenge import Challenge
from services.api.http.web.lead_form_fields import FormValues, to_lead
from services.api.http.web.pages_deps import PageError, Web
from services.api.service_layer.leads import create_lead
from services.api.service_layer.tracked_links import tracked_path
from shared.contracts.consent import FORM_ORIGIN, ref_text
from shared.contracts.events import utcnow
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.db.models import Creator, Lead, SocialAccount, WhatsAppNumber
from shared.platform.logs import bind_correlation_id
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
    challenge: bool = False,
) -> Response:
    shown = web.form_limits.challenge if challenge else None
    context = {
        "creator": creator,
        "embed": embed,
        "action": _base(creator.slug, embed),
        "form_token": web.form_limits.tokens.issue(creator.slug),
        "values": values or FormValues(),
        "errors": errors or {},
        "notice": notice,
        "honeypot": HONEYPOT,
        "challenge": shown,
    }
    response = web.pages.render(
        request, "lead_form.html", context, status_code=status_code, embeddable=embed
    )
    if shown is not None:  # the widget's script and frame come from its provider
        policy = response.headers["Content-Security-Policy"]
        response.headers["Content-Security-Policy"] = shown.widen_csp(policy)
    return response


async def _show_form(slug: str, request: Request, web: Web, embed: bool) -> Response:
    async with web.api.sessions() as session:
        creator = await _creator(session, slug)
    pressure = await web.form_limits.under_pressure(_client_ip(request), str(creator.id), utcnow())
    return _form_page(request, web, creator, embed, challenge=pressure)


def _client_ip(request: Request) -> str:
    # uvicorn replaces it with X-Forwarded-For's only from AUTODM_TRUSTED_PROXIES.
    return request.client.host if request.client else "unknown"


@router.get("/{slug}/")
async def form_page(slug: str, request: Request, web: Web) -> Response:
    return await _show_form(slug, request, web, embed=False)


@router.get("/{slug}/embed")
async def form_embed(slug: str, request: Request, web: Web) -> Response:
    return await _show_form(slug, request, web, embed=True)


@router.post("/{slug}/")
async def submit_page(slug: str, request: Request, web: Web) -> Response:
    return await _submit(slug, request, web, embed=False)


@router.post("/{slug}/embed")
async def submit_embed(slug: str, request: Request, web: Web) -> Response:
    return await _submit(slug, request, web, embed=True)


EXPIRED = "This form has expired. Please check your details and send it again."
CHALLENGE = "Please confirm you are a person, then send the form again."


async def _submit(slug: str, request: Request, web: Web, embed: bool) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    async with web.api.sessions() as session:
        creator = await _creator(session, slug)
    values = FormValues.from_form(form)
    limits, client_ip, now = web.form_limits, _client_ip(request), utcnow()
    verdict = await limits.admit(client_ip, str(creator.id), now)

    def again(
        status: int, notice: str | None = None, errors: dict[str, str] | None = None
    ) -> Response:
        return _form_page(
            request,
            web,
            creator,
            embed,
            values=values,
            notice=notice,
            errors=errors,
            status_code=status,
            challenge=verdict.pressure,
        )

    if verdict.refusal:
        return again(429, verdict.refusal)
    token = form.get("form_token", "")
    if not limits.tokens.valid(creator.slug, token):
        return again(400, EXPIRED)
    async with web.api.uow() as uow:
        fresh = await limits.tokens.spend(uow.session, token, now)
    if not fresh:  # each served form brings one submission
        return again(400, EXPIRED)
    if form.get(HONEYPOT):  # a bot: look successful, keep nothing
        return web.pages.render(request, "thanks.html", _thanks(creator, embed, None, None))
    if verdict.pressure and not await _challenge_passed(limits.challenge, form, client_ip):
        return again(400, CHALLENGE)
    lead_in, errors = to_lead(values, creator.id)
    if lead_in is None:
        return again(422, errors=errors)
    correlation_id = str(uuid4())
    bind_correlation_id(correlation_id)
    async with web.api.uow() as uow:
        lead = await create_lead(uow, lead_in, correlation_id, origin=FORM_ORIGIN)
        await limits.accepted(uow.session, str(creator.id), now)
    return RedirectResponse(f"{_base(creator.slug, embed).rstrip('/')}/thanks/{lead.ref}", 303)


async def _challenge_passed(
    challenge: Challenge | None, form: dict[str, str], client_ip: str
) -> bool:
    if challenge is None:  # none configured: the limits alone protect the form
        return True
    return await challenge.passed(form.get(challenge.provider.field, ""), client_ip)


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
    # The ref lets the WhatsApp consumer bind this lead to the number that sends it.
    text = quote(f"Hi {creator.name}! {ref_text(lead.ref)}", safe="")
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
        # Through AutoDM's /l/<ref>: the open is counted (funnel), then ig.me.
        "ig_link": tracked_path(lead) if lead and route == Route.IG_LINK else None,
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
