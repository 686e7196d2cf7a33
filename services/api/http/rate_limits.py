"""Per-caller rate limits of the JSON API (`/api/...`; docs/FRONTEND.md, "Rate limits").

A caller is a token's subject and the creator it acts for: a creator token's own creator,
or for an admin or service token the `creator_id` its request names (query or JSON body),
so a service working for many creators has a quota per creator. The limit is the token
role's (settings `api_rate_limit_*`), per fixed window of `api_rate_limit_window_s`.

Counted in PostgreSQL (table api_rate_counts, UNLOGGED), so every API process shares one
count: a limit each replica kept in memory would be N times as loose with N replicas.
The cost on the hot path is one short statement per block of requests (one per request
for a caller sending few; rate_leases.py), an upsert on its primary key that adds the
block and returns the new count, run in autocommit (no BEGIN/COMMIT round trips, and its
row lock is held for that statement only, never across the request's own transaction).
Windows are aligned to the epoch, so every process agrees on them (clocks are
NTP-synchronised; a skew of a second shifts a window's edge by as much).
The API's housekeeping deletes past windows.

Answers: every `/api/` response carries `RateLimit-Policy` (the caller's policy; all of
them when nobody was counted, e.g. a 401) and, once a caller was counted, `RateLimit`
(remaining quota, seconds to the window's end), in the syntax of
draft-ietf-httpapi-ratelimit-headers. Over the limit: 429 problem+json with `Retry-After`.
If PostgreSQL is unreachable the request is let through uncounted: the limiter must not
turn a database blip into an outage of routes that would have answered.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from fastapi import FastAPI, Request
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.http.auth import Principal, Role
from services.api.http.problems import ApiProblem
from services.api.http.rate_leases import Leases
from services.api.settings import ApiSettings
from shared.db.models import ApiRateCount
from shared.platform.logs import get_logger
from shared.platform.outages import is_outage

log = get_logger(__name__)

API_PREFIX = "/api/"
SCOPE_KEY = "autodm.rate_limit"
MAX_SUBJECT = 255


@dataclass(frozen=True)
class Policy:
    """One role's quota: `quota` requests per `window_s` seconds."""

    name: str
    quota: int
    window_s: int

    @property
    def field(self) -> str:
        return f'"{self.name}";q={self.quota};w={self.window_s}'


@dataclass(frozen=True)
class Standing:
    """Where one caller stands after this request was counted."""

    policy: Policy
    hits: int
    reset_s: int  # whole seconds until the window ends (at least 1)

    @property
    def exceeded(self) -> bool:
        return self.hits > self.policy.quota

    @property
    def remaining(self) -> int:
        return max(self.policy.quota - self.hits, 0)

    @property
    def field(self) -> str:
        return f'"{self.policy.name}";r={self.remaining};t={self.reset_s}'


@dataclass
class Slot:
    """Put in the request's scope by the headers middleware; filled once the caller is
    counted (a mutable holder, so it is shared whatever copies the scope on the way)."""

    standing: Standing | None = None


def policies_from(settings: ApiSettings) -> dict[Role, Policy]:
    quotas = {
        Role.CREATOR: settings.api_rate_limit_creator,
        Role.ADMIN: settings.api_rate_limit_admin,
        Role.SERVICE: settings.api_rate_limit_service,
    }
    window = settings.api_rate_limit_window_s
    return {role: Policy(role.value, q, window) for role, q in quotas.items() if q > 0}


@dataclass
class ApiRateLimits:
    engine: AsyncEngine  # in autocommit: one statement, no transaction around it
    policies: Mapping[Role, Policy]
    clock: Callable[[], float] = field(default=time.time)
    leases: Leases = field(default_factory=Leases)  # blocks of the shared counts

    async def charge(self, user: Principal, creator: str) -> Standing | None:
        """Count one request of (user, creator); None when the role has no limit."""
        policy = self.policies.get(user.role)
        if policy is None:
            return None
        now = self.clock()
        start = now // policy.window_s * policy.window_s
        hits = await self._position(_subject_key(user.subject), creator, start, policy.quota)
        reset_s = max(math.ceil(start + policy.window_s - now), 1)
        return Standing(policy, hits, reset_s)

    async def _position(self, subject: str, creator: str, start: float, quota: int) -> int:
        """The request's place in the window's shared count: from this process's block of
        it, reserving the next block when that is used up (rate_leases.py)."""
        lease = self.leases.lease((subject, creator), start)
        position = self.leases.take(lease, quota)
        if position is not None:
            return position
        async with lease.lock:  # concurrent requests of one caller: one reservation
            position = self.leases.take(lease, quota)
            if position is not None:
                return position
            size = self.leases.block(lease, quota)
            count = await self._count(subject, creator, start, size)
            return self.leases.reserved(lease, count, size)

    async def _count(self, subject: str, creator: str, start: float, size: int = 1) -> int:
        row = insert(ApiRateCount).values(
            subject=subject,
            creator=creator,
            window_start=datetime.fromtimestamp(start, UTC),
            hits=size,
        )
        hit = row.on_conflict_do_update(
            index_elements=[
                ApiRateCount.subject,
                ApiRateCount.creator,
                ApiRateCount.window_start,
            ],
            set_={"hits": ApiRateCount.hits + row.excluded.hits},
        ).returning(ApiRateCount.hits)
        async with self.engine.connect() as conn:
            return int((await conn.execute(hit)).scalar_one())


def _subject_key(subject: str) -> str:
    if len(subject) <= MAX_SUBJECT:
        return subject
    return "sha256:" + hashlib.sha256(subject.encode()).hexdigest()


async def acting_for(request: Request, user: Principal) -> str:
    """The creator this request acts for, as the count's key ("" when it names none)."""
    if user.creator_id is not None:
        return str(user.creator_id)
    named = request.query_params.get("creator_id")
    if named is None and request.headers.get("content-type", "").startswith("application/json"):
        # FastAPI has read the body already (cached on the request); only admins and
        # services get here, and their bodies are small.
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        named = body.get("creator_id") if isinstance(body, dict) else None
    return _creator_key(named)


def _creator_key(value: object) -> str:
    # Only a well-formed id keys a count: anything else is refused by validation anyway,
    # and must not let a caller mint fresh quotas from junk.
    try:
        return str(UUID(str(value))) if value is not None else ""
    except ValueError:
        return ""


async def charge_request(request: Request, user: Principal) -> None:
    """Count an authenticated `/api/` request; 429 once its caller is over the limit."""
    limits: ApiRateLimits | None = getattr(request.app.state, "api_rate_limits", None)
    if limits is None or not request.scope["path"].startswith(API_PREFIX):
        return
    try:
        standing = await limits.charge(user, await acting_for(request, user))
    except Exception as exc:
        if not is_outage(exc):
            raise
        log.warning("rate limit not counted: database unavailable", error=repr(exc)[:200])
        return
    if standing is None:
        return
    slot = request.scope.get(SCOPE_KEY)
    if isinstance(slot, Slot):
        slot.standing = standing
    if standing.exceeded:
        raise ApiProblem(
            429,
            "rate-limited",
            f"Over the {standing.policy.name} limit of {standing.policy.quota} requests per "
            f"{standing.policy.window_s} s; try again in {standing.reset_s} s.",
            headers={"Retry-After": str(standing.reset_s)},
        )


class RateLimitHeaders:
    """`RateLimit-Policy` and `RateLimit` on every `/api/` response."""

    def __init__(self, app: ASGIApp, policies: Mapping[Role, Policy]) -> None:
        self.app = app
        self.all_policies = ", ".join(p.field for p in policies.values())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        slot = Slot()
        scope[SCOPE_KEY] = slot

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if slot.standing is not None:
                    headers["RateLimit-Policy"] = slot.standing.policy.field
                    headers["RateLimit"] = slot.standing.field
                elif self.all_policies:
                    headers["RateLimit-Policy"] = self.all_policies
            await send(message)

        await self.app(scope, receive, with_headers)


def install_rate_limits(app: FastAPI, settings: ApiSettings, engine: AsyncEngine) -> None:
    policies = policies_from(settings)
    if not policies:
        return
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    app.state.api_rate_limits = ApiRateLimits(autocommit, policies)
    app.add_middleware(RateLimitHeaders, policies=policies)
