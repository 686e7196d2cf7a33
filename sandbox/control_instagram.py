"""Control API for the Instagram side: accounts, tokens, OAuth dialog and simulated
Instagram users (messages, comments, ig.me link taps, reads)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from sandbox import events
from sandbox.errors import INVALID_TOKEN_SUBCODE
from sandbox.state import (
    ALL_PERMISSIONS,
    AccessToken,
    Comment,
    IgAccount,
    ReceivedIgMessage,
    SandboxState,
    SentIgMessage,
    StateDep,
    TokenKind,
)

router = APIRouter()
link_router = APIRouter()


def _account(state: SandboxState, ref: str) -> IgAccount:
    account = state.world.find_ig_account(ref)
    if account is None:
        raise HTTPException(404, f"unknown Instagram account '{ref}'")
    return account


def _token_json(state: SandboxState, token: AccessToken) -> dict[str, Any]:
    now = state.clock.now()
    return asdict(token) | {
        "token_type": "bearer",
        "expires_in": round(token.expires_at - now),
        "age_seconds": round(now - token.issued_at),
        "expired": now >= token.expires_at,
    }


def _account_json(state: SandboxState, account: IgAccount) -> dict[str, Any]:
    tokens = [t.value for t in state.world.tokens.values() if t.account_id == account.ig_user_id]
    return {
        "ig_user_id": account.ig_user_id,
        "id": account.app_scoped_id,
        "username": account.username,
        "subscribed_fields": account.subscribed_fields,
        "tokens": tokens,
    }


# --- accounts and tokens ---------------------------------------------------------------


class NewAccount(BaseModel):
    username: str = Field(min_length=1)
    ig_user_id: str | None = Field(default=None, pattern=r"^\d+$")
    access_token: str | None = None
    subscribed_fields: list[str] = Field(default_factory=list)


@router.post("/instagram/accounts")
async def create_account(body: NewAccount, state: StateDep) -> dict[str, Any]:
    world = state.world
    if (body.ig_user_id and body.ig_user_id in world.ig_accounts) or world.find_ig_account(
        body.username
    ):
        raise HTTPException(409, "an account with this id or username already exists")
    if body.access_token and body.access_token in world.tokens:
        raise HTTPException(409, "access_token already in use")
    account = world.add_ig_account(body.username, body.ig_user_id)
    account.subscribed_fields = list(body.subscribed_fields)
    token = world.issue_token(
        account.ig_user_id, "long", state.clock.now(), value=body.access_token
    )
    return _account_json(state, account) | {
        "access_token": token.value,
        "token_type": "bearer",
        "expires_in": round(token.expires_at - token.issued_at),
    }


@router.get("/instagram/accounts")
async def list_accounts(state: StateDep) -> dict[str, Any]:
    return {"data": [_account_json(state, a) for a in state.world.ig_accounts.values()]}


class Revoke(BaseModel):
    # 190 subcode returned for the revoked tokens (467 invalid, 458 app not installed,
    # 460 password changed, ...).
    subcode: int = INVALID_TOKEN_SUBCODE


@router.post("/instagram/accounts/{account_id}/revoke")
async def revoke_account(
    account_id: str, state: StateDep, body: Revoke | None = None
) -> dict[str, Any]:
    account = _account(state, account_id)
    subcode = (body or Revoke()).subcode
    tokens = [t for t in state.world.tokens.values() if t.account_id == account.ig_user_id]
    for token in tokens:
        token.revoked_subcode = subcode
    return {"revoked": len(tokens)}


class NewToken(BaseModel):
    account_id: str
    kind: TokenKind = "long"
    permissions: list[str] = Field(default_factory=lambda: list(ALL_PERMISSIONS))


@router.post("/instagram/tokens")
async def issue_token(body: NewToken, state: StateDep) -> dict[str, Any]:
    account = _account(state, body.account_id)
    token = state.world.issue_token(
        account.ig_user_id, body.kind, state.clock.now(), tuple(body.permissions)
    )
    return _token_json(state, token)


class TokenPatch(BaseModel):
    access_token: str
    age_seconds: float | None = Field(default=None, ge=0)
    expires_in: float | None = None
    revoked_subcode: int | None = None
    unrevoke: bool = False


@router.patch("/instagram/tokens")
async def patch_token(body: TokenPatch, state: StateDep) -> dict[str, Any]:
    """Age, expire or revoke one token without moving the global clock."""
    token = state.world.tokens.get(body.access_token)
    if token is None:
        raise HTTPException(404, "unknown access_token")
    now = state.clock.now()
    if body.age_seconds is not None:
        token.issued_at = now - body.age_seconds
    if body.expires_in is not None:
        token.expires_at = now + body.expires_in
    if body.revoked_subcode is not None:
        token.revoked_subcode = body.revoked_subcode
    if body.unrevoke:
        token.revoked_subcode = None
    return _token_json(state, token)


@router.get("/instagram/tokens/{value}")
async def get_token(value: str, state: StateDep) -> dict[str, Any]:
    token = state.world.tokens.get(value)
    if token is None:
        raise HTTPException(404, "unknown access_token")
    return _token_json(state, token)


class OAuthDialog(BaseModel):
    account_id: str | None = None
    deny: bool | None = None


@router.put("/oauth")
async def configure_oauth(body: OAuthDialog, state: StateDep) -> dict[str, Any]:
    """Choose who the auto-approving /oauth/authorize logs in as, or make it deny."""
    config = state.world.oauth
    if body.account_id is not None:
        config.account_id = _account(state, body.account_id).ig_user_id
    if body.deny is not None:
        config.deny = body.deny
    return asdict(config)


# --- simulated Instagram users ---------------------------------------------------------


class UserMessage(BaseModel):
    account_id: str
    username: str = Field(min_length=1)
    text: str


@router.post("/instagram/users/message")
async def user_message(body: UserMessage, state: StateDep) -> dict[str, Any]:
    """A user DMs the account: opens (resets) the 24 h window and sends `messages`."""
    account = _account(state, body.account_id)
    user = state.world.ig_user_for(account.ig_user_id, body.username)
    user.last_inbound_at = state.clock.now()
    mid = "m_" + state.world.new_numeric_id("", 20)
    state.world.ig_received.append(
        ReceivedIgMessage(account.ig_user_id, user.igsid, body.text, mid, state.clock.now())
    )
    payload = events.ig_message(
        account.ig_user_id, user.igsid, mid, body.text, state.clock.now_ms()
    )
    delivery = events.send_instagram(state, account, "messages", "messages", payload)
    return {"igsid": user.igsid, "mid": mid, "webhook_id": delivery.id}


class CreatorMessage(BaseModel):
    account_id: str
    username: str = Field(min_length=1, description="The person the creator writes to")
    text: str


@router.post("/instagram/creator/message")
async def creator_message(body: CreatorMessage, state: StateDep) -> dict[str, Any]:
    """The creator writes to a person from the Instagram app: nothing goes through the API,
    Instagram only sends the echo of the account's message (no AutoDM send behind it)."""
    account = _account(state, body.account_id)
    user = state.world.ig_user_for(account.ig_user_id, body.username)
    mid = "m_" + state.world.new_numeric_id("", 20)
    now = state.clock.now()
    sent = SentIgMessage(account.ig_user_id, user.igsid, body.text, mid, now)
    state.world.ig_app_messages.append(sent)
    payload = events.ig_echo(account.ig_user_id, user.igsid, mid, body.text, state.clock.now_ms())
    delivery = events.send_instagram(state, account, "messages", "message_echo", payload)
    return {"igsid": user.igsid, "mid": mid, "webhook_id": delivery.id}


class UserComment(BaseModel):
    account_id: str
    username: str = Field(min_length=1)
    text: str
    media_id: str | None = None
    media_product_type: str = "FEED"


@router.post("/instagram/users/comment")
async def user_comment(body: UserComment, state: StateDep) -> dict[str, Any]:
    """A user comments on a post: creates the IGSID but does not open the DM window."""
    account = _account(state, body.account_id)
    user = state.world.ig_user_for(account.ig_user_id, body.username)
    comment = Comment(
        comment_id=state.world.new_numeric_id("179", 17),
        account_id=account.ig_user_id,
        igsid=user.igsid,
        username=user.username,
        text=body.text,
        media_id=body.media_id or state.world.new_numeric_id("180", 17),
        created_at=state.clock.now(),
    )
    state.world.comments[comment.comment_id] = comment
    payload = events.ig_comment(comment, body.media_product_type, int(state.clock.now()))
    delivery = events.send_instagram(state, account, "comments", "comments", payload)
    return {
        "comment_id": comment.comment_id,
        "igsid": user.igsid,
        "media_id": comment.media_id,
        "webhook_id": delivery.id,
    }


def _open_link(
    state: SandboxState, account: IgAccount, visitor: str, ref: str | None
) -> dict[str, Any]:
    """Tapping https://ig.me/m/<account>?ref=..: opens the thread (and, in the sandbox,
    the 24 h window) and sends a `messaging_referral` webhook carrying the ref."""
    user = state.world.ig_user_for(account.ig_user_id, visitor)
    user.last_inbound_at = state.clock.now()
    payload = events.ig_referral(account.ig_user_id, user.igsid, ref, state.clock.now_ms())
    delivery = events.send_instagram(
        state, account, "messaging_referral", "messaging_referral", payload
    )
    return {
        "igsid": user.igsid,
        "account_id": account.ig_user_id,
        "ref": ref,
        "webhook_id": delivery.id,
    }


class OpenLink(BaseModel):
    account_id: str
    username: str = Field(min_length=1)
    ref: str | None = None


@router.post("/instagram/users/open_link")
async def open_link(body: OpenLink, state: StateDep) -> dict[str, Any]:
    return _open_link(state, _account(state, body.account_id), body.username, body.ref)


@link_router.get("/ig.me/m/{username}")
async def tap_ig_me_link(
    username: str,
    state: StateDep,
    ref: str | None = None,
    visitor: Annotated[str, Query(alias="as")] = "sandbox_visitor",
) -> dict[str, Any]:
    """Browser-friendly ig.me link: /ig.me/m/<account username>?ref=..&as=<visitor>."""
    return _open_link(state, _account(state, username), visitor, ref)


class UserRead(BaseModel):
    account_id: str
    igsid: str
    mid: str


@router.post("/instagram/users/read")
async def user_read(body: UserRead, state: StateDep) -> dict[str, Any]:
    account = _account(state, body.account_id)
    user = state.world.ig_users.get(body.igsid)
    if user is None or user.account_id != account.ig_user_id:
        raise HTTPException(404, "unknown IGSID for this account")
    payload = events.ig_read(account.ig_user_id, user.igsid, body.mid, state.clock.now_ms())
    delivery = events.send_instagram(state, account, "messaging_seen", "messaging_seen", payload)
    return {"webhook_id": delivery.id}


# --- inspection ----------------------------------------------------------------------


@router.get("/instagram/messages")
async def sent_messages(
    state: StateDep, account_id: str | None = None, recipient: str | None = None
) -> dict[str, Any]:
    account = _account(state, account_id).ig_user_id if account_id else None
    data = [
        asdict(m) | {"private_reply": m.comment_id is not None}
        for m in state.world.ig_messages
        if (account is None or m.account_id == account)
        and (recipient is None or m.recipient_id == recipient)
    ]
    return {"data": data}


@router.get("/instagram/users")
async def list_users(state: StateDep, account_id: str | None = None) -> dict[str, Any]:
    account = _account(state, account_id).ig_user_id if account_id else None
    users = [u for u in state.world.ig_users.values() if account in (None, u.account_id)]
    return {"data": [asdict(u) for u in users]}


@router.get("/instagram/comments")
async def list_comments(state: StateDep, account_id: str | None = None) -> dict[str, Any]:
    account = _account(state, account_id).ig_user_id if account_id else None
    comments = [c for c in state.world.comments.values() if account in (None, c.account_id)]
    return {"data": [asdict(c) for c in comments]}
