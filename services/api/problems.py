"""Errors as application/problem+json (RFC 9457) with a stable `type` per kind of error."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_BASE = "https://autodm.dev/problems/"
MEDIA_TYPE = "application/problem+json"


def problem(status: int, kind: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(p) for p in err["loc"] if p != "body"),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors()
    ]


def install_problem_handlers(app: FastAPI) -> None:
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
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not-found", 409: "conflict", 401: "unauthorized", 403: "forbidden"}.get(
            exc.status_code, "http-error"
        )
        return problem(exc.status_code, kind, str(exc.detail), str(exc.detail))
