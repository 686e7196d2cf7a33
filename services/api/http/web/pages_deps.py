"""What every web page needs: the API's dependencies, rendering, security, and who is
signed in (the session cookie's server-side session, services/api/http/web/web_sessions.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.api.http.auth import Principal, Role
from services.api.http.deps import ApiDeps
from services.api.http.web.form_limits import FormLimits
from services.api.http.web.rendering import Pages
from services.api.http.web.replay_jobs import ReplayJobs
from services.api.http.web.security import WebSecurity
from services.api.http.web.web_sessions import WebSessions


@dataclass(frozen=True)
class SignInConfig:
    authorize_url: str
    token_url: str
    client_id: str
    redirect_uri: str
    client_secret: str | None = None
    scope: str = "openid"
    audience: str | None = None


@dataclass(frozen=True)
class WebDeps:
    api: ApiDeps
    pages: Pages
    security: WebSecurity
    sign_in: SignInConfig
    form_limits: FormLimits
    replays: ReplayJobs
    web_sessions: WebSessions


class SignInRequired(Exception):
    """No valid session: the page redirects to the sign-in."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageError(Exception):
    """Rendered as an error page with this status (403, 404, ...)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def get_web(request: Request) -> WebDeps:
    web: WebDeps = request.app.state.web
    return web


Web = Annotated[WebDeps, Depends(get_web)]


async def session_user(request: Request, web: Web) -> Principal:
    token = request.cookies.get(web.security.session_cookie)
    user = await web.web_sessions.user(token) if token else None
    if user is None:  # none, signed out, expired or made up: sign in again
        raise SignInRequired(request.url.path)
    request.state.web_user = user
    return user


SessionUser = Annotated[Principal, Depends(session_user)]


async def creator_user(user: SessionUser) -> Principal:
    if user.role != Role.CREATOR or user.creator_id is None:
        raise PageError(403, "Not allowed", "These pages are for creators.")
    return user


async def admin_user(user: SessionUser) -> Principal:
    if user.role != Role.ADMIN:
        raise PageError(403, "Not allowed", "These pages are for admins.")
    return user


CreatorUser = Annotated[Principal, Depends(creator_user)]
AdminUser = Annotated[Principal, Depends(admin_user)]
