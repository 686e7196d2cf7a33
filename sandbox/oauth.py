"""Business Login for Instagram and Instagram User token lifecycle (platform-facts §2).

- ``GET /oauth/authorize`` (www.instagram.com): auto-approving consent dialog.
- ``POST /oauth/access_token`` (api.instagram.com): code -> short-lived token.
- ``GET /access_token`` (graph.instagram.com): short-lived -> long-lived token.
- ``GET /refresh_access_token`` (graph.instagram.com): refresh a long-lived token.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from sandbox.errors import (
    GraphError,
    InstagramOAuthError,
    expired_token,
    invalid_parameter,
    invalid_token,
    missing_permission,
    missing_token,
)
from sandbox.faults import run_with_faults
from sandbox.params import access_token, body_params, graph_params
from sandbox.state import (
    ALL_PERMISSIONS,
    DAY,
    HOUR,
    AccessToken,
    AuthCode,
    IgAccount,
    SandboxState,
    get_state,
)

router = APIRouter()
versioned_router = APIRouter()

CODE_TTL = HOUR
BASIC = "instagram_business_basic"
DENIED_DESCRIPTION = "The user denied your request"


# --- token validation (shared with the Graph routes) -----------------------------------


def authenticate(state: SandboxState, value: str | None) -> tuple[AccessToken, IgAccount]:
    """Resolve an Instagram User token, raising Graph error 190 like Meta does."""
    status = state.settings.token_error_http_status
    if value is None:
        raise missing_token(status)
    token = state.world.tokens.get(value)
    account = state.world.ig_accounts.get(token.account_id) if token else None
    if token is None or account is None:
        raise invalid_token(status)
    if token.revoked_subcode is not None:
        raise invalid_token(status, token.revoked_subcode)
    if state.clock.now() >= token.expires_at:
        raise expired_token(status)
    return token, account


def require_permission(token: AccessToken, permission: str) -> None:
    if permission not in token.permissions:
        raise missing_permission(permission)


# --- authorize -----------------------------------------------------------------------


def _parse_scope(scope: str) -> tuple[str, ...]:
    """Scopes are comma-separated or (URL-encoded) space-separated."""
    requested = tuple(s for s in re.split(r"[,\s]+", scope) if s)
    unknown = [s for s in requested if s not in ALL_PERMISSIONS]
    if not requested or unknown:
        raise InstagramOAuthError(f"Invalid Scopes: {', '.join(unknown) or '(empty)'}")
    return requested


def _with_query(url: str, params: dict[str, str], fragment: str = "") -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, fragment))


def _dialog_account(state: SandboxState, override: str | None) -> IgAccount:
    account = state.world.find_ig_account(override or state.world.oauth.account_id)
    if account is None:
        raise InstagramOAuthError(f"Sandbox: no Instagram account '{override}' to log in as")
    return account


@router.get("/oauth/authorize")
async def authorize(request: Request) -> Response:
    state = get_state(request)
    q = request.query_params
    if q.get("client_id") != state.settings.app_id:
        raise InstagramOAuthError("Invalid platform app")
    redirect_uri = q.get("redirect_uri")
    if not redirect_uri or not urlsplit(redirect_uri).scheme:
        raise InstagramOAuthError("Invalid redirect_uri")
    if q.get("response_type") != "code":
        raise InstagramOAuthError("Invalid response_type: must be 'code'")
    permissions = _parse_scope(q.get("scope", ""))
    extra = {"state": q["state"]} if "state" in q else {}
    if q.get("sandbox_deny") in ("1", "true") or state.world.oauth.deny:
        denial = {
            "error": "access_denied",
            "error_reason": "user_denied",
            "error_description": DENIED_DESCRIPTION,
        }
        return RedirectResponse(_with_query(redirect_uri, denial | extra), status_code=302)
    account = _dialog_account(state, q.get("sandbox_account"))
    code = AuthCode(
        code="AQ" + secrets.token_urlsafe(32),
        account_id=account.ig_user_id,
        redirect_uri=redirect_uri,
        permissions=permissions,
        issued_at=state.clock.now(),
    )
    state.world.auth_codes[code.code] = code
    # Meta appends "#_" which is not part of the code (platform-facts §2).
    location = _with_query(redirect_uri, {"code": code.code} | extra, fragment="_")
    return RedirectResponse(location, status_code=302)


# --- code exchange (api.instagram.com) -------------------------------------------------


def _required_fields(form: dict[str, Any]) -> dict[str, str]:
    names = ("client_id", "client_secret", "grant_type", "redirect_uri", "code")
    for name in names:
        if not form.get(name):
            raise InstagramOAuthError(f"You must provide a {name}")
    return {name: str(form[name]) for name in names}


def _redeem_code(state: SandboxState, fields: dict[str, str]) -> AuthCode:
    code = state.world.auth_codes.get(fields["code"])
    if code is None or code.used:
        raise InstagramOAuthError("Matching code was not found or was already used")
    if state.clock.now() - code.issued_at > CODE_TTL:
        raise InstagramOAuthError("This authorization code has expired")
    if code.redirect_uri != fields["redirect_uri"]:
        raise InstagramOAuthError(
            "Error validating verification code. Please make sure your redirect_uri is "
            "identical to the one you used in the OAuth dialog request"
        )
    code.used = True
    return code


@router.post("/oauth/access_token")
async def exchange_code(request: Request) -> JSONResponse:
    state = get_state(request)
    fields = _required_fields(await body_params(request))
    if fields["client_id"] != state.settings.app_id:
        raise InstagramOAuthError("Invalid platform app")
    if fields["client_secret"] != state.settings.app_secret:
        raise InstagramOAuthError("Error validating client secret.")
    if fields["grant_type"] != "authorization_code":
        raise InstagramOAuthError("Unsupported grant_type")
    code = _redeem_code(state, fields)
    token = state.world.issue_token(code.account_id, "short", state.clock.now(), code.permissions)
    account = state.world.ig_accounts[code.account_id]
    # `user_id` here is the app-scoped id (the `id` of GET /me); the professional account
    # id used in webhooks is GET /me?fields=user_id.
    item = {
        "access_token": token.value,
        "user_id": account.app_scoped_id,
        "permissions": ",".join(token.permissions),
    }
    flat = state.settings.oauth_exchange_response_shape == "flat"
    body = item if flat else {"data": [item]}
    return JSONResponse(body)


# --- long-lived tokens (graph.instagram.com) -------------------------------------------


def _token_body(token: AccessToken, now: float) -> dict[str, Any]:
    return {
        "access_token": token.value,
        "token_type": "bearer",
        "expires_in": round(token.expires_at - now),
    }


def _check_client_secret(state: SandboxState, secret: Any) -> None:
    if secret != state.settings.app_secret:
        raise GraphError(http_status=400, code=101, message="Error validating client secret.")


async def _exchange_for_long_lived(state: SandboxState, request: Request) -> Response:
    params = await graph_params(request)
    if params.get("grant_type") != "ig_exchange_token":
        raise invalid_parameter("(#100) grant_type must be ig_exchange_token")
    _check_client_secret(state, params.get("client_secret"))
    token, account = authenticate(state, access_token(request, params))
    if token.kind != "short":
        raise invalid_parameter("(#100) access_token must be a short-lived Instagram User token")
    now = state.clock.now()
    long_lived = state.world.issue_token(account.ig_user_id, "long", now, token.permissions)
    return JSONResponse(_token_body(long_lived, now))


async def _refresh(state: SandboxState, request: Request) -> Response:
    params = await graph_params(request)
    if params.get("grant_type") != "ig_refresh_token":
        raise invalid_parameter("(#100) grant_type must be ig_refresh_token")
    token, account = authenticate(state, access_token(request, params))
    if token.kind != "long":
        raise invalid_parameter("(#100) Only long-lived access tokens can be refreshed")
    require_permission(token, BASIC)
    now = state.clock.now()
    if now - token.issued_at < DAY:
        # Meta: "The existing long-lived access token is at least 24 hours old".
        raise GraphError(
            http_status=state.settings.token_error_http_status,
            code=190,
            message="The access token must be at least 24 hours old to be refreshed.",
        )
    fresh = state.world.issue_token(account.ig_user_id, "long", now, token.permissions)
    return JSONResponse(_token_body(fresh, now))


@versioned_router.get("/access_token")
async def long_lived_token(request: Request) -> Response:
    state = get_state(request)
    return await run_with_faults(
        state.faults,
        state.settings,
        "instagram",
        lambda: _exchange_for_long_lived(state, request),
    )


@versioned_router.get("/refresh_access_token")
async def refresh_token(request: Request) -> Response:
    state = get_state(request)
    return await run_with_faults(
        state.faults, state.settings, "instagram", lambda: _refresh(state, request)
    )
