"""Mounts the web pages on the API app: static assets, routers, error pages."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from services.api.routes import ApiDeps
from services.api.web import (
    admin_dlq,
    admin_overview,
    creator_account,
    creator_leads,
    lead_form,
    sign_in,
)
from services.api.web.form_limits import FormLimits
from services.api.web.pages_deps import PageError, SignInConfig, SignInRequired, WebDeps
from services.api.web.rendering import STATIC, Pages
from services.api.web.replay_jobs import ReplayJobs
from services.api.web.security import CsrfRejected, WebSecurity
from shared.settings import Settings


def install_web(app: FastAPI, settings: Settings, api: ApiDeps) -> None:
    security = WebSecurity.from_settings(settings)
    pages = Pages(security)
    app.state.web = WebDeps(
        api=api,
        pages=pages,
        security=security,
        sign_in=SignInConfig(
            authorize_url=settings.web_authorize_url,
            token_url=settings.web_token_url,
            client_id=settings.web_client_id,
            redirect_uri=f"{settings.public_base_url}/auth/callback",
        ),
        form_limits=FormLimits.per_minute(
            settings.lead_form_per_ip_per_minute, settings.lead_form_per_creator_per_minute
        ),
        replays=ReplayJobs(api.sessions, api.relay),
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (
        sign_in,
        lead_form,
        creator_leads,
        creator_account,
        admin_overview,
        admin_dlq,
    ):
        app.include_router(module.router)

    @app.exception_handler(SignInRequired)
    async def sign_in_required(_: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> Response:
        context = {"title": exc.title, "detail": exc.detail}
        return pages.render(request, "error.html", context, status_code=exc.status)

    @app.exception_handler(CsrfRejected)
    async def csrf_rejected(request: Request, _: CsrfRejected) -> Response:
        context = {
            "title": "Form expired",
            "detail": "This form could not be verified. Go back, reload the page and try again.",
        }
        return pages.render(request, "error.html", context, status_code=403)
