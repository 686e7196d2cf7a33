"""Mounts the web pages on the API app: static assets, routers, error pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.api.http.deps import ApiDeps
from services.api.http.web import (
    admin_dlq,
    admin_overview,
    api_docs,
    creator_account,
    creator_leads,
    funnel_pages,
    lead_form,
    links,
    live_events,
    sign_in,
    suppressions,
)
from services.api.http.web.form_challenge import Challenge
from services.api.http.web.form_limits import FormLimits
from services.api.http.web.form_tokens import FormTokens
from services.api.http.web.pages_deps import PageError, SignInConfig, SignInRequired, WebDeps
from services.api.http.web.rendering import STATIC, Pages
from services.api.http.web.replay_jobs import ReplayJobs
from services.api.http.web.security import CsrfRejected, WebSecurity, same_origin_writes
from services.api.http.web.web_sessions import WebSessions
from services.api.settings import ApiSettings
from shared.platform.outages import is_outage


def install_web(app: FastAPI, settings: ApiSettings, api: ApiDeps) -> None:
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
            client_secret=(
                settings.web_client_secret.get_secret_value()
                if settings.web_client_secret
                else None
            ),
            scope=settings.web_scope,
            audience=settings.web_audience,
        ),
        form_limits=FormLimits(
            api.uow,
            per_ip=settings.lead_form_per_ip_per_minute,
            per_creator=settings.lead_form_per_creator_per_minute,
            tokens=FormTokens(
                settings.web_csrf_key.get_secret_value().encode(), settings.lead_form_token_ttl_s
            ),
            challenge=Challenge.from_settings(settings),
            challenge_at=settings.lead_form_challenge_at,
        ),
        replays=ReplayJobs(api.uow),
        web_sessions=WebSessions(api.uow),
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # The public form is posted from creators' sites (embedded cross-site) by design.
    app.include_router(lead_form.router)
    app.include_router(links.router)  # the tracked links: opened from anywhere
    for module in (
        sign_in,
        creator_leads,
        funnel_pages,
        creator_account,
        admin_overview,
        admin_dlq,
        live_events,
        suppressions,
    ):
        app.include_router(module.router, dependencies=[Depends(same_origin_writes)])
    if app.openapi_url:
        app.include_router(api_docs.router)

    _pages_for_browsers(app, pages)

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


# A browser that asks a page for something that is not there (a mistyped address, a lead
# id that is not one) gets an error page; API clients keep their problem documents.
PAGE_ERRORS = {
    404: ("Not found", "There is nothing at this address."),
    405: ("Not found", "There is nothing at this address."),
    422: ("Not found", "This address is not one AutoDM makes."),
}


OUTAGE_DETAIL = "AutoDM is briefly unavailable and nothing was sent. Please try again in a moment."


def _wants_page(request: Request) -> bool:
    path = request.url.path
    return not path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def _pages_for_browsers(app: FastAPI, pages: Pages) -> None:
    for exc_class in (RequestValidationError, StarletteHTTPException):
        api_handler = app.exception_handlers[exc_class]

        async def handler(
            request: Request, exc: Exception, api_handler: Any = api_handler
        ) -> Response:
            status = getattr(exc, "status_code", 422)
            if _wants_page(request) and status in PAGE_ERRORS:
                title, detail = PAGE_ERRORS[status]
                context = {"title": title, "detail": detail}
                return pages.render(request, "error.html", context, status_code=404)
            answer: Response = await api_handler(request, exc)
            return answer

        app.add_exception_handler(exc_class, handler)

    api_unexpected: Any = app.exception_handlers[Exception]

    async def unexpected(request: Request, exc: Exception) -> Response:
        # A lead whose form met a database restart is told to send it again, not shown JSON.
        if _wants_page(request) and is_outage(exc):
            context = {"title": "Please try again", "detail": OUTAGE_DETAIL}
            return pages.render(request, "error.html", context, status_code=503)
        answer: Response = await api_unexpected(request, exc)
        return answer

    app.add_exception_handler(Exception, unexpected)
