"""HTTP entrypoints of the Instagram connection: connect (redirect to Business Login),
the OAuth callback, and disconnect. No response ever carries a token.

A connect is bound to the browser that started it (services/api/http/connect_binding.py): the
callback in any other browser is refused and links nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, RedirectResponse, Response

from services.api.http.auth import Role
from services.api.http.connect_binding import (
    INSTAGRAM_COOKIE,
    BindingCookie,
    BrowserBinding,
    ForeignBrowser,
)
from services.api.http.deps import CurrentUser
from services.api.http.oauth_state import InvalidState, issue_state, redeem, verify_state
from services.api.http.problems import ApiProblem, problem_responses
from services.api.http.web.pages_deps import PageError
from services.api.service_layer.instagram_connection import (
    AccountOwnedElsewhere,
    ConnectionDeps,
    connect,
    disconnect,
)
from services.api.settings import ApiSettings
from shared.contracts.events import utcnow
from shared.messaging.unit_of_work import UnitsOfWork
from shared.platform.crypto import TokenCipher
from shared.providers.graph_http import make_http_client
from shared.providers.instagram_auth import SCOPES, AppCredentials, InstagramAuthClient
from shared.providers.meta_errors import MetaError


@dataclass(frozen=True)
class InstagramConnectDeps:
    connection: ConnectionDeps
    app_id: str
    authorize_url: str
    redirect_uri: str
    state_key: bytes
    state_ttl_s: int
    binding: BindingCookie


def make_deps(settings: ApiSettings, uow: UnitsOfWork) -> InstagramConnectDeps:
    timeout, pool = settings.provider_timeout_s, settings.provider_pool_size
    credentials = AppCredentials(
        settings.instagram_app_id,
        settings.instagram_app_secret.get_secret_value(),
        settings.oauth_redirect_uri,
    )
    client = InstagramAuthClient(
        make_http_client(settings.instagram_graph_url, timeout, pool),
        make_http_client(settings.instagram_oauth_url, timeout, pool),
        settings.graph_api_version,
        credentials,
    )
    connection = ConnectionDeps(
        uow=uow,
        client=client,
        cipher=TokenCipher.from_settings(settings),
        webhook_fields=settings.instagram_webhook_fields,
    )
    return InstagramConnectDeps(
        connection=connection,
        app_id=settings.instagram_app_id,
        authorize_url=settings.instagram_authorize_url,
        redirect_uri=settings.oauth_redirect_uri,
        state_key=settings.oauth_state_key.get_secret_value().encode(),
        state_ttl_s=settings.oauth_state_ttl_s,
        binding=BindingCookie.for_callback(
            INSTAGRAM_COOKIE,
            settings.oauth_redirect_uri,
            settings.oauth_state_ttl_s,
            settings.web_cookie_secure,
        ),
    )


def get_deps(request: Request) -> InstagramConnectDeps:
    deps: InstagramConnectDeps = request.app.state.instagram
    return deps


def connecting_creator(user: CurrentUser) -> UUID:
    """Only a creator connects or disconnects their own account: an admin or a service
    token names no account owner, so it may not act as one here."""
    if user.role != Role.CREATOR or user.creator_id is None:
        raise ApiProblem(403, "forbidden", "only a creator can connect or disconnect Instagram")
    return user.creator_id


Deps = Annotated[InstagramConnectDeps, Depends(get_deps)]
CreatorId = Annotated[UUID, Depends(connecting_creator)]
router = APIRouter(
    prefix="/api/instagram",
    tags=["instagram"],
    responses=problem_responses(400, 401, 403, 413, 422, 503),
)


def business_login_url(deps: InstagramConnectDeps, creator_id: UUID, browser: str) -> str:
    """Where a creator connects; `browser` is the digest of the starting browser's secret."""
    now = int(time.time())
    state = issue_state(deps.state_key, creator_id, now, deps.state_ttl_s, browser=browser)
    query = urlencode(
        {
            "client_id": deps.app_id,
            "redirect_uri": deps.redirect_uri,
            "response_type": "code",
            "scope": ",".join(SCOPES),
            "state": state,
        }
    )
    return f"{deps.authorize_url}?{query}"


def start_business_login(
    deps: InstagramConnectDeps, creator_id: UUID, status_code: int
) -> RedirectResponse:
    """The redirect to Business Login (the API's /connect and the web page's button), with
    the browser's binding cookie: only this browser can finish the connect."""
    binding = BrowserBinding.new()
    response = RedirectResponse(
        business_login_url(deps, creator_id, binding.digest), status_code=status_code
    )
    deps.binding.set(response, binding)
    return response


@router.get(
    "/connect",
    status_code=302,
    response_class=RedirectResponse,  # no JSON body to document
    summary="Start Business Login for Instagram",
    responses={302: {"description": "To Instagram's login, with a signed `state`"}},
)
async def start_connect(creator_id: CreatorId, deps: Deps) -> RedirectResponse:
    return start_business_login(deps, creator_id, 302)


# A browser (the web pages' Connect button) goes back to the Instagram page with the
# outcome; any other client gets JSON.
WEB_RESULT_PAGE = "/app/instagram?result="


def _for_browser(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


FOREIGN_BROWSER = (
    "This Instagram connection was started in another browser, so nothing was connected. "
    "Whoever wants to connect Instagram to AutoDM signs in to AutoDM and connects from "
    "their own Instagram page there, in the same browser."
)


@router.get(
    "/callback",
    summary="Business Login redirects here with a code or an error",
    responses=problem_responses(409, 502)
    | {303: {"description": "A browser goes back to the Instagram page with the outcome"}},
)
async def callback(
    request: Request,
    deps: Deps,
    state: str = "",
    code: str | None = None,
    error: str | None = None,
    error_reason: str | None = None,
) -> Response:
    try:
        outcome = await _complete_login(deps, request, state, code, error, error_reason)
    except ForeignBrowser as exc:
        if _for_browser(request):
            raise PageError(403, "Connection refused", FOREIGN_BROWSER) from exc
        raise HTTPException(status.HTTP_403_FORBIDDEN, FOREIGN_BROWSER) from exc
    except HTTPException as exc:
        if _for_browser(request):
            return _forgetting(deps, RedirectResponse(WEB_RESULT_PAGE + "failed", 303))
        raise exc
    if _for_browser(request):
        page = WEB_RESULT_PAGE + str(outcome["status"])
        return _forgetting(deps, RedirectResponse(page, status_code=303))
    return _forgetting(deps, JSONResponse(jsonable_encoder(outcome)))


def _forgetting(deps: InstagramConnectDeps, response: Response) -> Response:
    deps.binding.forget(response)
    return response


async def _complete_login(
    deps: InstagramConnectDeps,
    request: Request,
    state: str,
    code: str | None,
    error: str | None,
    error_reason: str | None,
) -> dict[str, Any]:
    # The state comes first: an unsigned, expired or replayed callback does nothing at all;
    # nor does one opened in a browser that did not start the connect (ForeignBrowser). The
    # state is spent either way: a link that reached another browser is dead.
    try:
        verified = verify_state(deps.state_key, state, int(time.time()))
        async with deps.connection.uow() as uow:
            await redeem(uow.session, verified)
    except (InvalidState, ValueError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid state: {exc}") from exc
    deps.binding.check(request, verified.browser)
    if error or not code:
        return {"status": "cancelled", "reason": error_reason or error or "no code"}
    try:
        account = await connect(deps.connection, verified.creator_id, code, str(uuid4()), utcnow())
    except AccountOwnedElsewhere as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, "account connected elsewhere") from exc
    except MetaError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"Instagram: {exc.message}") from exc
    return {
        "status": "connected",
        "account_id": str(account.id),
        "username": account.username,
        "token_expires_at": account.token_expires_at,
    }


@router.delete(
    "/connection",
    summary="Disconnect Instagram; waiting DMs end `skipped`",
    responses=problem_responses(404),
)
async def delete_connection(creator_id: CreatorId, deps: Deps) -> dict[str, Any]:
    event = await disconnect(deps.connection, creator_id, str(uuid4()), utcnow())
    if event is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no Instagram account connected")
    return {
        "status": "disconnected",
        "account_id": str(event.account_id),
        "skipped_dms": event.skipped_dms,
    }
