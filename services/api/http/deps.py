"""What routes depend on, as the FastAPI template has it: the composition root (ApiDeps)
and `Annotated` aliases a route names in its signature (Deps, UowDep, CurrentUser,
AdminUser, CorrelationId...). Routes live one module per resource in routes/."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated
from uuid import UUID, uuid4

from fastapi import Depends, Header, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.auth import Principal, Role, TokenVerifier, unauthorized
from services.api.http.dlq_depth import DlqSize
from services.api.http.problems import ApiProblem
from services.api.http.rate_limits import charge_request
from services.api.http.status_stream import StreamConfig
from services.api.service_layer.dm_requests import RetryContext
from services.api.service_layer.idempotency_keys import KeyPolicy
from shared.contracts.events import utcnow
from shared.contracts.route_choice import RoutingRules
from shared.messaging.unit_of_work import UnitsOfWork
from shared.platform.logs import bind_correlation_id


@dataclass(frozen=True)
class ApiDeps:
    sessions: async_sessionmaker[AsyncSession]  # reads
    uow: UnitsOfWork  # writes: one transaction each, the relay woken by NOTIFY
    verifier: TokenVerifier
    rules: RoutingRules
    keys: KeyPolicy
    dlq: DlqSize
    stream: StreamConfig = field(default_factory=StreamConfig)

    def retry_context(self) -> RetryContext:
        return RetryContext(rules=self.rules, now=utcnow())


# Dependencies are `async def` although they never await: FastAPI runs a plain `def`
# dependency in its thread pool, a hand-off per request each (seen in the bench's profile),
# and a contextvar bound there (the correlation id) never reached the request's own task.
async def get_deps(request: Request) -> ApiDeps:
    deps: ApiDeps = request.app.state.deps
    return deps


async def correlation_id(
    response: Response,
    x_correlation_id: Annotated[str | None, Header(max_length=128)] = None,
) -> str:
    value = x_correlation_id or str(uuid4())
    bind_correlation_id(value)
    response.headers["X-Correlation-ID"] = value
    return value


Deps = Annotated[ApiDeps, Depends(get_deps)]
CorrelationId = Annotated[str, Depends(correlation_id)]

bearer = HTTPBearer(
    auto_error=False,
    description="A JWT from the identity provider (or local_issuer in development)",
)


async def current_user(
    request: Request,
    deps: Deps,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise unauthorized("a bearer token is required")
    user = await deps.verifier.verify(credentials.credentials)
    await charge_request(request, user)  # per-caller limits; 429 past them
    return user


CurrentUser = Annotated[Principal, Depends(current_user)]


async def admin_user(user: CurrentUser) -> Principal:
    if user.role != Role.ADMIN:
        raise ApiProblem(403, "forbidden", "this endpoint is for admins")
    return user


AdminUser = Annotated[Principal, Depends(admin_user)]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique printable string (a UUID is ideal); a retry sends the same one",
    ),
]

AUTH_ERRORS = (401, 429, 503)


async def get_uow(deps: Deps) -> UnitsOfWork:
    """The units of work of a write: `async with uow() as work:` (commit, then NOTIFY)."""
    return deps.uow


async def get_sessions(deps: Deps) -> async_sessionmaker[AsyncSession]:
    """Sessions for reads (no transaction to commit, nothing to publish)."""
    return deps.sessions


UowDep = Annotated[UnitsOfWork, Depends(get_uow)]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]

CreatorParam = Annotated[
    UUID | None,
    Query(
        description="Admins and services only, and required for them (else a 422 "
        "`creator-required`): which creator's"
    ),
]
