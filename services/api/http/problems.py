"""Errors as application/problem+json (RFC 9457) with a stable `type` per kind of error.

Every error the API returns, whoever raised it (a route, FastAPI's validation, Starlette's
routing, an unexpected exception), leaves through one of the handlers below, so a client
parses one shape. The `type` URIs are the contract: clients branch on them, never on text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from services.api.service_layer.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from shared.platform.logs import get_logger
from shared.platform.outages import is_outage

log = get_logger(__name__)

PROBLEM_BASE = "https://autodm.dev/problems/"
MEDIA_TYPE = "application/problem+json"

# Status -> (type suffix, title) for errors raised without a more specific kind.
DEFAULT_KINDS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation", "Invalid request"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal", "Internal error"),
    503: ("unavailable", "Service unavailable"),
}
CANDIDATE_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# How long a client waits before retrying a request that met a dependency outage: a
# restart or failover of PostgreSQL or Kafka takes seconds.
OUTAGE_RETRY_AFTER_S = 2


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the field, e.g. `instagram.igsid`")
    message: str
    type: str = Field(description="Machine-readable error kind, e.g. `string_too_long`")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=[PROBLEM_BASE + "validation"])
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = Field(
        default=None, description="Per-field errors (validation problems only)"
    )


class ApiProblem(Exception):
    """Raised by the service layer or routes; rendered as a problem document."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.title = title or DEFAULT_KINDS.get(status, ("", "Error"))[1]
        self.headers = dict(headers or {})


# The service layer's refusals (services/api/service_layer/errors.py) as HTTP statuses.
DOMAIN_STATUSES: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (Invalid, 422),
)


def as_problem(exc: DomainError) -> ApiProblem:
    """The problem a domain error answers: its status by kind, its type and title the
    status's defaults unless the error names more specific ones."""
    status = next((code for kind, code in DOMAIN_STATUSES if isinstance(exc, kind)), 400)
    default_kind, default_title = DEFAULT_KINDS[status]
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
    return ApiProblem(
        status,
        exc.kind or default_kind,
        exc.detail,
        title=exc.title or default_title,
        headers=headers,
    )


def problem(
    status: int,
    kind: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"type": PROBLEM_BASE + kind, "title": title, "status": status, "detail": detail}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(p) for p in err["loc"] if p != "body"),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors()
    ]


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given error statuses, all problem documents."""
    content = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {
        status: {"description": DEFAULT_KINDS.get(status, ("", "Error"))[1], "content": content}
        for status in statuses
    }


def allowed_methods(request: Request) -> str:
    """Every method some route answers on this path (RFC 9110: a 405 lists them in `Allow`).
    Starlette's own 405 names only the first route that matched the path, so /api/leads's
    would have said `POST` alone. Asked through each route's public `matches`."""
    allowed = [
        method
        for method in CANDIDATE_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def api_problem(_: Request, exc: ApiProblem) -> JSONResponse:
        return problem(exc.status, exc.kind, exc.title, exc.detail, exc.headers)

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        answer = as_problem(exc)
        return problem(answer.status, answer.kind, answer.title, answer.detail, answer.headers)

    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(
            422,
            "validation",
            "Invalid request",
            "Some fields are missing or invalid.",
            errors=_field_errors(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind, title = DEFAULT_KINDS.get(exc.status_code, ("http-error", "Error"))
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return problem(exc.status_code, kind, title, str(exc.detail), headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        if is_outage(exc):
            # Not the request's fault and not a bug: the client may simply try again.
            log.warning("dependency unavailable", error=repr(exc)[:200])
            return problem(
                503,
                "unavailable",
                "Service unavailable",
                "A database or message broker AutoDM needs is briefly unreachable. Try again "
                "shortly; with an Idempotency-Key a retry is safe.",
                {"Retry-After": str(OUTAGE_RETRY_AFTER_S)},
            )
        # Details stay in the log (with the correlation id); the client learns nothing inner.
        log.exception("unhandled error", error=type(exc).__name__)
        # Uvicorn closes the connection after this answer (the error is re-raised to it):
        # saying so keeps a client from sending its next request into the closing socket.
        return problem(
            500,
            "internal",
            "Internal error",
            "Something went wrong on our side.",
            {"Connection": "close"},
        )

    _publish_problem_schema(app)


def _publish_problem_schema(app: FastAPI) -> None:
    """Add Problem to the OpenAPI components: routes reference it by $ref under the
    problem media type, which FastAPI's `model=` would have put under application/json."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for model in (Problem, FieldError):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schema.pop("$defs", None)
            schemas[model.__name__] = schema
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
