"""Graph API routes (graph.instagram.com; WhatsApp sends share the messages path).

Every route here is mounted twice by app.py: bare (``/me/messages``) and with a version
prefix (``/v23.0/me/messages``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from sandbox import ig_conversations, ig_messaging, whatsapp
from sandbox.errors import GraphError, PlainHttpError, invalid_parameter, unknown_node
from sandbox.faults import run_with_faults
from sandbox.oauth import BASIC, authenticate, require_permission
from sandbox.params import access_token, graph_params
from sandbox.ratelimit import BUC_HEADER
from sandbox.state import AccessToken, IgAccount, Platform, SandboxState, get_state

router = APIRouter()

WEBHOOK_FIELDS = frozenset(
    {
        "comments",
        "live_comments",
        "mentions",
        "messages",
        "message_edit",
        "message_reactions",
        "messaging_handover",
        "messaging_optins",
        "messaging_postbacks",
        "messaging_referral",
        "messaging_seen",
        "standby",
        "story_insights",
    }
)
USER_FIELDS = ("id", "user_id", "username", "name", "account_type")


THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002, 80006, 80007, 130429, 131056})


def _regain_seconds(headers: dict[str, str]) -> float:
    """The time a throttled caller was told to wait: Retry-After, else the BUC minutes."""
    if "Retry-After" in headers:
        return float(headers["Retry-After"])
    usage = json.loads(headers.get(BUC_HEADER, "{}"))
    minutes = [e.get("estimated_time_to_regain_access", 0) for v in usage.values() for e in v]
    return 60.0 * max(minutes, default=0)


async def _counted(
    state: SandboxState,
    platform: Platform,
    call: Callable[[], Awaitable[Response]],
    owner: str | None = None,
) -> Response:
    """Count refusals by error code for /_sandbox/stats (acceptances are counted where
    the message is recorded), and log throttling answers for /_sandbox/throttles."""
    try:
        return await call()
    except GraphError as err:
        state.world.stats.reject(platform, err.key)
        if err.code in THROTTLE_CODES and owner is not None:
            regain = _regain_seconds(err.headers)
            state.world.stats.throttle(platform, owner, err.code, state.clock.now(), regain)
        raise
    except PlainHttpError as err:
        state.world.stats.reject(platform, str(err.status))
        raise


async def _account_if_authenticated(state: SandboxState, request: Request) -> IgAccount | None:
    try:
        params = await graph_params(request)
        return authenticate(state, access_token(request, params))[1]
    except GraphError:
        return None


async def _instagram_messages(state: SandboxState, request: Request, node: str) -> Response:
    # BUC usage goes on every messaging response whose account is known, errors included.
    account = await _account_if_authenticated(state, request)
    owner = account.ig_user_id if account else None
    try:
        response = await _counted(
            state,
            "instagram",
            lambda: run_with_faults(
                state.faults,
                state.settings,
                "instagram",
                lambda: ig_messaging.send_message(state, request, node),
                owner_id=owner,
            ),
            owner,
        )
    except GraphError as err:
        if account is not None and BUC_HEADER not in err.headers:
            err.headers |= ig_messaging.buc_headers(state, account)
        raise
    if account is not None:
        response.headers.update(ig_messaging.buc_headers(state, account))
    return response


@router.post("/{node}/messages")
async def messages(request: Request, node: str) -> Response:
    state = get_state(request)
    number = state.world.wa_numbers.get(node)
    if number is None:
        return await _instagram_messages(state, request, node)
    return await _counted(
        state,
        "whatsapp",
        lambda: run_with_faults(
            state.faults,
            state.settings,
            "whatsapp",
            lambda: whatsapp.send_message(state, request, node),
            owner_id=number.waba_id,
        ),
        node,
    )


# --- other Instagram nodes ------------------------------------------------------------


async def _own_node(
    state: SandboxState, request: Request, node: str, method: str
) -> tuple[AccessToken, IgAccount, dict[str, Any]]:
    """Authenticate and check that `node` is the token's own account (or `me`)."""
    params = await graph_params(request)
    token, account = authenticate(state, access_token(request, params))
    if node not in ("me", account.ig_user_id, account.app_scoped_id):
        raise unknown_node(node, method)
    require_permission(token, BASIC)
    return token, account, params


def _user_fields(account: IgAccount, fields: str) -> dict[str, Any]:
    values = {
        "id": account.app_scoped_id,
        "user_id": account.ig_user_id,
        "username": account.username,
        "name": account.username,
        "account_type": "BUSINESS",
    }
    requested = [f.strip() for f in fields.split(",") if f.strip()]
    for name in requested:
        if name not in USER_FIELDS:
            raise invalid_parameter(
                f"(#100) Tried accessing nonexisting field ({name}) on node type (User)"
            )
    # Graph always includes `id`.
    return {name: values[name] for name in [*requested, "id"]}


async def _get_user(state: SandboxState, request: Request, node: str) -> Response:
    _, account, params = await _own_node(state, request, node, "get")
    return JSONResponse(_user_fields(account, str(params.get("fields", ""))))


@router.get("/me")
async def me(request: Request) -> Response:
    state = get_state(request)
    return await run_with_faults(
        state.faults, state.settings, "instagram", lambda: _get_user(state, request, "me")
    )


@router.get("/{node}")
async def user_node(request: Request, node: str) -> Response:
    """A WhatsApp phone number, a user (`me`, the account), a conversation, or a message
    (Conversations API)."""
    state = get_state(request)
    if node in state.world.wa_numbers:
        return await _counted(
            state, "whatsapp", lambda: whatsapp.get_number(state, request, node), node
        )
    get: Callable[[SandboxState, Request, str], Awaitable[Response]]
    if ig_conversations.is_conversation_node(node):
        get = ig_conversations.get_conversation
    elif ig_conversations.is_message_node(node):
        get = ig_conversations.get_message
    else:
        get = _get_user
    return await run_with_faults(
        state.faults, state.settings, "instagram", lambda: get(state, request, node)
    )


@router.get("/{node}/conversations")
async def conversations(request: Request, node: str) -> Response:
    state = get_state(request)
    return await run_with_faults(
        state.faults,
        state.settings,
        "instagram",
        lambda: ig_conversations.list_conversations(state, request, node),
    )


def _parse_fields(raw: Any) -> list[str]:
    if not isinstance(raw, str) or not raw.strip():
        raise invalid_parameter("(#100) The parameter subscribed_fields is required")
    fields = [f.strip() for f in raw.split(",") if f.strip()]
    for index, name in enumerate(fields):
        if name not in WEBHOOK_FIELDS:
            allowed = ", ".join(sorted(WEBHOOK_FIELDS))
            raise invalid_parameter(
                f"(#100) Param subscribed_fields[{index}] must be one of {{{allowed}}} - "
                f'got "{name}"'
            )
    return fields


async def _subscribed_apps(state: SandboxState, request: Request, node: str) -> Response:
    _, account, params = await _own_node(state, request, node, request.method.lower())
    if request.method == "POST":
        account.subscribed_fields = _parse_fields(params.get("subscribed_fields"))
        # Subscribing again is how an app recovers a subscription Meta disabled.
        state.webhooks.resubscribed("instagram", account.ig_user_id)
        return JSONResponse({"success": True})
    if request.method == "DELETE":
        account.subscribed_fields = []
        return JSONResponse({"success": True})
    data = (
        [{"app_id": state.settings.app_id, "subscribed_fields": account.subscribed_fields}]
        if account.subscribed_fields
        else []
    )
    return JSONResponse({"data": data})


@router.api_route("/{node}/subscribed_apps", methods=["GET", "POST", "DELETE"])
async def subscribed_apps(request: Request, node: str) -> Response:
    state = get_state(request)
    return await run_with_faults(
        state.faults, state.settings, "instagram", lambda: _subscribed_apps(state, request, node)
    )
