"""Instagram Send API rules (Instagram API with Instagram Login, platform-facts §1).

A message is accepted only if every Meta rule holds: IGSID recipient known to the
account, open 24 h window (or, for private replies, a < 7 day old comment that has not
been replied to yet), text <= 1000 UTF-8 bytes and per-account rate limits.
"""

from __future__ import annotations

import math
import secrets
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from sandbox import events
from sandbox.errors import (
    instagram_rate_limited,
    invalid_message_data,
    invalid_parameter,
    invalid_private_reply,
    no_matching_user,
    outside_window,
    unknown_node,
)
from sandbox.oauth import authenticate, require_permission
from sandbox.params import access_token, graph_params, json_param
from sandbox.ratelimit import SlidingWindow, business_use_case_header
from sandbox.state import DAY, HOUR, IgAccount, SandboxState, SentIgMessage

MAX_TEXT_BYTES = 1000
MESSAGING_WINDOW = DAY
PRIVATE_REPLY_WINDOW = 7 * DAY
MANAGE_MESSAGES = "instagram_business_manage_messages"
MANAGE_COMMENTS = "instagram_business_manage_comments"


# --- rate limits -----------------------------------------------------------------------


def _send_window(state: SandboxState, account: IgAccount) -> tuple[SlidingWindow, int]:
    window = state.world.limiters.window(("ig_send", account.ig_user_id), 1.0)
    return window, state.settings.instagram_send_per_second


def _private_reply_window(state: SandboxState, account: IgAccount) -> tuple[SlidingWindow, int]:
    window = state.world.limiters.window(("ig_private_reply", account.ig_user_id), HOUR)
    return window, state.settings.instagram_private_replies_per_hour


def buc_headers(state: SandboxState, account: IgAccount) -> dict[str, str]:
    """Usage of the account's messaging limits as an X-Business-Use-Case-Usage header."""
    now = state.clock.now()
    percent, wait = 0, 0.0
    for window, limit in (_send_window(state, account), _private_reply_window(state, account)):
        percent = max(percent, math.ceil(100 * window.count(now) / limit))
        wait = max(wait, window.seconds_until_free(now, limit))
    return business_use_case_header(account.ig_user_id, "instagram", percent, math.ceil(wait / 60))


def _consume_rate(state: SandboxState, account: IgAccount, private_reply: bool) -> None:
    """Every call that reaches the limiter counts, even if later refused for another
    reason, because Meta counts calls, not successful messages."""
    window, limit = (
        _private_reply_window(state, account) if private_reply else _send_window(state, account)
    )
    if not window.try_acquire(state.clock.now(), limit):
        headers = buc_headers(state, account)
        raise instagram_rate_limited(state.settings.rate_limit_http_status, headers)


# --- request parsing -------------------------------------------------------------------


def _parse(params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    recipient = json_param(params, "recipient")
    if recipient is None:
        raise invalid_parameter("(#100) The parameter recipient is required")
    message = json_param(params, "message")
    if message is None:
        raise invalid_parameter("(#100) The parameter message is required")
    text = message.get("text")
    if not isinstance(text, str) or not text:
        raise invalid_message_data("message.text is required (the sandbox sends text only)")
    if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise invalid_message_data(f"text must be UTF-8 and {MAX_TEXT_BYTES} bytes or less")
    return recipient, text


# --- the two kinds of send -------------------------------------------------------------


def _new_message_id() -> str:
    return "m_" + secrets.token_urlsafe(24)


def _direct_message(
    state: SandboxState, account: IgAccount, recipient_id: str, text: str
) -> SentIgMessage:
    user = state.world.ig_users.get(recipient_id)
    # IGSIDs are scoped to one account; usernames and global ids never match.
    if user is None or user.account_id != account.ig_user_id:
        raise no_matching_user()
    now = state.clock.now()
    if user.last_inbound_at is None or now - user.last_inbound_at > MESSAGING_WINDOW:
        raise outside_window()
    return SentIgMessage(account.ig_user_id, user.igsid, text, _new_message_id(), now)


def _private_reply(
    state: SandboxState, account: IgAccount, comment_id: str, text: str
) -> SentIgMessage:
    comment = state.world.comments.get(comment_id)
    if comment is None or comment.account_id != account.ig_user_id:
        raise invalid_private_reply("no such comment on this account")
    now = state.clock.now()
    if now - comment.created_at >= PRIVATE_REPLY_WINDOW:
        raise invalid_private_reply("the comment is more than 7 days old")
    if comment.private_reply_message_id is not None:
        raise invalid_private_reply("only one private reply can be sent per comment")
    sent = SentIgMessage(
        account.ig_user_id, comment.igsid, text, _new_message_id(), now, comment_id
    )
    # Deliberately does not touch the commenter's 24 h window (Meta: private replies do
    # not open it).
    comment.private_reply_message_id = sent.message_id
    return sent


def _echo(state: SandboxState, account: IgAccount, sent: SentIgMessage) -> None:
    if state.settings.instagram_echo_webhooks:
        payload = events.ig_echo(
            account.ig_user_id, sent.recipient_id, sent.message_id, sent.text, state.clock.now_ms()
        )
        events.send_instagram(state, account, "messages", "message_echo", payload)


async def send_message(state: SandboxState, request: Request, node: str) -> JSONResponse:
    """POST /{version}/{me|ig_id}/messages for an Instagram professional account."""
    params = await graph_params(request)
    token, account = authenticate(state, access_token(request, params))
    if node not in ("me", account.ig_user_id, account.app_scoped_id):
        raise unknown_node(node)
    recipient, text = _parse(params)
    comment_id = recipient.get("comment_id")
    require_permission(token, MANAGE_COMMENTS if comment_id is not None else MANAGE_MESSAGES)
    _consume_rate(state, account, private_reply=comment_id is not None)
    if comment_id is not None:
        sent = _private_reply(state, account, str(comment_id), text)
    elif recipient.get("id") is not None:
        sent = _direct_message(state, account, str(recipient["id"]), text)
    else:
        raise invalid_parameter("(#100) recipient must contain id or comment_id")
    state.world.ig_messages.append(sent)
    state.world.stats.accept("instagram")
    _echo(state, account, sent)
    return JSONResponse({"recipient_id": sent.recipient_id, "message_id": sent.message_id})
