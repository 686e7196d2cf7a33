"""Sign-in through the configured identity provider (authorization-code flow) and the
session cookie: HttpOnly, SameSite=Lax, Secure (and `__Host-`) unless a local http setup
turned it off.

The provider's token is verified once, at the callback, exactly like a bearer token
(services/api/http/auth.py); the browser then gets a server-side session (web_sessions.py),
never the token itself. The sign-in state cookie is signed (security.py): a page cannot
plant its own state and verifier to sign a visitor into the attacker's account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.api.http.auth import Principal, Role
from services.api.http.problems import ApiProblem
from services.api.http.web.pages_deps import (
    PageError,
    SignInConfig,
    SignInRequired,
    Web,
    session_user,
)

router = APIRouter(include_in_schema=False)
LOGIN_TTL_S = 600
LOGIN_PURPOSE = "login-state"
NO_ACCESS_TOKEN_DETAIL = "The identity provider's answer held no access token."  # noqa: S105 (a message)


def home_of(user: Principal) -> str:
    return "/admin" if user.role == Role.ADMIN else "/app/leads"


def _safe_next(path: str | None) -> str:
    """Only a path of this site: never `//host` or an absolute URL (open redirect)."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return ""


@router.get("/")
async def index(request: Request, web: Web) -> Response:
    try:
        user = await session_user(request, web)
    except SignInRequired:
        return web.pages.render(request, "index.html")
    return RedirectResponse(home_of(user), status_code=303)


@router.get("/login")
async def login(
    web: Web, next_path: Annotated[str | None, Query(alias="next", max_length=512)] = None
) -> Response:
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    response = RedirectResponse(authorize_location(web.sign_in, state, verifier), status_code=303)
    value = f"{state}|{verifier}|{_safe_next(next_path)}"
    sealed = web.security.seal(LOGIN_PURPOSE, value, LOGIN_TTL_S)
    web.security.set_cookie(response, web.security.login_cookie, sealed, max_age=LOGIN_TTL_S)
    return response


@router.get("/auth/callback")
async def callback(
    request: Request,
    web: Web,
    code: Annotated[str, Query(max_length=2048)] = "",
    state: Annotated[str, Query(max_length=256)] = "",
) -> Response:
    sealed = request.cookies.get(web.security.login_cookie, "")
    opened = web.security.unseal(LOGIN_PURPOSE, sealed) if sealed else None
    expected, verifier, next_path = [*(opened or "").split("|", 2), "", ""][:3]
    if not code or not expected or not hmac.compare_digest(expected, state):
        raise PageError(400, "Sign-in failed", "The sign-in expired or was not started here.")
    token, expires_in = await _exchange(web, code, verifier)
    try:
        user = await web.api.verifier.verify(token)
    except ApiProblem as problem:
        raise PageError(400, "Sign-in failed", problem.detail) from problem
    lifetime = max(expires_in, 1)  # as long as the provider's token would have lasted
    previous = request.cookies.get(web.security.session_cookie)
    session = await web.web_sessions.start(user, lifetime, replacing=previous)
    response = RedirectResponse(_safe_next(next_path) or home_of(user), status_code=303)
    web.security.set_cookie(response, web.security.session_cookie, session, max_age=lifetime)
    web.security.delete_cookie(response, web.security.login_cookie)
    return response


def authorize_location(c: SignInConfig, state: str, verifier: str) -> str:
    params = {
        "response_type": "code",
        "client_id": c.client_id,
        "redirect_uri": c.redirect_uri,
        "scope": c.scope,
        "state": state,
        # PKCE (RFC 7636): a stolen code is useless without this browser's verifier.
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if c.audience:
        params["audience"] = c.audience
    return f"{c.authorize_url}?{urlencode(params)}"


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


async def _exchange(web: Web, code: str, verifier: str) -> tuple[str, int]:
    c = web.sign_in
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": c.redirect_uri,
        "client_id": c.client_id,
        "code_verifier": verifier,
    }
    if c.client_secret:  # a confidential client (most hosted providers); PKCE alone otherwise
        form["client_secret"] = c.client_secret
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(c.token_url, data=form)
    except httpx.HTTPError as exc:
        raise PageError(
            503, "Sign-in unavailable", "The identity provider is unreachable."
        ) from exc
    if answer.status_code != 200:
        raise PageError(400, "Sign-in failed", "The identity provider refused the sign-in.")
    return _token_of(answer)


def _token_of(answer: httpx.Response) -> tuple[str, int]:
    """The access token and its lifetime from a token response (RFC 6749 §5.1); anything
    else is the provider's misconfiguration, shown as such rather than as a crash."""
    try:
        body = answer.json()
        token, expires_in = body["access_token"], int(body.get("expires_in", 3600))
    except (ValueError, TypeError, KeyError) as exc:
        raise PageError(502, "Sign-in failed", NO_ACCESS_TOKEN_DETAIL) from exc
    if not isinstance(token, str) or not token:
        raise PageError(502, "Sign-in failed", NO_ACCESS_TOKEN_DETAIL)
    return token, expires_in


@router.post("/logout")
async def logout(request: Request, web: Web) -> Response:
    session = request.cookies.get(web.security.session_cookie)
    if session:  # the server-side session ends: a copy of the cookie is worthless now
        await web.security.check_csrf(request)
        await web.web_sessions.end(session)
    response = RedirectResponse("/", status_code=303)
    web.security.delete_cookie(response, web.security.session_cookie)
    return response
