"""The sandbox's in-memory world.

Concurrency: everything runs on one asyncio event loop and every check-then-record
sequence on the world is synchronous (no ``await`` in between), so no locks are needed.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, cast

import httpx
from fastapi import Depends, Request

from sandbox.faults import FaultInjector
from sandbox.ratelimit import LimiterBank
from sandbox.settings import SandboxSettings
from sandbox.wa_users import WaUsers
from sandbox.webhooks import WebhookDispatcher

HOUR = 3600.0
DAY = 24 * HOUR
SHORT_LIVED_TTL = HOUR
# Meta returns expires_in=5183944 for a "60 day" token (platform-facts §2).
LONG_LIVED_TTL = 5183944

ALL_PERMISSIONS = (
    "instagram_business_basic",
    "instagram_business_manage_messages",
    "instagram_business_manage_comments",
    "instagram_business_content_publish",
)

# A built-in account so OAuth works without any setup; ids/token are stable across resets.
DEMO_IG_USER_ID = "17841400000000001"
DEMO_APP_SCOPED_ID = "27000000000000001"
DEMO_USERNAME = "autodm_demo"
DEMO_ACCESS_TOKEN = "IGAAsandboxDemoLongLivedToken"  # noqa: S105 - public demo token

TokenKind = Literal["short", "long"]
Platform = Literal["instagram", "whatsapp"]


class Clock:
    """Wall clock plus a controllable offset, so tests can age windows and tokens."""

    def __init__(self) -> None:
        self.offset_seconds = 0.0

    def now(self) -> float:
        return time.time() + self.offset_seconds

    def now_ms(self) -> int:
        return int(self.now() * 1000)


@dataclass
class IgAccount:
    ig_user_id: str  # professional account id: webhook entry.id, /{ig_id}/messages
    app_scoped_id: str  # `id` returned by GET /me
    username: str
    subscribed_fields: list[str] = field(default_factory=list)


@dataclass
class AccessToken:
    value: str
    account_id: str
    kind: TokenKind
    issued_at: float
    expires_at: float
    permissions: tuple[str, ...] = ALL_PERMISSIONS
    revoked_subcode: int | None = None


@dataclass
class IgUser:
    """An Instagram user as seen by one professional account (IGSIDs are account-scoped)."""

    igsid: str
    account_id: str
    username: str
    last_inbound_at: float | None = None


@dataclass
class Comment:
    comment_id: str
    account_id: str
    igsid: str
    username: str
    text: str
    media_id: str
    created_at: float
    private_reply_message_id: str | None = None


@dataclass
class SentIgMessage:
    account_id: str
    recipient_id: str
    text: str
    message_id: str
    time: float
    comment_id: str | None = None


@dataclass
class ReceivedIgMessage:
    """A message a user sent to the account (the other half of a conversation)."""

    account_id: str
    sender_id: str
    text: str
    message_id: str
    time: float


@dataclass
class AuthCode:
    code: str
    account_id: str
    redirect_uri: str
    permissions: tuple[str, ...]
    issued_at: float
    used: bool = False


@dataclass
class OAuthConfig:
    """Who the auto-approving OAuth dialog logs in as, and whether it denies."""

    account_id: str = DEMO_IG_USER_ID
    deny: bool = False


@dataclass
class WaNumber:
    phone_number_id: str
    display_phone_number: str
    access_token: str
    waba_id: str
    daily_tier: str = "250"  # stored and reported only; not enforced


@dataclass
class WaTemplate:
    name: str
    language: str
    body_params: int
    category: str = "utility"


@dataclass
class SentWaMessage:
    phone_number_id: str
    to: str
    type: str
    message_id: str
    time: float
    text: str | None = None
    template: str | None = None
    language: str | None = None
    params: list[str] = field(default_factory=list)
    # Set when the message was accepted but then failed asynchronously (status webhook).
    error_code: int | None = None
    # The recipient's BSUID, and whether the send named them by it (`recipient`) or by
    # phone (`to`); `to` holds their phone whenever the sandbox knows it.
    user_id: str | None = None
    addressed_by: str = "to"
    # `biz_opaque_callback_data` of the send, echoed in every status webhook of it.
    callback_data: str | None = None


@dataclass
class StatusOrder:
    """Which WhatsApp statuses are sent after an accepted message, and how spaced."""

    order: list[str] = field(default_factory=lambda: ["sent", "delivered", "read"])
    delay_ms: int = 0
    # Set through the control API: played exactly, no jitter, nothing dropped or swapped.
    explicit: bool = False


@dataclass
class Stats:
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: dict[str, Counter[str]] = field(
        default_factory=lambda: {"instagram": Counter(), "whatsapp": Counter()}
    )

    def accept(self, platform: Platform) -> None:
        self.accepted[platform] += 1

    # Every throttling answer: when, to whom, and until when no call should come (the
    # reliability suite checks no message was accepted for that owner in between).
    throttles: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, platform: Platform, key: str) -> None:
        self.rejected[platform][key] += 1

    def throttle(
        self, platform: Platform, owner: str, code: int, at: float, regain_s: float
    ) -> None:
        self.throttles.append(
            {"platform": platform, "owner": owner, "code": code, "time": at, "until": at + regain_s}
        )


@dataclass
class World:
    ig_accounts: dict[str, IgAccount] = field(default_factory=dict)
    tokens: dict[str, AccessToken] = field(default_factory=dict)
    ig_users: dict[str, IgUser] = field(default_factory=dict)
    igsid_by_username: dict[tuple[str, str], str] = field(default_factory=dict)
    comments: dict[str, Comment] = field(default_factory=dict)
    ig_messages: list[SentIgMessage] = field(default_factory=list)
    ig_received: list[ReceivedIgMessage] = field(default_factory=list)
    auth_codes: dict[str, AuthCode] = field(default_factory=dict)
    oauth: OAuthConfig = field(default_factory=OAuthConfig)
    wa_numbers: dict[str, WaNumber] = field(default_factory=dict)
    wa_templates: dict[tuple[str, str], WaTemplate] = field(default_factory=dict)
    # (phone_number_id, the user's BSUID) -> when they last wrote
    wa_last_inbound: dict[tuple[str, str], float] = field(default_factory=dict)
    wa_users: WaUsers = field(default_factory=WaUsers)
    wa_messages: list[SentWaMessage] = field(default_factory=list)
    # WhatsApp users who stopped the business's marketing messages (131050 on a marketing
    # template), and messages the creator typed in the Instagram app (echoes AutoDM did not
    # send): both for opt-out and takeover tests.
    wa_marketing_stopped: set[str] = field(default_factory=set)
    ig_app_messages: list[SentIgMessage] = field(default_factory=list)
    status_order: StatusOrder = field(default_factory=StatusOrder)
    limiters: LimiterBank = field(default_factory=LimiterBank)
    stats: Stats = field(default_factory=Stats)
    _used_ids: set[str] = field(default_factory=set)

    def new_numeric_id(self, prefix: str, length: int) -> str:
        """Random numeric id, unique across the whole world (IG and WhatsApp share the
        `/{id}/messages` path, so ids must not collide)."""
        while True:
            tail = "".join(str(secrets.randbelow(10)) for _ in range(length - len(prefix)))
            candidate = prefix + tail
            if candidate not in self._used_ids:
                self._used_ids.add(candidate)
                return candidate

    # --- Instagram accounts and tokens ---------------------------------------------

    def add_ig_account(
        self, username: str, ig_user_id: str | None = None, app_scoped_id: str | None = None
    ) -> IgAccount:
        account = IgAccount(
            ig_user_id=ig_user_id or self.new_numeric_id("178414", 17),
            app_scoped_id=app_scoped_id or self.new_numeric_id("2", 17),
            username=username,
        )
        self._used_ids.update({account.ig_user_id, account.app_scoped_id})
        self.ig_accounts[account.ig_user_id] = account
        return account

    def find_ig_account(self, ref: str) -> IgAccount | None:
        """Look an account up by professional id, app-scoped id or username."""
        if ref in self.ig_accounts:
            return self.ig_accounts[ref]
        for account in self.ig_accounts.values():
            if ref in (account.app_scoped_id, account.username):
                return account
        return None

    def issue_token(
        self,
        account_id: str,
        kind: TokenKind,
        now: float,
        permissions: tuple[str, ...] = ALL_PERMISSIONS,
        value: str | None = None,
    ) -> AccessToken:
        ttl = SHORT_LIVED_TTL if kind == "short" else LONG_LIVED_TTL
        token = AccessToken(
            value=value or "IGAA" + secrets.token_urlsafe(48),
            account_id=account_id,
            kind=kind,
            issued_at=now,
            expires_at=now + ttl,
            permissions=permissions,
        )
        self.tokens[token.value] = token
        return token

    # --- Instagram users -------------------------------------------------------------

    def ig_user_for(self, account_id: str, username: str) -> IgUser:
        """The IGSID of `username` as seen by `account_id`, created on first contact."""
        key = (account_id, username.lower())
        igsid = self.igsid_by_username.get(key)
        if igsid is None:
            igsid = self.new_numeric_id("", 16)
            self.igsid_by_username[key] = igsid
            self.ig_users[igsid] = IgUser(igsid=igsid, account_id=account_id, username=username)
        return self.ig_users[igsid]


def new_world(now: float) -> World:
    world = World()
    world.add_ig_account(DEMO_USERNAME, DEMO_IG_USER_ID, DEMO_APP_SCOPED_ID)
    world.issue_token(DEMO_IG_USER_ID, "long", now, value=DEMO_ACCESS_TOKEN)
    return world


class SandboxState:
    """Everything the routes share; stored on ``app.state.sandbox``."""

    def __init__(
        self, settings: SandboxSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base_settings = settings
        self.settings = settings
        self.clock = Clock()
        self.world = new_world(self.clock.now())
        self.faults = FaultInjector()
        # Lambdas: settings and clock are replaced on reset / runtime settings changes.
        self.webhooks = WebhookDispatcher(
            settings=lambda: self.settings, now=lambda: self.clock.now(), transport=transport
        )
        self.webhooks.on_disabled = self._unsubscribe

    def _unsubscribe(self, ig_user_id: str) -> None:
        """Meta unsubscribed the app from a failing account: its fields are gone."""
        account = self.world.ig_accounts.get(ig_user_id)
        if account is not None:
            account.subscribed_fields = []

    def reset(self) -> None:
        self.settings = self.base_settings
        self.clock = Clock()
        self.world = new_world(self.clock.now())
        self.faults = FaultInjector()
        self.webhooks.reset()


def get_state(request: Request) -> SandboxState:
    return cast(SandboxState, request.app.state.sandbox)


StateDep = Annotated[SandboxState, Depends(get_state)]
