"""The creator's suppression list page (who gets nothing from AutoDM: who, when, why; add,
remove, CSV), their opt-out settings (extra stop words, the takeover period), and the
lead page's actions: "Do not message" and handing a conversation back to AutoDM. Every
write goes through the JSON API's service layer (services/api/service_layer/suppression_list.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from services.api.http.problems import ApiProblem
from services.api.http.routes.suppressions import OptOutSettingsIn, SuppressionIn
from services.api.http.web.pages_deps import CreatorUser, PageError, Web
from services.api.service_layer import suppression_list as service
from services.api.service_layer.dm_requests import load_lead
from shared.contracts.events import utcnow
from shared.delivery.suppression import DEFAULT_STOP_WORDS

router = APIRouter(prefix="/app", include_in_schema=False)
NOTICES = {
    "added": ("notice", "Added: AutoDM sends this person nothing more."),
    "removed": ("notice", "Removed: new DMs to this person go out again."),
    "invalid": ("error", "Name the person by Instagram username or phone number."),
    "saved": ("notice", "Opt-out settings saved."),
    "invalid-settings": ("error", "Stop words: up to 50, each a word or phrase; hours 1 to 720."),
}
SOURCE_LABELS = {
    "instagram_stop": "Wrote a stop word on Instagram",
    "whatsapp_stop": "Wrote a stop word on WhatsApp",
    "whatsapp_131050": "Stopped your WhatsApp messages",
    "creator": "Marked by you",
}


def _creator(user: Any) -> UUID:
    assert user.creator_id is not None  # creator_user guarantees it
    return UUID(str(user.creator_id))


@router.get("/suppressions")
async def suppressions_page(
    request: Request, web: Web, user: CreatorUser, notice: str | None = Query(None, max_length=32)
) -> Response:
    creator_id = _creator(user)
    async with web.api.sessions() as session:
        rows = await service.list_suppressions(session, creator_id)
        settings = await service.read_opt_out_settings(session, creator_id)
    context = {
        "nav": "suppressions",
        "rows": rows,
        "sources": SOURCE_LABELS,
        "settings": settings,
        "defaults": [w.upper() for w in DEFAULT_STOP_WORDS],
        "result": NOTICES.get(notice or ""),
    }
    return web.pages.render(request, "suppressions.html", context)


@router.get("/suppressions.csv")
async def suppressions_csv(web: Web, user: CreatorUser) -> Response:
    async with web.api.sessions() as session:
        rows = await service.list_suppressions(session, _creator(user))
    headers = {"Content-Disposition": 'attachment; filename="suppressions.csv"'}
    return Response(service.as_csv(rows), media_type="text/csv", headers=headers)


def _field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


@router.post("/suppressions")
async def add(request: Request, web: Web, user: CreatorUser) -> Response:
    await web.security.check_csrf(request)
    form = await request.form()
    try:
        body = SuppressionIn(
            instagram_username=(_field(form, "instagram_username") or "").lstrip("@") or None,
            phone=_field(form, "phone"),
            note=_field(form, "note"),
        )
    except ValidationError:
        return RedirectResponse("/app/suppressions?notice=invalid", status_code=303)
    new = service.NewSuppression(**body.model_dump())
    async with web.api.uow() as work:
        session = work.session
        await service.add_suppression(session, _creator(user), new, user.subject, str(uuid4()))
    return RedirectResponse("/app/suppressions?notice=added", status_code=303)


@router.post("/suppressions/{entry_id}/remove")
async def remove(entry_id: UUID, request: Request, web: Web, user: CreatorUser) -> Response:
    await web.security.check_csrf(request)
    async with web.api.uow() as work:
        session = work.session
        if not await service.remove_suppression(session, _creator(user), entry_id):
            raise PageError(404, "Not found", "There is no such entry.")
    return RedirectResponse("/app/suppressions?notice=removed", status_code=303)


@router.post("/suppressions/settings")
async def save_settings(request: Request, web: Web, user: CreatorUser) -> Response:
    await web.security.check_csrf(request)
    form = await request.form()
    words = [w.strip() for w in str(form.get("stop_words") or "").split(",") if w.strip()]
    try:
        body = OptOutSettingsIn(
            stop_words=words, takeover_hours=int(str(form.get("takeover_hours") or "24"))
        )
    except (ValidationError, ValueError):
        return RedirectResponse("/app/suppressions?notice=invalid-settings", status_code=303)
    wanted = service.OptOutSettings(list(body.stop_words), body.takeover_hours)
    async with web.api.uow() as work:
        session = work.session
        await service.save_opt_out_settings(session, _creator(user), wanted)
    return RedirectResponse("/app/suppressions?notice=saved", status_code=303)


@router.post("/leads/{lead_id}/hand-back")
async def hand_back(lead_id: UUID, request: Request, web: Web, user: CreatorUser) -> Response:
    await web.security.check_csrf(request)
    async with web.api.uow() as work:
        session = work.session
        lead = await _lead(session, user, lead_id)
        await service.hand_back(session, lead, user.subject, utcnow())
    return RedirectResponse(f"/app/leads/{lead_id}", status_code=303)


@router.post("/leads/{lead_id}/do-not-message")
async def do_not_message(lead_id: UUID, request: Request, web: Web, user: CreatorUser) -> Response:
    await web.security.check_csrf(request)
    async with web.api.uow() as work:
        session = work.session
        lead = await _lead(session, user, lead_id)
        new = service.NewSuppression(lead_id=lead.id, note="marked on the lead's page")
        await service.add_suppression(session, _creator(user), new, user.subject, str(uuid4()))
    return RedirectResponse(f"/app/leads/{lead_id}", status_code=303)


async def _lead(session: Any, user: Any, lead_id: UUID) -> Any:
    try:
        return await load_lead(session, user, lead_id)
    except ApiProblem as problem:
        raise PageError(404, "Not found", "There is no such lead.") from problem


async def suppression_counts(web: Any) -> dict[str, Any]:
    """The admin overview's opt-out counts: per creator and source."""
    async with web.api.sessions() as session:
        rows = await service.counts(session)
    return {"suppression_counts": rows, "suppression_sources": SOURCE_LABELS}
