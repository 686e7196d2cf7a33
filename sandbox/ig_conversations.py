"""Instagram Conversations API (Instagram API with Instagram Login; platform facts §1h).

- ``GET /{ig_id|me}/conversations?platform=instagram[&user_id=<IGSID>]``: the account's
  conversations, ``{"data": [{"id", "updated_time"}]}``, newest first; ``user_id`` narrows
  it to the conversation with that person.
- ``GET /{conversation_id}?fields=messages``: its messages, newest first, each
  ``{"id", "created_time"}``; only the 20 most recent are listed (as Meta documents).
- ``GET /{message_id}?fields=id,created_time,from,to,message``: one message's details,
  only for the 20 most recent of its conversation (older ones answer an error).

Every call counts against 2 calls/s per professional account (error 613 past it), and
needs ``instagram_business_basic`` + ``instagram_business_manage_messages``. A message the
account sent counts the moment Meta recorded it: a send whose answer timed out after it
was recorded is listed, one that never reached Meta is not.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from sandbox.errors import instagram_rate_limited, invalid_parameter, unknown_node
from sandbox.oauth import BASIC, authenticate, require_permission
from sandbox.params import access_token, graph_params
from sandbox.state import IgAccount, SandboxState

MANAGE_MESSAGES = "instagram_business_manage_messages"
CONVERSATION_PREFIX = "aWdfd"  # Meta's ids are opaque base64; ours only need to be told apart
MESSAGE_PREFIX = "m_"
MOST_RECENT = 20


@dataclass(frozen=True)
class _Message:
    id: str
    time: float
    from_id: str
    to_id: str
    text: str


def conversation_id(account_id: str, igsid: str) -> str:
    token = base64.urlsafe_b64encode(f"{account_id}:{igsid}".encode()).decode().rstrip("=")
    return CONVERSATION_PREFIX + token


def _parse_conversation(node: str) -> tuple[str, str] | None:
    token = node[len(CONVERSATION_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None
    account, _, igsid = raw.partition(":")
    return (account, igsid) if account.isdigit() and igsid.isdigit() else None


def is_conversation_node(node: str) -> bool:
    return node.startswith(CONVERSATION_PREFIX) and _parse_conversation(node) is not None


def is_message_node(node: str) -> bool:
    return node.startswith(MESSAGE_PREFIX)


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _messages(state: SandboxState, account_id: str, igsid: str) -> list[_Message]:
    """The conversation's messages, newest first."""
    world = state.world
    sent = [
        _Message(m.message_id, m.time, account_id, igsid, m.text)
        for m in world.ig_messages
        if m.account_id == account_id and m.recipient_id == igsid
    ]
    received = [
        _Message(m.message_id, m.time, igsid, account_id, m.text)
        for m in world.ig_received
        if m.account_id == account_id and m.sender_id == igsid
    ]
    return sorted(sent + received, key=lambda m: m.time, reverse=True)


async def _authorized(state: SandboxState, request: Request) -> tuple[IgAccount, dict[str, Any]]:
    params = await graph_params(request)
    token, account = authenticate(state, access_token(request, params))
    require_permission(token, BASIC)
    require_permission(token, MANAGE_MESSAGES)
    window = state.world.limiters.window(("ig_conversations", account.ig_user_id), 1.0)
    if not window.try_acquire(state.clock.now(), state.settings.instagram_conversations_per_second):
        raise instagram_rate_limited(state.settings.rate_limit_http_status, {"Retry-After": "1"})
    return account, params


def _partners(state: SandboxState, account_id: str) -> set[str]:
    sent = {m.recipient_id for m in state.world.ig_messages if m.account_id == account_id}
    return sent | {m.sender_id for m in state.world.ig_received if m.account_id == account_id}


async def list_conversations(state: SandboxState, request: Request, node: str) -> JSONResponse:
    account, params = await _authorized(state, request)
    if node not in ("me", account.ig_user_id, account.app_scoped_id):
        raise unknown_node(node, "get")
    if params.get("platform") != "instagram":
        raise invalid_parameter("(#100) The parameter platform is required (instagram)")
    user_id = params.get("user_id")
    partners = _partners(state, account.ig_user_id)
    if user_id is not None:
        partners &= {str(user_id)}
    rows = []
    for igsid in partners:
        newest = _messages(state, account.ig_user_id, igsid)[0]
        rows.append((newest.time, conversation_id(account.ig_user_id, igsid)))
    data = [{"id": cid, "updated_time": _time(t)} for t, cid in sorted(rows, reverse=True)]
    return JSONResponse({"data": data})


async def get_conversation(state: SandboxState, request: Request, node: str) -> JSONResponse:
    account, params = await _authorized(state, request)
    parsed = _parse_conversation(node)
    if parsed is None or parsed[0] != account.ig_user_id:
        raise unknown_node(node, "get")
    body: dict[str, Any] = {"id": node}
    if "messages" in str(params.get("fields", "")).split(","):
        recent = _messages(state, *parsed)[:MOST_RECENT]
        body["messages"] = {"data": [{"id": m.id, "created_time": _time(m.time)} for m in recent]}
    return JSONResponse(body)


async def get_message(state: SandboxState, request: Request, node: str) -> JSONResponse:
    account, _ = await _authorized(state, request)
    for igsid in _partners(state, account.ig_user_id):
        recent = _messages(state, account.ig_user_id, igsid)[:MOST_RECENT]
        found = next((m for m in recent if m.id == node), None)
        if found is not None:
            return JSONResponse(_message_json(state, account, found))
    # Older than the 20 most recent, another account's, or never recorded: not readable.
    raise unknown_node(node, "get")


def _message_json(state: SandboxState, account: IgAccount, m: _Message) -> dict[str, Any]:
    def who(user_id: str) -> dict[str, str]:
        user = state.world.ig_users.get(user_id)
        username = account.username if user_id == account.ig_user_id else user and user.username
        return {"username": username or "", "id": user_id}

    return {
        "id": m.id,
        "created_time": _time(m.time),
        "from": who(m.from_id),
        "to": {"data": [who(m.to_id)]},
        "message": m.text,
    }
